//! Weighted Boxes Fusion (Solovyev et al. 2021), with the options of the reference package
//! `ensemble-boxes`: IoU threshold, skip threshold, per-source weights, `conf_type` avg / max
//! / box_and_model_avg / absent_model_aware_avg, and `allows_overflow`.
//!
//! Differences from the reference, on purpose: coordinates are not clipped to [0, 1] (radlab
//! fuses boxes in pixels; the reference silently clips unnormalised boxes), scores above 1
//! or not finite and weights that are not positive are errors (the reference scales by them
//! and can divide by zero), arithmetic is f64 throughout (the reference keeps fused boxes in
//! float32), ties in score keep their input order (the reference's sort is not stable), and
//! every fused box says which sources contributed.

use crate::{BBox, iou};

/// How a fused box's confidence is computed (the reference's `conf_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfType {
    Avg,
    Max,
    BoxAndModelAvg,
    AbsentModelAwareAvg,
}

impl ConfType {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "avg" => ConfType::Avg,
            "max" => ConfType::Max,
            "box_and_model_avg" => ConfType::BoxAndModelAvg,
            "absent_model_aware_avg" => ConfType::AbsentModelAwareAvg,
            _ => return None,
        })
    }
}

/// Options of [`weighted_boxes_fusion`]; the defaults are the reference's.
#[derive(Debug, Clone, PartialEq)]
pub struct WbfOptions {
    pub iou_thr: f64,
    pub skip_box_thr: f64,
    /// One per source; `None` for all 1.
    pub weights: Option<Vec<f64>>,
    pub conf_type: ConfType,
    pub allows_overflow: bool,
}

impl Default for WbfOptions {
    fn default() -> Self {
        WbfOptions {
            iou_thr: 0.55,
            skip_box_thr: 0.0,
            weights: None,
            conf_type: ConfType::Avg,
            allows_overflow: false,
        }
    }
}

/// One input box of one source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SourceBox {
    pub bbox: BBox,
    pub score: f64,
    pub label: u32,
}

/// A fused box and the sources (indices into the input) whose boxes it merges.
#[derive(Debug, Clone, PartialEq)]
pub struct FusedBox {
    pub bbox: BBox,
    pub score: f64,
    pub label: u32,
    pub sources: Vec<usize>,
}

#[derive(Clone, Copy)]
struct Entry {
    bbox: BBox,
    /// score × weight of its source
    score: f64,
    weight: f64,
    source: usize,
}

/// A cluster of boxes being fused: running sums in input order, so the fused box is the
/// same number the reference computes by summing the cluster from scratch.
struct Cluster {
    /// Σ score × coordinate
    sums: BBox,
    /// Σ score, max score, Σ source weight, number of boxes
    conf: f64,
    max: f64,
    weight: f64,
    n: usize,
    /// The fused box so far.
    bbox: BBox,
    sources: Vec<usize>,
}

impl Cluster {
    fn new(e: &Entry) -> Cluster {
        let mut c = Cluster {
            sums: [0.0; 4],
            conf: 0.0,
            max: f64::MIN,
            weight: 0.0,
            n: 0,
            bbox: e.bbox,
            sources: Vec::with_capacity(4),
        };
        c.add(e);
        c
    }

    fn add(&mut self, e: &Entry) {
        for (v, c) in self.sums.iter_mut().zip(e.bbox) {
            *v += e.score * c;
        }
        self.conf += e.score;
        self.max = self.max.max(e.score);
        self.weight += e.weight;
        self.n += 1;
        // A lone box stays as given (the reference keeps its copy); (s × c) / s need not
        // give back c to the last bit.
        if self.n > 1 {
            for (b, v) in self.bbox.iter_mut().zip(self.sums) {
                *b = v / self.conf;
            }
        }
        if !self.sources.contains(&e.source) {
            self.sources.push(e.source);
        }
    }
}

/// Fuse the boxes of several sources (readers or models): `sources[s]` holds source `s`'s
/// boxes. Returns fused boxes by descending score.
pub fn weighted_boxes_fusion(
    sources: &[Vec<SourceBox>],
    options: &WbfOptions,
) -> Result<Vec<FusedBox>, String> {
    weighted_boxes_fusion_with(sources, options, &mut WbfScratch::default())
}

/// Buffers [`weighted_boxes_fusion_with`] reuses from call to call (fusing image after image).
#[derive(Default)]
pub(crate) struct WbfScratch {
    weights: Vec<f64>,
    entries: Vec<(u32, Entry)>,
    clusters: Vec<Cluster>,
}

/// [`weighted_boxes_fusion`] with buffers kept between calls.
pub(crate) fn weighted_boxes_fusion_with(
    sources: &[Vec<SourceBox>],
    options: &WbfOptions,
    scratch: &mut WbfScratch,
) -> Result<Vec<FusedBox>, String> {
    let weights = &mut scratch.weights;
    weights.clear();
    match &options.weights {
        Some(w) if w.len() != sources.len() => {
            return Err(format!(
                "{} weights for {} sources: give one weight per source",
                w.len(),
                sources.len()
            ));
        }
        Some(w) => weights.extend_from_slice(w),
        None => weights.resize(sources.len(), 1.0),
    };
    let weights = &weights[..];
    if let Some(w) = weights.iter().find(|w| !(w.is_finite() && **w > 0.0)) {
        return Err(format!("weight {w} is not a positive number"));
    }
    let entries = &mut scratch.entries;
    entries.clear();
    for (s, boxes) in sources.iter().enumerate() {
        for b in boxes {
            if !(b.score.is_finite() && (0.0..=1.0).contains(&b.score)) {
                return Err(format!(
                    "source {s}: score {} is not in [0, 1]; fusion weights boxes by their scores",
                    b.score
                ));
            }
            if b.score < options.skip_box_thr {
                continue;
            }
            let mut bb = b.bbox;
            if bb.iter().any(|v| !v.is_finite()) {
                return Err(format!(
                    "source {s}: a box has a coordinate that is not a number"
                ));
            }
            if bb[2] < bb[0] {
                bb.swap(0, 2);
            }
            if bb[3] < bb[1] {
                bb.swap(1, 3);
            }
            if (bb[2] - bb[0]) * (bb[3] - bb[1]) == 0.0 {
                continue; // zero area: nothing to fuse
            }
            entries.push((
                b.label,
                Entry {
                    bbox: bb,
                    score: b.score * weights[s],
                    weight: weights[s],
                    source: s,
                },
            ));
        }
    }
    // Label by label (ascending), each by descending score; stable, so ties keep their
    // input order.
    entries.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.score.total_cmp(&a.1.score)));
    let weight_sum: f64 = weights.iter().sum();
    let weight_max = weights.iter().copied().fold(f64::MIN, f64::max);
    let mut out = Vec::new();
    let clusters = &mut scratch.clusters;
    for group in entries.chunk_by(|a, b| a.0 == b.0) {
        let label = group[0].0;
        clusters.clear();
        for (_, e) in group {
            let mut best: Option<(usize, f64)> = None;
            for (i, c) in clusters.iter().enumerate() {
                let o = iou(&c.bbox, &e.bbox);
                if best.is_none_or(|(_, m)| o > m) {
                    best = Some((i, o));
                }
            }
            match best {
                Some((i, o)) if o > options.iou_thr => clusters[i].add(e),
                _ => clusters.push(Cluster::new(e)),
            }
        }
        for c in clusters.drain(..) {
            let n = c.n as f64;
            let mut models = c.sources;
            models.sort_unstable();
            // The confidence before rescaling.
            let score = match options.conf_type {
                ConfType::Max => c.max,
                _ => c.conf / n,
            };
            let score = match options.conf_type {
                ConfType::BoxAndModelAvg => {
                    let model_weights: f64 = models.iter().map(|m| weights[*m]).sum();
                    score * n / c.weight * model_weights / weight_sum
                }
                ConfType::AbsentModelAwareAvg => {
                    let absent: f64 = (0..weights.len())
                        .filter(|m| !models.contains(m))
                        .map(|m| weights[m])
                        .sum();
                    score * n / (c.weight + absent)
                }
                ConfType::Max => score / weight_max,
                ConfType::Avg if !options.allows_overflow => {
                    score * (weights.len() as f64).min(n) / weight_sum
                }
                ConfType::Avg => score * n / weight_sum,
            };
            out.push(FusedBox {
                bbox: c.bbox,
                score,
                label,
                sources: models,
            });
        }
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok(out)
}

/// Which suppression [`non_maximum_suppression`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NmsMethod {
    /// Remove boxes overlapping a better one by more than the IoU threshold.
    Hard,
    /// Soft-NMS, linear: scale a score by (1 - IoU) where IoU exceeds the threshold.
    Linear,
    /// Soft-NMS, Gaussian: scale a score by exp(-IoU² / sigma).
    Gaussian,
}

/// Options of [`non_maximum_suppression`]; the defaults are the reference's.
#[derive(Debug, Clone, PartialEq)]
pub struct NmsOptions {
    pub method: NmsMethod,
    pub iou_thr: f64,
    /// Soft-NMS Gaussian sigma.
    pub sigma: f64,
    /// Soft-NMS: boxes whose decayed score falls to this or below are dropped.
    pub thresh: f64,
    /// One per source (scores are scaled by weight / sum of weights); `None` for none.
    pub weights: Option<Vec<f64>>,
}

impl Default for NmsOptions {
    fn default() -> Self {
        NmsOptions {
            method: NmsMethod::Hard,
            iou_thr: 0.5,
            sigma: 0.5,
            thresh: 0.001,
            weights: None,
        }
    }
}

/// NMS or soft-NMS over the boxes of all sources, label by label (labels in ascending
/// order, boxes in the order they were kept). A box kept by hard NMS lists its own source
/// and the sources of the boxes it suppressed (they saw the same finding); a soft-NMS box
/// lists its own. Soft-NMS returns the decayed scores (the
/// reference `ensemble-boxes` returns the original ones, a known difference).
pub fn non_maximum_suppression(
    sources: &[Vec<SourceBox>],
    options: &NmsOptions,
) -> Result<Vec<FusedBox>, String> {
    let scale: Vec<f64> = match &options.weights {
        Some(w) if w.len() != sources.len() => {
            return Err(format!(
                "{} weights for {} sources: give one weight per source",
                w.len(),
                sources.len()
            ));
        }
        Some(w) => {
            if let Some(x) = w.iter().find(|x| !(x.is_finite() && **x > 0.0)) {
                return Err(format!("weight {x} is not a positive number"));
            }
            let sum: f64 = w.iter().sum();
            w.iter().map(|x| x / sum).collect()
        }
        None => vec![1.0; sources.len()],
    };
    let mut by_label: std::collections::BTreeMap<u32, Vec<(BBox, f64, usize)>> = Default::default();
    for (s, boxes) in sources.iter().enumerate() {
        for b in boxes {
            if !(b.score.is_finite() && (0.0..=1.0).contains(&b.score)) {
                return Err(format!("source {s}: score {} is not in [0, 1]", b.score));
            }
            let v = b.bbox;
            if v.iter().any(|c| !c.is_finite()) {
                return Err(format!(
                    "source {s}: a box has a coordinate that is not a number"
                ));
            }
            let bb = [
                v[0].min(v[2]),
                v[1].min(v[3]),
                v[0].max(v[2]),
                v[1].max(v[3]),
            ];
            if (bb[2] - bb[0]) * (bb[3] - bb[1]) == 0.0 {
                continue;
            }
            by_label
                .entry(b.label)
                .or_default()
                .push((bb, b.score * scale[s], s));
        }
    }
    let mut out = Vec::new();
    for (label, mut boxes) in by_label {
        match options.method {
            NmsMethod::Hard => {
                boxes.sort_by(|a, b| b.1.total_cmp(&a.1));
                while let Some(&(bbox, score, source)) = boxes.first() {
                    // The kept box stands for the ones it suppresses: their sources agree.
                    let mut sources = vec![source];
                    boxes = boxes[1..]
                        .iter()
                        .copied()
                        .filter(|b| {
                            let keep = iou(&bbox, &b.0) <= options.iou_thr;
                            if !keep {
                                sources.push(b.2);
                            }
                            keep
                        })
                        .collect();
                    sources.sort_unstable();
                    sources.dedup();
                    out.push(FusedBox {
                        bbox,
                        score,
                        label,
                        sources,
                    });
                }
            }
            soft => {
                let n = boxes.len();
                for i in 0..n {
                    // Bring the best remaining box to position i (the first of equal ones).
                    let mut best = i;
                    for j in i + 1..n {
                        if boxes[j].1 > boxes[best].1 {
                            best = j;
                        }
                    }
                    boxes.swap(i, best);
                    let top = boxes[i].0;
                    for b in &mut boxes[i + 1..] {
                        let o = iou(&top, &b.0);
                        let w = match soft {
                            NmsMethod::Linear if o > options.iou_thr => 1.0 - o,
                            NmsMethod::Linear => 1.0,
                            _ => (-(o * o) / options.sigma).exp(),
                        };
                        b.1 *= w;
                    }
                }
                out.extend(boxes.into_iter().filter(|b| b.1 > options.thresh).map(
                    |(bbox, score, source)| FusedBox {
                        bbox,
                        score,
                        label,
                        sources: vec![source],
                    },
                ));
            }
        }
    }
    Ok(out)
}
