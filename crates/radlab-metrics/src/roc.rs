//! Area under the ROC curve of image-level scores, with DeLong's variance and a 95%
//! confidence interval.
//!
//! AUROC is the Mann-Whitney statistic: the share of (positive, negative) pairs that the
//! scores order correctly, a tie counting one half; it equals the trapezoidal area under the
//! empirical ROC curve (what scikit-learn's `roc_auc_score` computes). The variance is
//! DeLong, DeLong and Clarke-Pearson (1988), computed with midranks as in Sun and Xu's fast
//! algorithm (2014); the interval is the normal one, AUC ± 1.96 σ, clipped to [0, 1].

/// AUROC with its DeLong variance and 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Auroc {
    pub auc: f64,
    pub variance: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub positives: usize,
    pub negatives: usize,
}

/// Midranks (1-based, ties sharing the mean of their ranks) of `values`.
fn midranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for k in &order[i..=j] {
            ranks[*k] = rank;
        }
        i = j + 1;
    }
    ranks
}

/// AUROC of `scores` for the binary `truth`, with its DeLong interval. An error names what
/// is wrong: different lengths, a score that is not a number, or only one class present.
pub fn auroc(scores: &[f64], truth: &[bool]) -> Result<Auroc, String> {
    if scores.len() != truth.len() {
        return Err(format!(
            "{} scores but {} ground-truth values",
            scores.len(),
            truth.len()
        ));
    }
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        return Err(format!(
            "score {} is {}, not a finite number",
            i + 1,
            scores[i]
        ));
    }
    let pos: Vec<f64> = scores
        .iter()
        .zip(truth)
        .filter(|(_, t)| **t)
        .map(|(s, _)| *s)
        .collect();
    let neg: Vec<f64> = scores
        .iter()
        .zip(truth)
        .filter(|(_, t)| !**t)
        .map(|(s, _)| *s)
        .collect();
    let (m, n) = (pos.len(), neg.len());
    if m == 0 || n == 0 {
        return Err(format!(
            "AUROC needs both classes: {m} positive and {n} negative images"
        ));
    }
    let all: Vec<f64> = pos.iter().chain(&neg).copied().collect();
    let r_all = midranks(&all);
    let r_pos = midranks(&pos);
    let r_neg = midranks(&neg);
    let (mf, nf) = (m as f64, n as f64);
    // Structural components: V10[i] = share of negatives below positive i (ties half), and
    // V01[j] = share of positives above negative j.
    let v10: Vec<f64> = (0..m).map(|i| (r_all[i] - r_pos[i]) / nf).collect();
    let v01: Vec<f64> = (0..n)
        .map(|j| 1.0 - (r_all[m + j] - r_neg[j]) / mf)
        .collect();
    let auc = v10.iter().sum::<f64>() / mf;
    let var = |v: &[f64]| {
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        if v.len() < 2 {
            return 0.0;
        }
        v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (v.len() - 1) as f64
    };
    let variance = var(&v10) / mf + var(&v01) / nf;
    let half = 1.959_963_984_540_054 * variance.sqrt();
    Ok(Auroc {
        auc,
        variance,
        ci_low: (auc - half).max(0.0),
        ci_high: (auc + half).min(1.0),
        positives: m,
        negatives: n,
    })
}

/// The empirical ROC curve of `scores` for the binary `truth`: (false-positive rate,
/// true-positive rate) from (0, 0), one point per distinct score in descending order (tied
/// scores move together, so the trapezoids under it sum to [`auroc`]'s AUC). Empty when
/// either class is absent.
pub fn roc_curve(scores: &[f64], truth: &[bool]) -> Vec<(f64, f64)> {
    let m = truth.iter().filter(|t| **t).count();
    let n = truth.len() - m;
    if m == 0 || n == 0 || scores.len() != truth.len() {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut points = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0usize, 0usize);
    for (k, &i) in order.iter().enumerate() {
        if truth[i] {
            tp += 1;
        } else {
            fp += 1;
        }
        if order.get(k + 1).is_none_or(|&j| scores[j] != scores[i]) {
            points.push((fp as f64 / n as f64, tp as f64 / m as f64));
        }
    }
    points
}
