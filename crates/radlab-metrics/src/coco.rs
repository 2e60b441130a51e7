//! COCO average precision and recall, exactly as pycocotools' `COCOeval` computes them for
//! boxes (`iouType="bbox"`), with its default parameters unless told otherwise:
//!
//! - IoU thresholds `0.50:0.05:0.95` (`np.linspace(.5, .95, 10)`: `i * (0.45 / 9) + 0.5`,
//!   the last exactly `0.95`), recall thresholds `0:0.01:1` (101 points, `i * 0.01`), at
//!   most 1, 10 and 100 detections per image and category, area ranges all `[0, 1e10]`,
//!   small `[0, 32²]`, medium `[32², 96²]`, large `[96², 1e10]` (both ends inclusive, so an
//!   area of exactly 32² is small and medium).
//! - IoU of two `[x, y, w, h]` boxes as pycocotools' C `bbIou`: intersection width
//!   `min(x+w) - max(x)` (no overlap when `<= 0`), union `area_d + area_g - inter` with
//!   `area = w * h`. No crowd boxes: no ground truth is ignored but by area.
//! - Per image and category: detections sorted by descending score with a stable sort
//!   (`np.argsort(-score, kind="mergesort")`), the first `maxDets[-1]` kept; ground truth
//!   ordered non-ignored first (stable). Each detection in turn takes, among the ground-truth
//!   boxes not yet matched at this threshold, the last one with the largest IoU `>= t`
//!   (`ious < iou` skips, so equality matches; the search starts at `min(t, 1 - 1e-10)`),
//!   never leaving a non-ignored box for an ignored one. A detection matched to an ignored
//!   box is ignored; an unmatched detection whose own area is outside the range is ignored.
//! - Per category, area range and detection cap: the detections of all images (each image's
//!   first `maxDet`), in image order, sorted again by descending score (stable); precision
//!   `tp / (tp + fp + 2^-52)`, recall `tp / npig` (npig: ground-truth boxes not ignored),
//!   the precision envelope from the right, then for each recall threshold the envelope at
//!   the first rank whose recall reaches it (`np.searchsorted(side="left")`), 0 past the
//!   last. A category with no non-ignored ground truth (or nothing at all) keeps -1, and -1s
//!   are left out of every mean.
//! - `summarize()`'s 12 numbers: means of the precision (AP) or final-recall (AR) entries
//!   above -1 over the selected thresholds, categories, area range and cap.
//!
//! Pycocotools keeps the id of the matched box in its match tables and treats an id of 0 as
//! "no match" (and `gtm > 0` as "matched"): ids matter. [`coco_eval`] numbers ground truth
//! and detections from 1, as `loadRes` does for results, so that quirk never bites; the
//! engine ([`evaluate_boxes`]) takes ids as given, which `kaggle_compat` uses to reproduce a
//! grader that numbered both from 0.
//!
//! Boxes from radlab's corners: `[x_min, y_min, x_max - x_min, y_max - y_min]` and area
//! `w * h` (what `loadRes` computes for results and what radlab writes as a COCO dataset's
//! `area`). A box-less annotation ("No finding" in Kaggle's files) is scored as `0 0 1 1`,
//! as in [`crate::voc`].

use radlab_labels::Annotation;

use radlab_labels::ids::{IdMap, IdSet};

/// `np.spacing(1)`, added to the denominator of precision by pycocotools.
const SPACING_1: f64 = f64::EPSILON;

/// An area range: its name (`all`, `small`, ...) and inclusive bounds.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AreaRange {
    pub name: String,
    pub min: f64,
    pub max: f64,
}

/// COCOeval's parameters (`Params(iouType="bbox")`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CocoParams {
    pub iou_thresholds: Vec<f64>,
    pub recall_thresholds: Vec<f64>,
    /// Ascending (pycocotools sorts them).
    pub max_detections: Vec<usize>,
    pub area_ranges: Vec<AreaRange>,
}

/// `np.linspace(start, stop, n)` as numpy computes it: `i * ((stop - start) / (n - 1)) +
/// start`, the last value exactly `stop`.
pub fn linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![start];
    }
    let step = (stop - start) / (n - 1) as f64;
    let mut v: Vec<f64> = (0..n).map(|i| i as f64 * step + start).collect();
    v[n - 1] = stop;
    v
}

impl Default for CocoParams {
    fn default() -> Self {
        let range = |name: &str, min: f64, max: f64| AreaRange {
            name: name.to_string(),
            min,
            max,
        };
        CocoParams {
            iou_thresholds: linspace(0.5, 0.95, 10),
            recall_thresholds: linspace(0.0, 1.0, 101),
            max_detections: vec![1, 10, 100],
            area_ranges: vec![
                range("all", 0.0, 1e10),
                range("small", 0.0, 32.0 * 32.0),
                range("medium", 32.0 * 32.0, 96.0 * 96.0),
                range("large", 96.0 * 96.0, 1e10),
            ],
        }
    }
}

impl CocoParams {
    /// The defaults with one IoU threshold (as graders that set `params.iouThrs = [t]`).
    pub fn at_iou(threshold: f64) -> Self {
        CocoParams {
            iou_thresholds: vec![threshold],
            ..CocoParams::default()
        }
    }
}

/// One box as COCOeval sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CocoBox {
    /// Index of the image in evaluation order (pycocotools: ascending image id).
    pub image: u32,
    /// Index of the category (pycocotools: ascending category id).
    pub category: u32,
    /// `[x, y, w, h]`.
    pub xywh: [f64; 4],
    /// Compared with the area ranges.
    pub area: f64,
    /// The annotation id (0 reads as "no match" in pycocotools' tables).
    pub id: u64,
    /// Detections only.
    pub score: f64,
}

/// pycocotools' `bbIou` for one pair (no crowd).
#[inline]
fn bb_iou(d: &[f64; 4], g: &[f64; 4]) -> f64 {
    let w = (d[2] + d[0]).min(g[2] + g[0]) - d[0].max(g[0]);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (d[3] + d[1]).min(g[3] + g[1]) - d[1].max(g[1]);
    if h <= 0.0 {
        return 0.0;
    }
    let i = w * h;
    let da = d[2] * d[3];
    let ga = g[2] * g[3];
    i / (da + ga - i)
}

/// Descending score, ties in input order (a stable sort of `-score`).
fn by_descending_score(a: f64, b: f64) -> std::cmp::Ordering {
    b.partial_cmp(&a).unwrap_or(std::cmp::Ordering::Equal)
}

/// The result of an evaluation: pycocotools' `eval["precision"]` and `eval["recall"]`.
#[derive(Debug, Clone, PartialEq)]
pub struct CocoEval {
    pub params: CocoParams,
    pub categories: usize,
    /// `[T][R][K][A][M]`, flattened in that order; -1 where nothing was computed.
    pub precision: Vec<f64>,
    /// `[T][K][A][M]`.
    pub recall: Vec<f64>,
}

impl CocoEval {
    fn dims(&self) -> (usize, usize, usize, usize, usize) {
        (
            self.params.iou_thresholds.len(),
            self.params.recall_thresholds.len(),
            self.categories,
            self.params.area_ranges.len(),
            self.params.max_detections.len(),
        )
    }

    pub fn precision_at(&self, t: usize, r: usize, k: usize, a: usize, m: usize) -> f64 {
        let (_, rr, kk, aa, mm) = self.dims();
        self.precision[(((t * rr + r) * kk + k) * aa + a) * mm + m]
    }

    pub fn recall_at(&self, t: usize, k: usize, a: usize, m: usize) -> f64 {
        let (_, _, kk, aa, mm) = self.dims();
        self.recall[((t * kk + k) * aa + a) * mm + m]
    }

    /// `summarize()`'s `_summarize(ap, iouThr, areaRng, maxDets)`: the mean of the entries
    /// above -1, or -1 when there are none (an `iou` not among the thresholds, compared
    /// exactly as numpy does, selects nothing).
    pub fn summarize(&self, ap: bool, iou: Option<f64>, area: &str, max_dets: usize) -> f64 {
        let (tt, rr, kk, _, _) = self.dims();
        let Some(a) = self.params.area_ranges.iter().position(|x| x.name == area) else {
            return -1.0;
        };
        let Some(m) = self
            .params
            .max_detections
            .iter()
            .position(|x| *x == max_dets)
        else {
            return -1.0;
        };
        let (mut sum, mut n) = (0.0, 0usize);
        for t in 0..tt {
            if iou.is_some_and(|x| x != self.params.iou_thresholds[t]) {
                continue;
            }
            for k in 0..kk {
                if ap {
                    for r in 0..rr {
                        let v = self.precision_at(t, r, k, a, m);
                        if v > -1.0 {
                            sum += v;
                            n += 1;
                        }
                    }
                } else {
                    let v = self.recall_at(t, k, a, m);
                    if v > -1.0 {
                        sum += v;
                        n += 1;
                    }
                }
            }
        }
        if n == 0 { -1.0 } else { sum / n as f64 }
    }

    /// The 12 numbers of `summarize()` for boxes (needs at least three detection caps; the
    /// third is used where pycocotools uses `maxDets[2]`).
    pub fn stats(&self) -> CocoStats {
        let md = &self.params.max_detections;
        let cap = |i: usize| md.get(i).copied().unwrap_or(usize::MAX);
        CocoStats {
            ap: self.summarize(true, None, "all", cap(2)),
            ap50: self.summarize(true, Some(0.5), "all", cap(2)),
            ap75: self.summarize(true, Some(0.75), "all", cap(2)),
            ap_small: self.summarize(true, None, "small", cap(2)),
            ap_medium: self.summarize(true, None, "medium", cap(2)),
            ap_large: self.summarize(true, None, "large", cap(2)),
            ar1: self.summarize(false, None, "all", cap(0)),
            ar10: self.summarize(false, None, "all", cap(1)),
            ar100: self.summarize(false, None, "all", cap(2)),
            ar_small: self.summarize(false, None, "small", cap(2)),
            ar_medium: self.summarize(false, None, "medium", cap(2)),
            ar_large: self.summarize(false, None, "large", cap(2)),
        }
    }

    /// AP of category `k` (area `all`, the largest cap) over the IoU thresholds selected by
    /// `iou` (all when `None`), as Detectron reports per-category AP: `None` where
    /// pycocotools has only -1.
    pub fn class_ap(&self, k: usize, iou: Option<f64>) -> Option<f64> {
        let (tt, rr, _, _, mm) = self.dims();
        let (mut sum, mut n) = (0.0, 0usize);
        for t in 0..tt {
            if iou.is_some_and(|x| x != self.params.iou_thresholds[t]) {
                continue;
            }
            for r in 0..rr {
                let v = self.precision_at(t, r, k, 0, mm - 1);
                if v > -1.0 {
                    sum += v;
                    n += 1;
                }
            }
        }
        (n > 0).then(|| sum / n as f64)
    }
}

/// `COCOeval.stats` by name.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CocoStats {
    pub ap: f64,
    pub ap50: f64,
    pub ap75: f64,
    pub ap_small: f64,
    pub ap_medium: f64,
    pub ap_large: f64,
    pub ar1: f64,
    pub ar10: f64,
    pub ar100: f64,
    pub ar_small: f64,
    pub ar_medium: f64,
    pub ar_large: f64,
}

impl CocoStats {
    /// In `COCOeval.stats` order.
    pub fn to_array(&self) -> [f64; 12] {
        [
            self.ap,
            self.ap50,
            self.ap75,
            self.ap_small,
            self.ap_medium,
            self.ap_large,
            self.ar1,
            self.ar10,
            self.ar100,
            self.ar_small,
            self.ar_medium,
            self.ar_large,
        ]
    }

    /// The names `summarize()` prints, in order.
    pub const NAMES: [&'static str; 12] = [
        "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl",
    ];
}

/// The per-image evaluation of one (category, area range, image): `evaluateImg`'s output.
struct ImageEval {
    /// Detection scores, sorted, at most the largest cap.
    scores: Vec<f64>,
    /// `[T][D]`: matched (dtm != 0).
    matched: Vec<bool>,
    /// `[T][D]`.
    ignored: Vec<bool>,
    /// Ground-truth boxes not ignored.
    npig: usize,
}

/// Indices of `items` bucketed by `key` (stable: input order within a bucket), as offsets
/// into one array: bucket `b` is `order[offsets[b]..offsets[b + 1]]`.
fn bucket(keys: impl Iterator<Item = usize> + Clone, buckets: usize) -> (Vec<usize>, Vec<u32>) {
    let mut offsets = vec![0usize; buckets + 1];
    for k in keys.clone() {
        offsets[k + 1] += 1;
    }
    for b in 0..buckets {
        offsets[b + 1] += offsets[b];
    }
    let mut next = offsets.clone();
    let mut order = vec![0u32; offsets[buckets]];
    for (i, k) in keys.enumerate() {
        order[next[k]] = i as u32;
        next[k] += 1;
    }
    (offsets, order)
}

/// COCOeval (`evaluate` then `accumulate`) over boxes already in COCO form. Boxes whose image
/// or category index is out of range are left out (pycocotools evaluates only `imgIds` and
/// `catIds`).
pub fn evaluate_boxes(
    images: usize,
    categories: usize,
    ground_truth: &[CocoBox],
    detections: &[CocoBox],
    params: &CocoParams,
) -> CocoEval {
    let mut params = params.clone();
    params.max_detections.sort_unstable();
    let tt = params.iou_thresholds.len();
    let rr = params.recall_thresholds.len();
    let aa = params.area_ranges.len();
    let mm = params.max_detections.len();
    let kk = categories;
    let max_det = params.max_detections.last().copied().unwrap_or(0);
    let inside = |b: &&CocoBox| (b.image as usize) < images && (b.category as usize) < categories;
    let gts: Vec<&CocoBox> = ground_truth.iter().filter(inside).collect();
    let dts: Vec<&CocoBox> = detections.iter().filter(inside).collect();
    let key = |b: &&CocoBox| b.category as usize * images + b.image as usize;
    let (g_off, g_order) = bucket(gts.iter().map(key), kk * images);
    let (d_off, d_order) = bucket(dts.iter().map(key), kk * images);

    // evaluate(): per category, area range, image.
    let mut evals: Vec<Option<ImageEval>> = Vec::with_capacity(kk * aa * images);
    let mut dt: Vec<&CocoBox> = Vec::new();
    let mut gt: Vec<&CocoBox> = Vec::new();
    let mut ious: Vec<f64> = Vec::new();
    let mut gt_ignore: Vec<bool> = Vec::new();
    let mut gt_index: Vec<usize> = Vec::new();
    let mut gtm: Vec<bool> = Vec::new();
    // Per (category, image) IoU matrices, computed once for all area ranges: [D][G].
    let mut cache: Vec<(usize, usize, usize)> = vec![(0, 0, 0); kk * images];
    let mut iou_store: Vec<f64> = Vec::new();
    let mut sorted_dets: Vec<u32> = Vec::new();
    let mut dt_start: Vec<usize> = vec![0; kk * images];
    for b in 0..kk * images {
        let ds = &d_order[d_off[b]..d_off[b + 1]];
        let gs = &g_order[g_off[b]..g_off[b + 1]];
        dt_start[b] = sorted_dets.len();
        if ds.is_empty() && gs.is_empty() {
            continue;
        }
        let start = sorted_dets.len();
        sorted_dets.extend_from_slice(ds);
        let slice = &mut sorted_dets[start..];
        slice.sort_by(|x, y| by_descending_score(dts[*x as usize].score, dts[*y as usize].score));
        sorted_dets.truncate(start + ds.len().min(max_det));
        let nd = sorted_dets.len() - start;
        let at = iou_store.len();
        for &di in &sorted_dets[start..] {
            let d = &dts[di as usize].xywh;
            for &gi in gs {
                iou_store.push(bb_iou(d, &gts[gi as usize].xywh));
            }
        }
        cache[b] = (at, nd, gs.len());
    }
    for k in 0..kk {
        for range in &params.area_ranges {
            for i in 0..images {
                let b = k * images + i;
                let gs = &g_order[g_off[b]..g_off[b + 1]];
                let (at, nd, ng) = cache[b];
                if d_off[b] == d_off[b + 1] && gs.is_empty() {
                    evals.push(None);
                    continue;
                }
                dt.clear();
                dt.extend(
                    sorted_dets[dt_start[b]..dt_start[b] + nd]
                        .iter()
                        .map(|&x| dts[x as usize]),
                );
                let ignored_area = |a: f64| a < range.min || a > range.max;
                // Ground truth: non-ignored first, stable.
                gt_index.clear();
                gt_index.extend((0..ng).filter(|&g| !ignored_area(gts[gs[g] as usize].area)));
                let npig = gt_index.len();
                gt_index.extend((0..ng).filter(|&g| ignored_area(gts[gs[g] as usize].area)));
                gt.clear();
                gt.extend(gt_index.iter().map(|&g| gts[gs[g] as usize]));
                gt_ignore.clear();
                gt_ignore.extend((0..ng).map(|g| g >= npig));
                ious.clear();
                for d in 0..nd {
                    ious.extend(gt_index.iter().map(|&g| iou_store[at + d * ng + g]));
                }
                let mut matched = vec![false; tt * nd];
                let mut ignored = vec![false; tt * nd];
                if nd > 0 && ng > 0 {
                    for (t, &thr) in params.iou_thresholds.iter().enumerate() {
                        gtm.clear();
                        gtm.resize(ng, false);
                        for (di, d) in dt.iter().enumerate() {
                            let mut best = thr.min(1.0 - 1e-10);
                            let mut m: Option<usize> = None;
                            for gi in 0..ng {
                                if gtm[gi] {
                                    continue;
                                }
                                if m.is_some_and(|m| !gt_ignore[m]) && gt_ignore[gi] {
                                    break;
                                }
                                let o = ious[di * ng + gi];
                                if o < best {
                                    continue;
                                }
                                best = o;
                                m = Some(gi);
                            }
                            let Some(m) = m else { continue };
                            ignored[t * nd + di] = gt_ignore[m];
                            // pycocotools stores the ids: 0 reads as unmatched.
                            matched[t * nd + di] = gt[m].id != 0;
                            gtm[m] = d.id != 0;
                        }
                    }
                }
                for t in 0..tt {
                    for (di, d) in dt.iter().enumerate() {
                        if !matched[t * nd + di] && ignored_area(d.area) {
                            ignored[t * nd + di] = true;
                        }
                    }
                }
                evals.push(Some(ImageEval {
                    scores: dt.iter().map(|d| d.score).collect(),
                    matched,
                    ignored,
                    npig,
                }));
            }
        }
    }

    // accumulate().
    let mut precision = vec![-1.0; tt * rr * kk * aa * mm];
    let mut recall = vec![-1.0; tt * kk * aa * mm];
    let mut entries: Vec<(f64, u32, u32)> = Vec::new(); // (score, image slot, index)
    let mut slots: Vec<&ImageEval> = Vec::new();
    let mut rc: Vec<f64> = Vec::new();
    let mut pr: Vec<f64> = Vec::new();
    for k in 0..kk {
        for a in 0..aa {
            let base = (k * aa + a) * images;
            slots.clear();
            slots.extend(evals[base..base + images].iter().flatten());
            if slots.is_empty() {
                continue;
            }
            let npig: usize = slots.iter().map(|e| e.npig).sum();
            if npig == 0 {
                continue;
            }
            for (m, &cap) in params.max_detections.iter().enumerate() {
                entries.clear();
                for (s, e) in slots.iter().enumerate() {
                    for (j, &score) in e.scores.iter().take(cap).enumerate() {
                        entries.push((score, s as u32, j as u32));
                    }
                }
                entries.sort_by(|x, y| by_descending_score(x.0, y.0));
                let nd = entries.len();
                for t in 0..tt {
                    rc.clear();
                    pr.clear();
                    let (mut tp, mut fp) = (0usize, 0usize);
                    for &(_, s, j) in &entries {
                        let e = slots[s as usize];
                        let n = e.scores.len();
                        let idx = t * n + j as usize;
                        if !e.ignored[idx] {
                            if e.matched[idx] {
                                tp += 1;
                            } else {
                                fp += 1;
                            }
                        }
                        let (tpf, fpf) = (tp as f64, fp as f64);
                        rc.push(tpf / npig as f64);
                        pr.push(tpf / (fpf + tpf + SPACING_1));
                    }
                    recall[((t * kk + k) * aa + a) * mm + m] =
                        if nd > 0 { rc[nd - 1] } else { 0.0 };
                    for i in (1..nd).rev() {
                        if pr[i] > pr[i - 1] {
                            pr[i - 1] = pr[i];
                        }
                    }
                    let mut i = 0;
                    for (r, &thr) in params.recall_thresholds.iter().enumerate() {
                        while i < nd && rc[i] < thr {
                            i += 1;
                        }
                        let q = if i < nd { pr[i] } else { 0.0 };
                        precision[(((t * rr + r) * kk + k) * aa + a) * mm + m] = q;
                    }
                }
            }
        }
    }
    CocoEval {
        params,
        categories: kk,
        precision,
        recall,
    }
}

/// Per-category COCO AP.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CocoClass {
    pub label: String,
    /// AP@[.50:.95] (area all, 100 detections); `None` without ground truth.
    pub ap: Option<f64>,
    pub ap50: Option<f64>,
    pub ap75: Option<f64>,
    pub ground_truth: usize,
    pub detections: usize,
}

/// The 12 summary numbers and per-category APs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CocoResult {
    pub stats: CocoStats,
    pub classes: Vec<CocoClass>,
    pub iou_thresholds: Vec<f64>,
}

/// The image order of an evaluation: the images of `ground_truth` in order of first
/// appearance.
pub fn image_order(ground_truth: &[Annotation]) -> Vec<&str> {
    let mut seen = IdSet::default();
    let mut out = Vec::new();
    for g in ground_truth {
        if seen.insert(g.image_id.as_str()) {
            out.push(g.image_id.as_str());
        }
    }
    out
}

/// Radlab annotations as COCO boxes: `to_xywh` and `area` of the scored corners, ids from
/// `first_id` in input order. Annotations of other labels or images are left out.
pub(crate) fn to_coco_boxes(
    annotations: &[Annotation],
    images: &IdMap<u32>,
    labels: &[&str],
    first_id: u64,
    to_xywh: impl Fn(&[f64; 4]) -> [f64; 4],
    area: impl Fn(&[f64; 4]) -> f64,
) -> Vec<CocoBox> {
    let mut out = Vec::with_capacity(annotations.len());
    for (n, a) in annotations.iter().enumerate() {
        let Some(&image) = images.get(a.image_id.as_str()) else {
            continue;
        };
        let Some(category) = labels.iter().position(|l| *l == a.label) else {
            continue;
        };
        let b = a.bbox.unwrap_or([0.0, 0.0, 1.0, 1.0]);
        out.push(CocoBox {
            image,
            category: category as u32,
            xywh: to_xywh(&b),
            area: area(&b),
            id: first_id + n as u64,
            score: a.score.unwrap_or(1.0),
        });
    }
    out
}

/// `[x_min, y_min, x_max - x_min, y_max - y_min]`.
pub fn corners_to_xywh(b: &[f64; 4]) -> [f64; 4] {
    [b[0], b[1], b[2] - b[0], b[3] - b[1]]
}

/// COCO AP of `detections` against `ground_truth` for `labels` (category order), on
/// `images` (evaluation order; annotations on other images are left out). Ids are numbered
/// from 1 in input order; areas are `w * h`; a detection without a score counts as 1.
pub fn coco_eval(
    labels: &[&str],
    images: &[&str],
    ground_truth: &[Annotation],
    detections: &[Annotation],
    params: &CocoParams,
) -> CocoResult {
    let index: IdMap<u32> = images
        .iter()
        .enumerate()
        .map(|(i, s)| (*s, i as u32))
        .collect();
    let area = |b: &[f64; 4]| {
        let w = corners_to_xywh(b);
        w[2] * w[3]
    };
    let gt = to_coco_boxes(ground_truth, &index, labels, 1, corners_to_xywh, area);
    let dt = to_coco_boxes(detections, &index, labels, 1, corners_to_xywh, area);
    let e = evaluate_boxes(images.len(), labels.len(), &gt, &dt, params);
    let mut n_gt = vec![0usize; labels.len()];
    let mut n_dt = vec![0usize; labels.len()];
    for g in &gt {
        n_gt[g.category as usize] += 1;
    }
    for d in &dt {
        n_dt[d.category as usize] += 1;
    }
    let classes = labels
        .iter()
        .enumerate()
        .map(|(k, l)| CocoClass {
            label: l.to_string(),
            ap: e.class_ap(k, None),
            ap50: e.class_ap(k, Some(0.5)),
            ap75: e.class_ap(k, Some(0.75)),
            ground_truth: n_gt[k],
            detections: n_dt[k],
        })
        .collect();
    CocoResult {
        stats: e.stats(),
        classes,
        iou_thresholds: e.params.iou_thresholds.clone(),
    }
}
