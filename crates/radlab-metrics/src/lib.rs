//! # radlab-metrics
//!
//! Scoring detections against ground truth. Pure: annotations in, numbers out.
//!
//! - [`voc`]: PASCAL VOC 2010 average precision (all-point interpolation of the monotone
//!   precision envelope; detections matched greedily by descending score, one to one, at
//!   IoU above a threshold), per class, and its mean: VinBigData's primary metric is the
//!   mean over Kaggle's 15 classes at IoU > 0.4, "No finding" scored as a `0 0 1 1` box.
//! - [`coco`]: COCO AP and AR exactly as pycocotools' `COCOeval` (bbox) computes them: the
//!   12 numbers of `summarize()` and per-class AP.
//! - [`kaggle_compat`]: the community VinBigData grader reproduced on purpose (corners fed
//!   to pycocotools as `[x, y, w, h]`, 101-point AP at IoU >= 0.4); its numbers are inflated.
//! - `IdMap`, `IdSet` (from `radlab_labels::ids`): hash maps keyed by image ids with the Fx hash.
//! - [`froc`]: sensitivity at 1/8 .. 8 false positives per image, per label and pooled, and
//!   their mean (CPM).
//! - [`agreement`]: Cohen's kappa, Fleiss' kappa, Krippendorff's alpha (nominal).
//! - [`readers`]: a reader study: kappas and alpha per image label, box F1 between readers,
//!   each reader's mAP against the consensus of the others.
//! - [`roc`]: AUROC of image-level scores with DeLong's variance and 95% interval.

pub mod agreement;
pub mod coco;
pub mod froc;
pub mod kaggle_compat;
pub mod readers;
pub mod roc;
pub mod voc;

pub use agreement::{cohen_kappa, fleiss_kappa, krippendorff_alpha_nominal};
pub use coco::{CocoParams, CocoResult, CocoStats, coco_eval, image_order};
pub use froc::{FROC_RATES, FrocCurve, FrocResult, froc};
pub use kaggle_compat::{KaggleCompat, kaggle_compat_map};
pub use radlab_labels::ids::{IdMap, IdSet};
pub use roc::{Auroc, auroc, roc_curve};
pub use voc::{ClassAp, PrCurve, Ranking, VocResult, iou, pr_curves, rank, voc_ap, voc_map};
