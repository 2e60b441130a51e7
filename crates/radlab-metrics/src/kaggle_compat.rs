//! The community VinBigData grader, reproduced on purpose (`radlab eval --kaggle-compat`).
//!
//! The Kaggle notebook "competition-metric-map-0-4" (class `VinBigDataEval`, by pestipeti),
//! copied into many kernels and later benchmarks, scores a submission with pycocotools:
//!
//! - ground truth: images numbered 0.. in order of first appearance in `train.csv`; one COCO
//!   annotation per row, ids 0.. (grouped by image, rows in file order), category = class id,
//!   `bbox = [x_min, y_min, x_max, y_max]` (**corners given where COCO wants
//!   `[x, y, w, h]`**), `area = (x_max - x_min) * (y_max - y_min)`; "No finding" as `0 0 1 1`;
//! - predictions: one annotation per predicted box, ids 0.. in file order, the same `bbox`
//!   mistake, `area` the true one, `score` the confidence;
//! - `COCOeval(gt, dt, "bbox")` with `params.iouThrs = [0.4]`, all other parameters default
//!   (101-point recall interpolation, IoU `>= 0.4`, at most 100 detections per image and
//!   class, only the classes that occur in the ground truth), and the number reported is
//!   `stats[0]` (the mean over classes of AP at IoU 0.4, area all, 100 detections;
//!   `stats[1]`, "AP50", is -1 since 0.5 is not among the thresholds).
//!
//! Since a box then reaches from `x_min` to `x_min + x_max`, every box is stretched down and
//! right by its own corner: large boxes far from the origin overlap far more than they do,
//! and IoU 0.4 is easy to reach. Pycocotools reads an id of 0 as "no match", so the first
//! ground-truth row, when matched, counts as a false positive, and the first prediction
//! leaves the box it matched free for the next. All three quirks are reproduced here.

use radlab_labels::{Annotation, KAGGLE_CLASSES};

use crate::coco::{CocoParams, evaluate_boxes, image_order, to_coco_boxes};
use radlab_labels::ids::IdMap;

/// The grader's number and its per-class APs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KaggleCompat {
    /// `stats[0]`: the mean of the class APs below over the classes with ground truth.
    pub map: f64,
    /// Kaggle's 15 classes in class-id order; `None` for a class without ground truth.
    pub classes: Vec<(String, Option<f64>)>,
}

/// The community grader's mAP of `detections` against `ground_truth` (Kaggle labels; a
/// detection on an image absent from the ground truth is an error, as it is for the
/// notebook, which fails on it).
pub fn kaggle_compat_map(
    ground_truth: &[Annotation],
    detections: &[Annotation],
) -> Result<KaggleCompat, String> {
    let order = image_order(ground_truth);
    let index: IdMap<u32> = order
        .iter()
        .enumerate()
        .map(|(i, s)| (*s, i as u32))
        .collect();
    for a in ground_truth.iter().chain(detections) {
        if !KAGGLE_CLASSES.contains(&a.label.as_str()) {
            return Err(format!(
                "image {}: label {:?} is not one of Kaggle's 15 classes",
                a.image_id, a.label
            ));
        }
    }
    if let Some(d) = detections
        .iter()
        .find(|d| !index.contains_key(d.image_id.as_str()))
    {
        return Err(format!(
            "image {} has predictions but is not in the ground truth",
            d.image_id
        ));
    }
    // Ground-truth ids: grouped by image in image order, rows in file order.
    let mut grouped: Vec<&Annotation> = ground_truth.iter().collect();
    grouped.sort_by_key(|g| index[g.image_id.as_str()]);
    let grouped: Vec<Annotation> = grouped.into_iter().cloned().collect();
    let quirk = |b: &[f64; 4]| *b;
    let area = |b: &[f64; 4]| (b[2] - b[0]) * (b[3] - b[1]);
    let gt = to_coco_boxes(&grouped, &index, &KAGGLE_CLASSES, 0, quirk, area);
    let dt = to_coco_boxes(detections, &index, &KAGGLE_CLASSES, 0, quirk, area);
    let e = evaluate_boxes(
        order.len(),
        KAGGLE_CLASSES.len(),
        &gt,
        &dt,
        &CocoParams::at_iou(0.4),
    );
    let map = e.summarize(true, None, "all", 100);
    let classes = KAGGLE_CLASSES
        .iter()
        .enumerate()
        .map(|(k, l)| (l.to_string(), e.class_ap(k, None)))
        .collect();
    Ok(KaggleCompat { map, classes })
}
