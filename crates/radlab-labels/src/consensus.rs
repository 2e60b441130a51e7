//! Reader consensus: the boxes of several readers of the same image fused into one set, by
//! Weighted Boxes Fusion or (soft-)NMS, optionally with a quorum (a fused box is kept only
//! when at least k of the image's n readers contributed to it, as CVAT's consensus merge
//! does). Every fused box says which readers contributed.
//!
//! Rules, image by image:
//! - the readers of an image are the distinct `reader` values among its rows (each reader is
//!   one source of the fusion, in name order); rows without a reader form one source;
//! - boxes are fused label by label; a reader's box without a score counts as score 1;
//! - an image-level mark other than "No finding" (a row without a box) is kept when at least
//!   the quorum of readers gave it (any reader without a quorum);
//! - a zero-area box fuses with nothing; its label counts as the reader's image-level mark;
//! - "No finding" is the consensus exactly when no finding remains (no fused box, no other
//!   image-level mark): an image is normal after fusion when every finding was dropped (by
//!   the quorum), abnormal otherwise, so the result always says something about every image.

use std::collections::BTreeMap;
use std::io::Write;

use crate::fusion::{
    FusedBox, NmsOptions, SourceBox, WbfOptions, WbfScratch, non_maximum_suppression,
    weighted_boxes_fusion_with,
};
use crate::ids::IdMap;
use crate::kaggle::quote;
use crate::{Annotation, BBox, format_number};

/// "No finding", the image-level mark of a normal image.
pub const NO_FINDING: &str = "No finding";

/// How many readers must agree for a fused box to be kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quorum {
    /// At least this many readers.
    Count(usize),
    /// At least this share of the image's readers (rounded up: 0.5 of 3 readers is 2).
    Share(f64),
}

impl Quorum {
    /// `"2"` is a count, `"0.5"` or `"2/3"` a share.
    pub fn parse(s: &str) -> Result<Quorum, String> {
        let s = s.trim();
        let bad =
            || format!("quorum {s:?} is neither a count of readers (2) nor a share (0.5, 2/3)");
        let q = if let Some((a, b)) = s.split_once('/') {
            let a: f64 = a.trim().parse().map_err(|_| bad())?;
            let b: f64 = b.trim().parse().map_err(|_| bad())?;
            if b <= 0.0 {
                return Err(bad());
            }
            Quorum::Share(a / b)
        } else if s.contains('.') {
            Quorum::Share(s.parse().map_err(|_| bad())?)
        } else {
            Quorum::Count(s.parse().map_err(|_| bad())?)
        };
        match q {
            Quorum::Count(0) => Err(format!("quorum {s:?}: at least one reader must agree")),
            Quorum::Share(x) if !(x > 0.0 && x <= 1.0) => {
                Err(format!("quorum {s:?}: a share must be in (0, 1]"))
            }
            q => Ok(q),
        }
    }

    /// The number of readers needed out of `n`.
    pub fn needed(&self, n: usize) -> usize {
        match *self {
            Quorum::Count(k) => k,
            // The small tolerance keeps 2/3 of 3 at 2 despite rounding.
            Quorum::Share(x) => ((x * n as f64) - 1e-9).ceil().max(1.0) as usize,
        }
    }
}

/// Which fusion [`fuse_readers`] applies.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    Wbf(WbfOptions),
    Nms(NmsOptions),
}

/// Options of [`fuse_readers`].
#[derive(Debug, Clone, PartialEq)]
pub struct ConsensusOptions {
    pub method: Method,
    pub quorum: Option<Quorum>,
    /// Per-reader weights by reader name (readers not named weigh 1).
    pub reader_weights: BTreeMap<String, f64>,
}

impl Default for ConsensusOptions {
    /// The VinBigData community's consensus: WBF per class at IoU 0.4, every reader a
    /// source with score 1, no quorum.
    fn default() -> Self {
        ConsensusOptions {
            method: Method::Wbf(WbfOptions {
                iou_thr: 0.4,
                ..WbfOptions::default()
            }),
            quorum: None,
            reader_weights: BTreeMap::new(),
        }
    }
}

/// One finding of the consensus.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsensusFinding {
    pub image_id: String,
    pub label: String,
    /// `None` for image-level marks.
    pub bbox: Option<BBox>,
    pub score: f64,
    /// The readers whose boxes (or marks) it merges, in natural order (R2 before R10).
    pub readers: Vec<String>,
    /// How many readers read the image.
    pub of_readers: usize,
}

impl ConsensusFinding {
    /// As an annotation without a reader (consensus), with its score.
    pub fn to_annotation(&self) -> Annotation {
        Annotation {
            image_id: self.image_id.clone(),
            reader: None,
            label: self.label.clone(),
            bbox: self.bbox,
            score: Some(self.score),
        }
    }
}

/// Reader names in natural order: R2 before R10.
pub fn natural_key(name: &str) -> (String, u64, String) {
    let digits = name
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(name.len());
    let (prefix, rest) = name.split_at(digits);
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let number = rest[..end].parse().unwrap_or(0);
    (prefix.to_string(), number, rest[end..].to_string())
}

/// Group annotations by image, keeping the images in first-seen order.
pub fn by_image(annotations: &[Annotation]) -> Vec<(&str, Vec<&Annotation>)> {
    let mut index: IdMap<usize> = IdMap::default();
    let mut out: Vec<(&str, Vec<&Annotation>)> = Vec::new();
    for a in annotations {
        let i = *index.entry(a.image_id.as_str()).or_insert_with(|| {
            out.push((a.image_id.as_str(), Vec::new()));
            out.len() - 1
        });
        out[i].1.push(a);
    }
    out
}

/// The reader and label names of a set of rows, numbered once: readers in name order (the
/// order of the fusion's sources), each with its rank in natural order (the order readers
/// are listed in); labels in order of first appearance.
struct Names<'a> {
    readers: Vec<&'a str>,
    natural_rank: Vec<usize>,
    labels: Vec<&'a str>,
    /// Per row: its reader's and its label's number.
    row_reader: Vec<u32>,
    row_label: Vec<u32>,
}

impl<'a> Names<'a> {
    fn of<'r>(rows: impl Iterator<Item = &'r Annotation> + Clone) -> Names<'a>
    where
        'r: 'a,
    {
        let mut reader_ids: IdMap<u32> = IdMap::default();
        let mut label_ids: IdMap<u32> = IdMap::default();
        let mut readers: Vec<&str> = Vec::new();
        let mut labels: Vec<&str> = Vec::new();
        let mut row_reader = Vec::with_capacity(rows.clone().count());
        let mut row_label = Vec::with_capacity(row_reader.capacity());
        for a in rows {
            let r = a.reader.as_deref().unwrap_or("");
            row_reader.push(*reader_ids.entry(r).or_insert_with(|| {
                readers.push(r);
                readers.len() as u32 - 1
            }));
            row_label.push(*label_ids.entry(a.label.as_str()).or_insert_with(|| {
                labels.push(a.label.as_str());
                labels.len() as u32 - 1
            }));
        }
        // Renumber readers in name order.
        let mut by_name: Vec<usize> = (0..readers.len()).collect();
        by_name.sort_by_key(|i| readers[*i]);
        let mut new_id = vec![0u32; readers.len()];
        for (new, old) in by_name.iter().enumerate() {
            new_id[*old] = new as u32;
        }
        for r in &mut row_reader {
            *r = new_id[*r as usize];
        }
        let readers: Vec<&str> = by_name.iter().map(|i| readers[*i]).collect();
        let mut natural: Vec<usize> = (0..readers.len()).collect();
        natural.sort_by_cached_key(|i| natural_key(readers[*i]));
        let mut natural_rank = vec![0; readers.len()];
        for (rank, i) in natural.iter().enumerate() {
            natural_rank[*i] = rank;
        }
        Names {
            readers,
            natural_rank,
            labels,
            row_reader,
            row_label,
        }
    }
}

/// Fuse the readers of every image. Images keep their first-seen order; within an image,
/// fused boxes come by descending score.
pub fn fuse_readers(
    annotations: &[Annotation],
    options: &ConsensusOptions,
) -> Result<Vec<ConsensusFinding>, String> {
    let names = Names::of(annotations.iter());
    // Each row's image, numbered in first-seen order; then the rows ordered by image (a
    // counting sort, stable), so each image's rows are one run.
    let mut index: IdMap<usize> = IdMap::default();
    let mut images: Vec<&str> = Vec::new();
    let mut counts: Vec<usize> = Vec::new();
    let group: Vec<usize> = annotations
        .iter()
        .map(|a| {
            let g = *index.entry(a.image_id.as_str()).or_insert_with(|| {
                images.push(a.image_id.as_str());
                counts.push(0);
                images.len() - 1
            });
            counts[g] += 1;
            g
        })
        .collect();
    let mut start = Vec::with_capacity(images.len() + 1);
    let mut total = 0;
    for c in &counts {
        start.push(total);
        total += c;
    }
    start.push(total);
    let mut next = start.clone();
    let mut order = vec![0; annotations.len()];
    for (i, g) in group.iter().enumerate() {
        order[next[*g]] = i;
        next[*g] += 1;
    }
    // At most one finding per row, or one per image ("No finding").
    let mut out = Vec::with_capacity(annotations.len());
    let mut rows = Vec::new();
    // Buffers reused from image to image.
    let mut scratch = Scratch::default();
    for (g, image) in images.iter().enumerate() {
        rows.clear();
        rows.extend(
            order[start[g]..start[g + 1]]
                .iter()
                .map(|i| (&annotations[*i], names.row_reader[*i], names.row_label[*i])),
        );
        fuse_group(image, &rows, &names, options, &mut scratch, &mut out)?;
    }
    Ok(out)
}

/// Fuse the readers of one image.
pub fn fuse_image(
    image: &str,
    rows: &[&Annotation],
    options: &ConsensusOptions,
) -> Result<Vec<ConsensusFinding>, String> {
    let names = Names::of(rows.iter().copied());
    let rows: Vec<(&Annotation, u32, u32)> = rows
        .iter()
        .enumerate()
        .map(|(i, a)| (*a, names.row_reader[i], names.row_label[i]))
        .collect();
    let mut out = Vec::new();
    fuse_group(
        image,
        &rows,
        &names,
        options,
        &mut Scratch::default(),
        &mut out,
    )?;
    Ok(out)
}

/// Buffers reused from image to image: the sources' box lists and WBF's own.
#[derive(Default)]
struct Scratch {
    sources: Vec<Vec<SourceBox>>,
    wbf: WbfScratch,
}

/// Fuse one image's rows, each with its reader's and label's number in `names`.
fn fuse_group(
    image: &str,
    rows: &[(&Annotation, u32, u32)],
    names: &Names,
    options: &ConsensusOptions,
    scratch: &mut Scratch,
    out: &mut Vec<ConsensusFinding>,
) -> Result<(), String> {
    let Scratch { sources, wbf } = scratch;
    // The image's readers, in name order: the sources.
    let mut readers: Vec<u32> = rows.iter().map(|r| r.1).collect();
    readers.sort_unstable();
    readers.dedup();
    let n = readers.len();
    let source = |reader: u32| readers.iter().position(|r| *r == reader).unwrap_or(0);
    for s in sources.iter_mut() {
        s.clear();
    }
    sources.resize_with(n.max(sources.len()), Vec::new);
    let sources = &mut sources[..n];
    // Image-level marks: label number → sources.
    let mut marks: Vec<(u32, Vec<usize>)> = Vec::new();
    let mut mark = |label: u32, s: usize| match marks.iter_mut().find(|m| m.0 == label) {
        Some(m) => {
            if !m.1.contains(&s) {
                m.1.push(s);
            }
        }
        None => marks.push((label, vec![s])),
    };
    for (a, reader, label) in rows {
        let s = source(*reader);
        match a.bbox {
            // A zero-area box fuses with nothing (the reference skips it); its label stays
            // as the reader's image-level mark, so the image is not called normal.
            Some(b) if (b[2] - b[0]) * (b[3] - b[1]) == 0.0 => mark(*label, s),
            Some(bbox) => sources[s].push(SourceBox {
                bbox,
                score: a.score.unwrap_or(1.0),
                label: *label,
            }),
            None => mark(*label, s),
        }
    }
    let weights: Option<Vec<f64>> = (!options.reader_weights.is_empty()).then(|| {
        readers
            .iter()
            .map(|r| {
                let name = names.readers[*r as usize];
                options.reader_weights.get(name).copied().unwrap_or(1.0)
            })
            .collect()
    });
    let fused: Vec<FusedBox> = match (&options.method, weights) {
        (Method::Wbf(o), None) => weighted_boxes_fusion_with(sources, o, wbf),
        (Method::Wbf(o), weights) => weighted_boxes_fusion_with(
            sources,
            &WbfOptions {
                weights,
                ..o.clone()
            },
            wbf,
        ),
        (Method::Nms(o), None) => non_maximum_suppression(sources, o),
        (Method::Nms(o), weights) => non_maximum_suppression(
            sources,
            &NmsOptions {
                weights,
                ..o.clone()
            },
        ),
    }
    .map_err(|e| format!("image {image}: {e}"))?;
    let needed = options.quorum.map_or(1, |q| q.needed(n));
    let reader_names = |s: &[usize]| -> Vec<String> {
        let mut v: Vec<u32> = s.iter().map(|i| readers[*i]).collect();
        v.sort_unstable_by_key(|r| names.natural_rank[*r as usize]);
        v.iter()
            .map(|r| names.readers[*r as usize].to_string())
            .collect()
    };
    let start = out.len();
    out.extend(
        fused
            .into_iter()
            .filter(|f| f.sources.len() >= needed)
            .map(|f| ConsensusFinding {
                image_id: image.to_string(),
                label: names.labels[f.label as usize].to_string(),
                bbox: Some(f.bbox),
                score: f.score,
                readers: reader_names(&f.sources),
                of_readers: n,
            }),
    );
    let label_name = |l: u32| names.labels[l as usize];
    // Marks in label-name order.
    marks.sort_by_key(|m| label_name(m.0));
    let abnormal = out.len() > start
        || marks
            .iter()
            .any(|(label, who)| label_name(*label) != NO_FINDING && who.len() >= needed);
    for (label, mut who) in marks {
        who.sort_unstable();
        let label = label_name(label);
        let keep = if label == NO_FINDING {
            !abnormal
        } else {
            who.len() >= needed
        };
        if keep {
            out.push(ConsensusFinding {
                image_id: image.to_string(),
                label: label.to_string(),
                bbox: None,
                score: who.len() as f64 / n as f64,
                readers: reader_names(&who),
                of_readers: n,
            });
        }
    }
    if out.len() == start {
        out.push(ConsensusFinding {
            image_id: image.to_string(),
            label: NO_FINDING.to_string(),
            bbox: None,
            score: 1.0,
            readers: Vec::new(),
            of_readers: n,
        });
    }
    Ok(())
}

/// Write a consensus in the VinDr-CXR test layout (`image_id,class_name,x_min,y_min,x_max,
/// y_max`, read back by [`crate::vindr::read_annotations`]) with two more columns: `score`
/// and `readers` (the contributing readers joined by `;`).
pub fn write_consensus(mut out: impl Write, findings: &[ConsensusFinding]) -> std::io::Result<()> {
    writeln!(
        out,
        "image_id,class_name,x_min,y_min,x_max,y_max,score,readers"
    )?;
    for f in findings {
        let coords = match f.bbox {
            Some(b) => b.map(format_number).join(","),
            None => ",,,".to_string(),
        };
        writeln!(
            out,
            "{},{},{coords},{},{}",
            quote(&f.image_id),
            quote(&f.label),
            format_number(f.score),
            quote(&f.readers.join(";"))
        )?;
    }
    Ok(())
}
