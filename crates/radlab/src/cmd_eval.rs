//! `radlab eval`: score a submission against ground truth.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use radlab_labels::{Annotation, KAGGLE_CLASSES, kaggle, vindr};

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Ground truth: a Kaggle train.csv (every reader's rows count, as given) or a VinDr-CXR
    /// annotations CSV (train or test).
    #[arg(long)]
    gt: PathBuf,
    /// Predictions: a Kaggle submission (image_id,PredictionString).
    #[arg(long)]
    pred: PathBuf,
    /// IoU a detection must exceed to match a ground-truth box.
    #[arg(long, default_value_t = 0.4)]
    iou: f64,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The ground truth, by the file's header.
fn ground_truth(path: &Path) -> Result<Vec<Annotation>> {
    let bytes = read(path)?;
    let name = path.display().to_string();
    let header = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let header = String::from_utf8_lossy(header);
    Ok(if header.contains("class_id") {
        kaggle::read_train_csv(&bytes[..], &name)?
    } else if header.contains("class_name") {
        vindr::read_annotations(&bytes[..], &name)?
    } else {
        bail!(
            "{name}: not a Kaggle train.csv nor a VinDr-CXR annotations CSV (header: {})",
            header.trim()
        )
    })
}

pub fn eval(args: &EvalArgs) -> Result<ExitCode> {
    if !(0.0..1.0).contains(&args.iou) {
        bail!("--iou {} must be in [0, 1)", args.iou);
    }
    let gt = ground_truth(&args.gt)?;
    let bytes = read(&args.pred)?;
    let mut pred = kaggle::read_submission(&bytes[..], &args.pred.display().to_string())?;
    let known: std::collections::HashSet<&str> = gt.iter().map(|g| g.image_id.as_str()).collect();
    if let Some(p) = pred.iter().find(|p| !known.contains(p.image_id.as_str())) {
        bail!(
            "{}: image {} is not in the ground truth {} (wrong files, or a different split?)",
            args.pred.display(),
            p.image_id,
            args.gt.display()
        );
    }
    pred.retain(|p| !p.label.is_empty());
    let result = radlab_metrics::voc_map(&KAGGLE_CLASSES, &gt, &pred, args.iou);
    let no_finding = no_finding_auroc(&gt, &pred);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "voc": result,
                "no_finding_auroc": no_finding.as_ref().ok(),
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "PASCAL VOC 2010 AP (all-point) at IoU > {}: {} ground-truth boxes, {} predictions",
        args.iou,
        gt.len(),
        pred.len()
    );
    println!(
        "{:<20} {:>6} {:>8} {:>6} {:>8}",
        "class", "gt", "pred", "tp", "AP"
    );
    for c in &result.classes {
        println!(
            "{:<20} {:>6} {:>8} {:>6} {:>8}",
            c.label,
            c.ground_truth,
            c.detections,
            c.true_positives,
            c.ap.map_or("-".to_string(), |a| format!("{a:.4}"))
        );
    }
    println!(
        "mAP over the {} classes with ground truth: {:.4}",
        result.classes.iter().filter(|c| c.ap.is_some()).count(),
        result.map
    );
    match no_finding {
        Ok(a) => println!(
            "No finding AUROC (image level, the highest class-14 score of each image): {:.4} \
             (95% CI {:.4}-{:.4}, DeLong; {} normal, {} abnormal images)",
            a.auc, a.ci_low, a.ci_high, a.positives, a.negatives
        ),
        Err(why) => println!("No finding AUROC: not computed ({why})"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Image-level "No finding": the truth is whether the ground truth marks the image normal,
/// the score the highest class-14 confidence predicted for it (0 when none).
fn no_finding_auroc(
    gt: &[Annotation],
    pred: &[Annotation],
) -> std::result::Result<radlab_metrics::Auroc, String> {
    let mut truth: std::collections::BTreeMap<&str, bool> = std::collections::BTreeMap::new();
    for g in gt {
        let normal = truth.entry(g.image_id.as_str()).or_insert(true);
        *normal &= g.label == "No finding";
    }
    let mut score: std::collections::HashMap<&str, f64> = std::collections::HashMap::new();
    for p in pred.iter().filter(|p| p.label == "No finding") {
        let s = score.entry(p.image_id.as_str()).or_insert(0.0);
        *s = s.max(p.score.unwrap_or(1.0));
    }
    let (scores, labels): (Vec<f64>, Vec<bool>) = truth
        .iter()
        .map(|(image, normal)| (score.get(image).copied().unwrap_or(0.0), *normal))
        .unzip();
    radlab_metrics::auroc(&scores, &labels)
}
