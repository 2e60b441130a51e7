//! AUROC against scikit-learn and DeLong's variance against a reference written from Sun
//! and Xu (2014), on the public out-of-fold "No finding" predictions of three models.

use radlab_metrics::auroc;
use radlab_testkit::{corpus, reference_python_with, run_reference};

#[test]
fn hand_computed_cases_and_errors() {
    // Pairs (pos, neg): (0.9,0.1) ok, (0.9,0.5) ok, (0.5,0.1) ok, (0.5,0.5) tie: 3.5 / 4.
    let r = auroc(&[0.9, 0.5, 0.1, 0.5], &[true, true, false, false]).unwrap();
    assert!((r.auc - 0.875).abs() < 1e-15, "{r:?}");
    assert!(r.ci_low <= r.auc && r.auc <= r.ci_high && r.ci_high <= 1.0);
    let perfect = auroc(&[0.9, 0.8, 0.2, 0.1], &[true, true, false, false]).unwrap();
    assert_eq!((perfect.auc, perfect.variance), (1.0, 0.0));
    assert!(
        auroc(&[0.5, 0.6], &[true, true])
            .unwrap_err()
            .contains("both classes")
    );
    assert!(
        auroc(&[0.5], &[true, false])
            .unwrap_err()
            .contains("1 scores but 2")
    );
    assert!(
        auroc(&[f64::NAN, 0.1], &[true, false])
            .unwrap_err()
            .contains("finite")
    );
}

#[test]
fn the_public_no_finding_predictions_agree_with_scikit_learn() {
    let test = "auroc_against_scikit_learn";
    let Some(corpus) = corpus(test) else { return };
    let Some(python) = reference_python_with(test, "sklearn, scipy") else {
        return;
    };
    let text = std::fs::read_to_string(
        corpus.path("annotations/predictions/no_finding_oof_predictions.csv"),
    )
    .unwrap();
    let mut rdr = csv_rows(&text);
    let header = rdr.remove(0);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let truth: Vec<bool> = rdr.iter().map(|r| r[col("class_14")] == "1").collect();
    for model in ["effnet", "resnext", "densenet"] {
        let scores: Vec<f64> = rdr.iter().map(|r| r[col(model)].parse().unwrap()).collect();
        let ours = auroc(&scores, &truth).unwrap();
        let query = serde_json::json!({
            "scores": scores,
            "truth": truth.iter().map(|t| *t as u8).collect::<Vec<_>>(),
        });
        let reference: serde_json::Value = run_reference(&python, "auroc.py", &query);
        let auc = reference["auc"].as_f64().unwrap();
        let var = reference["variance"].as_f64().unwrap();
        assert!(
            (ours.auc - auc).abs() <= 1e-9,
            "{model}: {} vs {auc}",
            ours.auc
        );
        assert!(
            (ours.variance - var).abs() <= 1e-9 * var.max(1e-12),
            "{model}: {} vs {var}",
            ours.variance
        );
        eprintln!(
            "{model}: AUROC {:.4} (95% CI {:.4}-{:.4}), {} positive, {} negative",
            ours.auc, ours.ci_low, ours.ci_high, ours.positives, ours.negatives
        );
    }
}

/// A minimal CSV split (the file has no quoted fields).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}
