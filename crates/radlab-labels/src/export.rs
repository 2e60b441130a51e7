//! The label side of a dataset export in the VinDr-CXR release layout: the image-id rule,
//! reader fusion for the consensus files, image labels derived from the annotations, box
//! scaling for resized images, per-label counts and the manifest. Pure: data in, data out;
//! the images and the files are the command's business.
//!
//! **Image id.** An exported image is named by the VinDr-CXR rule: the lowercase hex MD5 of
//! its original SOP Instance UID (trailing NUL and spaces removed), as the `vindr-cxr`
//! de-identification profile names its files. A label file may key images either by that
//! name or by the SOP Instance UID itself ([`vindr_image_id`] turns one into the other); the
//! released files always carry the MD5 name.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::consensus::{ConsensusOptions, Method, fuse_image};
use crate::fusion::WbfOptions;
use crate::{Annotation, GLOBAL_LABELS, ImageLabels, LOCAL_LABELS};

/// The VinDr-CXR name of an image: `md5(SOP Instance UID)` in lowercase hex.
pub fn vindr_image_id(sop_instance_uid: &str) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(
        sop_instance_uid.trim_end_matches(['\0', ' ']).as_bytes(),
    ))
}

/// Whether `id` looks like a VinDr name (32 lowercase hex digits).
pub fn is_vindr_image_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The 28 VinDr-CXR labels in the release's column order (local, then global).
pub fn vindr_label_order() -> Vec<&'static str> {
    LOCAL_LABELS
        .iter()
        .chain(GLOBAL_LABELS.iter())
        .map(|l| l.name)
        .collect()
}

/// The 22 local (box) labels: the COCO categories (ids 1..22) and YOLO classes (0..21) of an
/// export, fixed so that ids mean the same in every radlab dataset.
pub fn box_classes() -> Vec<&'static str> {
    LOCAL_LABELS.iter().map(|l| l.name).collect()
}

/// How readers are fused into one consensus per image.
pub const FUSION_IOU: f64 = 0.4;

/// The consensus of each image's readers ([`crate::consensus::fuse_image`] with its
/// defaults): boxes of each label fused by Weighted Boxes Fusion (each reader a source with
/// score 1, IoU above 0.4, `conf_type` avg), the fused score the share of readers whose boxes
/// agree; image-level marks (and zero-area boxes) kept once per label when any reader made
/// them, except "No finding", kept only when no other label is left. Images whose rows carry
/// no reader are consensus already and pass unchanged. Output by image id, then descending
/// score.
pub fn fuse_readers(annotations: &[Annotation]) -> Result<Vec<Annotation>, String> {
    let mut by_image: BTreeMap<&str, Vec<&Annotation>> = BTreeMap::new();
    for a in annotations {
        by_image.entry(a.image_id.as_str()).or_default().push(a);
    }
    let options = ConsensusOptions {
        method: Method::Wbf(WbfOptions {
            iou_thr: FUSION_IOU,
            ..WbfOptions::default()
        }),
        ..ConsensusOptions::default()
    };
    let mut out = Vec::new();
    for (image, rows) in by_image {
        if rows.iter().any(|a| a.reader.is_none()) {
            out.extend(rows.iter().map(|a| Annotation {
                reader: None,
                ..(*a).clone()
            }));
            continue;
        }
        out.extend(
            fuse_image(image, &rows, &options)?
                .iter()
                .map(|f| f.to_annotation()),
        );
    }
    Ok(out)
}

/// Image labels derived from annotations: one row per image and reader (one per image for
/// reader-less rows), a label 1 when that reader has any row of it; columns are the 28
/// VinDr-CXR labels in release order. Rows by image id, then reader.
pub fn image_labels_from_annotations(annotations: &[Annotation]) -> Vec<ImageLabels> {
    let order = vindr_label_order();
    let mut marks: BTreeMap<(&str, Option<&str>), BTreeSet<&str>> = BTreeMap::new();
    for a in annotations {
        marks
            .entry((a.image_id.as_str(), a.reader.as_deref()))
            .or_default()
            .insert(a.label.as_str());
    }
    marks
        .into_iter()
        .map(|((image, reader), set)| ImageLabels {
            image_id: image.to_string(),
            reader: reader.map(str::to_string),
            labels: order
                .iter()
                .map(|l| (l.to_string(), set.contains(l)))
                .collect(),
        })
        .collect()
}

/// The consensus of image-label rows: a label is 1 when any reader gave it, "No finding"
/// only when no other label is 1 (the same rule as [`fuse_readers`]).
pub fn fuse_image_labels(rows: &[ImageLabels]) -> Vec<ImageLabels> {
    let mut by_image: BTreeMap<&str, Vec<&ImageLabels>> = BTreeMap::new();
    for r in rows {
        by_image.entry(r.image_id.as_str()).or_default().push(r);
    }
    by_image
        .into_iter()
        .map(|(image, rs)| {
            let names: Vec<&str> = rs[0].labels.iter().map(|(n, _)| n.as_str()).collect();
            let any = |name: &str| {
                rs.iter()
                    .any(|r| r.labels.iter().any(|(n, v)| n == name && *v))
            };
            let finding = names.iter().any(|n| *n != "No finding" && any(n));
            ImageLabels {
                image_id: image.to_string(),
                reader: None,
                labels: names
                    .iter()
                    .map(|n| {
                        let v = if *n == "No finding" {
                            any(n) && !finding
                        } else {
                            any(n)
                        };
                        (n.to_string(), v)
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Scale every box by `(sx, sy)` of its image (`factors`, image id to factors); images not
/// listed keep their boxes.
pub fn scale_boxes(annotations: &mut [Annotation], factors: &BTreeMap<String, (f64, f64)>) {
    for a in annotations {
        if let (Some(b), Some((sx, sy))) = (a.bbox.as_mut(), factors.get(&a.image_id)) {
            b[0] *= sx;
            b[2] *= sx;
            b[1] *= sy;
            b[3] *= sy;
        }
    }
}

/// Per label: the images carrying it and its boxes (all readers' rows count).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LabelCount {
    pub images: usize,
    pub boxes: usize,
}

/// Counts per label (by name) over `annotations`.
pub fn label_counts(annotations: &[Annotation]) -> BTreeMap<String, LabelCount> {
    let mut images: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut boxes: BTreeMap<&str, usize> = BTreeMap::new();
    for a in annotations.iter().filter(|a| !a.label.is_empty()) {
        images
            .entry(a.label.as_str())
            .or_default()
            .insert(a.image_id.as_str());
        *boxes.entry(a.label.as_str()).or_default() += usize::from(a.bbox.is_some());
    }
    images
        .into_iter()
        .map(|(label, set)| {
            (
                label.to_string(),
                LabelCount {
                    images: set.len(),
                    boxes: boxes.get(label).copied().unwrap_or(0),
                },
            )
        })
        .collect()
}

/// One file of the export and its checksum.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ManifestFile {
    /// Relative to the version folder, `/`-separated.
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// One exported image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ManifestImage {
    pub image_id: String,
    pub split: String,
    /// Size of the written image (pixels of the DICOM, or of the PNG/JPEG after resizing).
    pub width: u32,
    pub height: u32,
    /// Size of the original frame; boxes were scaled by width / original_width and height /
    /// original_height.
    pub original_width: u32,
    pub original_height: u32,
}

/// `manifest.json` of an export. Fields are documented in `docs/dataset.md`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Manifest {
    pub manifest_version: u32,
    pub name: String,
    pub version: String,
    /// RFC 3339, UTC.
    pub created: String,
    pub radlab_version: String,
    /// `dicom`, `png` or `jpeg`.
    pub format: String,
    /// `--size` for png and jpeg; `None` for full size.
    pub size: Option<u32>,
    pub jpeg_quality: Option<u8>,
    pub image_id_rule: String,
    pub deidentification: serde_json::Value,
    pub labels: serde_json::Value,
    pub split: serde_json::Value,
    /// Images per split.
    pub image_counts: BTreeMap<String, usize>,
    /// Per split, per label: images and boxes, over the released annotation files.
    pub label_counts: BTreeMap<String, BTreeMap<String, LabelCount>>,
    pub images: Vec<ManifestImage>,
    /// Every file of the export except `manifest.json`, by path.
    pub files: Vec<ManifestFile>,
}
