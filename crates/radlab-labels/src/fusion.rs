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

use crate::BBox;

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

fn iou(a: &BBox, b: &BBox) -> f64 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

/// The score-weighted mean box of a cluster, its confidence before rescaling, and its
/// summed weight.
fn weighted(cluster: &[Entry], conf_type: ConfType) -> (BBox, f64, f64) {
    let mut b = [0.0; 4];
    let (mut conf, mut max, mut w) = (0.0, f64::MIN, 0.0);
    for e in cluster {
        for (v, c) in b.iter_mut().zip(e.bbox) {
            *v += e.score * c;
        }
        conf += e.score;
        max = max.max(e.score);
        w += e.weight;
    }
    for v in &mut b {
        *v /= conf;
    }
    let score = match conf_type {
        ConfType::Max => max,
        _ => conf / cluster.len() as f64,
    };
    (b, score, w)
}

/// Fuse the boxes of several sources (readers or models): `sources[s]` holds source `s`'s
/// boxes. Returns fused boxes by descending score.
pub fn weighted_boxes_fusion(
    sources: &[Vec<SourceBox>],
    options: &WbfOptions,
) -> Result<Vec<FusedBox>, String> {
    let weights = match &options.weights {
        Some(w) if w.len() != sources.len() => {
            return Err(format!(
                "{} weights for {} sources: give one weight per source",
                w.len(),
                sources.len()
            ));
        }
        Some(w) => w.clone(),
        None => vec![1.0; sources.len()],
    };
    if let Some(w) = weights.iter().find(|w| !(w.is_finite() && **w > 0.0)) {
        return Err(format!("weight {w} is not a positive number"));
    }
    let mut by_label: std::collections::BTreeMap<u32, Vec<Entry>> = Default::default();
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
            by_label.entry(b.label).or_default().push(Entry {
                bbox: bb,
                score: b.score * weights[s],
                weight: weights[s],
                source: s,
            });
        }
    }
    let weight_sum: f64 = weights.iter().sum();
    let weight_max = weights.iter().copied().fold(f64::MIN, f64::max);
    let mut out = Vec::new();
    for (label, mut entries) in by_label {
        entries.sort_by(|a, b| b.score.total_cmp(&a.score));
        let mut clusters: Vec<Vec<Entry>> = Vec::new();
        let mut fused: Vec<(BBox, f64, f64)> = Vec::new();
        for e in entries {
            let mut best: Option<(usize, f64)> = None;
            for (i, f) in fused.iter().enumerate() {
                let o = iou(&f.0, &e.bbox);
                if best.is_none_or(|(_, m)| o > m) {
                    best = Some((i, o));
                }
            }
            match best {
                Some((i, o)) if o > options.iou_thr => {
                    clusters[i].push(e);
                    fused[i] = weighted(&clusters[i], options.conf_type);
                }
                _ => {
                    clusters.push(vec![e]);
                    fused.push((e.bbox, e.score, e.weight));
                }
            }
        }
        for (cluster, (bbox, score, w)) in clusters.iter().zip(fused) {
            let n = cluster.len() as f64;
            let mut models: Vec<usize> = cluster.iter().map(|e| e.source).collect();
            models.sort_unstable();
            models.dedup();
            let score = match options.conf_type {
                ConfType::BoxAndModelAvg => {
                    let model_weights: f64 = models.iter().map(|m| weights[*m]).sum();
                    score * n / w * model_weights / weight_sum
                }
                ConfType::AbsentModelAwareAvg => {
                    let absent: f64 = (0..weights.len())
                        .filter(|m| !models.contains(m))
                        .map(|m| weights[m])
                        .sum();
                    score * n / (w + absent)
                }
                ConfType::Max => score / weight_max,
                ConfType::Avg if !options.allows_overflow => {
                    score * (weights.len() as f64).min(n) / weight_sum
                }
                ConfType::Avg => score * n / weight_sum,
            };
            out.push(FusedBox {
                bbox,
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
/// order, boxes in the order they were kept). Soft-NMS returns the decayed scores (the
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
                    out.push(FusedBox {
                        bbox,
                        score,
                        label,
                        sources: vec![source],
                    });
                    boxes = boxes[1..]
                        .iter()
                        .copied()
                        .filter(|b| iou(&bbox, &b.0) <= options.iou_thr)
                        .collect();
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
