//! The examples the network learns from and is judged on, from the shared corpus's
//! manifest (`manifest.csv`: each file's `expected` class and its `family`, the patient or
//! the source image it shows), and a split held out by family: no patient, and no image in
//! another encoding, is on both sides; stratified by source, so that every kind of image the
//! corpus holds more than once is both learned and judged.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

/// What the network says an image is, in its output order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// A frontal chest radiograph (PA or AP): the only valid class.
    Frontal,
    /// A lateral chest radiograph.
    Lateral,
    /// Another body part or modality.
    Other,
    /// A chest radiograph shown with its grey levels inverted.
    Inverted,
}

impl Class {
    pub const ALL: [Class; 4] = [
        Class::Frontal,
        Class::Lateral,
        Class::Other,
        Class::Inverted,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Class::Frontal => "frontal",
            Class::Lateral => "lateral",
            Class::Other => "other",
            Class::Inverted => "inverted",
        }
    }

    /// The class of a name of [`Class::name`].
    pub fn of_name(name: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The class of a manifest `expected` value; `None` for files with no image to learn
    /// from (header only, no pixel data, truncated, no file meta, invalid pixel data).
    pub fn of_expected(expected: &str) -> Option<Class> {
        Some(match expected {
            "frontal_cxr" => Class::Frontal,
            "lateral_cxr" => Class::Lateral,
            // A chest radiograph whose header says MONOCHROME1 over MONOCHROME2 pixels: shown
            // as the header says, it looks inverted, which is what the network must see.
            "inverted_cxr" | "header_tampered" => Class::Inverted,
            "non_chest_radiograph"
            | "ct"
            | "mr"
            | "us"
            | "nm"
            | "pet"
            | "mammography"
            | "angiography"
            | "rt_image"
            | "rt_dose"
            | "segmentation"
            | "photograph"
            | "other_image" => Class::Other,
            _ => return None,
        })
    }
}

/// One file of the corpus with its class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Example {
    /// Relative to the corpus root, as in the manifest.
    pub path: String,
    pub class: Class,
    /// The family (patient or source image); the path when the manifest gives none.
    pub group: String,
    /// The source: the file's folder and the manifest's `expected` value
    /// (`png/other/ieee8023_ct ct`), what the split stratifies by.
    pub stratum: String,
}

/// Why the manifest could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {why}")]
pub struct DatasetError {
    pub path: PathBuf,
    pub why: String,
}

/// The manifest of `root`: for each row, the values of `columns` in that order.
fn manifest_rows(root: &Path, columns: &[&str]) -> Result<Vec<Vec<String>>, DatasetError> {
    let path = root.join("manifest.csv");
    let fail = |why: String| DatasetError {
        path: path.clone(),
        why,
    };
    let mut reader = csv::Reader::from_path(&path).map_err(|e| fail(e.to_string()))?;
    let headers = reader.headers().map_err(|e| fail(e.to_string()))?.clone();
    let index: Vec<usize> = columns
        .iter()
        .map(|name| {
            headers
                .iter()
                .position(|h| h == *name)
                .ok_or_else(|| fail(format!("no column {name}")))
        })
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|e| fail(format!("row {}: {e}", line + 2)))?;
        out.push(
            index
                .iter()
                .map(|&i| record.get(i).unwrap_or("").to_string())
                .collect(),
        );
    }
    Ok(out)
}

/// Files whose pixels contradict the manifest's `expected`: a path prefix and the class the
/// pixels show (why, below). `from_manifest` gives them that class.
///
/// - `png/other/openi_iu_inverted/`: the manifest calls these 19 pictures `inverted_cxr`
///   ("grey-level inverted copy of an IU chest X-ray", from a tutorial's data set), but they
///   are shown as standard radiographs: air black, bones white, the spine brighter than the
///   lungs, as in the 10 IU radiographs of `png/cxr/openi_iu` beside them and unlike their
///   inversions. They are upright frontal radiographs.
///   `the_relabelled_pictures_look_like_their_new_class` (tests/preprocess_corpus.rs)
///   measures it on every one, and fails the day the corpus holds inverted pictures there.
pub const RELABELLED: &[(&str, Class)] = &[("png/other/openi_iu_inverted/", Class::Frontal)];

/// Every image and DICOM file of the manifest under `root` with a class, in manifest order
/// (the class of [`RELABELLED`] where it names the file).
pub fn from_manifest(root: &Path) -> Result<Vec<Example>, DatasetError> {
    let mut out = Vec::new();
    for row in manifest_rows(root, &["path", "kind", "expected", "family"])? {
        let [path, kind, expected, family] = &row[..] else {
            continue;
        };
        if kind != "image" && kind != "dicom" {
            continue;
        }
        let Some(class) = Class::of_expected(expected) else {
            continue;
        };
        let class = RELABELLED
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix))
            .map_or(class, |(_, c)| *c);
        let family = family.trim();
        let folder = path.rsplit_once('/').map_or("", |(folder, _)| folder);
        out.push(Example {
            stratum: format!("{folder} {expected}"),
            group: if family.is_empty() {
                path.clone()
            } else {
                family.to_string()
            },
            path: path.clone(),
            class,
        });
    }
    Ok(out)
}

/// Every path of the manifest under `root` with its `expected` value (empty when none).
pub fn expected_by_path(root: &Path) -> Result<BTreeMap<String, String>, DatasetError> {
    Ok(manifest_rows(root, &["path", "expected"])?
        .into_iter()
        .map(|mut row| {
            let expected = row.pop().unwrap_or_default();
            (row.pop().unwrap_or_default(), expected)
        })
        .collect())
}

/// A split held out by group, stratified by source: the groups of each stratum (the
/// [`Example::stratum`] of a group's first example) ordered by a seeded hash, and the first
/// `test_fraction` of them held out (at least one of a stratum of two groups or more, and never
/// all). A class with groups in several strata of one group each, none held out, has its first
/// group by the hash held out. So no kind of image is held out whole, unseen in training, as a
/// plain draw of a fifth of the groups can do to a kind with few patients.
///
/// Deterministic: the same examples and seed give the same split on every machine. Returns
/// (train, test) indices into `examples`.
pub fn split_by_group(
    examples: &[Example],
    test_fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    // Each group's class and stratum, from its first example.
    let mut first: BTreeMap<&str, (Class, &str)> = BTreeMap::new();
    for e in examples {
        first
            .entry(e.group.as_str())
            .or_insert((e.class, e.stratum.as_str()));
    }
    let mut strata: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (group, (_, stratum)) in &first {
        strata.entry(stratum).or_default().push(group);
    }
    let mut held_out: BTreeSet<&str> = BTreeSet::new();
    for groups in strata.values_mut() {
        groups.sort_by_key(|g| (fnv1a(seed, g), *g));
        let n = groups.len();
        let k = if n >= 2 {
            ((n as f64 * test_fraction).round() as usize).clamp(1, n - 1)
        } else {
            0
        };
        held_out.extend(groups.iter().take(k));
    }
    for class in Class::ALL {
        let mut groups: Vec<&str> = first
            .iter()
            .filter(|(_, (c, _))| *c == class)
            .map(|(g, _)| *g)
            .collect();
        if groups.len() >= 2 && !groups.iter().any(|g| held_out.contains(g)) {
            groups.sort_by_key(|g| (fnv1a(seed, g), *g));
            held_out.insert(groups[0]);
        }
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (i, e) in examples.iter().enumerate() {
        if held_out.contains(e.group.as_str()) {
            test.push(i);
        } else {
            train.push(i);
        }
    }
    (train, test)
}

/// Each example's fold of `k` (0 to k - 1) for cross-validation by family: all of a group's
/// examples in one fold. Stratum by stratum, the groups, in the order of their hash, are
/// dealt each to a fold holding the fewest of that stratum's groups so far (so every fold
/// gets its share of each kind of image, whatever the folds held before); among those, the
/// one holding the fewest examples (so a family of many images, one source image in several
/// encodings, does not leave the folds' sizes far apart), then the first from where the deal
/// stands, which moves on by one each group (so small strata do not all start at fold 0). Deterministic, as [`split_by_group`]. `k` of 0 is taken as 1.
pub fn folds_by_group(examples: &[Example], k: usize, seed: u64) -> Vec<usize> {
    let k = k.max(1);
    let mut first: BTreeMap<&str, &str> = BTreeMap::new();
    let mut size: BTreeMap<&str, usize> = BTreeMap::new();
    for e in examples {
        first.entry(e.group.as_str()).or_insert(e.stratum.as_str());
        *size.entry(e.group.as_str()).or_default() += 1;
    }
    let mut strata: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (group, stratum) in &first {
        strata.entry(stratum).or_default().push(group);
    }
    let mut fold_of: BTreeMap<&str, usize> = BTreeMap::new();
    let mut held = vec![0usize; k];
    let mut next = 0usize;
    for groups in strata.values_mut() {
        groups.sort_by_key(|g| (fnv1a(seed, g), *g));
        let mut dealt = vec![0usize; k];
        for g in groups.iter() {
            let fold = (0..k)
                .map(|i| (next + i) % k)
                .min_by_key(|&f| (dealt[f], held[f]))
                .unwrap_or(0);
            dealt[fold] += 1;
            held[fold] += size[g];
            fold_of.insert(g, fold);
            next += 1;
        }
    }
    examples.iter().map(|e| fold_of[e.group.as_str()]).collect()
}

/// FNV-1a over the seed's bytes then the text: a stable hash (no per-process key).
fn fnv1a(seed: u64, text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.to_le_bytes().iter().chain(text.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(path: &str, class: Class, group: &str, stratum: &str) -> Example {
        Example {
            path: path.into(),
            class,
            group: group.into(),
            stratum: stratum.into(),
        }
    }

    #[test]
    fn groups_never_straddle_and_every_source_is_held_out() {
        let mut examples = Vec::new();
        for p in 0..20 {
            for k in 0..3 {
                examples.push(ex(
                    &format!("f{p}-{k}"),
                    Class::Frontal,
                    &format!("patient{p}"),
                    "png/cxr frontal_cxr",
                ));
            }
        }
        // Two laterals from two sources: neither stratum can spare one, the class does.
        examples.push(ex("l1", Class::Lateral, "l1", "a lateral_cxr"));
        examples.push(ex("l2", Class::Lateral, "l2", "b lateral_cxr"));
        // Three CT figures of three patients (a fifth of three rounds to one held out), and
        // one MR image, learned only.
        for p in 0..3 {
            examples.push(ex(
                &format!("ct{p}"),
                Class::Other,
                &format!("ct{p}"),
                "ct ct",
            ));
        }
        examples.push(ex("mr", Class::Other, "mr", "mr mr"));
        let (train, test) = split_by_group(&examples, 0.2, 7);
        assert_eq!(train.len() + test.len(), examples.len());
        let groups = |ix: &[usize]| -> BTreeSet<String> {
            ix.iter().map(|&i| examples[i].group.clone()).collect()
        };
        assert!(groups(&train).is_disjoint(&groups(&test)));
        let held = |stratum: &str| {
            test.iter()
                .filter(|&&i| examples[i].stratum == stratum)
                .count()
        };
        // 4 of the 20 patients, one of the two laterals, one CT patient, not the MR.
        assert_eq!(held("png/cxr frontal_cxr"), 12);
        assert_eq!(held("a lateral_cxr") + held("b lateral_cxr"), 1);
        assert_eq!(held("ct ct"), 1);
        assert_eq!(held("mr mr"), 0);
        // The same seed, the same split; another seed, another one.
        assert_eq!(
            split_by_group(&examples, 0.2, 7),
            (train.clone(), test.clone())
        );
        assert_ne!(split_by_group(&examples, 0.2, 8).1, test);
    }

    #[test]
    fn folds_keep_each_patient_whole_and_share_out_each_source() {
        let mut examples = Vec::new();
        for p in 0..23 {
            for k in 0..2 {
                examples.push(ex(
                    &format!("f{p}-{k}"),
                    Class::Frontal,
                    &format!("patient{p}"),
                    "png/cxr frontal_cxr",
                ));
            }
        }
        for p in 0..4 {
            examples.push(ex(
                &format!("ct{p}"),
                Class::Other,
                &format!("ct{p}"),
                "ct ct",
            ));
        }
        // One source image in 8 encodings: one family of 8.
        for k in 0..8 {
            examples.push(ex(
                &format!("enc{k}"),
                Class::Frontal,
                "source",
                "dicom/cxr frontal_cxr",
            ));
        }
        let folds = folds_by_group(&examples, 5, 3);
        assert_eq!(folds.len(), examples.len());
        let mut fold_of: BTreeMap<&str, usize> = BTreeMap::new();
        for (e, &f) in examples.iter().zip(&folds) {
            assert!(f < 5);
            // A patient's images never straddle two folds.
            assert_eq!(
                *fold_of.entry(e.group.as_str()).or_insert(f),
                f,
                "{}",
                e.group
            );
        }
        // The 4 CT patients (the first stratum) go to 4 different folds, the family of 8 (the
        // next) to the fifth, still empty; the folds are then uneven (1, 1, 1, 1, 8), and the
        // 23 patients are still shared out, 4 or 5 a fold, not piled into the smaller folds;
        // among folds of as many patients, the smaller ones take the fifth: 58 examples, no
        // fold more than the family of 8 from another.
        assert_eq!(fold_of["source"], 4);
        for f in 0..5 {
            let patients = fold_of
                .iter()
                .filter(|(g, v)| g.starts_with("patient") && **v == f)
                .count();
            assert!((4..=5).contains(&patients), "fold {f}: {patients} patients");
        }
        let sizes: Vec<usize> = (0..5)
            .map(|f| folds.iter().filter(|&&v| v == f).count())
            .collect();
        assert_eq!(sizes.iter().sum::<usize>(), 58);
        assert_eq!(sizes[4], 8 + 2 * 4, "fold sizes {sizes:?}");
        let ct: BTreeSet<usize> = fold_of
            .iter()
            .filter(|(g, _)| g.starts_with("ct"))
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(ct.len(), 4);
        assert_eq!(folds_by_group(&examples, 5, 3), folds);
        assert_ne!(folds_by_group(&examples, 5, 4), folds);
        assert!(folds_by_group(&examples, 0, 3).iter().all(|&f| f == 0));
    }

    #[test]
    fn manifest_classes() {
        assert_eq!(Class::of_expected("frontal_cxr"), Some(Class::Frontal));
        assert_eq!(Class::of_expected("header_tampered"), Some(Class::Inverted));
        assert_eq!(Class::of_expected("mr"), Some(Class::Other));
        assert_eq!(Class::of_expected("truncated_file"), None);
        assert_eq!(Class::of_expected(""), None);
        for c in Class::ALL {
            assert_eq!(Class::ALL[c.index()], c);
        }
    }
}
