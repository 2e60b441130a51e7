//! # radlab-labels
//!
//! The annotation model of a radlab dataset and the file formats it moves through, both
//! ways, with errors that name the file, the line and the column:
//!
//! - the VinDr-CXR release quartet ([`vindr`]): `annotations_train.csv` (one row per box
//!   per reader, `rad_id`), `annotations_test.csv` (consensus), `image_labels_train.csv` and
//!   `image_labels_test.csv` (one 0/1 column per image-level label, matched by header name;
//!   `Other disease` and `Other diseases` both accepted);
//! - Kaggle's VinBigData `train.csv` and submission files ([`kaggle`]);
//! - COCO detection JSON (datasets and results) and YOLO txt ([`coco`]);
//! - Weighted Boxes Fusion, NMS and soft-NMS of several readers or models ([`fusion`]), and
//!   the consensus of an image's readers with a quorum ([`consensus`]).
//!
//! - a project's label schema and the built-in templates ([`schema`]).
//!
//! Coordinates are absolute pixels of the original image, `x` along columns, `y` along rows,
//! top-left and bottom-right corners. Numbers are written back in the shortest form that
//! reads back to the same value, with a `.0` on whole numbers, as Python and pandas write
//! them, so that a file read and written again is the same file.

pub mod coco;
pub mod consensus;
pub mod export;
pub mod fusion;
pub mod ids;
pub mod kaggle;
mod labels;
pub mod schema;
pub mod split;
pub mod vindr;

pub use labels::{GLOBAL_LABELS, KAGGLE_CLASSES, LOCAL_LABELS, Label, Scope, kaggle_class_id};

/// A box: `[x_min, y_min, x_max, y_max]` in pixels.
pub type BBox = [f64; 4];

/// One finding on one image: a box of a local label, or an image-level mark ("No finding"
/// in Kaggle's files carries no box).
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    pub image_id: String,
    /// The reader (`R1`..`R17` in VinDr-CXR); `None` for consensus or fused labels.
    pub reader: Option<String>,
    pub label: String,
    pub bbox: Option<BBox>,
    /// Confidence, for predictions.
    pub score: Option<f64>,
}

/// The image-level labels one reader (or the consensus) gave one image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageLabels {
    pub image_id: String,
    pub reader: Option<String>,
    /// Label name to presence, in the order of the file's columns.
    pub labels: Vec<(String, bool)>,
}

/// A problem in an annotation file: where, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error("{file}, line {line}: {message}")]
    Line {
        file: String,
        line: u64,
        message: String,
    },
}

impl FormatError {
    pub(crate) fn file(file: &str, message: impl Into<String>) -> Self {
        FormatError::File {
            file: file.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn line(file: &str, line: u64, message: impl Into<String>) -> Self {
        FormatError::Line {
            file: file.to_string(),
            line,
            message: message.into(),
        }
    }
}

/// A number as Python writes a float: shortest round-trip digits, `.0` on whole numbers.
pub fn format_number(v: f64) -> String {
    // Rust's Debug form is the shortest representation that reads back to the same value,
    // with `.0` on whole numbers, as Python's repr.
    format!("{v:?}")
}

/// Parse a coordinate or score; `what` names the column in errors.
pub(crate) fn parse_number(text: &str, what: &str) -> Result<f64, String> {
    let v: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{what} is {text:?}, not a number"))?;
    if !v.is_finite() {
        return Err(format!("{what} is {text:?}; it must be a finite number"));
    }
    Ok(v)
}

/// Check a box: finite, and its corners in order (a zero-area box is allowed: the readers'
/// tools produced some).
pub(crate) fn check_box(b: BBox) -> Result<BBox, String> {
    if b[2] < b[0] || b[3] < b[1] {
        return Err(format!(
            "the box ({}, {}, {}, {}) has x_max < x_min or y_max < y_min",
            b[0], b[1], b[2], b[3]
        ));
    }
    Ok(b)
}

/// What an annotation CSV is, told by the names in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsvKind {
    /// A Kaggle `train.csv` (it has `class_id`).
    KaggleTrain,
    /// A VinDr-CXR annotations file (`class_name` without `class_id`, with or without
    /// `rad_id`; a radlab consensus file is one).
    VindrAnnotations,
    /// A Kaggle submission (`PredictionString`).
    Submission,
    /// A VinDr-CXR `image_labels_*.csv` (`image_id` and label columns).
    ImageLabels,
}

/// The kind of an annotation CSV by its header, or `None` with the header for the error.
pub fn csv_kind(bytes: &[u8]) -> Result<CsvKind, String> {
    let header = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let header = String::from_utf8_lossy(header);
    let names: Vec<&str> = header
        .split(',')
        .map(|h| h.trim().trim_matches('"'))
        .collect();
    Ok(if names.contains(&"class_id") {
        CsvKind::KaggleTrain
    } else if names.contains(&"class_name") {
        CsvKind::VindrAnnotations
    } else if names.contains(&"PredictionString") {
        CsvKind::Submission
    } else if names.contains(&"image_id") {
        CsvKind::ImageLabels
    } else {
        return Err(header.trim().to_string());
    })
}

/// Read box annotations from CSV bytes, by the header: a Kaggle `train.csv` or a VinDr-CXR
/// annotations file (see [`CsvKind`]).
pub fn read_box_annotations(bytes: &[u8], file: &str) -> Result<Vec<Annotation>, FormatError> {
    match csv_kind(bytes) {
        Ok(CsvKind::KaggleTrain) => kaggle::read_train_csv_bytes(bytes, file),
        Ok(CsvKind::VindrAnnotations) => vindr::read_annotations(bytes, file),
        other => Err(FormatError::file(
            file,
            format!(
                "neither a Kaggle train.csv (image_id, class_name, class_id, rad_id, x_min, ...) \
                 nor a VinDr-CXR annotations CSV (image_id, [rad_id,] class_name, x_min, ...); \
                 the header is: {}",
                match other {
                    Err(header) => header,
                    Ok(kind) => format!("that of a {kind:?} file"),
                }
            ),
        )),
    }
}

/// Intersection over union of two boxes; 0 when both are empty.
pub fn iou(a: &BBox, b: &BBox) -> f64 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}
