//! # radlab-metrics
//!
//! Scoring detections against ground truth. Pure: annotations in, numbers out.
//!
//! - [`voc`]: PASCAL VOC 2010 average precision (all-point interpolation of the monotone
//!   precision envelope; detections matched greedily by descending score, one to one, at
//!   IoU above a threshold), per class, and its mean: VinBigData's primary metric is the
//!   mean over Kaggle's 15 classes at IoU > 0.4, "No finding" scored as a `0 0 1 1` box.
//! - [`agreement`]: Cohen's kappa, Fleiss' kappa, Krippendorff's alpha (nominal).
//! - [`roc`]: AUROC of image-level scores with DeLong's variance and 95% interval.

pub mod agreement;
pub mod roc;
pub mod voc;

pub use agreement::{cohen_kappa, fleiss_kappa, krippendorff_alpha_nominal};
pub use roc::{Auroc, auroc};
pub use voc::{ClassAp, VocResult, iou, voc_ap, voc_map};
