//! `radlab split`: a train/test split or k folds, stratified on every label and grouped by
//! patient or study.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use radlab_labels::export::vindr_image_id;
use radlab_labels::split::{Parts, label_sets, label_sets_from_image_labels, stratified_split};
use radlab_labels::{Annotation, ImageLabels, vindr};

use crate::Cli;

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("division").required(true).args(["test", "folds", "parts"])))]
#[command(group(clap::ArgGroup::new("grouping").args(["groups", "group_by"])))]
pub struct SplitArgs {
    /// The labels: a Kaggle train.csv, a VinDr-CXR annotations CSV, or a VinDr-CXR
    /// image_labels CSV (told apart by the header). A label counts for an image when any
    /// reader marked it; "No finding" is a label.
    #[arg(long)]
    labels: PathBuf,
    /// A CSV giving each image its group: image_id and one of patient_id, patient, study,
    /// study_id, study_instance_uid, group. Images of one group never span two parts.
    #[arg(long)]
    groups: Option<PathBuf>,
    /// Take the groups from the catalog: each labelled image (named by its SOP Instance UID
    /// or by its VinDr name, md5 of that UID) grouped by its patient or its study.
    #[arg(long, value_enum)]
    group_by: Option<GroupBy>,
    /// A train/test split with this fraction in test (e.g. 0.2).
    #[arg(long)]
    test: Option<f64>,
    /// K folds of equal size, numbered 0..K-1.
    #[arg(long)]
    folds: Option<usize>,
    /// Named parts with fractions that sum to 1: train=0.7,val=0.1,test=0.2.
    #[arg(long, value_parser = parse_parts)]
    parts: Option<Parts>,
    /// Seed of the random order and tie-breaks: the same seed gives the same split.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Where to write the split: image_id,split (or image_id,fold). A JSON record of how it
    /// was made goes beside it (same name, .json).
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupBy {
    Patient,
    Study,
}

fn parse_parts(s: &str) -> Result<Parts, String> {
    let mut parts = Vec::new();
    for item in s.split(',') {
        let (name, r) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?}: expected NAME=FRACTION, e.g. train=0.8"))?;
        let r: f64 = r
            .trim()
            .parse()
            .map_err(|_| format!("{item:?}: {r:?} is not a number"))?;
        parts.push((name.trim().to_string(), r));
    }
    Ok(Parts::Fractions(parts))
}

/// A label file, as its header says.
pub enum LabelFile {
    /// Kaggle train.csv or a VinDr annotations CSV.
    Annotations(Vec<Annotation>),
    /// A VinDr image_labels CSV.
    ImageLabels(Vec<ImageLabels>),
}

/// Read a label file: Kaggle `train.csv` (a `class_id` column), VinDr-CXR annotations
/// (`class_name`), or VinDr-CXR image labels (anything else with `image_id`).
pub fn read_label_file(path: &Path) -> Result<LabelFile> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let name = path.display().to_string();
    Ok(match radlab_labels::csv_kind(&bytes) {
        Ok(radlab_labels::CsvKind::KaggleTrain | radlab_labels::CsvKind::VindrAnnotations) => {
            LabelFile::Annotations(radlab_labels::read_box_annotations(&bytes, &name)?)
        }
        Ok(radlab_labels::CsvKind::ImageLabels) => {
            LabelFile::ImageLabels(vindr::read_image_labels(&bytes[..], &name)?)
        }
        other => bail!(
            "{name}: not a Kaggle train.csv, a VinDr-CXR annotations CSV nor an image_labels CSV \
             (header: {})",
            other.err().unwrap_or_else(|| "that of a submission".into())
        ),
    })
}

const GROUP_COLUMNS: [&str; 6] = [
    "patient_id",
    "patient",
    "study",
    "study_id",
    "study_instance_uid",
    "group",
];

/// Image id to group from a CSV.
fn read_groups(path: &Path) -> Result<BTreeMap<String, String>> {
    let name = path.display().to_string();
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .with_context(|| format!("cannot read {name}"))?;
    let headers = csv
        .headers()
        .with_context(|| format!("{name}: cannot read the header"))?
        .clone();
    let find = |w: &str| headers.iter().position(|h| h.trim() == w);
    let Some(image_col) = find("image_id") else {
        bail!(
            "{name}: no image_id column (the header has: {})",
            headers.iter().collect::<Vec<_>>().join(", ")
        );
    };
    let Some(group_col) = GROUP_COLUMNS.iter().find_map(|c| find(c)) else {
        bail!(
            "{name}: no group column; name one of {} (the header has: {})",
            GROUP_COLUMNS.join(", "),
            headers.iter().collect::<Vec<_>>().join(", ")
        );
    };
    let mut out = BTreeMap::new();
    for record in csv.records() {
        let record = record.with_context(|| format!("{name}: malformed CSV"))?;
        let line = record.position().map_or(0, |p| p.line());
        let image = record.get(image_col).unwrap_or("").trim();
        let group = record.get(group_col).unwrap_or("").trim();
        if image.is_empty() || group.is_empty() {
            bail!("{name}, line {line}: image_id and the group must both be given");
        }
        if let Some(previous) = out.insert(image.to_string(), group.to_string())
            && previous != group
        {
            bail!("{name}, line {line}: image {image} is given two different groups");
        }
    }
    Ok(out)
}

/// Image id (SOP Instance UID and its VinDr name both) to patient or study, from the
/// catalog. An instance without a Patient ID is grouped by its study.
fn catalog_groups(cli: &Cli, by: GroupBy) -> Result<(BTreeMap<String, String>, usize)> {
    let rows = crate::cmd_import::catalog_instances(cli)?;
    let mut out = BTreeMap::new();
    let mut no_patient = 0;
    for r in rows {
        let group = match by {
            GroupBy::Patient if !r.patient_id.trim().is_empty() => {
                format!("patient:{}", r.patient_id.trim())
            }
            GroupBy::Patient => {
                no_patient += 1;
                format!("study:{}", r.study_instance_uid)
            }
            GroupBy::Study => format!("study:{}", r.study_instance_uid),
        };
        out.insert(vindr_image_id(&r.sop_instance_uid), group.clone());
        out.insert(r.sop_instance_uid, group);
    }
    Ok((out, no_patient))
}

pub fn split(cli: &Cli, args: &SplitArgs) -> Result<ExitCode> {
    let parts = if let Some(t) = args.test {
        if !(t > 0.0 && t < 1.0) {
            bail!("--test {t}: give the test fraction, above 0 and below 1 (e.g. 0.2)");
        }
        Parts::train_test(t)
    } else if let Some(k) = args.folds {
        Parts::Folds(k)
    } else if let Some(p) = &args.parts {
        p.clone()
    } else {
        bail!("give --test FRACTION, --folds K or --parts NAME=FRACTION,...");
    };
    let images = match read_label_file(&args.labels)? {
        LabelFile::Annotations(a) => label_sets(&a),
        LabelFile::ImageLabels(r) => label_sets_from_image_labels(&r),
    };
    let (groups, group_source) = if let Some(path) = &args.groups {
        (
            Some(read_groups(path)?),
            format!("file {}", file_name(path)),
        )
    } else if let Some(by) = args.group_by {
        let (mut g, no_patient) = catalog_groups(cli, by)?;
        let missing: Vec<&String> = images.keys().filter(|i| !g.contains_key(*i)).collect();
        if !missing.is_empty() {
            bail!(
                "{} labelled image(s) are not in the catalog (first: {}); import them, or give \
                 the groups as a CSV with --groups",
                missing.len(),
                missing[0]
            );
        }
        if no_patient > 0 && by == GroupBy::Patient {
            eprintln!(
                "warning: {no_patient} catalogued instance(s) have no Patient ID; they are grouped by study"
            );
        }
        g.retain(|k, _| images.contains_key(k));
        (Some(g), format!("catalog by {by:?}").to_lowercase())
    } else {
        (None, "none (each image its own group)".to_string())
    };
    if let Some(g) = &groups
        && let Some(missing) = images.keys().find(|i| !g.contains_key(*i))
    {
        bail!(
            "image {missing} of {} has no group in {}: every labelled image needs one",
            args.labels.display(),
            group_source
        );
    }
    let split = stratified_split(&images, groups.as_ref(), &parts, args.seed)?;
    let column = match parts {
        Parts::Folds(_) => "fold",
        Parts::Fractions(_) => "split",
    };
    let mut text = format!("image_id,{column}\n");
    for (image, j) in &split.assignment {
        text.push_str(&format!("{image},{}\n", split.parts[*j]));
    }
    write_file(&args.out, text.as_bytes())?;
    let counts = split.counts(&images);
    let quality = split.quality(&images);
    let n_groups = groups
        .as_ref()
        .map(|g| {
            images
                .keys()
                .filter_map(|i| g.get(i))
                .collect::<BTreeSet<_>>()
                .len()
        })
        .unwrap_or(images.len());
    let record = serde_json::json!({
        "radlab_version": env!("CARGO_PKG_VERSION"),
        "algorithm": "iterative stratification (Sechidis et al. 2011) over groups, label counts per group",
        "prng": "splitmix64",
        "seed": args.seed,
        "column": column,
        "parts": split.parts,
        "fractions": split.fractions,
        "labels_file": file_name(&args.labels),
        "labels_sha256": sha256_file(&args.labels)?,
        "groups": group_source,
        "images": images.len(),
        "group_count": n_groups,
        "images_per_part": counts.images,
        "quality": quality,
    });
    let json_path = args.out.with_extension("json");
    write_file(
        &json_path,
        serde_json::to_string_pretty(&record)?.as_bytes(),
    )?;
    print_table(&counts, &split.fractions);
    println!(
        "{} images in {} groups; label distribution {:.5}, examples distribution {:.1} \
         images (Sechidis et al.; lower is better)",
        images.len(),
        n_groups,
        quality.label_distribution,
        quality.examples_distribution
    );
    println!("wrote {} and {}", args.out.display(), json_path.display());
    Ok(ExitCode::SUCCESS)
}

fn print_table(counts: &radlab_labels::split::LabelCounts, fractions: &[f64]) {
    let width = counts
        .labels
        .iter()
        .map(|(l, _)| l.len())
        .max()
        .unwrap_or(5)
        .max(6);
    let mut header = format!("{:<width$} {:>7}", "label", "total");
    for (p, r) in counts.parts.iter().zip(fractions) {
        header.push_str(&format!(" {:>16}", format!("{p} ({:.0}%)", r * 100.0)));
    }
    println!("{header}");
    let row = |name: &str, per: &[usize]| {
        let total: usize = per.iter().sum();
        let mut line = format!("{name:<width$} {total:>7}");
        for c in per {
            let pct = if total == 0 {
                0.0
            } else {
                *c as f64 * 100.0 / total as f64
            };
            line.push_str(&format!(" {:>16}", format!("{c} ({pct:.1}%)")));
        }
        println!("{line}");
    };
    for (label, per) in &counts.labels {
        row(label, per);
    }
    row("images", &counts.images);
}

pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| path.display().to_string())
}

pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::Digest;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hex_string(&sha2::Sha256::digest(&bytes)))
}

pub fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}
