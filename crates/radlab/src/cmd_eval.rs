//! `radlab eval`: score predictions against ground truth. VOC mAP (the primary number), COCO
//! AP/AR, FROC and image-level AUROC by default; the community grader's inflated number on
//! request (`--kaggle-compat`); a table, JSON, or a self-contained HTML report.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use radlab_labels::{Annotation, KAGGLE_CLASSES, coco, kaggle};
use radlab_metrics::coco::CocoParams;
use radlab_metrics::{
    Auroc, CocoResult, FrocResult, KaggleCompat, PrCurve, VocResult, coco_eval, froc,
    kaggle_compat_map, pr_curves, rank, roc_curve,
};

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Ground truth: a Kaggle train.csv (every reader's rows count, as given), a VinDr-CXR
    /// annotations CSV (train or test), or a COCO dataset JSON.
    #[arg(long)]
    gt: PathBuf,
    /// Predictions: a Kaggle submission (image_id,PredictionString), or COCO results JSON
    /// (with a COCO dataset as --gt).
    #[arg(long)]
    pred: PathBuf,
    /// IoU a detection must exceed to match a ground-truth box (VOC and FROC).
    #[arg(long, default_value_t = 0.4)]
    iou: f64,
    /// Which metrics, comma-separated: voc, coco, froc, auroc (default: all four).
    #[arg(long, value_delimiter = ',', default_value = "voc,coco,froc,auroc")]
    metrics: Vec<Metric>,
    /// COCO AP at this one IoU threshold (>=) instead of COCO's 0.50:0.05:0.95.
    #[arg(long)]
    coco_iou: Option<f64>,
    /// Also report the community VinBigData grader's number, reproduced on purpose: it
    /// feeds corners to pycocotools as [x, y, w, h] and uses 101-point AP at IoU >= 0.4, so
    /// its numbers are inflated and not comparable with VOC mAP (docs/metrics.md).
    #[arg(long)]
    kaggle_compat: bool,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write a self-contained HTML report (tables, PR, FROC and ROC curves as SVG).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Metric {
    Voc,
    Coco,
    Froc,
    Auroc,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn starts_with_json(bytes: &[u8], open: u8) -> bool {
    bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == open)
}

/// The ground truth, by the file's content: annotations, the evaluation's image order, the
/// labels (category order), and the COCO index when it is a COCO dataset.
struct GroundTruth {
    annotations: Vec<Annotation>,
    images: Vec<String>,
    labels: Vec<String>,
    coco: Option<coco::CocoImages>,
}

fn ground_truth(path: &Path) -> Result<GroundTruth> {
    let bytes = read(path)?;
    let name = path.display().to_string();
    if starts_with_json(&bytes, b'{') {
        let (annotations, index) = coco::read_dataset(&bytes[..], &name)?;
        // pycocotools' order: ascending image and category ids.
        let mut ids: Vec<&u64> = index.by_id.keys().collect();
        ids.sort();
        let images = ids.iter().map(|i| index.by_id[i].0.clone()).collect();
        let mut cats: Vec<(&u64, &String)> = index.categories.iter().collect();
        cats.sort();
        let labels = cats.into_iter().map(|(_, l)| l.clone()).collect();
        return Ok(GroundTruth {
            annotations,
            images,
            labels,
            coco: Some(index),
        });
    }
    let annotations = match radlab_labels::csv_kind(&bytes) {
        Ok(radlab_labels::CsvKind::KaggleTrain | radlab_labels::CsvKind::VindrAnnotations) => {
            radlab_labels::read_box_annotations(&bytes, &name)?
        }
        other => bail!(
            "{name}: not a Kaggle train.csv, a VinDr-CXR annotations CSV nor a COCO dataset \
             (header: {})",
            other
                .err()
                .unwrap_or_else(|| "of another kind of file".into())
        ),
    };
    let images = radlab_metrics::image_order(&annotations)
        .into_iter()
        .map(str::to_string)
        .collect();
    Ok(GroundTruth {
        annotations,
        images,
        labels: KAGGLE_CLASSES.iter().map(|s| s.to_string()).collect(),
        coco: None,
    })
}

fn predictions(path: &Path, gt: &GroundTruth, gt_path: &Path) -> Result<Vec<Annotation>> {
    let bytes = read(path)?;
    let name = path.display().to_string();
    if starts_with_json(&bytes, b'[') {
        let Some(index) = &gt.coco else {
            bail!(
                "{name}: COCO results need a COCO dataset as --gt ({} is not one)",
                gt_path.display()
            );
        };
        return Ok(coco::read_results(&bytes[..], &name, index)?);
    }
    Ok(kaggle::read_submission_bytes(&bytes, &name)?)
}

/// AUROC of one image-level label.
#[derive(serde::Serialize)]
struct LabelAuroc {
    label: String,
    #[serde(flatten)]
    auroc: Option<Auroc>,
    /// Why it was not computed.
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<String>,
    #[serde(skip)]
    curve: Vec<(f64, f64)>,
}

/// Image-level AUROC per label: the truth is whether the ground truth has the label on the
/// image ("No finding": whether every ground-truth row of the image is "No finding"), the
/// score the highest confidence predicted for the label on the image (0 when none).
fn image_aurocs(
    labels: &[&str],
    images: &[String],
    gt: &[Annotation],
    pred: &[Annotation],
) -> Vec<LabelAuroc> {
    let index: radlab_metrics::IdMap<usize> = images
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let label_index: HashMap<&str, usize> =
        labels.iter().enumerate().map(|(i, l)| (*l, i)).collect();
    let nl = labels.len();
    let no_finding = label_index.get("No finding").copied();
    let mut truth = vec![false; nl * images.len()];
    let mut abnormal = vec![false; images.len()];
    for g in gt {
        let Some(&i) = index.get(g.image_id.as_str()) else {
            continue;
        };
        if g.label != "No finding" {
            abnormal[i] = true;
        }
        if let Some(&l) = label_index.get(g.label.as_str()) {
            truth[l * images.len() + i] = true;
        }
    }
    if let Some(l) = no_finding {
        for (i, a) in abnormal.iter().enumerate() {
            truth[l * images.len() + i] = !a;
        }
    }
    let mut score = vec![0.0f64; nl * images.len()];
    for p in pred {
        if let (Some(&i), Some(&l)) = (
            index.get(p.image_id.as_str()),
            label_index.get(p.label.as_str()),
        ) {
            let s = &mut score[l * images.len() + i];
            *s = s.max(p.score.unwrap_or(1.0));
        }
    }
    labels
        .iter()
        .enumerate()
        .map(|(l, label)| {
            let range = l * images.len()..(l + 1) * images.len();
            let (s, t) = (&score[range.clone()], &truth[range]);
            match radlab_metrics::auroc(s, t) {
                Ok(a) => LabelAuroc {
                    label: label.to_string(),
                    auroc: Some(a),
                    skipped: None,
                    curve: roc_curve(s, t),
                },
                Err(why) => LabelAuroc {
                    label: label.to_string(),
                    auroc: None,
                    skipped: Some(why),
                    curve: Vec::new(),
                },
            }
        })
        .collect()
}

#[derive(serde::Serialize)]
struct Report {
    #[serde(skip_serializing_if = "Option::is_none")]
    voc: Option<VocResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    no_finding_auroc: Option<Auroc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    coco: Option<CocoResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    froc: Option<FrocResult>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    auroc: Vec<LabelAuroc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kaggle_compat: Option<KaggleCompat>,
    #[serde(skip)]
    pr: Vec<PrCurve>,
}

pub fn eval(args: &EvalArgs) -> Result<ExitCode> {
    if !(0.0..1.0).contains(&args.iou) {
        bail!("--iou {} must be in [0, 1)", args.iou);
    }
    if let Some(t) = args.coco_iou
        && !(0.0..=1.0).contains(&t)
    {
        bail!("--coco-iou {t} must be in [0, 1]");
    }
    let gt_data = ground_truth(&args.gt)?;
    let mut pred = predictions(&args.pred, &gt_data, &args.gt)?;
    let gt = &gt_data.annotations;
    {
        let known: radlab_metrics::IdSet = gt_data.images.iter().map(String::as_str).collect();
        if let Some(p) = pred.iter().find(|p| !known.contains(p.image_id.as_str())) {
            bail!(
                "{}: image {} is not in the ground truth {} (wrong files, or a different split?)",
                args.pred.display(),
                p.image_id,
                args.gt.display()
            );
        }
    }
    pred.retain(|p| !p.label.is_empty());
    let labels: Vec<&str> = gt_data.labels.iter().map(String::as_str).collect();
    let want = |m: Metric| args.metrics.contains(&m);
    let mut report = Report {
        voc: None,
        no_finding_auroc: None,
        coco: None,
        froc: None,
        auroc: Vec::new(),
        kaggle_compat: None,
        pr: Vec::new(),
    };
    if want(Metric::Voc) {
        if args.html.is_some() {
            report.pr = pr_curves(&labels, &rank(&labels, gt, &pred, args.iou));
        }
        report.voc = Some(radlab_metrics::voc_map(&labels, gt, &pred, args.iou));
    }
    if want(Metric::Coco) {
        let params = args
            .coco_iou
            .map_or_else(CocoParams::default, CocoParams::at_iou);
        let images: Vec<&str> = gt_data.images.iter().map(String::as_str).collect();
        report.coco = Some(coco_eval(&labels, &images, gt, &pred, &params));
    }
    if want(Metric::Froc) {
        let local: Vec<&str> = labels
            .iter()
            .copied()
            .filter(|l| *l != "No finding")
            .collect();
        report.froc = Some(froc(&local, gt, &pred, gt_data.images.len(), args.iou));
    }
    if want(Metric::Auroc) {
        report.auroc = image_aurocs(&labels, &gt_data.images, gt, &pred);
        report.no_finding_auroc = report
            .auroc
            .iter()
            .find(|a| a.label == "No finding")
            .and_then(|a| a.auroc);
    }
    if args.kaggle_compat {
        report.kaggle_compat = Some(
            kaggle_compat_map(gt, &pred)
                .map_err(|e| anyhow::anyhow!("{}: {e}", args.pred.display()))?,
        );
    }
    if let Some(path) = &args.html {
        let html = html_report(args, gt.len(), pred.len(), &report);
        std::fs::write(path, html).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", text_report(args, gt.len(), pred.len(), &report));
    }
    // The process ends here: hand the tens of thousands of small allocations back to the
    // operating system at exit instead of freeing them one by one (a few milliseconds).
    std::mem::forget(pred);
    std::mem::forget(gt_data);
    Ok(ExitCode::SUCCESS)
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |a| format!("{a:.4}"))
}

fn coco_value(v: f64) -> String {
    if v < 0.0 {
        "-".to_string()
    } else {
        format!("{v:.4}")
    }
}

fn text_report(args: &EvalArgs, n_gt: usize, n_pred: usize, r: &Report) -> String {
    let mut s = String::new();
    if let Some(voc) = &r.voc {
        let _ = writeln!(
            s,
            "PASCAL VOC 2010 AP (all-point) at IoU > {}: {n_gt} ground-truth boxes, {n_pred} predictions",
            args.iou
        );
        let _ = writeln!(
            s,
            "{:<20} {:>6} {:>8} {:>6} {:>8}",
            "class", "gt", "pred", "tp", "AP"
        );
        for c in &voc.classes {
            let _ = writeln!(
                s,
                "{:<20} {:>6} {:>8} {:>6} {:>8}",
                c.label,
                c.ground_truth,
                c.detections,
                c.true_positives,
                opt(c.ap)
            );
        }
        let _ = writeln!(
            s,
            "mAP over the {} classes with ground truth: {:.4}",
            voc.classes.iter().filter(|c| c.ap.is_some()).count(),
            voc.map
        );
    }
    if let Some(coco) = &r.coco {
        let _ = writeln!(
            s,
            "\nCOCO (pycocotools' COCOeval, bbox) at IoU {}:",
            if coco.iou_thresholds.len() == 1 {
                format!(">= {}", coco.iou_thresholds[0])
            } else {
                "0.50:0.05:0.95".to_string()
            }
        );
        for (name, v) in radlab_metrics::CocoStats::NAMES
            .iter()
            .zip(coco.stats.to_array())
        {
            let _ = write!(s, "{name} {} ", coco_value(v));
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "{:<20} {:>8} {:>8} {:>8}", "class", "AP", "AP50", "AP75");
        for c in &coco.classes {
            let _ = writeln!(
                s,
                "{:<20} {:>8} {:>8} {:>8}",
                c.label,
                opt(c.ap),
                opt(c.ap50),
                opt(c.ap75)
            );
        }
    }
    if let Some(f) = &r.froc {
        let _ = writeln!(
            s,
            "\nFROC at IoU > {} over {} images: sensitivity at 1/8 1/4 1/2 1 2 4 8 false positives per image, and their mean (CPM)",
            f.iou_threshold, f.images
        );
        for c in f.classes.iter().chain(std::iter::once(&f.overall)) {
            let sens: Vec<String> = c.sensitivities.iter().map(|v| format!("{v:.3}")).collect();
            let _ = writeln!(
                s,
                "{:<20} {:>6} {} CPM {}",
                c.label,
                c.ground_truth,
                if sens.is_empty() {
                    "-".to_string()
                } else {
                    sens.join(" ")
                },
                opt(c.cpm)
            );
        }
    }
    if !r.auroc.is_empty() {
        let _ = writeln!(
            s,
            "\nImage-level AUROC (score: the highest confidence of the label on the image; \
             95% CI by DeLong):"
        );
        for a in &r.auroc {
            match (&a.auroc, &a.skipped) {
                (Some(x), _) => {
                    let _ = writeln!(
                        s,
                        "{:<20} {:.4} ({:.4}-{:.4}; {} positive, {} negative images)",
                        a.label, x.auc, x.ci_low, x.ci_high, x.positives, x.negatives
                    );
                }
                (None, why) => {
                    let _ = writeln!(
                        s,
                        "{:<20} not computed ({})",
                        a.label,
                        why.as_deref().unwrap_or("")
                    );
                }
            }
        }
        if let Some(a) = &r.no_finding_auroc {
            let _ = writeln!(
                s,
                "No finding AUROC (image level, the highest class-14 score of each image): {:.4} \
                 (95% CI {:.4}-{:.4}, DeLong; {} normal, {} abnormal images)",
                a.auc, a.ci_low, a.ci_high, a.positives, a.negatives
            );
        }
    }
    if let Some(k) = &r.kaggle_compat {
        let _ = writeln!(
            s,
            "\nkaggle-compat (the community grader, reproduced: corners read as [x, y, w, h], \
             101-point AP at IoU >= 0.4; inflated, not VOC): {:.4}",
            k.map
        );
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
];

/// One line chart as inline SVG: `series` of (name, points); x from `x_range` (log2 when
/// `log_x`), y from 0 to 1.
fn svg_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    x_range: (f64, f64),
    log_x: bool,
    diagonal: bool,
) -> String {
    let (w, h, left, right, top, bottom) = (360.0, 300.0, 48.0, 12.0, 28.0, 40.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let fx = |x: f64| {
        let (lo, hi) = x_range;
        let t = if log_x {
            (x.max(lo).log2() - lo.log2()) / (hi.log2() - lo.log2())
        } else {
            (x - lo) / (hi - lo)
        };
        left + t.clamp(0.0, 1.0) * pw
    };
    let fy = |y: f64| top + (1.0 - y.clamp(0.0, 1.0)) * ph;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img"><title>{t}</title><text x="{cx}" y="16" text-anchor="middle" font-size="13">{t}</text><rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>"##,
        t = esc(title),
        cx = w / 2.0
    );
    for i in 0..=4 {
        let v = i as f64 / 4.0;
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{x2}" y1="{y}" y2="{y}" stroke="#eee"/><text x="{tx}" y="{ty}" text-anchor="end" font-size="10">{v}</text>"##,
            x2 = left + pw,
            y = fy(v),
            tx = left - 4.0,
            ty = fy(v) + 3.0
        );
    }
    let ticks: Vec<f64> = if log_x {
        let mut t = Vec::new();
        let mut x = x_range.0;
        while x <= x_range.1 * 1.0001 {
            t.push(x);
            x *= 2.0;
        }
        t
    } else {
        (0..=4)
            .map(|i| x_range.0 + (x_range.1 - x_range.0) * i as f64 / 4.0)
            .collect()
    };
    for x in ticks {
        let _ = write!(
            s,
            r#"<text x="{px}" y="{py}" text-anchor="middle" font-size="10">{x}</text>"#,
            px = fx(x),
            py = top + ph + 14.0
        );
    }
    let _ = write!(
        s,
        r#"<text x="{cx}" y="{by}" text-anchor="middle" font-size="11">{xl}</text><text x="12" y="{cy}" text-anchor="middle" font-size="11" transform="rotate(-90 12 {cy})">{yl}</text>"#,
        cx = left + pw / 2.0,
        by = h - 6.0,
        cy = top + ph / 2.0,
        xl = esc(x_label),
        yl = esc(y_label)
    );
    if diagonal {
        let _ = write!(
            s,
            r##"<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="#bbb" stroke-dasharray="4 3"/>"##,
            x1 = fx(x_range.0),
            y1 = fy(0.0),
            x2 = fx(x_range.1),
            y2 = fy(1.0)
        );
    }
    for (k, (name, points)) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        // Thin long curves to at most ~2000 points: plotting, not measuring.
        let step = (points.len() / 2000).max(1);
        let mut d = String::new();
        for (i, (x, y)) in points.iter().enumerate() {
            if i % step == 0 || i + 1 == points.len() {
                let _ = write!(
                    d,
                    "{}{:.1},{:.1}",
                    if d.is_empty() { "M" } else { " L" },
                    fx(*x),
                    fy(*y)
                );
            }
        }
        let _ = write!(
            s,
            r#"<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.5"/>"#
        );
        if series.len() > 1 {
            let ly = top + 12.0 + 12.0 * k as f64;
            let _ = write!(
                s,
                r#"<text x="{lx}" y="{ly}" font-size="10" fill="{colour}" text-anchor="end">{n}</text>"#,
                lx = left + pw - 4.0,
                n = esc(name)
            );
        }
    }
    s.push_str("</svg>");
    s
}

fn html_report(args: &EvalArgs, n_gt: usize, n_pred: usize, r: &Report) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>radlab eval</title><style>body{{font-family:sans-serif;margin:2em;max-width:80em}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}.charts{{display:flex;flex-wrap:wrap;gap:8px}}pre{{background:#f6f6f6;padding:1em;overflow:auto}}</style></head><body><h1>radlab eval</h1><p>Ground truth <code>{}</code> ({n_gt} annotations); predictions <code>{}</code> ({n_pred}). Definitions: docs/metrics.md.</p>"#,
        esc(&args.gt.display().to_string()),
        esc(&args.pred.display().to_string())
    );
    if let Some(voc) = &r.voc {
        let _ = write!(
            s,
            "<h2>PASCAL VOC 2010 AP at IoU &gt; {}: mAP {:.4}</h2><table><tr><th>class</th><th>gt</th><th>pred</th><th>tp</th><th>AP</th></tr>",
            args.iou, voc.map
        );
        for c in &voc.classes {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.label),
                c.ground_truth,
                c.detections,
                c.true_positives,
                opt(c.ap)
            );
        }
        s.push_str("</table><h3>Precision-recall curves (raw, before the envelope)</h3><div class=\"charts\">");
        for c in &r.pr {
            let points: Vec<(f64, f64)> = c
                .recall
                .iter()
                .copied()
                .zip(c.precision.iter().copied())
                .collect();
            let ap = voc
                .classes
                .iter()
                .find(|x| x.label == c.label)
                .and_then(|x| x.ap);
            s.push_str(&svg_chart(
                &format!("{} (AP {})", c.label, opt(ap)),
                "recall",
                "precision",
                &[(c.label.clone(), points)],
                (0.0, 1.0),
                false,
                false,
            ));
        }
        s.push_str("</div>");
    }
    if let Some(coco) = &r.coco {
        s.push_str("<h2>COCO (pycocotools' COCOeval, bbox)</h2><table><tr>");
        for n in radlab_metrics::CocoStats::NAMES {
            let _ = write!(s, "<th>{n}</th>");
        }
        s.push_str("</tr><tr>");
        for v in coco.stats.to_array() {
            let _ = write!(s, "<td>{}</td>", coco_value(v));
        }
        s.push_str(
            "</tr></table><table><tr><th>class</th><th>AP</th><th>AP50</th><th>AP75</th></tr>",
        );
        for c in &coco.classes {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.label),
                opt(c.ap),
                opt(c.ap50),
                opt(c.ap75)
            );
        }
        s.push_str("</table>");
    }
    if let Some(f) = &r.froc {
        let _ = write!(
            s,
            "<h2>FROC at IoU &gt; {} over {} images: CPM {}</h2><table><tr><th>label</th><th>boxes</th><th>1/8</th><th>1/4</th><th>1/2</th><th>1</th><th>2</th><th>4</th><th>8</th><th>CPM</th></tr>",
            f.iou_threshold,
            f.images,
            opt(f.overall.cpm)
        );
        for c in f.classes.iter().chain(std::iter::once(&f.overall)) {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td>",
                esc(&c.label),
                c.ground_truth
            );
            if c.sensitivities.is_empty() {
                s.push_str(&"<td>-</td>".repeat(7));
            }
            for v in &c.sensitivities {
                let _ = write!(s, "<td>{v:.3}</td>");
            }
            let _ = write!(s, "<td>{}</td></tr>", opt(c.cpm));
        }
        s.push_str("</table>");
        let points: Vec<(f64, f64)> = f
            .overall
            .points
            .iter()
            .copied()
            .filter(|(x, _)| *x <= 8.0)
            .collect();
        s.push_str(&svg_chart(
            "FROC, all local labels pooled",
            "false positives per image",
            "sensitivity",
            &[("overall".to_string(), points)],
            (0.125, 8.0),
            true,
            false,
        ));
    }
    if !r.auroc.is_empty() {
        s.push_str("<h2>Image-level AUROC (DeLong 95% CI)</h2><table><tr><th>label</th><th>AUROC</th><th>95% CI</th><th>positive</th><th>negative</th></tr>");
        for a in &r.auroc {
            match &a.auroc {
                Some(x) => {
                    let _ = write!(
                        s,
                        "<tr><td>{}</td><td>{:.4}</td><td>{:.4}-{:.4}</td><td>{}</td><td>{}</td></tr>",
                        esc(&a.label),
                        x.auc,
                        x.ci_low,
                        x.ci_high,
                        x.positives,
                        x.negatives
                    );
                }
                None => {
                    let _ = write!(
                        s,
                        "<tr><td>{}</td><td colspan=\"4\">not computed: {}</td></tr>",
                        esc(&a.label),
                        esc(a.skipped.as_deref().unwrap_or(""))
                    );
                }
            }
        }
        s.push_str("</table><div class=\"charts\">");
        for a in r.auroc.iter().filter(|a| a.auroc.is_some()) {
            s.push_str(&svg_chart(
                &format!(
                    "ROC: {} (AUC {:.3})",
                    a.label,
                    a.auroc.map_or(0.0, |x| x.auc)
                ),
                "false-positive rate",
                "true-positive rate",
                &[(a.label.clone(), a.curve.clone())],
                (0.0, 1.0),
                false,
                true,
            ));
        }
        s.push_str("</div>");
    }
    if let Some(k) = &r.kaggle_compat {
        let _ = write!(
            s,
            "<h2>kaggle-compat: {:.4}</h2><p>The community VinBigData grader, reproduced on purpose: it feeds corners to pycocotools as [x, y, w, h] and averages 101-point AP at IoU &ge; 0.4. Its numbers are inflated and not comparable with the VOC mAP above.</p>",
            k.map
        );
    }
    s.push_str("</body></html>\n");
    s
}
