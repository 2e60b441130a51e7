//! Train/test splits and k folds, stratified on every label at once and grouped so that one
//! patient (or study) never spans two parts.
//!
//! The algorithm is the iterative stratification of Sechidis, Tsoumakas and Vlahavas, "On the
//! Stratification of Multi-Label Data" (ECML PKDD 2011, Algorithm 1), the one behind
//! scikit-multilearn and the `iterative-stratification` package's `MultilabelStratifiedKFold`,
//! applied to **groups** instead of single images:
//!
//! 1. Each part `j` wants `r_j · N` images in all and `r_j · N_l` images of each label `l`
//!    (`N` images, `N_l` of them carrying `l`).
//! 2. The label with the fewest images still unassigned (but at least one) is taken next;
//!    every unassigned group holding an image of it goes, in a seeded random order, to the
//!    part that still wants the most images of that label; ties go to the part that wants
//!    the most images in all, then to a seeded random choice among those still tied. Each
//!    assignment lowers the part's wants by the group's counts.
//! 3. Groups without any label go last, each to the part that wants the most images.
//!
//! A group's label vector is the **count** of its images carrying each label, not mere
//! presence: the proportions a user checks (and [`Quality`] measures) are per image, so a
//! patient with three Nodule/Mass images must use up three of a part's Nodule/Mass wants.
//! With one image per group this is exactly the published algorithm.
//!
//! Randomness comes from a SplitMix64 stream of our own ([`SplitMix64`], Steele, Lea and
//! Flood 2014; the constants are in the code), so a seed gives the same split on every
//! platform and every version of every dependency. Groups are first ordered by their id,
//! labels by name, then shuffled with the seed: the output depends on the data and the seed
//! only, never on the order of the input files.

use std::collections::{BTreeMap, BTreeSet};

use crate::{Annotation, ImageLabels};

/// SplitMix64: a 64-bit state advanced by the golden-ratio increment and mixed with the
/// finaliser of Steele, Lea and Flood ("Fast splittable pseudorandom number generators",
/// OOPSLA 2014). Small, fast, and fixed forever: splits made with a seed stay the same.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`), by the multiply-high method.
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Fisher-Yates, from the last element down.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// What to split into: named parts with fractions (train 0.8 / test 0.2, or train / val /
/// test...), or `k` folds of equal size (named `0`..`k-1`).
#[derive(Debug, Clone, PartialEq)]
pub enum Parts {
    Fractions(Vec<(String, f64)>),
    Folds(usize),
}

impl Parts {
    /// `train` and `test`, the latter with fraction `test`.
    pub fn train_test(test: f64) -> Parts {
        Parts::Fractions(vec![("train".into(), 1.0 - test), ("test".into(), test)])
    }

    /// The parts' names, in order.
    pub fn names(&self) -> Vec<String> {
        match self {
            Parts::Fractions(f) => f.iter().map(|(n, _)| n.clone()).collect(),
            Parts::Folds(k) => (0..*k).map(|i| i.to_string()).collect(),
        }
    }

    /// The parts' fractions, in order.
    pub fn fractions(&self) -> Vec<f64> {
        match self {
            Parts::Fractions(f) => f.iter().map(|(_, r)| *r).collect(),
            Parts::Folds(k) => vec![1.0 / *k as f64; *k],
        }
    }

    fn check(&self) -> Result<(), SplitError> {
        match self {
            Parts::Folds(k) if *k < 2 => Err(SplitError::Parts(format!(
                "{k} fold(s): k-fold needs at least 2 folds (5 is usual)"
            ))),
            Parts::Folds(_) => Ok(()),
            Parts::Fractions(f) => {
                if f.len() < 2 {
                    return Err(SplitError::Parts(format!(
                        "{} part(s): a split needs at least two (e.g. train 0.8, test 0.2)",
                        f.len()
                    )));
                }
                let mut seen = BTreeSet::new();
                for (name, r) in f {
                    if name.trim().is_empty() || name.contains([',', '"', '\n', '\r']) {
                        return Err(SplitError::Parts(format!(
                            "part name {name:?}: give a plain non-empty name such as train or test"
                        )));
                    }
                    if !seen.insert(name.as_str()) {
                        return Err(SplitError::Parts(format!("part {name:?} is named twice")));
                    }
                    if !(r.is_finite() && *r > 0.0 && *r < 1.0) {
                        return Err(SplitError::Parts(format!(
                            "part {name:?} has fraction {r}; each fraction must be above 0 and below 1"
                        )));
                    }
                }
                let sum: f64 = f.iter().map(|(_, r)| r).sum();
                if (sum - 1.0).abs() > 1e-6 {
                    let list: Vec<String> = f.iter().map(|(n, r)| format!("{n} {r}")).collect();
                    return Err(SplitError::Parts(format!(
                        "the fractions sum to {sum} ({}); they must sum to 1",
                        list.join(", ")
                    )));
                }
                Ok(())
            }
        }
    }
}

/// Why a split could not be made: what was wrong and what to do.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SplitError {
    #[error("{0}")]
    Parts(String),
    #[error("there are no images to split")]
    NoImages,
    #[error(
        "{parts} parts but only {groups} group(s) of images: every part needs at least one group (use fewer parts, or group by study instead of patient)"
    )]
    TooFewGroups { parts: usize, groups: usize },
    #[error("image {0} has no group: give every labelled image a patient or study")]
    MissingGroup(String),
}

/// A split: which part each image went to.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// The parts' names, in order (`train`, `test`; or `0`..`k-1`).
    pub parts: Vec<String>,
    /// The fraction each part was meant to hold.
    pub fractions: Vec<f64>,
    /// Image id to part index.
    pub assignment: BTreeMap<String, usize>,
}

impl Split {
    /// The part of `image`, by name.
    pub fn part_of(&self, image: &str) -> Option<&str> {
        self.assignment.get(image).map(|&j| self.parts[j].as_str())
    }

    /// The images of each label in each part, and in all: `(label, per part, total)`, labels
    /// by name; then the number of images per part.
    pub fn counts(&self, images: &BTreeMap<String, BTreeSet<String>>) -> LabelCounts {
        let k = self.parts.len();
        let mut per_label: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut sizes = vec![0; k];
        for (image, labels) in images {
            let Some(&j) = self.assignment.get(image) else {
                continue;
            };
            sizes[j] += 1;
            for l in labels {
                per_label.entry(l.clone()).or_insert_with(|| vec![0; k])[j] += 1;
            }
        }
        LabelCounts {
            parts: self.parts.clone(),
            labels: per_label.into_iter().collect(),
            images: sizes,
        }
    }

    /// The measures of Sechidis et al. over `images`; see [`Quality`].
    pub fn quality(&self, images: &BTreeMap<String, BTreeSet<String>>) -> Quality {
        quality(images, &self.assignment, &self.fractions)
    }
}

/// Images per label per part.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelCounts {
    pub parts: Vec<String>,
    /// `(label, images per part)`, labels by name.
    pub labels: Vec<(String, Vec<usize>)>,
    /// Images per part.
    pub images: Vec<usize>,
}

/// How well a split keeps the proportions (Sechidis et al. 2011, section 4):
///
/// - `label_distribution` (LD): for each label, the mean over parts of `|d_jl / (n_j - d_jl)
///   - D_l / (N - D_l)|` (positives over negatives in part `j` against the whole), averaged
///   over labels; labels on every image are left out (no negatives to compare). A part with
///   no negatives of a label counts `d_jl` for its ratio.
/// - `examples_distribution` (ED): the mean over parts of `|n_j - r_j N|`, in images.
/// - `empty_label_parts` (FLZ): (part, label) pairs with no image of a label present in the
///   data.
/// - `max_label_deviation`: the largest `|d_jl / D_l - r_j|` over labels with at least
///   `10 · k` images (rarer labels cannot be split finely).
///
/// Lower is better for all.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Quality {
    pub label_distribution: f64,
    pub examples_distribution: f64,
    pub empty_label_parts: usize,
    pub max_label_deviation: f64,
}

/// [`Quality`] of any assignment (image to part index) over `images`, against `fractions`;
/// images without an assignment are left out.
pub fn quality(
    images: &BTreeMap<String, BTreeSet<String>>,
    assignment: &BTreeMap<String, usize>,
    fractions: &[f64],
) -> Quality {
    let k = fractions.len();
    let labels: BTreeSet<&String> = images.values().flatten().collect();
    let label_index: BTreeMap<&String, usize> =
        labels.iter().enumerate().map(|(i, l)| (*l, i)).collect();
    let q = labels.len();
    let mut d = vec![vec![0.0f64; q]; k];
    let mut n = vec![0.0f64; k];
    let mut total = vec![0.0f64; q];
    let mut all = 0.0;
    for (image, ls) in images {
        let Some(&j) = assignment.get(image) else {
            continue;
        };
        if j >= k {
            continue;
        }
        n[j] += 1.0;
        all += 1.0;
        for l in ls {
            let i = label_index[l];
            d[j][i] += 1.0;
            total[i] += 1.0;
        }
    }
    let ratio = |pos: f64, count: f64| {
        if count - pos > 0.0 {
            pos / (count - pos)
        } else {
            pos
        }
    };
    let mut ld = 0.0;
    let mut ld_labels = 0;
    let mut flz = 0;
    let mut max_dev: f64 = 0.0;
    for i in 0..q {
        for dj in &d {
            if dj[i] == 0.0 {
                flz += 1;
            }
        }
        if total[i] < all {
            let whole = ratio(total[i], all);
            let sum: f64 = (0..k).map(|j| (ratio(d[j][i], n[j]) - whole).abs()).sum();
            ld += sum / k as f64;
            ld_labels += 1;
        }
        if total[i] >= 10.0 * k as f64 {
            for (dj, r) in d.iter().zip(fractions) {
                max_dev = max_dev.max((dj[i] / total[i] - r).abs());
            }
        }
    }
    let ed = n
        .iter()
        .zip(fractions)
        .map(|(nj, r)| (nj - r * all).abs())
        .sum::<f64>()
        / k.max(1) as f64;
    Quality {
        label_distribution: if ld_labels == 0 {
            0.0
        } else {
            ld / ld_labels as f64
        },
        examples_distribution: ed,
        empty_label_parts: flz,
        max_label_deviation: max_dev,
    }
}

/// Each image's labels from box and image-level annotations: a label counts when any reader
/// marked it ("No finding" is a label like the others). Entries with an empty label (a
/// submission's image without predictions) only make the image known.
pub fn label_sets(annotations: &[Annotation]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for a in annotations {
        let set = out.entry(a.image_id.clone()).or_default();
        if !a.label.is_empty() {
            set.insert(a.label.clone());
        }
    }
    out
}

/// Each image's labels from image-label rows (`image_labels_*.csv`): a label counts when any
/// reader's row has it.
pub fn label_sets_from_image_labels(rows: &[ImageLabels]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in rows {
        let set = out.entry(r.image_id.clone()).or_default();
        for (name, present) in &r.labels {
            if *present {
                set.insert(name.clone());
            }
        }
    }
    out
}

/// The images of each group (groups ordered by id; without `groups`, each image is its own),
/// checked to be at least as many as the `k` parts.
fn group_members<'a>(
    images: &'a BTreeMap<String, BTreeSet<String>>,
    groups: Option<&'a BTreeMap<String, String>>,
    k: usize,
) -> Result<BTreeMap<&'a str, Vec<&'a str>>, SplitError> {
    let mut members: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for image in images.keys() {
        let group = match groups {
            Some(g) => g
                .get(image)
                .ok_or_else(|| SplitError::MissingGroup(image.clone()))?
                .as_str(),
            None => image.as_str(),
        };
        members.entry(group).or_default().push(image.as_str());
    }
    if members.len() < k {
        return Err(SplitError::TooFewGroups {
            parts: k,
            groups: members.len(),
        });
    }
    Ok(members)
}

/// Split `images` (image id to its labels) into `parts`, stratified on every label and, when
/// `groups` (image id to group id) is given, keeping each group in one part; without it each
/// image is its own group. See the module docs for the algorithm.
pub fn stratified_split(
    images: &BTreeMap<String, BTreeSet<String>>,
    groups: Option<&BTreeMap<String, String>>,
    parts: &Parts,
    seed: u64,
) -> Result<Split, SplitError> {
    parts.check()?;
    if images.is_empty() {
        return Err(SplitError::NoImages);
    }
    let names = parts.names();
    let fractions = parts.fractions();
    let k = names.len();

    // Groups, ordered by id.
    let members = group_members(images, groups, k)?;
    let labels: BTreeSet<&String> = images.values().flatten().collect();
    let label_index: BTreeMap<&String, usize> =
        labels.iter().enumerate().map(|(i, l)| (*l, i)).collect();
    let q = labels.len();
    let group_list: Vec<Vec<&str>> = members.into_values().collect();
    let counts: Vec<Vec<f64>> = group_list
        .iter()
        .map(|imgs| {
            let mut c = vec![0.0; q];
            for image in imgs {
                for l in &images[*image] {
                    c[label_index[l]] += 1.0;
                }
            }
            c
        })
        .collect();
    let sizes: Vec<f64> = group_list.iter().map(|g| g.len() as f64).collect();

    let mut rng = SplitMix64::new(seed);
    let mut order: Vec<usize> = (0..group_list.len()).collect();
    rng.shuffle(&mut order);

    let n_images = images.len() as f64;
    let mut label_totals = vec![0.0; q];
    for c in &counts {
        for (t, v) in label_totals.iter_mut().zip(c) {
            *t += v;
        }
    }
    let mut want: Vec<f64> = fractions.iter().map(|r| r * n_images).collect();
    let mut want_label: Vec<Vec<f64>> = fractions
        .iter()
        .map(|r| label_totals.iter().map(|t| r * t).collect())
        .collect();
    let mut remaining = label_totals.clone();
    let mut part_of: Vec<Option<usize>> = vec![None; group_list.len()];

    // Among `candidates` (part indices), those where `key` is largest.
    fn argmax(candidates: &[usize], key: impl Fn(usize) -> f64) -> Vec<usize> {
        let best = candidates
            .iter()
            .map(|&j| key(j))
            .fold(f64::NEG_INFINITY, f64::max);
        candidates
            .iter()
            .copied()
            .filter(|&j| key(j) == best)
            .collect()
    }
    let all_parts: Vec<usize> = (0..k).collect();

    // Each round takes the rarest label still to place.
    while let Some(min) = remaining
        .iter()
        .copied()
        .filter(|&v| v > 0.0)
        .reduce(f64::min)
    {
        let rarest: Vec<usize> = (0..q).filter(|&i| remaining[i] == min).collect();
        let l = rarest[rng.below(rarest.len())];
        for &g in &order {
            if part_of[g].is_some() || counts[g][l] == 0.0 {
                continue;
            }
            let tied = argmax(&all_parts, |j| want_label[j][l]);
            let tied = if tied.len() > 1 {
                argmax(&tied, |j| want[j])
            } else {
                tied
            };
            let j = tied[rng.below(tied.len())];
            part_of[g] = Some(j);
            want[j] -= sizes[g];
            for i in 0..q {
                want_label[j][i] -= counts[g][i];
                remaining[i] -= counts[g][i];
            }
        }
    }
    // Groups without labels: to the part that wants the most images.
    for &g in &order {
        if part_of[g].is_none() {
            let tied = argmax(&all_parts, |j| want[j]);
            let j = tied[rng.below(tied.len())];
            part_of[g] = Some(j);
            want[j] -= sizes[g];
        }
    }

    let mut assignment = BTreeMap::new();
    for (g, imgs) in group_list.iter().enumerate() {
        let j = part_of[g].unwrap_or(0);
        for image in imgs {
            assignment.insert(image.to_string(), j);
        }
    }
    Ok(Split {
        parts: names,
        fractions,
        assignment,
    })
}

/// A random grouped split, as a baseline: groups in seeded random order, each to the part
/// furthest below its share of images (what a grouped split without stratification does).
pub fn random_grouped_split(
    images: &BTreeMap<String, BTreeSet<String>>,
    groups: Option<&BTreeMap<String, String>>,
    parts: &Parts,
    seed: u64,
) -> Result<Split, SplitError> {
    parts.check()?;
    if images.is_empty() {
        return Err(SplitError::NoImages);
    }
    let fractions = parts.fractions();
    let k = fractions.len();
    let members = group_members(images, groups, k)?;
    let mut list: Vec<Vec<&str>> = members.into_values().collect();
    let mut rng = SplitMix64::new(seed);
    rng.shuffle(&mut list);
    let n = images.len() as f64;
    let mut want: Vec<f64> = fractions.iter().map(|r| r * n).collect();
    let mut assignment = BTreeMap::new();
    for imgs in list {
        let best = want.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let j = want.iter().position(|&w| w == best).unwrap_or(0);
        want[j] -= imgs.len() as f64;
        for image in imgs {
            assignment.insert(image.to_string(), j);
        }
    }
    Ok(Split {
        parts: parts.names(),
        fractions,
        assignment,
    })
}
