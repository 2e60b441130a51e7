//! kaggle-compat: the community grader's number, checked against a rewrite of the notebook
//! with pycocotools (`tests/reference/kaggle_grader.py`) on readers of the real train.csv,
//! and shown to differ from the true VOC mAP@0.4 on the same input.

use radlab_labels::kaggle::read_train_csv;
use radlab_labels::{Annotation, KAGGLE_CLASSES, kaggle_class_id};
use radlab_metrics::{kaggle_compat_map, voc_map};
use radlab_testkit::{corpus, reference_python_with, run_reference};

fn corners(x: &Annotation) -> [f64; 4] {
    x.bbox.unwrap_or([0.0, 0.0, 1.0, 1.0])
}

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
fn the_quirks_by_hand() {
    // Two boxes far from the origin that barely overlap: true IoU 1/7, but read as
    // [x, y, w, h] they reach to (x + x_max, y + y_max) and overlap almost entirely.
    let gt = [
        a("A", "Cardiomegaly", [0.0, 0.0, 10.0, 10.0], None), // id 0: the first box
        a("A", "Nodule/Mass", [1000.0, 1000.0, 1100.0, 1100.0], None),
    ];
    let det = [
        a(
            "A",
            "Nodule/Mass",
            [1050.0, 1050.0, 1150.0, 1150.0],
            Some(0.9),
        ),
        a("A", "Cardiomegaly", [0.0, 0.0, 10.0, 10.0], Some(0.9)),
    ];
    let voc = voc_map(&KAGGLE_CLASSES, &gt, &det, 0.4);
    let compat = kaggle_compat_map(&gt, &det).unwrap();
    let ap = |l: &str| compat.classes.iter().find(|c| c.0 == l).unwrap().1;
    // Nodule: VOC misses (IoU 1/7), the grader matches.
    assert_eq!(voc.classes[8].ap, Some(0.0));
    assert!(
        (ap("Nodule/Mass").unwrap() - 1.0).abs() < 1e-15,
        "{compat:?}"
    );
    // Cardiomegaly: a perfect box, but it matched annotation id 0, which pycocotools reads
    // as "no match": a false positive, AP 0 in the grader.
    assert_eq!(voc.classes[3].ap, Some(1.0));
    assert_eq!(ap("Cardiomegaly"), Some(0.0));
    assert!((compat.map - 0.5).abs() < 1e-15);
    // A prediction on an image outside the ground truth is an error naming it.
    let err = kaggle_compat_map(&gt, &[a("Q", "Nodule/Mass", [0.0; 4], Some(0.5))]).unwrap_err();
    assert!(err.contains("image Q"), "{err}");
}

#[test]
fn the_notebook_agrees_and_voc_differs_on_the_real_train_csv() {
    let test = "kaggle_compat_against_the_notebook";
    let Some(corpus) = corpus(test) else { return };
    let Some(python) = reference_python_with(test, "pycocotools, pandas") else {
        return;
    };
    let bytes = std::fs::read(corpus.path("annotations/vinbigdata/train.csv")).unwrap();
    let rows = read_train_csv(&bytes[..], "train.csv").unwrap();
    for reader in ["R8", "R10"] {
        let gt: Vec<Annotation> = rows
            .iter()
            .filter(|r| r.reader.as_deref() == Some(reader))
            .cloned()
            .collect();
        let images: std::collections::HashSet<&str> =
            gt.iter().map(|g| g.image_id.as_str()).collect();
        let det: Vec<Annotation> = rows
            .iter()
            .filter(|r| r.reader.as_deref() != Some(reader) && images.contains(r.image_id.as_str()))
            .enumerate()
            .map(|(i, r)| Annotation {
                score: Some(((i * 7919) % 1000) as f64 / 1000.0),
                ..r.clone()
            })
            .collect();
        // As a submission: one row per image, its boxes in order.
        let mut order: Vec<&str> = Vec::new();
        let mut by_image: std::collections::HashMap<&str, Vec<&Annotation>> = Default::default();
        for d in &det {
            let e = by_image.entry(d.image_id.as_str()).or_default();
            if e.is_empty() {
                order.push(d.image_id.as_str());
            }
            e.push(d);
        }
        let det: Vec<Annotation> = order
            .iter()
            .flat_map(|i| by_image[i].iter().map(|d| (*d).clone()))
            .collect();
        let pred: Vec<serde_json::Value> = order
            .iter()
            .map(|i| {
                let s: Vec<String> = by_image[i]
                    .iter()
                    .map(|d| {
                        let b = corners(d);
                        format!(
                            "{} {} {} {} {} {}",
                            kaggle_class_id(&d.label).unwrap(),
                            d.score.unwrap(),
                            b[0],
                            b[1],
                            b[2],
                            b[3]
                        )
                    })
                    .collect();
                serde_json::json!([i, s.join(" ")])
            })
            .collect();
        let ours = kaggle_compat_map(&gt, &det).unwrap();
        let query = serde_json::json!({
            "gt": gt.iter().map(|g| {
                let b = corners(g);
                serde_json::json!([g.image_id, kaggle_class_id(&g.label).unwrap(), b[0], b[1], b[2], b[3]])
            }).collect::<Vec<_>>(),
            "pred": pred,
        });
        let reference = run_reference(&python, "kaggle_grader.py", &query);
        let stats: Vec<f64> = serde_json::from_value(reference["stats"].clone()).unwrap();
        assert!(
            (ours.map - stats[0]).abs() <= 1e-12,
            "{reader}: {} vs {}",
            ours.map,
            stats[0]
        );
        assert_eq!(stats[1], -1.0, "the grader's AP50 slot is empty");
        for (k, (label, ap)) in ours.classes.iter().enumerate() {
            let r: Option<f64> =
                serde_json::from_value(reference["classes"][k.to_string()].clone()).unwrap_or(None);
            match (ap, r) {
                (Some(x), Some(y)) => assert!((x - y).abs() <= 1e-12, "{reader} {label}"),
                (None, None) => {}
                other => panic!("{reader} {label}: {other:?}"),
            }
        }
        let voc = voc_map(&KAGGLE_CLASSES, &gt, &det, 0.4);
        eprintln!(
            "{reader} as ground truth, the others as detections: kaggle-compat {:.4}, VOC mAP@0.4 {:.4}",
            ours.map, voc.map
        );
        assert!(
            ours.map - voc.map > 0.02,
            "{reader}: kaggle-compat {} should exceed VOC {}",
            ours.map,
            voc.map
        );
    }
}
