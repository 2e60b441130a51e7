//! Agreement between readers on categorical ratings (an image-level label, present or
//! not; or any nominal category): Cohen's kappa for a pair of readers, Fleiss' kappa for a
//! fixed number of readers per item, Krippendorff's alpha (nominal) for any readers with
//! missing ratings. Categories are small integers. Each returns `None` where the statistic
//! is undefined (no disagreement possible: every rating in one category).

/// Cohen's kappa of two readers' ratings of the same items.
pub fn cohen_kappa(a: &[u32], b: &[u32]) -> Result<Option<f64>, String> {
    if a.len() != b.len() {
        return Err(format!("{} ratings against {}", a.len(), b.len()));
    }
    if a.is_empty() {
        return Err("no items rated by both readers".into());
    }
    let k = a.iter().chain(b).copied().max().unwrap_or(0) as usize + 1;
    let n = a.len() as f64;
    let (mut pa, mut pb) = (vec![0.0; k], vec![0.0; k]);
    let mut agree = 0.0;
    for (x, y) in a.iter().zip(b) {
        pa[*x as usize] += 1.0;
        pb[*y as usize] += 1.0;
        if x == y {
            agree += 1.0;
        }
    }
    let po = agree / n;
    let pe: f64 = pa.iter().zip(&pb).map(|(x, y)| x / n * (y / n)).sum();
    Ok((pe < 1.0).then(|| (po - pe) / (1.0 - pe)))
}

/// Fleiss' kappa from counts: `counts[i][c]` readers put item `i` in category `c`; every item
/// has the same number of ratings.
pub fn fleiss_kappa(counts: &[Vec<u32>]) -> Result<Option<f64>, String> {
    let Some(first) = counts.first() else {
        return Err("no items".into());
    };
    let raters: u32 = first.iter().sum();
    if raters < 2 {
        return Err("Fleiss' kappa needs at least 2 ratings per item".into());
    }
    if let Some(i) = counts
        .iter()
        .position(|row| row.iter().sum::<u32>() != raters)
    {
        return Err(format!(
            "item {} has {} ratings, the first has {raters}: every item needs the same number",
            i + 1,
            counts[i].iter().sum::<u32>()
        ));
    }
    let (n_items, r) = (counts.len() as f64, raters as f64);
    let k = counts.iter().map(Vec::len).max().unwrap_or(0);
    let mut p = vec![0.0; k];
    let mut p_bar = 0.0;
    for row in counts {
        let sq: f64 = row.iter().map(|&c| (c as f64) * (c as f64)).sum();
        p_bar += (sq - r) / (r * (r - 1.0));
        for (j, &c) in row.iter().enumerate() {
            p[j] += c as f64;
        }
    }
    p_bar /= n_items;
    let pe: f64 = p.iter().map(|x| (x / (n_items * r)).powi(2)).sum();
    Ok((pe < 1.0).then(|| (p_bar - pe) / (1.0 - pe)))
}

/// Krippendorff's alpha for nominal data: `units[u]` holds the ratings of unit `u` (`None`
/// where a reader did not rate it); units with fewer than two ratings do not count.
pub fn krippendorff_alpha_nominal(units: &[Vec<Option<u32>>]) -> Result<Option<f64>, String> {
    let k = units
        .iter()
        .flatten()
        .flatten()
        .copied()
        .max()
        .map_or(0, |m| m as usize + 1);
    // The coincidence matrix.
    let mut o = vec![vec![0.0; k]; k];
    for unit in units {
        let values: Vec<u32> = unit.iter().flatten().copied().collect();
        let m = values.len();
        if m < 2 {
            continue;
        }
        for (i, a) in values.iter().enumerate() {
            for (j, b) in values.iter().enumerate() {
                if i != j {
                    o[*a as usize][*b as usize] += 1.0 / (m - 1) as f64;
                }
            }
        }
    }
    let n_c: Vec<f64> = o.iter().map(|row| row.iter().sum()).collect();
    let n: f64 = n_c.iter().sum();
    if n < 2.0 {
        return Err("fewer than two pairable ratings".into());
    }
    let mut d_o = 0.0;
    let mut d_e = 0.0;
    for c in 0..k {
        for kk in 0..k {
            if c != kk {
                d_o += o[c][kk];
                d_e += n_c[c] * n_c[kk];
            }
        }
    }
    if d_e == 0.0 {
        return Ok(None);
    }
    Ok(Some(1.0 - (n - 1.0) * d_o / d_e))
}
