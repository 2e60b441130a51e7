//! Weighted Boxes Fusion against ensemble-boxes on the readers of the real train.csv, for
//! every conf_type, with and without weights; and the pitfalls the reference lets through.

use std::collections::BTreeMap;

use radlab_labels::fusion::{
    ConfType, NmsMethod, NmsOptions, SourceBox, WbfOptions, non_maximum_suppression,
    weighted_boxes_fusion,
};
use radlab_labels::kaggle::read_train_csv;
use radlab_labels::kaggle_class_id;
use radlab_testkit::{corpus, reference_python_with, run_reference};

#[test]
fn pitfalls_are_errors_not_silent_numbers() {
    let b = |score| SourceBox {
        bbox: [10.0, 10.0, 50.0, 50.0],
        score,
        label: 0,
    };
    let opts = WbfOptions::default();
    let e = weighted_boxes_fusion(&[vec![b(1.5)]], &opts).unwrap_err();
    assert!(e.contains("not in [0, 1]"), "{e}");
    let zero = WbfOptions {
        weights: Some(vec![0.0]),
        ..WbfOptions::default()
    };
    assert!(
        weighted_boxes_fusion(&[vec![b(0.5)]], &zero)
            .unwrap_err()
            .contains("positive")
    );
    // Pixels are fused as pixels (the reference would clip them to 1).
    let two = [vec![b(0.9)], vec![b(0.7)]];
    let f = weighted_boxes_fusion(&two, &opts).unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].bbox, [10.0, 10.0, 50.0, 50.0]);
    assert_eq!(f[0].sources, vec![0, 1]);
    assert!((f[0].score - 0.8).abs() < 1e-15);
}

#[test]
fn readers_of_the_real_train_csv_fuse_as_ensemble_boxes_does() {
    let test = "wbf_against_ensemble_boxes";
    let Some(corpus) = corpus(test) else { return };
    let Some(python) = reference_python_with(test, "ensemble_boxes") else {
        return;
    };
    let sets = three_reader_images(&corpus);
    assert!(sets.len() >= 300);
    let mut compared = 0;
    for conf_type in ["avg", "max", "box_and_model_avg", "absent_model_aware_avg"] {
        for (weights, iou_thr, overflow) in [
            (None, 0.55, false),
            (Some(vec![2.0, 1.0, 1.0]), 0.4, false),
            (Some(vec![1.0, 3.0, 0.5]), 0.5, true),
        ] {
            let options = WbfOptions {
                iou_thr,
                skip_box_thr: 0.6,
                weights: weights.clone(),
                conf_type: ConfType::parse(conf_type).unwrap(),
                allows_overflow: overflow,
            };
            let query = serde_json::json!({
                "options": {
                    "iou_thr": iou_thr, "skip_box_thr": 0.6, "weights": weights,
                    "conf_type": conf_type, "allows_overflow": overflow,
                },
                "images": images_json(&sets),
            });
            let reference = run_reference(&python, "wbf.py", &query);
            for (k, sources) in sets.iter().enumerate() {
                let ours = weighted_boxes_fusion(sources, &options).unwrap();
                let theirs = reference[k].as_array().unwrap();
                assert_eq!(ours.len(), theirs.len(), "{conf_type} image {k}");
                for (o, t) in ours.iter().zip(theirs) {
                    let t: Vec<f64> = t
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_f64().unwrap())
                        .collect();
                    // The reference keeps fused boxes and scores in float32.
                    for j in 0..4 {
                        assert!(
                            (o.bbox[j] - t[j]).abs() < 2e-6,
                            "{conf_type} image {k}: {o:?} vs {t:?}"
                        );
                    }
                    assert!(
                        (o.score - t[4]).abs() < 2e-6,
                        "{conf_type} image {k}: {o:?} vs {t:?}"
                    );
                    assert_eq!(o.label as f64, t[5]);
                    compared += 1;
                }
            }
        }
    }
    assert!(compared > 5000, "{compared}");
}

/// Up to 400 images of the real train.csv read by three readers: per reader, the boxes,
/// normalised by the image size, with distinct deterministic scores.
fn three_reader_images(corpus: &radlab_testkit::Corpus) -> Vec<Vec<Vec<SourceBox>>> {
    let rows = read_train_csv(
        &std::fs::read(corpus.path("annotations/vinbigdata/train.csv")).unwrap()[..],
        "train.csv",
    )
    .unwrap();
    let size_text =
        std::fs::read_to_string(corpus.path("annotations/vinbigdata/train_image_size.csv"))
            .unwrap();
    let sizes: BTreeMap<&str, (f64, f64)> = size_text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some((f[0], (f[2].parse().ok()?, f[1].parse().ok()?)))
        })
        .collect();
    // Per image, per reader: the boxes, normalised, with distinct deterministic scores.
    let mut images: BTreeMap<&str, BTreeMap<&str, Vec<SourceBox>>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        let (Some(b), Some((w, h))) = (r.bbox, sizes.get(r.image_id.as_str())) else {
            continue;
        };
        images
            .entry(r.image_id.as_str())
            .or_default()
            .entry(r.reader.as_deref().unwrap())
            .or_default()
            .push(SourceBox {
                bbox: [b[0] / w, b[1] / h, b[2] / w, b[3] / h],
                score: 0.5 + ((i * 7919) % 1000) as f64 / 2001.0 + i as f64 * 1e-9,
                label: kaggle_class_id(&r.label).unwrap() as u32,
            });
    }
    let sets: Vec<Vec<Vec<SourceBox>>> = images
        .values()
        .filter(|readers| readers.len() == 3)
        .take(400)
        .map(|readers| readers.values().cloned().collect())
        .collect();
    sets
}

#[test]
fn nms_and_soft_nms_keep_what_ensemble_boxes_keeps() {
    let test = "nms_against_ensemble_boxes";
    let Some(corpus) = corpus(test) else { return };
    let Some(python) = reference_python_with(test, "ensemble_boxes") else {
        return;
    };
    let sets = three_reader_images(&corpus);
    let mut decayed_seen = 0;
    for (method, code) in [
        (NmsMethod::Hard, 3),
        (NmsMethod::Linear, 1),
        (NmsMethod::Gaussian, 2),
    ] {
        for (weights, iou_thr) in [(None, 0.5), (Some(vec![2.0, 1.0, 1.0]), 0.3)] {
            let options = NmsOptions {
                method,
                iou_thr,
                sigma: 0.5,
                thresh: 0.3,
                weights: weights.clone(),
            };
            let query = serde_json::json!({
                "options": {"method": code, "iou_thr": iou_thr, "sigma": 0.5, "thresh": 0.3,
                            "weights": weights},
                "images": images_json(&sets),
            });
            let reference = run_reference(&python, "nms.py", &query);
            for (k, sources) in sets.iter().enumerate() {
                let ours = non_maximum_suppression(sources, &options).unwrap();
                let theirs = reference[k].as_array().unwrap();
                assert_eq!(ours.len(), theirs.len(), "{method:?} image {k}");
                for (o, t) in ours.iter().zip(theirs) {
                    let t: Vec<f64> = t
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_f64().unwrap())
                        .collect();
                    for (a, b) in o.bbox.iter().zip(&t) {
                        assert!((a - b).abs() < 1e-12, "{method:?} image {k}");
                    }
                    assert_eq!(o.label as f64, t[5]);
                    if method == NmsMethod::Hard {
                        assert!((o.score - t[4]).abs() < 1e-12, "{method:?} image {k}");
                    } else {
                        // The reference returns each kept box's original score; soft-NMS
                        // decays it (Bodla et al. 2017), which radlab returns.
                        assert!(o.score <= t[4] + 1e-12, "{method:?} image {k}");
                        if o.score < t[4] - 1e-6 {
                            decayed_seen += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(
        decayed_seen > 0,
        "no soft-NMS score was decayed: the difference is not shown"
    );
}

/// The sets of source boxes as the reference scripts read them:
/// `[[[x1, y1, x2, y2, score, label], ...] per source] per image`.
fn images_json(sets: &[Vec<Vec<SourceBox>>]) -> serde_json::Value {
    sets.iter()
        .map(|sources| {
            sources
                .iter()
                .map(|s| {
                    s.iter()
                        .map(|b| {
                            serde_json::json!([
                                b.bbox[0], b.bbox[1], b.bbox[2], b.bbox[3], b.score, b.label
                            ])
                        })
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}
