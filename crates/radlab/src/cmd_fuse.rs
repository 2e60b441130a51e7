//! `radlab fuse` (readers into a consensus) and `radlab agree` (how much readers agree).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use radlab_labels::consensus::{ConsensusOptions, Method, Quorum, fuse_readers, write_consensus};
use radlab_labels::fusion::{ConfType, NmsMethod, NmsOptions, WbfOptions};
use radlab_labels::{Annotation, KAGGLE_CLASSES, read_box_annotations, vindr};
use radlab_metrics::readers::{
    BoxAgreement, LabelAgreement, ReaderScore, box_agreement, image_label_agreement,
    marks_of_annotations, marks_of_image_labels, reader_scores,
};

/// How readers are fused (shared by `fuse` and `agree`).
#[derive(Args, Debug, Clone)]
pub struct FusionArgs {
    /// wbf (Weighted Boxes Fusion), nms, soft-nms (linear) or soft-nms-gaussian.
    #[arg(long, default_value = "wbf")]
    method: String,
    /// IoU above which two readers' boxes of a label are the same finding.
    #[arg(long = "fusion-iou", default_value_t = 0.4)]
    fusion_iou: f64,
    /// WBF: boxes scored below this are left out.
    #[arg(long, default_value_t = 0.0)]
    skip_box_thr: f64,
    /// WBF: avg, max, box_and_model_avg or absent_model_aware_avg.
    #[arg(long, default_value = "avg")]
    conf_type: String,
    /// WBF: a fused score may exceed 1 (it then counts the agreeing readers).
    #[arg(long)]
    allows_overflow: bool,
    /// Soft-NMS Gaussian sigma.
    #[arg(long, default_value_t = 0.5)]
    sigma: f64,
    /// Soft-NMS: boxes whose decayed score falls to this or below are dropped.
    #[arg(long, default_value_t = 0.001)]
    soft_thresh: f64,
    /// Per-reader weights, e.g. R8=2,R9=1 (readers not named weigh 1).
    #[arg(long)]
    weights: Option<String>,
    /// Keep a fused box only when this many readers contributed (2), or this share of the
    /// image's readers (0.5, 2/3).
    #[arg(long)]
    quorum: Option<String>,
}

impl FusionArgs {
    pub fn options(&self) -> Result<ConsensusOptions> {
        if !(0.0..1.0).contains(&self.fusion_iou) {
            bail!("--fusion-iou {} must be in [0, 1)", self.fusion_iou);
        }
        let method = match self.method.as_str() {
            "wbf" => Method::Wbf(WbfOptions {
                iou_thr: self.fusion_iou,
                skip_box_thr: self.skip_box_thr,
                weights: None,
                conf_type: ConfType::parse(&self.conf_type).with_context(|| {
                    format!(
                        "--conf-type {:?}: use avg, max, box_and_model_avg or absent_model_aware_avg",
                        self.conf_type
                    )
                })?,
                allows_overflow: self.allows_overflow,
            }),
            m @ ("nms" | "soft-nms" | "soft-nms-gaussian") => Method::Nms(NmsOptions {
                method: match m {
                    "nms" => NmsMethod::Hard,
                    "soft-nms" => NmsMethod::Linear,
                    _ => NmsMethod::Gaussian,
                },
                iou_thr: self.fusion_iou,
                sigma: self.sigma,
                thresh: self.soft_thresh,
                weights: None,
            }),
            other => bail!("--method {other:?}: use wbf, nms, soft-nms or soft-nms-gaussian"),
        };
        let mut reader_weights = BTreeMap::new();
        if let Some(w) = &self.weights {
            for part in w.split(',').filter(|p| !p.trim().is_empty()) {
                let (reader, value) = part
                    .split_once('=')
                    .with_context(|| format!("--weights {part:?}: write READER=WEIGHT"))?;
                let value: f64 = value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|v: &f64| v.is_finite() && *v > 0.0)
                    .with_context(|| {
                        format!("--weights {part:?}: the weight must be a positive number")
                    })?;
                reader_weights.insert(reader.trim().to_string(), value);
            }
        }
        let quorum = match &self.quorum {
            Some(q) => Some(Quorum::parse(q).map_err(|e| anyhow::anyhow!("--quorum: {e}"))?),
            None => None,
        };
        Ok(ConsensusOptions {
            method,
            quorum,
            reader_weights,
        })
    }
}

#[derive(Args, Debug)]
pub struct FuseArgs {
    /// Readers' boxes: a Kaggle train.csv or a VinDr-CXR annotations_train.csv (rad_id).
    #[arg(long)]
    labels: PathBuf,
    /// Where to write the consensus (VinDr-CXR test layout plus score and readers columns);
    /// `-` for standard output.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    fusion: FusionArgs,
}

fn read_boxes(path: &Path) -> Result<Vec<Annotation>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(read_box_annotations(&bytes, &path.display().to_string())?)
}

pub fn fuse(args: &FuseArgs) -> Result<ExitCode> {
    let options = args.fusion.options()?;
    let started = std::time::Instant::now();
    let rows = read_boxes(&args.labels)?;
    let read = started.elapsed();
    let fused = fuse_readers(&rows, &options)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.labels.display()))?;
    let fusing = started.elapsed() - read;
    let mut bytes = Vec::new();
    write_consensus(&mut bytes, &fused)?;
    // bench/fusion.py reads this line (-v).
    tracing::info!(
        "read in {:.3} ms, fused in {:.3} ms",
        read.as_secs_f64() * 1e3,
        fusing.as_secs_f64() * 1e3
    );
    if args.out == Path::new("-") {
        std::io::stdout().write_all(&bytes)?;
    } else {
        // Temporary file and rename: an existing output is never left half-written.
        let tmp = args.out.with_extension("csv.partial");
        std::fs::write(&tmp, &bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &args.out)
            .with_context(|| format!("cannot write {}", args.out.display()))?;
    }
    let images = fused
        .iter()
        .map(|f| f.image_id.as_str())
        .collect::<std::collections::HashSet<_>>()
        .len();
    let boxes_in = rows.iter().filter(|r| r.bbox.is_some()).count();
    let boxes_out = fused.iter().filter(|f| f.bbox.is_some()).count();
    let normal = fused.iter().filter(|f| f.label == "No finding").count();
    eprintln!(
        "{images} images: {boxes_in} reader boxes fused into {boxes_out} boxes; {normal} images \
         with No finding"
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct AgreeArgs {
    /// Readers' boxes: a Kaggle train.csv or a VinDr-CXR annotations_train.csv (rad_id).
    #[arg(long)]
    labels: PathBuf,
    /// Readers' image-level labels (VinDr-CXR image_labels_train.csv); without it, a reader
    /// marks a label on an image when they drew a box of it (or gave No finding).
    #[arg(long)]
    image_labels: Option<PathBuf>,
    /// IoU above which two readers' boxes match (box F1) and a reader's box matches the
    /// others' consensus (mAP).
    #[arg(long, default_value_t = 0.4)]
    iou: f64,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Print the tables as Markdown.
    #[arg(long)]
    markdown: bool,
    /// List Cohen's kappa of every reader pair.
    #[arg(long)]
    pairs: bool,
    #[command(flatten)]
    fusion: FusionArgs,
}

pub fn agree(args: &AgreeArgs) -> Result<ExitCode> {
    if !(0.0..1.0).contains(&args.iou) {
        bail!("--iou {} must be in [0, 1)", args.iou);
    }
    let options = args.fusion.options()?;
    let rows = read_boxes(&args.labels)?;
    if rows.iter().all(|r| r.reader.is_none()) {
        bail!(
            "{}: no rad_id on any row; agreement needs each reader's own labels",
            args.labels.display()
        );
    }
    let (marks, image_labels): (_, Vec<String>) = match &args.image_labels {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let il = vindr::read_image_labels(&bytes[..], &path.display().to_string())?;
            // The file's label columns, in their order.
            let names = il
                .first()
                .map(|r| r.labels.iter().map(|(l, _)| l.clone()).collect())
                .unwrap_or_default();
            (marks_of_image_labels(&il), names)
        }
        None => (
            marks_of_annotations(&rows),
            KAGGLE_CLASSES.iter().map(|l| l.to_string()).collect(),
        ),
    };
    let image_labels: Vec<&str> = image_labels.iter().map(String::as_str).collect();
    let labels_agreement = image_label_agreement(&marks, &image_labels);
    let box_labels: Vec<&str> = KAGGLE_CLASSES
        .iter()
        .copied()
        .filter(|l| *l != "No finding")
        .collect();
    let boxes = box_agreement(&rows, &box_labels, args.iou);
    let scores = reader_scores(&rows, &KAGGLE_CLASSES, &options, args.iou)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.labels.display()))?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "image_labels": labels_agreement,
                "boxes": boxes,
                "readers": scores,
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let t = Table {
        markdown: args.markdown,
    };
    print_labels(&t, &labels_agreement, args.pairs);
    println!();
    print_boxes(&t, &boxes, args.iou);
    println!();
    print_readers(&t, &scores, args.iou);
    Ok(ExitCode::SUCCESS)
}

/// A plain or Markdown table.
struct Table {
    markdown: bool,
}

impl Table {
    fn row(&self, cells: &[String], widths: &[usize]) {
        if self.markdown {
            println!("| {} |", cells.join(" | "));
        } else {
            let line: Vec<String> = cells
                .iter()
                .zip(widths)
                .enumerate()
                .map(|(i, (c, w))| {
                    if i == 0 {
                        format!("{c:<w$}")
                    } else {
                        format!("{c:>w$}")
                    }
                })
                .collect();
            println!("{}", line.join(" "));
        }
    }

    fn header(&self, cells: &[&str], widths: &[usize]) {
        let cells: Vec<String> = cells.iter().map(|c| c.to_string()).collect();
        self.row(&cells, widths);
        if self.markdown {
            let rule: Vec<&str> = (0..cells.len())
                .map(|i| if i == 0 { "---" } else { "---:" })
                .collect();
            println!("| {} |", rule.join(" | "));
        }
    }
}

fn num(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.3}"))
}

fn print_labels(t: &Table, rows: &[LabelAgreement], pairs: bool) {
    let fleiss_images = rows.first().map_or(0, |r| r.fleiss_images);
    println!(
        "Image labels: Cohen's kappa (mean over reader pairs, weighted by shared images), \
         Fleiss' kappa ({fleiss_images} images with the usual number of readers), \
         Krippendorff's alpha (nominal, all images)"
    );
    if t.markdown {
        println!();
    }
    let w = [22, 8, 6, 8, 8, 8];
    t.header(&["label", "marks", "pairs", "Cohen", "Fleiss", "alpha"], &w);
    for r in rows {
        t.row(
            &[
                r.label.clone(),
                r.marks.to_string(),
                r.cohen
                    .iter()
                    .filter(|p| p.kappa.is_some())
                    .count()
                    .to_string(),
                num(r.cohen_weighted_mean),
                num(r.fleiss),
                num(r.krippendorff_alpha),
            ],
            &w,
        );
        if pairs {
            for p in &r.cohen {
                println!(
                    "    {} & {}: {} images, kappa {}",
                    p.readers[0],
                    p.readers[1],
                    p.images,
                    num(p.kappa)
                );
            }
        }
    }
}

fn print_boxes(t: &Table, rows: &[BoxAgreement], iou: f64) {
    println!(
        "Boxes: F1 between readers at IoU > {iou} (every image, every pair of its readers, \
         one-to-one matches)"
    );
    if t.markdown {
        println!();
    }
    let w = [22, 8, 8, 8];
    t.header(&["label", "boxes", "matches", "F1"], &w);
    for r in rows {
        t.row(
            &[
                r.label.clone(),
                r.boxes.to_string(),
                r.matches.to_string(),
                num(r.f1),
            ],
            &w,
        );
    }
}

fn print_readers(t: &Table, rows: &[ReaderScore], iou: f64) {
    println!(
        "Each reader against the consensus of the image's other readers: PASCAL VOC 2010 mAP \
         at IoU > {iou} over the classes with ground truth, and over those other than No finding"
    );
    if t.markdown {
        println!();
    }
    let w = [8, 8, 8, 8, 14];
    t.header(&["reader", "images", "rows", "mAP", "mAP findings"], &w);
    for r in rows {
        t.row(
            &[
                r.reader.clone(),
                r.images.to_string(),
                r.rows.to_string(),
                format!("{:.4}", r.map),
                r.map_findings.map_or("-".into(), |m| format!("{m:.4}")),
            ],
            &w,
        );
    }
}
