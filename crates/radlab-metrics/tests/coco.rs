//! COCO AP: hand-computed cases, the edge cases, and a differential test against
//! pycocotools' COCOeval itself (`tests/reference/coco_ap.py`) on the real Kaggle
//! `train.csv`: one reader's boxes as ground truth, the other readers' boxes on the same
//! images as detections with deterministic scores (ties included), plus crowded images
//! past the 100-detection cap, duplicates and zero-area boxes.

use radlab_labels::kaggle::read_train_csv;
use radlab_labels::{Annotation, KAGGLE_CLASSES};
use radlab_metrics::coco::{CocoParams, linspace};
use radlab_metrics::{coco_eval, image_order};
use radlab_testkit::{corpus, reference_python_with, run_reference};

fn a(image: &str, label: &str, b: [f64; 4], score: Option<f64>) -> Annotation {
    Annotation {
        image_id: image.into(),
        reader: None,
        label: label.into(),
        bbox: Some(b),
        score,
    }
}

#[test]
fn thresholds_are_numpy_linspace() {
    let p = CocoParams::default();
    assert_eq!(p.iou_thresholds.len(), 10);
    assert_eq!(p.iou_thresholds[0], 0.5);
    assert_eq!(p.iou_thresholds[5], 0.75);
    assert_eq!(p.iou_thresholds[8], 0.8999999999999999); // numpy's value, not 0.9
    assert_eq!(p.iou_thresholds[9], 0.95);
    assert_eq!(p.recall_thresholds.len(), 101);
    assert!((0..101).all(|i| p.recall_thresholds[i] == linspace(0.0, 1.0, 101)[i]));
    assert_eq!(p.recall_thresholds[100], 1.0);
}

#[test]
fn hand_computed_cases() {
    let gt = [
        a("A", "X", [0.0, 0.0, 10.0, 10.0], None),
        a("A", "X", [20.0, 20.0, 30.0, 30.0], None),
    ];
    let images = ["A"];
    // A perfect detector: AP 1 everywhere (the 1/(1+2^-52) of pycocotools' precision is
    // 1 - 2^-52 on the first rank).
    let det = [
        a("A", "X", [0.0, 0.0, 10.0, 10.0], Some(0.9)),
        a("A", "X", [20.0, 20.0, 30.0, 30.0], Some(0.8)),
    ];
    let r = coco_eval(&["X"], &images, &gt, &det, &CocoParams::default());
    assert!((r.stats.ap - 1.0).abs() < 1e-15, "{:?}", r.stats);
    assert!((r.stats.ar1 - 0.5).abs() < 1e-15); // one detection per image: half recalled
    assert_eq!(r.stats.ar100, 1.0);
    // Areas: both boxes are 100 px², small; no medium or large ground truth: -1.
    assert_eq!(r.stats.ap_medium, -1.0);
    assert_eq!(r.stats.ap_large, -1.0);
    // A false positive ranked first, then one true positive: precision 1/2 at recall 1/2,
    // recall thresholds 0..0.5 (51 of 101) get 1/2, the rest 0.
    let det = [
        a("A", "X", [50.0, 50.0, 60.0, 60.0], Some(0.9)),
        a("A", "X", [0.0, 0.0, 10.0, 10.0], Some(0.8)),
    ];
    let r = coco_eval(&["X"], &images, &gt, &det, &CocoParams::at_iou(0.5));
    let expect = 51.0 * (1.0 / (2.0 + f64::EPSILON)) / 101.0;
    assert!(
        (r.stats.ap - expect).abs() < 1e-15,
        "{} vs {expect}",
        r.stats.ap
    );
    // IoU exactly at the threshold matches (>=), unlike VOC's >.
    let half = [a("A", "X", [0.0, 0.0, 10.0, 5.0], Some(0.9))]; // IoU 0.5
    let r = coco_eval(&["X"], &images, &gt[..1], &half, &CocoParams::at_iou(0.5));
    assert!((r.stats.ap - 1.0).abs() < 1e-15);
    // A class without ground truth: None per class, left out of the means (-1 when alone).
    let r = coco_eval(&["X", "Z"], &images, &gt, &det, &CocoParams::default());
    assert_eq!(r.classes[1].ap, None);
    let r = coco_eval(&["Z"], &images, &gt, &det, &CocoParams::default());
    assert_eq!(r.stats.ap, -1.0);
    // No predictions: 0, not -1.
    let r = coco_eval(&["X"], &images, &gt, &[], &CocoParams::default());
    assert_eq!(r.stats.ap, 0.0);
    assert_eq!(r.classes[0].ap, Some(0.0));
    // Zero-area boxes overlap nothing; a zero-area detection is a false positive.
    let zero = [a("A", "X", [5.0, 5.0, 5.0, 5.0], Some(0.9))];
    let r = coco_eval(&["X"], &images, &gt, &zero, &CocoParams::default());
    assert_eq!(r.stats.ap, 0.0);
    // Boxes outside the image are scored as given (COCO knows no image size).
    let out = [a("A", "X", [-5.0, -5.0, 10.0, 10.0], Some(0.9))]; // IoU 100/225
    let r = coco_eval(&["X"], &images, &gt[..1], &out, &CocoParams::at_iou(0.4));
    assert!((r.stats.ap - 1.0).abs() < 1e-15);
    // Detections on images outside the evaluation are left out, as pycocotools does.
    let elsewhere = [a("Q", "X", [0.0, 0.0, 10.0, 10.0], Some(0.99))];
    let r = coco_eval(&["X"], &images, &gt, &elsewhere, &CocoParams::default());
    assert_eq!(r.classes[0].detections, 0);
}

fn corners(x: &Annotation) -> [f64; 4] {
    x.bbox.unwrap_or([0.0, 0.0, 1.0, 1.0])
}

/// One reader's rows as ground truth, the others' on the same images as detections.
pub fn reader_split(rows: &[Annotation], reader: &str) -> (Vec<Annotation>, Vec<Annotation>) {
    let gt: Vec<Annotation> = rows
        .iter()
        .filter(|r| r.reader.as_deref() == Some(reader))
        .cloned()
        .collect();
    let images: std::collections::HashSet<&str> = gt.iter().map(|g| g.image_id.as_str()).collect();
    let det = rows
        .iter()
        .filter(|r| r.reader.as_deref() != Some(reader) && images.contains(r.image_id.as_str()))
        .enumerate()
        .map(|(i, r)| Annotation {
            score: Some(((i * 7919) % 1000) as f64 / 1000.0),
            ..r.clone()
        })
        .collect();
    (gt, det)
}

#[test]
fn pycocotools_agrees_on_readers_of_the_real_train_csv() {
    let test = "coco_ap_against_pycocotools";
    let Some(corpus) = corpus(test) else { return };
    let Some(python) = reference_python_with(test, "pycocotools") else {
        return;
    };
    let bytes = std::fs::read(corpus.path("annotations/vinbigdata/train.csv")).unwrap();
    let rows = read_train_csv(&bytes[..], "train.csv").unwrap();
    for (reader, params) in [
        ("R8", CocoParams::default()),
        ("R9", CocoParams::at_iou(0.4)),
    ] {
        let (gt, mut det) = reader_split(&rows, reader);
        // Crowd three images past the 100-detection cap with jittered copies (some
        // duplicates, some zero-area), tied scores included.
        for (n, image) in image_order(&gt).into_iter().take(3).enumerate() {
            let base: Vec<Annotation> =
                gt.iter().filter(|g| g.image_id == image).cloned().collect();
            for k in 0..140 {
                let g = &base[k % base.len()];
                let b = corners(g);
                let j = ((k * 37 + n) % 23) as f64 - 11.0;
                let bbox = match k % 7 {
                    0 => b,                        // duplicate
                    1 => [b[0], b[1], b[0], b[3]], // zero width
                    _ => [b[0] + j, b[1] - j, b[2] + 2.0 * j, b[3] + j],
                };
                det.push(Annotation {
                    bbox: Some(bbox),
                    score: Some(((k * 131) % 50) as f64 / 50.0),
                    reader: None,
                    ..g.clone()
                });
            }
        }
        compare_with_pycocotools(&python, &gt, &det, &params, reader);
    }
}

/// COCO AP of `det` against `gt`, ours and pycocotools', to 1e-12: the 12 stats and every
/// class's AP, AP50, AP75.
fn compare_with_pycocotools(
    python: &std::path::Path,
    gt: &[Annotation],
    det: &[Annotation],
    params: &CocoParams,
    what: &str,
) {
    let images = image_order(gt);
    let ours = coco_eval(&KAGGLE_CLASSES, &images, gt, det, params);
    let query = serde_json::json!({
        "images": images,
        "labels": KAGGLE_CLASSES,
        "iou_thresholds": params.iou_thresholds,
        "gt": gt.iter().map(|g| {
        let b = corners(g);
        serde_json::json!([g.image_id, g.label, b[0], b[1], b[2], b[3]])
        }).collect::<Vec<_>>(),
        "det": det.iter().map(|d| {
        let b = corners(d);
        serde_json::json!([d.image_id, d.label, d.score, b[0], b[1], b[2], b[3]])
        }).collect::<Vec<_>>(),
    });
    let reference = run_reference(python, "coco_ap.py", &query);
    let stats: Vec<f64> = serde_json::from_value(reference["stats"].clone()).unwrap();
    for (i, (x, y)) in ours.stats.to_array().iter().zip(&stats).enumerate() {
        assert!(
            (x - y).abs() <= 1e-12,
            "{what} stats[{i}] {}: {x} vs {y}",
            radlab_metrics::CocoStats::NAMES[i]
        );
    }
    let mut compared = 0;
    for c in &ours.classes {
        let r: Vec<Option<f64>> =
            serde_json::from_value(reference["classes"][&c.label].clone()).unwrap();
        for (x, y) in [c.ap, c.ap50, c.ap75].iter().zip(&r) {
            match (x, y) {
                (Some(x), Some(y)) => {
                    assert!((x - y).abs() <= 1e-12, "{what} {}: {x} vs {y}", c.label);
                    compared += 1;
                }
                (None, None) => {}
                other => panic!("{what} {}: {other:?}", c.label),
            }
        }
    }
    assert!(compared >= 10, "{what}: only {compared} APs compared");
    eprintln!(
        "{what}: {} ground-truth boxes, {} detections, IoU {:?}: {:?}",
        gt.len(),
        det.len(),
        params.iou_thresholds,
        ours.stats.to_array()
    );
}

/// The acceptance case: each reader's boxes, with their given scores (all 1: ties ranked in
/// file order, as pycocotools' stable mergesort does), against the consensus of the image's
/// other readers (WBF at IoU 0.4, as `radlab agree` computes it).
#[test]
fn each_reader_against_the_consensus_of_the_others_matches_pycocotools() {
    let test = "coco_ap_reader_versus_consensus";
    let Some(corpus) = corpus(test) else { return };
    let Some(python) = reference_python_with(test, "pycocotools") else {
        return;
    };
    let bytes = std::fs::read(corpus.path("annotations/vinbigdata/train.csv")).unwrap();
    let rows = read_train_csv(&bytes[..], "train.csv").unwrap();
    let consensus = radlab_labels::consensus::ConsensusOptions::default();
    for reader in ["R8", "R9", "R10", "R13"] {
        let (gt, det) =
            radlab_metrics::readers::reader_versus_others(&rows, reader, &consensus).unwrap();
        assert!(det.iter().all(|d| d.score == Some(1.0)));
        for params in [CocoParams::default(), CocoParams::at_iou(0.4)] {
            compare_with_pycocotools(&python, &gt, &det, &params, reader);
        }
    }
}
