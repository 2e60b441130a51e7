//! A reader study: how much the readers of a dataset agree, label by label, and how well
//! each reader scores against the consensus of the others.
//!
//! - **Image labels** (is label L present on the image, for this reader?): Cohen's kappa for
//!   every pair of readers over the images both read, Fleiss' kappa over the images read by
//!   the most common number of readers (3 in VinDr-CXR's training set; other images are
//!   counted and left out), Krippendorff's alpha (nominal) over every image and reader,
//!   missing ratings allowed. A reader marks L on an image when they drew a box of L or
//!   gave the image-level label L.
//! - **Boxes**: per label, the F1 between readers at IoU above a threshold (0.4): for every
//!   image and every pair of its readers, their boxes of L are matched one to one, the pairs
//!   of highest IoU first; F1 = 2 × matches / (boxes of the first + boxes of the second),
//!   pooled over all images and pairs. Images where neither reader drew L do not count.
//! - **Each reader against the others**: the reader's rows (their scores, 1 when absent; a
//!   "No finding" mark as the box `0 0 1 1`) are detections; the ground truth is the
//!   consensus of the image's other readers ([`radlab_labels::consensus::fuse_image`]); the
//!   score is VOC AP at IoU above the threshold per class and its mean over the classes
//!   with ground truth, on the images the reader read. A human baseline for the models.

use std::collections::{BTreeMap, BTreeSet};

pub use radlab_labels::consensus::natural_key;
use radlab_labels::consensus::{ConsensusOptions, NO_FINDING, by_image, fuse_image};
use radlab_labels::{Annotation, BBox, ImageLabels};
use serde::Serialize;

use crate::voc::{ClassAp, iou, voc_map};
use crate::{cohen_kappa, fleiss_kappa, krippendorff_alpha_nominal};

/// Who marked what: image → reader → labels present.
pub type Marks = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// The marks of box annotations (every row of a reader, box or image-level mark).
pub fn marks_of_annotations(rows: &[Annotation]) -> Marks {
    let mut m = Marks::new();
    for a in rows {
        m.entry(a.image_id.clone())
            .or_default()
            .entry(a.reader.clone().unwrap_or_default())
            .or_default()
            .insert(a.label.clone());
    }
    m
}

/// The marks of image-label rows (VinDr-CXR's `image_labels_train.csv`).
pub fn marks_of_image_labels(rows: &[ImageLabels]) -> Marks {
    let mut m = Marks::new();
    for r in rows {
        let set = m
            .entry(r.image_id.clone())
            .or_default()
            .entry(r.reader.clone().unwrap_or_default())
            .or_default();
        set.extend(r.labels.iter().filter(|(_, v)| *v).map(|(l, _)| l.clone()));
    }
    m
}

/// Cohen's kappa of one pair of readers on one label.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairKappa {
    pub readers: [String; 2],
    /// Images both read.
    pub images: usize,
    /// `None` when undefined (both readers always gave the same single answer).
    pub kappa: Option<f64>,
}

/// Agreement on one image-level label.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelAgreement {
    pub label: String,
    /// Images rated, and the (image, reader) marks of the label among them.
    pub images: usize,
    pub marks: usize,
    pub cohen: Vec<PairKappa>,
    /// The mean of the defined pair kappas, each weighted by the images the pair shares.
    pub cohen_weighted_mean: Option<f64>,
    pub fleiss: Option<f64>,
    /// Images in Fleiss' kappa (those with the most common number of readers).
    pub fleiss_images: usize,
    pub krippendorff_alpha: Option<f64>,
}

/// Agreement on image-level labels, label by label (labels in the given order).
pub fn image_label_agreement(marks: &Marks, labels: &[&str]) -> Vec<LabelAgreement> {
    // The most common number of readers per image.
    let mut sizes: BTreeMap<usize, usize> = BTreeMap::new();
    for readers in marks.values() {
        *sizes.entry(readers.len()).or_default() += 1;
    }
    let raters = sizes
        .iter()
        .max_by_key(|(n, c)| (**c, std::cmp::Reverse(**n)))
        .map_or(0, |(n, _)| *n);
    let readers: BTreeSet<&str> = marks
        .values()
        .flat_map(|r| r.keys().map(String::as_str))
        .collect();
    let readers: Vec<&str> = readers.into_iter().collect();
    // Pairs of readers and the images they share.
    let mut shared: BTreeMap<(usize, usize), Vec<&str>> = BTreeMap::new();
    for (image, by) in marks {
        let idx: Vec<usize> = by
            .keys()
            .map(|r| readers.binary_search(&r.as_str()).unwrap_or(0))
            .collect();
        for (i, a) in idx.iter().enumerate() {
            for b in &idx[i + 1..] {
                shared.entry((*a, *b)).or_default().push(image.as_str());
            }
        }
    }
    labels
        .iter()
        .map(|label| {
            let has = |image: &str, reader: &str| -> u32 {
                marks[image]
                    .get(reader)
                    .is_some_and(|s| s.contains(*label))
                    .into()
            };
            let cohen: Vec<PairKappa> = shared
                .iter()
                .map(|((a, b), images)| {
                    let ra: Vec<u32> = images.iter().map(|i| has(i, readers[*a])).collect();
                    let rb: Vec<u32> = images.iter().map(|i| has(i, readers[*b])).collect();
                    PairKappa {
                        readers: [readers[*a].to_string(), readers[*b].to_string()],
                        images: images.len(),
                        kappa: cohen_kappa(&ra, &rb).ok().flatten(),
                    }
                })
                .collect();
            let (sum, weight) = cohen
                .iter()
                .filter_map(|p| p.kappa.map(|k| (k * p.images as f64, p.images as f64)))
                .fold((0.0, 0.0), |(s, w), (a, b)| (s + a, w + b));
            let counts: Vec<Vec<u32>> = marks
                .iter()
                .filter(|(_, by)| by.len() == raters)
                .map(|(_, by)| {
                    let yes = by.values().filter(|s| s.contains(*label)).count() as u32;
                    vec![raters as u32 - yes, yes]
                })
                .collect();
            let units: Vec<Vec<Option<u32>>> = marks
                .values()
                .map(|by| {
                    readers
                        .iter()
                        .map(|r| by.get(*r).map(|s| s.contains(*label).into()))
                        .collect()
                })
                .collect();
            LabelAgreement {
                label: label.to_string(),
                images: marks.len(),
                marks: marks
                    .values()
                    .flat_map(|by| by.values())
                    .filter(|s| s.contains(*label))
                    .count(),
                cohen_weighted_mean: (weight > 0.0).then(|| sum / weight),
                cohen,
                fleiss: fleiss_kappa(&counts).ok().flatten(),
                fleiss_images: counts.len(),
                krippendorff_alpha: krippendorff_alpha_nominal(&units).ok().flatten(),
            }
        })
        .collect()
}

/// The F1 between readers on one box label.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BoxAgreement {
    pub label: String,
    pub boxes: usize,
    /// Matched pairs, and the boxes on each side, summed over images and reader pairs.
    pub matches: usize,
    pub compared: usize,
    pub f1: Option<f64>,
}

/// One-to-one matches between two sets of boxes at IoU above `thr`, highest IoU first
/// (ties by position in the first set, then the second).
pub fn match_boxes(a: &[BBox], b: &[BBox], thr: f64) -> usize {
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    for (i, x) in a.iter().enumerate() {
        for (j, y) in b.iter().enumerate() {
            let o = iou(x, y);
            if o > thr {
                pairs.push((o, i, j));
            }
        }
    }
    pairs.sort_by(|p, q| q.0.total_cmp(&p.0).then(p.1.cmp(&q.1)).then(p.2.cmp(&q.2)));
    let (mut used_a, mut used_b) = (vec![false; a.len()], vec![false; b.len()]);
    let mut n = 0;
    for (_, i, j) in pairs {
        if !used_a[i] && !used_b[j] {
            used_a[i] = true;
            used_b[j] = true;
            n += 1;
        }
    }
    n
}

/// F1 between readers per box label, at IoU above `thr`.
pub fn box_agreement(rows: &[Annotation], labels: &[&str], thr: f64) -> Vec<BoxAgreement> {
    let images = by_image(rows);
    labels
        .iter()
        .map(|label| {
            let (mut boxes, mut matches, mut compared) = (0, 0, 0);
            for (_, rows) in &images {
                let mut by: BTreeMap<&str, Vec<BBox>> = BTreeMap::new();
                for a in rows {
                    let entry = by.entry(a.reader.as_deref().unwrap_or("")).or_default();
                    if let (true, Some(b)) = (a.label == *label, a.bbox) {
                        entry.push(b);
                        boxes += 1;
                    }
                }
                let sets: Vec<&Vec<BBox>> = by.values().collect();
                for (i, x) in sets.iter().enumerate() {
                    for y in &sets[i + 1..] {
                        if x.is_empty() && y.is_empty() {
                            continue;
                        }
                        matches += match_boxes(x, y, thr);
                        compared += x.len() + y.len();
                    }
                }
            }
            BoxAgreement {
                label: label.to_string(),
                boxes,
                matches,
                compared,
                f1: (compared > 0).then(|| 2.0 * matches as f64 / compared as f64),
            }
        })
        .collect()
}

/// One reader scored against the consensus of the others.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReaderScore {
    pub reader: String,
    pub images: usize,
    pub rows: usize,
    /// The mean over all the labels with ground truth.
    pub map: f64,
    /// The mean over the labels other than "No finding" with ground truth; `None` when the
    /// reader's images have none (a reader who only read normal images).
    pub map_findings: Option<f64>,
    pub classes: Vec<ClassAp>,
}

/// The ground truth and detections of one reader against the others: the reader's rows on
/// the images they read (in file order), and the consensus of the other readers of those
/// images. Images the reader read alone are left out.
pub fn reader_versus_others(
    rows: &[Annotation],
    reader: &str,
    consensus: &ConsensusOptions,
) -> Result<(Vec<Annotation>, Vec<Annotation>), String> {
    let mut gt = Vec::new();
    let mut det = Vec::new();
    for (image, rows) in by_image(rows) {
        let (mine, others): (Vec<&Annotation>, Vec<&Annotation>) = rows
            .iter()
            .partition(|a| a.reader.as_deref() == Some(reader));
        if mine.is_empty() || others.is_empty() {
            continue;
        }
        det.extend(mine.into_iter().map(|a| Annotation {
            score: Some(a.score.unwrap_or(1.0)),
            ..a.clone()
        }));
        gt.extend(
            fuse_image(image, &others, consensus)?
                .iter()
                .map(|f| f.to_annotation()),
        );
    }
    Ok((gt, det))
}

/// Every reader scored against the consensus of the others (readers in name order).
pub fn reader_scores(
    rows: &[Annotation],
    labels: &[&str],
    consensus: &ConsensusOptions,
    iou_threshold: f64,
) -> Result<Vec<ReaderScore>, String> {
    let readers: BTreeSet<&str> = rows.iter().filter_map(|a| a.reader.as_deref()).collect();
    let mut readers: Vec<&str> = readers.into_iter().collect();
    readers.sort_by_key(|r| natural_key(r));
    readers
        .into_iter()
        .map(|reader| {
            let (gt, det) = reader_versus_others(rows, reader, consensus)?;
            let images: BTreeSet<&str> = det.iter().map(|d| d.image_id.as_str()).collect();
            let r = voc_map(labels, &gt, &det, iou_threshold);
            let findings: Vec<f64> = r
                .classes
                .iter()
                .filter(|c| c.label != NO_FINDING)
                .filter_map(|c| c.ap)
                .collect();
            Ok(ReaderScore {
                reader: reader.to_string(),
                images: images.len(),
                rows: det.len(),
                map: r.map,
                map_findings: (!findings.is_empty())
                    .then(|| findings.iter().sum::<f64>() / findings.len() as f64),
                classes: r.classes,
            })
        })
        .collect()
}
