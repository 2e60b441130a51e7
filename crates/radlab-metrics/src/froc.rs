//! Free-response ROC: lesion-level sensitivity against false positives per image.
//!
//! Detections are matched exactly as for VOC AP ([`crate::voc::rank`]): per label, in
//! descending score order, each takes the ground-truth box of its image and label with the
//! largest IoU, a true positive when that IoU is above the threshold and the box is still
//! free, else a false positive (duplicates, misses, and boxes on images without that label).
//!
//! An operating point is a score cut-off: every detection scoring at least the cut-off is
//! kept (detections with equal scores are kept or dropped together). At a cut-off,
//! sensitivity = true positives / ground-truth boxes and the false-positive rate = false
//! positives / images evaluated (every image of the ground truth, normal ones included). The
//! sensitivity at a target rate is the sensitivity of the lowest cut-off whose rate does not
//! exceed the target (a step function, no interpolation; 0 when even the highest cut-off
//! exceeds it; the final sensitivity when the detector never reaches the target rate). The
//! targets are 1/8, 1/4, 1/2, 1, 2, 4 and 8 false positives per image; CPM (the competition
//! performance metric of ANODE09 / LUNA16) is the mean of the seven.
//!
//! Per label, and overall: the detections of all the given labels pooled into one ranking
//! (each matched only against boxes of its own label), sensitivity over all their boxes. The
//! overall figure is lesion-level: every box counts once, whatever its label. `radlab eval`
//! passes Kaggle's 14 local labels (not "No finding", which is not a lesion).

use radlab_labels::Annotation;

use crate::voc::{RankedDetection, rank};

/// The false-positive rates (per image) at which sensitivity is reported.
pub const FROC_RATES: [f64; 7] = [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0];

/// One FROC curve, summarised at [`FROC_RATES`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FrocCurve {
    pub label: String,
    pub ground_truth: usize,
    pub detections: usize,
    /// At each of [`FROC_RATES`]; empty without ground truth.
    pub sensitivities: Vec<f64>,
    /// The mean of `sensitivities`; `None` without ground truth.
    pub cpm: Option<f64>,
    /// The operating points: (false positives per image, sensitivity), one per distinct
    /// score, in descending score order.
    #[serde(skip)]
    pub points: Vec<(f64, f64)>,
}

/// FROC per label and pooled.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FrocResult {
    pub iou_threshold: f64,
    pub images: usize,
    pub classes: Vec<FrocCurve>,
    pub overall: FrocCurve,
}

/// The operating points of detections already ranked by descending score.
fn operating_points(ranked: &[RankedDetection], n_gt: usize, images: usize) -> Vec<(f64, f64)> {
    let mut points = Vec::new();
    let (mut tp, mut fp) = (0usize, 0usize);
    for (k, r) in ranked.iter().enumerate() {
        if r.true_positive {
            tp += 1;
        } else {
            fp += 1;
        }
        let last_of_tie = ranked.get(k + 1).is_none_or(|n| n.score != r.score);
        if last_of_tie {
            points.push((fp as f64 / images as f64, tp as f64 / n_gt as f64));
        }
    }
    points
}

/// The sensitivity at each target rate: that of the lowest cut-off with rate <= target.
pub fn sensitivities_at(points: &[(f64, f64)], rates: &[f64]) -> Vec<f64> {
    rates
        .iter()
        .map(|&target| {
            let mut s = 0.0;
            for &(rate, sensitivity) in points {
                if rate > target {
                    break;
                }
                s = sensitivity;
            }
            s
        })
        .collect()
}

fn curve(label: &str, ranked: &[RankedDetection], n_gt: usize, images: usize) -> FrocCurve {
    if n_gt == 0 || images == 0 {
        return FrocCurve {
            label: label.to_string(),
            ground_truth: n_gt,
            detections: ranked.len(),
            sensitivities: Vec::new(),
            cpm: None,
            points: Vec::new(),
        };
    }
    let points = operating_points(ranked, n_gt, images);
    let sensitivities = sensitivities_at(&points, &FROC_RATES);
    let cpm = sensitivities.iter().sum::<f64>() / sensitivities.len() as f64;
    FrocCurve {
        label: label.to_string(),
        ground_truth: n_gt,
        detections: ranked.len(),
        sensitivities,
        cpm: Some(cpm),
        points,
    }
}

/// FROC of `detections` against `ground_truth` for each of `labels` and pooled, over
/// `images` images (the evaluation's image count, images without findings included).
pub fn froc(
    labels: &[&str],
    ground_truth: &[Annotation],
    detections: &[Annotation],
    images: usize,
    iou_threshold: f64,
) -> FrocResult {
    let ranking = rank(labels, ground_truth, detections, iou_threshold);
    let classes: Vec<FrocCurve> = labels
        .iter()
        .zip(&ranking.classes)
        .map(|(l, (n_gt, ranked))| curve(l, ranked, *n_gt, images))
        .collect();
    let mut pooled: Vec<RankedDetection> = ranking
        .classes
        .iter()
        .flat_map(|(_, r)| r.iter().copied())
        .collect();
    pooled.sort_by(|a, b| {
        b.score
            .partial_cmp(&a.score)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let n_gt: usize = ranking.classes.iter().map(|(n, _)| n).sum();
    let overall = curve("all local labels", &pooled, n_gt, images);
    FrocResult {
        iou_threshold,
        images,
        classes,
        overall,
    }
}
