//! COCO detection JSON (a dataset: `images`, `annotations`, `categories`; and a results
//! list: `image_id`, `category_id`, `bbox`, `score`) and YOLO txt (one file per image,
//! `class x_center y_center width height` normalised by the image size).
//!
//! COCO boxes are `[x, y, width, height]`; radlab's are corners, converted here and nowhere
//! else. Image-level marks ("No finding" without a box) have no COCO or YOLO form: the image
//! is listed with no annotation. The reader of a box travels as an extra `rad_id` field of
//! the COCO annotation (ignored by other tools).

use std::collections::HashMap;
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::{Annotation, FormatError, check_box};

/// Image sizes by image id: `(width, height)` in pixels.
pub type Sizes = HashMap<String, (u32, u32)>;

#[derive(Serialize, Deserialize)]
struct CocoImage {
    id: u64,
    file_name: String,
    width: u32,
    height: u32,
}

#[derive(Serialize, Deserialize)]
struct CocoAnnotation {
    id: u64,
    image_id: u64,
    category_id: u64,
    bbox: [f64; 4],
    area: f64,
    iscrowd: u8,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    rad_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct CocoCategory {
    id: u64,
    name: String,
}

#[derive(Serialize, Deserialize)]
struct CocoDataset {
    images: Vec<CocoImage>,
    annotations: Vec<CocoAnnotation>,
    categories: Vec<CocoCategory>,
}

#[derive(Deserialize)]
struct CocoResult {
    image_id: u64,
    category_id: u64,
    bbox: [f64; 4],
    score: f64,
}

/// A COCO dataset's index: its images (COCO id to radlab image id and size) and its
/// categories (COCO id to label), for reading results made against it.
#[derive(Debug, Clone, PartialEq)]
pub struct CocoImages {
    pub by_id: HashMap<u64, (String, u32, u32)>,
    pub categories: HashMap<u64, String>,
}

/// Write a COCO dataset of `annotations`; `categories` fixes the category ids (1-based, in
/// this order); every image needs its size in `sizes`. Images are numbered 1.. in order of
/// first appearance; `file_name` is the image id with `extension`.
pub fn write_dataset(
    out: impl Write,
    annotations: &[Annotation],
    sizes: &Sizes,
    categories: &[&str],
    extension: &str,
) -> Result<(), String> {
    let mut image_ids: HashMap<&str, u64> = HashMap::new();
    let mut images = Vec::new();
    let mut coco_annotations = Vec::new();
    for a in annotations {
        let next = image_ids.len() as u64 + 1;
        let id = *image_ids.entry(a.image_id.as_str()).or_insert_with(|| {
            images.push(a.image_id.as_str());
            next
        });
        let Some(b) = a.bbox else { continue };
        let category = categories
            .iter()
            .position(|c| *c == a.label)
            .ok_or_else(|| format!("label {:?} is not among the categories", a.label))?;
        let (w, h) = (b[2] - b[0], b[3] - b[1]);
        coco_annotations.push(CocoAnnotation {
            id: coco_annotations.len() as u64 + 1,
            image_id: id,
            category_id: category as u64 + 1,
            bbox: [b[0], b[1], w, h],
            area: w * h,
            iscrowd: 0,
            score: a.score,
            rad_id: a.reader.clone(),
        });
    }
    let images = images
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let (width, height) = sizes
                .get(*name)
                .copied()
                .ok_or_else(|| format!("no size for image {name}"))?;
            Ok(CocoImage {
                id: i as u64 + 1,
                file_name: format!("{name}{extension}"),
                width,
                height,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let categories = categories
        .iter()
        .enumerate()
        .map(|(i, c)| CocoCategory {
            id: i as u64 + 1,
            name: c.to_string(),
        })
        .collect();
    serde_json::to_writer(
        out,
        &CocoDataset {
            images,
            annotations: coco_annotations,
            categories,
        },
    )
    .map_err(|e| e.to_string())
}

/// The radlab image id of a COCO file name: the name without its extension.
fn image_id_of(file_name: &str) -> String {
    let base = file_name.rsplit('/').next().unwrap_or(file_name);
    match base.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem.to_string(),
        _ => base.to_string(),
    }
}

/// Read a COCO dataset: its boxes (with `rad_id` when present) and its images.
pub fn read_dataset(
    reader: impl Read,
    file: &str,
) -> Result<(Vec<Annotation>, CocoImages), FormatError> {
    let d: CocoDataset =
        serde_json::from_reader(reader).map_err(|e| FormatError::file(file, e.to_string()))?;
    let categories: HashMap<u64, &str> = d
        .categories
        .iter()
        .map(|c| (c.id, c.name.as_str()))
        .collect();
    let by_id: HashMap<u64, (String, u32, u32)> = d
        .images
        .iter()
        .map(|i| (i.id, (image_id_of(&i.file_name), i.width, i.height)))
        .collect();
    let mut out = Vec::with_capacity(d.annotations.len());
    for a in &d.annotations {
        let image = by_id.get(&a.image_id).ok_or_else(|| {
            FormatError::file(
                file,
                format!(
                    "annotation {} refers to image {}, which is not listed",
                    a.id, a.image_id
                ),
            )
        })?;
        let label = categories.get(&a.category_id).ok_or_else(|| {
            FormatError::file(
                file,
                format!(
                    "annotation {} has category {}, which is not listed",
                    a.id, a.category_id
                ),
            )
        })?;
        let b = [
            a.bbox[0],
            a.bbox[1],
            a.bbox[0] + a.bbox[2],
            a.bbox[1] + a.bbox[3],
        ];
        out.push(Annotation {
            image_id: image.0.clone(),
            reader: a.rad_id.clone(),
            label: label.to_string(),
            bbox: Some(
                check_box(b)
                    .map_err(|m| FormatError::file(file, format!("annotation {}: {m}", a.id)))?,
            ),
            score: a.score,
        });
    }
    let categories = categories
        .into_iter()
        .map(|(id, name)| (id, name.to_string()))
        .collect();
    Ok((out, CocoImages { by_id, categories }))
}

/// Read COCO results (predictions) against the images and categories of their dataset.
pub fn read_results(
    reader: impl Read,
    file: &str,
    images: &CocoImages,
) -> Result<Vec<Annotation>, FormatError> {
    let results: Vec<CocoResult> =
        serde_json::from_reader(reader).map_err(|e| FormatError::file(file, e.to_string()))?;
    results
        .iter()
        .enumerate()
        .map(|(k, r)| {
            let at = |m: String| FormatError::file(file, format!("result {}: {m}", k + 1));
            let image = images
                .by_id
                .get(&r.image_id)
                .ok_or_else(|| at(format!("image_id {} is not in the dataset", r.image_id)))?;
            let label = images.categories.get(&r.category_id).ok_or_else(|| {
                at(format!(
                    "category_id {} is not in the dataset",
                    r.category_id
                ))
            })?;
            let b = [
                r.bbox[0],
                r.bbox[1],
                r.bbox[0] + r.bbox[2],
                r.bbox[1] + r.bbox[3],
            ];
            Ok(Annotation {
                image_id: image.0.clone(),
                reader: None,
                label: label.to_string(),
                bbox: Some(check_box(b).map_err(at)?),
                score: Some(r.score),
            })
        })
        .collect()
}

/// The YOLO label files of `annotations`: image id to the text of its `.txt` (class index
/// in `classes`, centre and size normalised by the image size, six decimals as YOLO tools
/// write them). Images with no box get an empty file.
pub fn to_yolo(
    annotations: &[Annotation],
    sizes: &Sizes,
    classes: &[&str],
) -> Result<Vec<(String, String)>, String> {
    let mut order: Vec<&str> = Vec::new();
    let mut files: HashMap<&str, String> = HashMap::new();
    for a in annotations {
        let text = files.entry(a.image_id.as_str()).or_insert_with(|| {
            order.push(a.image_id.as_str());
            String::new()
        });
        let Some(b) = a.bbox else { continue };
        let class = classes
            .iter()
            .position(|c| *c == a.label)
            .ok_or_else(|| format!("label {:?} is not among the classes", a.label))?;
        let (w, h) = sizes
            .get(&a.image_id)
            .map(|(w, h)| (*w as f64, *h as f64))
            .ok_or_else(|| format!("no size for image {}", a.image_id))?;
        text.push_str(&format!(
            "{class} {:.6} {:.6} {:.6} {:.6}\n",
            (b[0] + b[2]) / 2.0 / w,
            (b[1] + b[3]) / 2.0 / h,
            (b[2] - b[0]) / w,
            (b[3] - b[1]) / h
        ));
    }
    Ok(order
        .into_iter()
        .map(|i| (i.to_string(), files.remove(i).unwrap_or_default()))
        .collect())
}

/// Parse one YOLO label file of image `image_id` back to boxes in pixels; `file` names it in
/// errors.
pub fn from_yolo(
    text: &str,
    image_id: &str,
    size: (u32, u32),
    classes: &[&str],
    file: &str,
) -> Result<Vec<Annotation>, FormatError> {
    let (w, h) = (size.0 as f64, size.1 as f64);
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |m: String| FormatError::line(file, n as u64 + 1, m);
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 5 && f.len() != 6 {
            return Err(at(format!(
                "{} values; expected class x_center y_center width height [score]",
                f.len()
            )));
        }
        let class: usize = f[0]
            .parse()
            .map_err(|_| at(format!("class {:?} is not an index", f[0])))?;
        let label = classes.get(class).ok_or_else(|| {
            at(format!(
                "class {class} is not among the {} classes",
                classes.len()
            ))
        })?;
        let v: Vec<f64> = f[1..]
            .iter()
            .map(|x| crate::parse_number(x, "a coordinate").map_err(at))
            .collect::<Result<_, _>>()?;
        let b = [
            (v[0] - v[2] / 2.0) * w,
            (v[1] - v[3] / 2.0) * h,
            (v[0] + v[2] / 2.0) * w,
            (v[1] + v[3] / 2.0) * h,
        ];
        out.push(Annotation {
            image_id: image_id.to_string(),
            reader: None,
            label: label.to_string(),
            bbox: Some(check_box(b).map_err(at)?),
            score: v.get(4).copied(),
        });
    }
    Ok(out)
}
