//! VOC AP: hand-computed cases, the edge cases, and a differential test against the
//! reference written from the VOC devkit (`tests/reference/voc_ap.py`) on the real Kaggle
//! `train.csv`: one reader's boxes as ground truth, the others' as detections.

use radlab_labels::kaggle::read_train_csv;
use radlab_labels::{Annotation, KAGGLE_CLASSES};
use radlab_metrics::{iou, voc_ap, voc_map};
use radlab_testkit::{corpus, reference_python, run_reference};

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
fn a_hand_computed_ranking() {
    let gt = [
        a("A", "X", [0.0, 0.0, 10.0, 10.0], None),
        a("A", "X", [20.0, 20.0, 30.0, 30.0], None),
        a("B", "X", [0.0, 0.0, 10.0, 10.0], None),
    ];
    let det = [
        a("A", "X", [0.0, 0.0, 10.0, 10.0], Some(0.9)),   // TP
        a("B", "X", [50.0, 50.0, 60.0, 60.0], Some(0.8)), // FP: no overlap
        a("A", "X", [0.0, 0.0, 10.0, 10.0], Some(0.7)),   // FP: duplicate
        a("A", "X", [20.0, 20.0, 30.0, 30.0], Some(0.6)), // TP
        a("A", "Y", [0.0, 0.0, 10.0, 10.0], Some(0.99)),  // another class
    ];
    // precision 1, 1/2, 1/3, 1/2 at recall 1/3, 1/3, 1/3, 2/3: AP = 1/3 * 1 + 1/3 * 1/2.
    let c = voc_ap("X", &gt, &det, 0.4);
    assert!((c.ap.unwrap() - 0.5).abs() < 1e-15, "{c:?}");
    assert_eq!((c.ground_truth, c.detections, c.true_positives), (3, 4, 2));
}

#[test]
fn edge_cases() {
    let gt = [a("A", "X", [0.0, 0.0, 10.0, 10.0], None)];
    // No detections: AP 0. No ground truth: no AP, left out of the mean.
    assert_eq!(voc_ap("X", &gt, &[], 0.4).ap, Some(0.0));
    let none = voc_ap(
        "Z",
        &gt,
        &[a("A", "Z", [0.0, 0.0, 1.0, 1.0], Some(1.0))],
        0.4,
    );
    assert_eq!(none.ap, None);
    let r = voc_map(
        &["X", "Z"],
        &gt,
        &[a("A", "X", [0.0, 0.0, 10.0, 10.0], Some(0.5))],
        0.4,
    );
    assert_eq!(r.map, 1.0);
    // Extra low-confidence boxes never lower the score.
    let det = [
        a("A", "X", [0.0, 0.0, 10.0, 10.0], Some(0.9)),
        a("A", "X", [100.0, 100.0, 110.0, 110.0], Some(0.1)),
    ];
    assert_eq!(voc_ap("X", &gt, &det, 0.4).ap, Some(1.0));
    // IoU exactly at the threshold is not a match (IoU > threshold).
    let half = a("A", "X", [0.0, 0.0, 10.0, 5.0], Some(0.9)); // IoU 0.5
    assert_eq!(
        voc_ap("X", &gt, std::slice::from_ref(&half), 0.5).ap,
        Some(0.0)
    );
    assert_eq!(voc_ap("X", &gt, &[half], 0.4).ap, Some(1.0));
    // Zero-area boxes overlap nothing; ties in score keep input order.
    assert_eq!(iou(&[1.0, 1.0, 1.0, 1.0], &[0.0, 0.0, 10.0, 10.0]), 0.0);
    assert_eq!(iou(&[0.0, 0.0, 0.0, 0.0], &[0.0, 0.0, 0.0, 0.0]), 0.0);
    let tie = [
        a("A", "X", [50.0, 50.0, 60.0, 60.0], Some(0.5)), // FP first
        a("A", "X", [0.0, 0.0, 10.0, 10.0], Some(0.5)),   // then TP
    ];
    assert_eq!(voc_ap("X", &gt, &tie, 0.4).ap, Some(0.5));
    // Detections on an image without ground truth are false positives.
    let other = [a("Q", "X", [0.0, 0.0, 10.0, 10.0], Some(0.9))];
    assert_eq!(voc_ap("X", &gt, &other, 0.4).ap, Some(0.0));
    // "No finding" without a box is scored as 0 0 1 1.
    let nf_gt = [Annotation {
        bbox: None,
        ..a("A", "No finding", [0.0; 4], None)
    }];
    let nf_det = [a("A", "No finding", [0.0, 0.0, 1.0, 1.0], Some(0.3))];
    assert_eq!(voc_ap("No finding", &nf_gt, &nf_det, 0.4).ap, Some(1.0));
}

fn scored(x: &Annotation) -> [f64; 4] {
    x.bbox.unwrap_or([0.0, 0.0, 1.0, 1.0])
}

#[test]
fn the_reference_agrees_on_readers_of_the_real_train_csv() {
    let test = "voc_ap_against_the_reference";
    let Some(corpus) = corpus(test) else { return };
    let Some(python) = reference_python(test) else {
        return;
    };
    let bytes = std::fs::read(corpus.path("annotations/vinbigdata/train.csv")).unwrap();
    let rows = read_train_csv(&bytes[..], "train.csv").unwrap();
    for reader in ["R8", "R9", "R10"] {
        let gt: Vec<Annotation> = rows
            .iter()
            .filter(|r| r.reader.as_deref() == Some(reader))
            .cloned()
            .collect();
        let images: std::collections::HashSet<&str> =
            gt.iter().map(|g| g.image_id.as_str()).collect();
        // The other readers of the same images, with deterministic scores (ties included).
        let det: Vec<Annotation> = rows
            .iter()
            .filter(|r| r.reader.as_deref() != Some(reader) && images.contains(r.image_id.as_str()))
            .enumerate()
            .map(|(i, r)| Annotation {
                score: Some(((i * 7919) % 1000) as f64 / 1000.0),
                ..r.clone()
            })
            .collect();
        assert!(gt.len() > 1000 && det.len() > 1000, "{reader}");
        let ours = voc_map(&KAGGLE_CLASSES, &gt, &det, 0.4);
        let query = serde_json::json!({
            "labels": KAGGLE_CLASSES,
            "iou": 0.4,
            "gt": gt.iter().map(|g| {
                let b = scored(g);
                serde_json::json!([g.image_id, g.label, b[0], b[1], b[2], b[3]])
            }).collect::<Vec<_>>(),
            "det": det.iter().map(|d| {
                let b = scored(d);
                serde_json::json!([d.image_id, d.label, d.score, b[0], b[1], b[2], b[3]])
            }).collect::<Vec<_>>(),
        });
        let reference: std::collections::HashMap<String, Option<f64>> =
            serde_json::from_value(run_reference(&python, "voc_ap.py", &query)).unwrap();
        let mut compared = 0;
        for c in &ours.classes {
            let r = reference[&c.label];
            match (c.ap, r) {
                (Some(x), Some(y)) => {
                    assert!((x - y).abs() <= 1e-12, "{reader} {}: {x} vs {y}", c.label);
                    compared += 1;
                }
                (None, None) => {}
                other => panic!("{reader} {}: {other:?}", c.label),
            }
        }
        assert!(compared >= 10, "{reader}: only {compared} classes compared");
        let mean: Vec<f64> = reference.values().flatten().copied().collect();
        let reference_map = mean.iter().sum::<f64>() / mean.len() as f64;
        assert!((ours.map - reference_map).abs() <= 1e-12, "{reader}");
        eprintln!(
            "{reader} as ground truth, the others as detections: mAP@0.4 {:.4}",
            ours.map
        );
    }
}
