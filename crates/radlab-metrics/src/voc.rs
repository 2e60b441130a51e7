//! PASCAL VOC 2010 average precision.
//!
//! For one class: every detection of the class, in descending score order (ties keep their
//! input order, as a stable sort does), is matched to the ground-truth box of the same image
//! with which it has the largest IoU; it is a true positive when that IoU is above the
//! threshold and the box was not matched before, else a false positive. Precision and recall
//! after each detection give the curve; AP is the area under its monotone envelope
//! (all-point interpolation, VOC 2010 and later). IoU is computed on continuous coordinates
//! (no "+1 pixel" of the original devkit's integer boxes). A class with no ground truth has
//! no AP and is left out of the mean.

use std::collections::HashMap;

use radlab_labels::{Annotation, BBox};

/// Intersection over union of two boxes; 0 when both are empty.
pub fn iou(a: &BBox, b: &BBox) -> f64 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

/// AP of one class.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClassAp {
    pub label: String,
    /// `None` when the class has no ground truth.
    pub ap: Option<f64>,
    pub ground_truth: usize,
    pub detections: usize,
    pub true_positives: usize,
}

/// Per-class APs and their mean over the classes that have ground truth.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VocResult {
    pub iou_threshold: f64,
    pub classes: Vec<ClassAp>,
    pub map: f64,
}

/// The box an annotation is scored with: its own, or `0 0 1 1` for an image-level mark
/// ("No finding" rows of Kaggle's train.csv have none).
fn scored_box(a: &Annotation) -> BBox {
    a.bbox.unwrap_or([0.0, 0.0, 1.0, 1.0])
}

/// AP of `label` for `detections` against `ground_truth` (annotations of other labels are
/// ignored; a detection without a score counts as score 1).
pub fn voc_ap(
    label: &str,
    ground_truth: &[Annotation],
    detections: &[Annotation],
    iou_threshold: f64,
) -> ClassAp {
    let mut gt: HashMap<&str, Vec<(BBox, bool)>> = HashMap::new();
    let mut n_gt = 0;
    for g in ground_truth.iter().filter(|g| g.label == label) {
        gt.entry(g.image_id.as_str())
            .or_default()
            .push((scored_box(g), false));
        n_gt += 1;
    }
    let mut dets: Vec<&Annotation> = detections.iter().filter(|d| d.label == label).collect();
    // Stable: equal scores keep their input order.
    dets.sort_by(|a, b| {
        b.score
            .unwrap_or(1.0)
            .partial_cmp(&a.score.unwrap_or(1.0))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut tp_flags = Vec::with_capacity(dets.len());
    for d in &dets {
        let b = scored_box(d);
        let matched = gt.get_mut(d.image_id.as_str()).and_then(|boxes| {
            let mut best: Option<(usize, f64)> = None;
            for (i, (g, _)) in boxes.iter().enumerate() {
                let o = iou(&b, g);
                if best.is_none_or(|(_, m)| o > m) {
                    best = Some((i, o));
                }
            }
            let (i, o) = best?;
            (o > iou_threshold && !boxes[i].1).then(|| boxes[i].1 = true)
        });
        tp_flags.push(matched.is_some());
    }
    let true_positives = tp_flags.iter().filter(|t| **t).count();
    let ap = (n_gt > 0).then(|| all_point_ap(&tp_flags, n_gt));
    ClassAp {
        label: label.to_string(),
        ap,
        ground_truth: n_gt,
        detections: dets.len(),
        true_positives,
    }
}

/// The area under the monotone precision envelope of the ranked true/false positives.
fn all_point_ap(tp_flags: &[bool], n_gt: usize) -> f64 {
    let mut recall = Vec::with_capacity(tp_flags.len() + 2);
    let mut precision = Vec::with_capacity(tp_flags.len() + 2);
    recall.push(0.0);
    precision.push(0.0);
    let (mut tp, mut fp) = (0usize, 0usize);
    for &t in tp_flags {
        if t {
            tp += 1;
        } else {
            fp += 1;
        }
        recall.push(tp as f64 / n_gt as f64);
        precision.push(tp as f64 / (tp + fp) as f64);
    }
    recall.push(1.0);
    precision.push(0.0);
    for i in (0..precision.len() - 1).rev() {
        precision[i] = precision[i].max(precision[i + 1]);
    }
    let mut ap = 0.0;
    for i in 1..recall.len() {
        if recall[i] != recall[i - 1] {
            ap += (recall[i] - recall[i - 1]) * precision[i];
        }
    }
    ap
}

/// AP of every label in `labels` and their mean over those with ground truth.
pub fn voc_map(
    labels: &[&str],
    ground_truth: &[Annotation],
    detections: &[Annotation],
    iou_threshold: f64,
) -> VocResult {
    let classes: Vec<ClassAp> = labels
        .iter()
        .map(|l| voc_ap(l, ground_truth, detections, iou_threshold))
        .collect();
    let scored: Vec<f64> = classes.iter().filter_map(|c| c.ap).collect();
    let map = if scored.is_empty() {
        0.0
    } else {
        scored.iter().sum::<f64>() / scored.len() as f64
    };
    VocResult {
        iou_threshold,
        classes,
        map,
    }
}
