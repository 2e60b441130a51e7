//! FROC: hand-computed operating points (ties, duplicates, normal images), and a
//! differential test against an independent numpy reference (`tests/reference/froc.py`) on
//! readers of the real train.csv.

use radlab_labels::kaggle::read_train_csv;
use radlab_labels::{Annotation, KAGGLE_CLASSES};
use radlab_metrics::froc::sensitivities_at;
use radlab_metrics::{FROC_RATES, froc};
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
fn hand_computed_operating_points() {
    let box1 = [0.0, 0.0, 10.0, 10.0];
    let box2 = [20.0, 20.0, 30.0, 30.0];
    let gt = [
        a("A", "X", box1, None),
        a("A", "X", box2, None),
        a("B", "X", box1, None),
    ];
    let det = [
        a("A", "X", box1, Some(0.9)),                     // TP
        a("B", "X", [50.0, 50.0, 60.0, 60.0], Some(0.8)), // FP
        a("A", "X", box1, Some(0.7)),                     // FP: duplicate
        a("A", "X", box2, Some(0.6)),                     // TP
        a("B", "X", box1, Some(0.5)),                     // TP, tied with two FPs
        a("C", "X", box1, Some(0.5)),                     // FP on a normal image
        a("D", "X", box1, Some(0.5)),                     // FP on a normal image
        a("A", "Y", box1, Some(0.99)),                    // another label
    ];
    // Four images (C and D normal): points (0, 1/3) (1/4, 1/3) (1/2, 1/3) (1/2, 2/3) (1, 1).
    let r = froc(&["X"], &gt, &det, 4, 0.4);
    let c = &r.classes[0];
    let third = 1.0 / 3.0;
    assert_eq!(
        c.points,
        vec![
            (0.0, third),
            (0.25, third),
            (0.5, third),
            (0.5, 2.0 * third),
            (1.0, 1.0)
        ]
    );
    assert_eq!(
        c.sensitivities,
        vec![third, third, 2.0 * third, 1.0, 1.0, 1.0, 1.0]
    );
    assert!((c.cpm.unwrap() - (4.0 * third + 4.0) / 7.0).abs() < 1e-15);
    // A tie is kept or dropped whole: at 3/4 FP per image the 0.5 group does not fit.
    assert_eq!(sensitivities_at(&c.points, &[0.75]), vec![2.0 * third]);
    // Below the first false positive's rate only the detections before it count; with none
    // at all, 0.
    assert_eq!(sensitivities_at(&[(0.5, 0.9)], &[0.25]), vec![0.0]);
    // No ground truth for a label: no sensitivities, no CPM; pooled over X and Y, Y's one
    // detection is a false positive ranked first.
    let r = froc(&["X", "Y"], &gt, &det, 4, 0.4);
    assert_eq!(r.classes[1].cpm, None);
    assert_eq!(r.overall.ground_truth, 3);
    assert_eq!(r.overall.points[0], (0.25, 0.0));
    // No predictions: zero sensitivity everywhere.
    let r = froc(&["X"], &gt, &[], 4, 0.4);
    assert_eq!(r.classes[0].cpm, Some(0.0));
    assert_eq!(FROC_RATES.len(), 7);
}

#[test]
fn the_numpy_reference_agrees_on_the_real_train_csv() {
    let test = "froc_against_the_reference";
    let Some(corpus) = corpus(test) else { return };
    let Some(python) = reference_python(test) else {
        return;
    };
    let bytes = std::fs::read(corpus.path("annotations/vinbigdata/train.csv")).unwrap();
    let rows = read_train_csv(&bytes[..], "train.csv").unwrap();
    let local: Vec<&str> = KAGGLE_CLASSES[..14].to_vec();
    for reader in ["R9", "R10"] {
        let gt: Vec<Annotation> = rows
            .iter()
            .filter(|r| r.reader.as_deref() == Some(reader) && r.bbox.is_some())
            .cloned()
            .collect();
        let images: std::collections::HashSet<&str> = rows
            .iter()
            .filter(|r| r.reader.as_deref() == Some(reader))
            .map(|g| g.image_id.as_str())
            .collect();
        let det: Vec<Annotation> = rows
            .iter()
            .filter(|r| r.reader.as_deref() != Some(reader) && images.contains(r.image_id.as_str()))
            .filter(|r| r.bbox.is_some())
            .enumerate()
            .map(|(i, r)| Annotation {
                score: Some(((i * 7919) % 500) as f64 / 500.0),
                ..r.clone()
            })
            .collect();
        let ours = froc(&local, &gt, &det, images.len(), 0.4);
        let query = serde_json::json!({
            "labels": local,
            "iou": 0.4,
            "images": images.len(),
            "gt": gt.iter().map(|g| {
                let b = g.bbox.unwrap();
                serde_json::json!([g.image_id, g.label, b[0], b[1], b[2], b[3]])
            }).collect::<Vec<_>>(),
            "det": det.iter().map(|d| {
                let b = d.bbox.unwrap();
                serde_json::json!([d.image_id, d.label, d.score, b[0], b[1], b[2], b[3]])
            }).collect::<Vec<_>>(),
        });
        let reference = run_reference(&python, "froc.py", &query);
        let close = |x: &[f64], y: &serde_json::Value, what: &str| {
            let y: Vec<f64> = serde_json::from_value(y.clone()).unwrap();
            assert_eq!(x.len(), y.len(), "{reader} {what}");
            for (p, q) in x.iter().zip(&y) {
                assert!((p - q).abs() <= 1e-12, "{reader} {what}: {x:?} vs {y:?}");
            }
        };
        let mut compared = 0;
        for c in &ours.classes {
            let r = &reference["classes"][&c.label];
            if r.is_null() {
                assert_eq!(c.cpm, None, "{reader} {}", c.label);
            } else {
                close(&c.sensitivities, r, &c.label);
                compared += 1;
            }
        }
        assert!(compared >= 10, "{reader}: {compared} classes");
        close(
            &ours.overall.sensitivities,
            &reference["overall"],
            "overall",
        );
        let cpm = reference["cpm"]["overall"].as_f64().unwrap();
        assert!((ours.overall.cpm.unwrap() - cpm).abs() <= 1e-12);
        eprintln!(
            "{reader} as ground truth, {} images: overall FROC {:?}, CPM {:.4}",
            images.len(),
            ours.overall.sensitivities,
            cpm
        );
    }
}
