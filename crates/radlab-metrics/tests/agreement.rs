//! Agreement statistics: hand-computed values, and a differential test on the real Kaggle
//! `train.csv` (does each reader mark each class on each image?) against scikit-learn,
//! statsmodels and the krippendorff package.

use std::collections::{BTreeMap, BTreeSet};

use radlab_labels::KAGGLE_CLASSES;
use radlab_labels::kaggle::read_train_csv;
use radlab_metrics::{cohen_kappa, fleiss_kappa, krippendorff_alpha_nominal};
use radlab_testkit::{corpus, reference_python_with, run_reference};

#[test]
fn hand_computed_values() {
    // Two readers, 10 items: agree on 8 (4 yes, 4 no). po = 0.8, pe = 0.5: kappa 0.6.
    let a = [1, 1, 1, 1, 0, 0, 0, 0, 1, 0];
    let b = [1, 1, 1, 1, 0, 0, 0, 0, 0, 1];
    assert!((cohen_kappa(&a, &b).unwrap().unwrap() - 0.6).abs() < 1e-15);
    // Everything in one category: undefined.
    assert_eq!(cohen_kappa(&[1, 1], &[1, 1]).unwrap(), None);
    assert!(cohen_kappa(&[1], &[1, 0]).is_err());
    // Perfect agreement between 3 readers on 2 categories: kappa 1, alpha 1.
    let counts = vec![vec![3, 0], vec![0, 3], vec![3, 0]];
    assert_eq!(fleiss_kappa(&counts).unwrap(), Some(1.0));
    assert!(
        fleiss_kappa(&[vec![3, 0], vec![1, 1]])
            .unwrap_err()
            .contains("item 2")
    );
    let units = vec![
        vec![Some(1), Some(1), None],
        vec![Some(0), Some(0), Some(0)],
        vec![Some(1), None, None],
    ];
    assert_eq!(krippendorff_alpha_nominal(&units).unwrap(), Some(1.0));
}

#[test]
fn the_readers_of_the_real_train_csv_agree_with_the_references() {
    let test = "agreement_against_the_references";
    let Some(corpus) = corpus(test) else { return };
    let Some(python) = reference_python_with(test, "sklearn, statsmodels, krippendorff") else {
        return;
    };
    let bytes = std::fs::read(corpus.path("annotations/vinbigdata/train.csv")).unwrap();
    let rows = read_train_csv(&bytes[..], "train.csv").unwrap();
    // Who read which image, and which classes each reader marked on it.
    let mut marks: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for r in &rows {
        marks
            .entry((r.image_id.as_str(), r.reader.as_deref().unwrap()))
            .or_default()
            .insert(r.label.as_str());
    }
    let readers: Vec<&str> = marks
        .keys()
        .map(|(_, r)| *r)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut by_image: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (image, reader) in marks.keys() {
        by_image.entry(image).or_default().push(reader);
    }
    // The two readers who share the most images.
    let mut shared: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for (image, rs) in &by_image {
        for (i, a) in rs.iter().enumerate() {
            for b in &rs[i + 1..] {
                shared.entry((a, b)).or_default().push(image);
            }
        }
    }
    let ((ra, rb), pair_images) = shared.iter().max_by_key(|(_, v)| v.len()).unwrap();
    assert!(pair_images.len() >= 100);
    let three: Vec<&&str> = by_image
        .iter()
        .filter(|(_, rs)| rs.len() == 3)
        .map(|(i, _)| i)
        .collect();
    let mut compared = 0;
    for class in KAGGLE_CLASSES {
        let has = |image: &str, reader: &str| -> u32 {
            marks
                .get(&(image, reader))
                .is_some_and(|m| m.contains(class)) as u32
        };
        let a: Vec<u32> = pair_images.iter().map(|i| has(i, ra)).collect();
        let b: Vec<u32> = pair_images.iter().map(|i| has(i, rb)).collect();
        let counts: Vec<Vec<u32>> = three
            .iter()
            .map(|i| {
                let yes: u32 = by_image[**i].iter().map(|r| has(i, r)).sum();
                vec![3 - yes, yes]
            })
            .collect();
        let units: Vec<Vec<Option<u32>>> = by_image
            .iter()
            .map(|(i, rs)| {
                readers
                    .iter()
                    .map(|r| rs.contains(r).then(|| has(i, r)))
                    .collect()
            })
            .collect();
        let (Some(kc), Some(kf), Some(ka)) = (
            cohen_kappa(&a, &b).unwrap(),
            fleiss_kappa(&counts).unwrap(),
            krippendorff_alpha_nominal(&units).unwrap(),
        ) else {
            continue; // a class nobody marked on these images
        };
        let raters: Vec<Vec<Option<u32>>> = (0..readers.len())
            .map(|j| units.iter().map(|u| u[j]).collect())
            .collect();
        let query = serde_json::json!({"cohen": [[a, b]], "fleiss": counts, "kripp": raters});
        let r: serde_json::Value = run_reference(&python, "agreement.py", &query);
        let close = |x: f64, y: f64, what: &str| {
            assert!((x - y).abs() <= 1e-9, "{class} {what}: {x} vs {y}");
        };
        close(kc, r["cohen"][0].as_f64().unwrap(), "Cohen");
        close(kf, r["fleiss"].as_f64().unwrap(), "Fleiss");
        close(ka, r["kripp"].as_f64().unwrap(), "Krippendorff");
        eprintln!("{class:<20} Cohen {kc:.3} ({ra}-{rb})  Fleiss {kf:.3}  alpha {ka:.3}");
        compared += 1;
    }
    assert!(compared >= 10, "only {compared} classes compared");
}
