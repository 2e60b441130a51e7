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

pub use radlab_labels::iou;
use radlab_labels::{Annotation, BBox};

use radlab_labels::ids::IdMap;

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
    voc_map(&[label], ground_truth, detections, iou_threshold)
        .classes
        .remove(0)
}

/// One ranked detection: its score, whether it is a true positive, and its image (an index
/// into [`Ranking::images`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankedDetection {
    pub score: f64,
    pub true_positive: bool,
    pub image: u32,
}

/// The detections of every label ranked by descending score (stable) and matched as VOC
/// does, with the count of ground-truth boxes of each label.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranking {
    /// Images of the ground truth in order of first appearance, then those that only
    /// detections name.
    pub images: Vec<String>,
    /// Per label (in the order given): ground-truth boxes, ranked detections.
    pub classes: Vec<(usize, Vec<RankedDetection>)>,
}

/// Match `detections` to `ground_truth` for every label of `labels` at once: the detections
/// of a label in descending score order (ties in input order), each taking the ground-truth
/// box of its image and label with the largest IoU (the first of equals), a true positive
/// when that IoU is above the threshold and the box is still free. One pass to index, one
/// sort per label: O(n log n) plus the boxes of each image.
pub fn rank(
    labels: &[&str],
    ground_truth: &[Annotation],
    detections: &[Annotation],
    iou_threshold: f64,
) -> Ranking {
    let nl = labels.len();
    let label_index: IdMap<usize> = labels.iter().enumerate().map(|(i, l)| (*l, i)).collect();
    let label_of = |l: &str| label_index.get(l).copied();
    let mut image_index: IdMap<u32> = IdMap::default();
    image_index.reserve(ground_truth.len() / 4 + 16);
    let mut images: Vec<&str> = Vec::new();
    // Ground truth bucketed by (label, image), input order kept within a bucket.
    let mut keyed: Vec<(u32, u32, BBox)> = Vec::with_capacity(ground_truth.len());
    for g in ground_truth {
        let Some(l) = label_of(&g.label) else {
            continue;
        };
        let next = images.len() as u32;
        let i = *image_index.entry(g.image_id.as_str()).or_insert_with(|| {
            images.push(g.image_id.as_str());
            next
        });
        keyed.push((l as u32, i, scored_box(g)));
    }
    let n_gt_images = images.len();
    let buckets = nl * n_gt_images;
    let mut offsets = vec![0usize; buckets + 1];
    for (l, i, _) in &keyed {
        offsets[*l as usize * n_gt_images + *i as usize + 1] += 1;
    }
    for b in 0..buckets {
        offsets[b + 1] += offsets[b];
    }
    let mut next = offsets.clone();
    let mut boxes: Vec<BBox> = vec![[0.0; 4]; keyed.len()];
    for (l, i, b) in &keyed {
        let k = *l as usize * n_gt_images + *i as usize;
        boxes[next[k]] = *b;
        next[k] += 1;
    }
    let mut used = vec![false; boxes.len()];
    let mut n_gt = vec![0usize; nl];
    for (l, _, _) in &keyed {
        n_gt[*l as usize] += 1;
    }
    // Detections per label.
    let mut per_label: Vec<Vec<(f64, u32, BBox)>> = vec![Vec::new(); nl];
    let per = detections.len() / nl.max(1) + 16;
    for v in &mut per_label {
        v.reserve(per);
    }
    for d in detections {
        let Some(l) = label_of(&d.label) else {
            continue;
        };
        let next = images.len() as u32;
        let i = *image_index.entry(d.image_id.as_str()).or_insert_with(|| {
            images.push(d.image_id.as_str());
            next
        });
        per_label[l].push((d.score.unwrap_or(1.0), i, scored_box(d)));
    }
    let mut classes = Vec::with_capacity(nl);
    for (l, dets) in per_label.iter_mut().enumerate() {
        // Stable: equal scores keep their input order.
        dets.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
        let mut ranked = Vec::with_capacity(dets.len());
        for (score, image, b) in dets.iter() {
            let mut tp = false;
            if (*image as usize) < n_gt_images {
                let k = l * n_gt_images + *image as usize;
                let (lo, hi) = (offsets[k], offsets[k + 1]);
                let mut best: Option<(usize, f64)> = None;
                for (j, g) in boxes[lo..hi].iter().enumerate() {
                    let o = iou(b, g);
                    if best.is_none_or(|(_, m)| o > m) {
                        best = Some((lo + j, o));
                    }
                }
                if let Some((j, o)) = best
                    && o > iou_threshold
                    && !used[j]
                {
                    used[j] = true;
                    tp = true;
                }
            }
            ranked.push(RankedDetection {
                score: *score,
                true_positive: tp,
                image: *image,
            });
        }
        classes.push((n_gt[l], ranked));
    }
    Ranking {
        images: images.into_iter().map(str::to_string).collect(),
        classes,
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
    let ranking = rank(labels, ground_truth, detections, iou_threshold);
    let mut flags: Vec<bool> = Vec::new();
    let classes: Vec<ClassAp> = labels
        .iter()
        .zip(&ranking.classes)
        .map(|(l, (n_gt, ranked))| {
            flags.clear();
            flags.extend(ranked.iter().map(|r| r.true_positive));
            ClassAp {
                label: l.to_string(),
                ap: (*n_gt > 0).then(|| all_point_ap(&flags, *n_gt)),
                ground_truth: *n_gt,
                detections: ranked.len(),
                true_positives: flags.iter().filter(|t| **t).count(),
            }
        })
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

/// A precision-recall curve: one point per ranked detection.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PrCurve {
    pub label: String,
    pub recall: Vec<f64>,
    pub precision: Vec<f64>,
}

/// The raw precision-recall curve of every label with ground truth (for plots).
pub fn pr_curves(labels: &[&str], ranking: &Ranking) -> Vec<PrCurve> {
    labels
        .iter()
        .zip(&ranking.classes)
        .filter(|(_, (n_gt, _))| *n_gt > 0)
        .map(|(l, (n_gt, ranked))| {
            let (mut tp, mut recall, mut precision) = (0usize, Vec::new(), Vec::new());
            for (k, r) in ranked.iter().enumerate() {
                tp += usize::from(r.true_positive);
                recall.push(tp as f64 / *n_gt as f64);
                precision.push(tp as f64 / (k + 1) as f64);
            }
            PrCurve {
                label: l.to_string(),
                recall,
                precision,
            }
        })
        .collect()
}
