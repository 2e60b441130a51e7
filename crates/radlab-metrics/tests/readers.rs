//! The reader study on the real Kaggle `train.csv`, against the references: the kappas and
//! alpha of every label (scikit-learn, statsmodels, krippendorff), the F1 between readers'
//! boxes (`tests/reference/box_f1.py`, written from the definition), and each reader's mAP
//! against the consensus of the others (`tests/reference/voc_ap.py`, from the VOC devkit).

use std::collections::{BTreeMap, BTreeSet};

use radlab_labels::consensus::ConsensusOptions;
use radlab_labels::kaggle::read_train_csv;
use radlab_labels::{Annotation, KAGGLE_CLASSES};
use radlab_metrics::readers::{
    box_agreement, image_label_agreement, marks_of_annotations, match_boxes, natural_key,
    reader_scores, reader_versus_others,
};
use radlab_metrics::voc_map;
use radlab_testkit::{corpus, reference_python, reference_python_with, run_reference};

fn a(image: &str, reader: &str, label: &str, b: Option<[f64; 4]>) -> Annotation {
    Annotation {
        image_id: image.into(),
        reader: Some(reader.into()),
        label: label.into(),
        bbox: b,
        score: None,
    }
}

#[test]
fn hand_computed_study() {
    // Matching takes the pairs of highest IoU first, one to one.
    let x = [[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 8.0]];
    let y = [[0.0, 0.0, 10.0, 9.0]];
    assert_eq!(match_boxes(&x, &y, 0.4), 1);
    assert_eq!(match_boxes(&x, &[], 0.4), 0);
    let rows = [
        // Image A: R1 and R2 agree on one box; R3 draws nothing (No finding).
        a("A", "R1", "Nodule/Mass", Some([0.0, 0.0, 10.0, 10.0])),
        a("A", "R2", "Nodule/Mass", Some([1.0, 1.0, 10.0, 10.0])),
        a("A", "R3", "No finding", None),
        // Image B: only R1 draws.
        a("B", "R1", "Nodule/Mass", Some([50.0, 50.0, 60.0, 60.0])),
        a("B", "R2", "No finding", None),
        a("B", "R3", "No finding", None),
    ];
    let f1 = box_agreement(&rows, &["Nodule/Mass"], 0.4);
    // Pairs on A: (R1,R2) 1 match of 2 boxes, (R1,R3) 0 of 1, (R2,R3) 0 of 1; on B:
    // (R1,R2) 0 of 1, (R1,R3) 0 of 1. F1 = 2 * 1 / 6.
    assert_eq!((f1[0].boxes, f1[0].matches, f1[0].compared), (3, 1, 6));
    assert!((f1[0].f1.unwrap() - 1.0 / 3.0).abs() < 1e-15);
    // R3 against the consensus of R1 and R2: one box on A it calls normal (AP 0 for the
    // nodule), and B, where the others' consensus keeps R1's box: no No finding truth.
    let scores = reader_scores(
        &rows,
        &["Nodule/Mass", "No finding"],
        &ConsensusOptions::default(),
        0.4,
    )
    .unwrap();
    let r3 = scores.iter().find(|s| s.reader == "R3").unwrap();
    assert_eq!(r3.images, 2);
    assert_eq!(r3.map, 0.0);
    // R2 against R1 + R3: A's consensus is R1's box, which R2's box matches; B's is R1's
    // box, which R2's No finding misses: recall 1/2 at precision 1, AP 0.5.
    let r2 = scores.iter().find(|s| s.reader == "R2").unwrap();
    assert_eq!(r2.classes[0].ap, Some(0.5));
    // Readers come in natural order.
    let order: Vec<&str> = scores.iter().map(|s| s.reader.as_str()).collect();
    assert_eq!(order, ["R1", "R2", "R3"]);
    assert!(natural_key("R2") < natural_key("R10"));
    // Kappa: No finding by image: A (0, 0, 1), B (0, 1, 1).
    let agreement = image_label_agreement(&marks_of_annotations(&rows), &["No finding"]);
    assert_eq!(agreement[0].fleiss_images, 2);
    assert_eq!(agreement[0].marks, 3);
}

fn train_csv() -> Option<(Vec<Annotation>, radlab_testkit::Corpus)> {
    let corpus = corpus("reader_study_on_train_csv")?;
    let bytes = std::fs::read(corpus.path("annotations/vinbigdata/train.csv")).unwrap();
    Some((read_train_csv(&bytes[..], "train.csv").unwrap(), corpus))
}

#[test]
fn kappas_and_alpha_of_every_label_and_pair_match_the_references() {
    let test = "reader_study_kappas_against_the_references";
    let Some((rows, _)) = train_csv() else { return };
    let Some(python) = reference_python_with(test, "sklearn, statsmodels, krippendorff") else {
        return;
    };
    let marks = marks_of_annotations(&rows);
    let ours = image_label_agreement(&marks, &KAGGLE_CLASSES);
    // The inputs, built here independently of the library.
    let mut who: BTreeMap<&str, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
    for r in &rows {
        who.entry(&r.image_id)
            .or_default()
            .entry(r.reader.as_deref().unwrap())
            .or_default()
            .insert(&r.label);
    }
    let readers: BTreeSet<&str> = who.values().flat_map(|m| m.keys().copied()).collect();
    let mut compared = 0;
    for (class, result) in KAGGLE_CLASSES.iter().zip(&ours) {
        assert_eq!(result.label, *class);
        let has = |image: &str, reader: &str| -> u32 {
            who[image].get(reader).is_some_and(|s| s.contains(class)) as u32
        };
        let counts: Vec<Vec<u32>> = who
            .iter()
            .filter(|(_, m)| m.len() == 3)
            .map(|(i, m)| {
                let yes: u32 = m.keys().map(|r| has(i, r)).sum();
                vec![3 - yes, yes]
            })
            .collect();
        let raters: Vec<Vec<Option<u32>>> = readers
            .iter()
            .map(|r| {
                who.iter()
                    .map(|(i, m)| m.contains_key(r).then(|| has(i, r)))
                    .collect()
            })
            .collect();
        let pairs: Vec<(Vec<u32>, Vec<u32>)> = result
            .cohen
            .iter()
            .map(|p| {
                let [x, y] = &p.readers;
                let shared: Vec<&&str> = who
                    .iter()
                    .filter(|(_, m)| m.contains_key(x.as_str()) && m.contains_key(y.as_str()))
                    .map(|(i, _)| i)
                    .collect();
                assert_eq!(shared.len(), p.images, "{class} {x} {y}");
                (
                    shared.iter().map(|i| has(i, x)).collect(),
                    shared.iter().map(|i| has(i, y)).collect(),
                )
            })
            .collect();
        let query = serde_json::json!({"cohen": pairs, "fleiss": counts, "kripp": raters});
        let r = run_reference(&python, "agreement.py", &query);
        let close = |x: Option<f64>, y: &serde_json::Value, what: &str| match (x, y.as_f64()) {
            (Some(x), Some(y)) => assert!((x - y).abs() <= 1e-9, "{class} {what}: {x} vs {y}"),
            // Undefined here; the reference says NaN (null in JSON) or 0 for a constant
            // pair, which scikit-learn reports with a warning.
            (None, _) => {}
            (Some(x), None) => panic!("{class} {what}: {x} vs {y}"),
        };
        close(result.fleiss, &r["fleiss"], "Fleiss");
        close(result.krippendorff_alpha, &r["kripp"], "alpha");
        for (p, theirs) in result.cohen.iter().zip(r["cohen"].as_array().unwrap()) {
            close(p.kappa, theirs, "Cohen");
            compared += p.kappa.is_some() as usize;
        }
    }
    assert!(compared > 200, "only {compared} pair kappas compared");
}

#[test]
fn box_f1_between_readers_matches_the_reference() {
    let test = "box_f1_against_the_reference";
    let Some((rows, _)) = train_csv() else { return };
    let Some(python) = reference_python(test) else {
        return;
    };
    let labels: Vec<&str> = KAGGLE_CLASSES[..14].to_vec();
    let ours = box_agreement(&rows, &labels, 0.4);
    let query = serde_json::json!({
        "iou": 0.4,
        "labels": labels,
        "rows": rows.iter().map(|r| {
            let b = r.bbox.map(|b| b.to_vec()).unwrap_or(vec![f64::NAN; 4]);
            let b: Vec<serde_json::Value> = b.iter().map(|v| serde_json::json!(v)).collect();
            serde_json::json!([r.image_id, r.reader, r.label, b[0], b[1], b[2], b[3]])
        }).collect::<Vec<_>>(),
    });
    let r = run_reference(&python, "box_f1.py", &query);
    for o in &ours {
        let t: Vec<usize> = serde_json::from_value(r[&o.label].clone()).unwrap();
        assert_eq!([o.boxes, o.matches, o.compared], t[..], "{}", o.label);
        assert!(o.boxes > 100, "{}", o.label);
    }
}

#[test]
fn each_reader_against_the_consensus_of_the_others_matches_the_voc_reference() {
    let test = "reader_map_against_the_reference";
    let Some((rows, _)) = train_csv() else { return };
    let Some(python) = reference_python(test) else {
        return;
    };
    let consensus = ConsensusOptions::default();
    let scores = reader_scores(&rows, &KAGGLE_CLASSES, &consensus, 0.4).unwrap();
    assert_eq!(scores.len(), 17);
    for s in &scores {
        let (gt, det) = reader_versus_others(&rows, &s.reader, &consensus).unwrap();
        assert_eq!(voc_map(&KAGGLE_CLASSES, &gt, &det, 0.4).map, s.map);
        let boxed = |x: &Annotation| x.bbox.unwrap_or([0.0, 0.0, 1.0, 1.0]);
        let query = serde_json::json!({
            "labels": KAGGLE_CLASSES,
            "iou": 0.4,
            "gt": gt.iter().map(|g| {
                let b = boxed(g);
                serde_json::json!([g.image_id, g.label, b[0], b[1], b[2], b[3]])
            }).collect::<Vec<_>>(),
            "det": det.iter().map(|d| {
                let b = boxed(d);
                serde_json::json!([d.image_id, d.label, d.score, b[0], b[1], b[2], b[3]])
            }).collect::<Vec<_>>(),
        });
        let reference: BTreeMap<String, Option<f64>> =
            serde_json::from_value(run_reference(&python, "voc_ap.py", &query)).unwrap();
        for c in &s.classes {
            match (c.ap, reference[&c.label]) {
                (Some(x), Some(y)) => {
                    assert!(
                        (x - y).abs() <= 1e-12,
                        "{} {}: {x} vs {y}",
                        s.reader,
                        c.label
                    )
                }
                (None, None) => {}
                other => panic!("{} {}: {other:?}", s.reader, c.label),
            }
        }
        let aps: Vec<f64> = reference.values().flatten().copied().collect();
        let map = aps.iter().sum::<f64>() / aps.len() as f64;
        assert!(
            (s.map - map).abs() <= 1e-12,
            "{}: {} vs {map}",
            s.reader,
            s.map
        );
    }
}
