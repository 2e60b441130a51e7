//! `radlab export`: a versioned dataset folder in the VinDr-CXR release layout, images
//! de-identified and verified on the way out, labels per reader (train) and fused (test),
//! optional PNG/JPEG, COCO and YOLO, and a manifest with a checksum of every file.
//! The label side lives in `radlab_labels::export`; this module finds, de-identifies and
//! renders the images and writes the files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use radlab_deid::batch::{deidentify_files, input_files};
use radlab_dicom::{DicomFile, InstanceInfo, RenderOptions, VoiChoice, render_file};
use radlab_labels::export::{
    FUSION_IOU, Manifest, ManifestFile, ManifestImage, box_classes, fuse_image_labels,
    fuse_readers, image_labels_from_annotations, label_counts, scale_boxes, vindr_image_id,
    vindr_label_order,
};
use radlab_labels::{Annotation, ImageLabels, coco, vindr};
use rayon::prelude::*;

use crate::Cli;
use crate::cmd_split::{LabelFile, file_name, hex_string, read_label_file, sha256_file};

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The box annotations: a Kaggle train.csv or a VinDr-CXR annotations CSV (per reader,
    /// rad_id; or consensus). Images are named by SOP Instance UID or by their VinDr name
    /// (md5 of the SOP Instance UID).
    #[arg(long, required_unless_present = "project", conflicts_with = "project")]
    annotations: Option<PathBuf>,
    /// Take the box annotations from a project of the catalog instead (its reader and
    /// consensus layers, as `radlab labels export` writes them).
    #[arg(long)]
    project: Option<String>,
    /// Image-level labels (a VinDr-CXR image_labels CSV) to release instead of those derived
    /// from the annotations (needed for the global labels: COPD, Tuberculosis...).
    #[arg(long)]
    image_labels: Option<PathBuf>,
    /// The train/test split (image_id,split with train and test, as `radlab split --test`
    /// writes; or image_id,fold with --test-fold). Without it every image goes to train.
    #[arg(long)]
    split: Option<PathBuf>,
    /// With a fold file: the fold released as test; the others are train.
    #[arg(long, requires = "split")]
    test_fold: Option<String>,
    /// A folder of DICOM files to take the images from; default: the catalog.
    #[arg(long)]
    images: Option<PathBuf>,
    /// The folder that holds the versioned datasets.
    #[arg(long)]
    out: PathBuf,
    /// Dataset name (letters, digits, '.', '_', '-').
    #[arg(long)]
    name: String,
    /// Dataset version; the export goes to OUT/NAME-VERSION and never overwrites one.
    #[arg(long = "dataset-version")]
    dataset_version: String,
    /// Image format: the de-identified DICOM (as VinDr-CXR), or a rendered PNG / JPEG.
    #[arg(long, value_enum, default_value = "dicom")]
    format: Format,
    /// PNG / JPEG: longest side in pixels (boxes are scaled with the image).
    #[arg(long)]
    size: Option<u32>,
    /// JPEG quality (1-100).
    #[arg(long, default_value_t = 95)]
    quality: u8,
    /// Also write COCO JSON per split (coco/train.json, coco/test.json).
    #[arg(long)]
    coco: bool,
    /// Also write YOLO labels (labels/<split>/<image_id>.txt, labels/classes.txt).
    #[arg(long)]
    yolo: bool,
    /// Train labels: per reader (rad_id, as VinDr-CXR) or fused. Test labels are always
    /// the consensus: boxes fused by WBF (IoU 0.4, per class, across readers).
    #[arg(long, value_enum, default_value = "per-reader")]
    labels: LabelsMode,
    /// De-identification profile (as `radlab deid --profile`).
    #[arg(long, default_value = "vindr-cxr")]
    profile: String,
    /// An Annex E option (repeatable), as `radlab deid --option`.
    #[arg(long = "option", value_parser = crate::cmd_deid::parse_option)]
    options: Vec<radlab_deid::DeidOption>,
    /// The project key file (as `radlab deid --key-file`).
    #[arg(long, env = "RADLAB_DEID_KEY_FILE")]
    key_file: PathBuf,
    /// Burned-in text rules (as `radlab deid --burned-in`).
    #[arg(long)]
    burned_in: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Dicom,
    Png,
    Jpeg,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Dicom => "dicom",
            Format::Png => "png",
            Format::Jpeg => "jpg",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Format::Dicom => "dicom",
            Format::Png => "png",
            Format::Jpeg => "jpeg",
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LabelsMode {
    PerReader,
    Fused,
}

const SPLITS: [&str; 2] = ["train", "test"];

/// A folder removed when dropped, unless kept.
struct Scratch(Option<PathBuf>);

impl Scratch {
    fn new(path: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Scratch(Some(path)))
    }
    fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new("."))
    }
    fn keep(mut self) -> PathBuf {
        self.0.take().unwrap_or_default()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// Where an image comes from.
struct Source {
    sop: String,
    id: String,
    path: Option<PathBuf>,
    blob: Option<String>,
}

fn plain(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

pub fn export(cli: &Cli, args: &ExportArgs) -> Result<ExitCode> {
    // Everything that can be checked before work starts.
    if !plain(&args.name) || !plain(&args.dataset_version) {
        bail!(
            "--name {:?} / --dataset-version {:?}: use letters, digits, '.', '_' and '-' only",
            args.name,
            args.dataset_version
        );
    }
    if args.format == Format::Dicom && args.size.is_some() {
        bail!("--size resizes rendered images: use it with --format png or jpeg");
    }
    if args.size == Some(0) {
        bail!("--size must be at least 1 pixel");
    }
    if !(1..=100).contains(&args.quality) {
        bail!("--quality {} must be 1-100", args.quality);
    }
    let folder = format!("{}-{}", args.name, args.dataset_version);
    let target = args.out.join(&folder);
    if target.exists() && !is_empty_dir(&target) {
        bail!(
            "{} already exists and is not empty: a released version is never overwritten; \
             export a new --dataset-version",
            target.display()
        );
    }
    // Where the annotations come from: a file, or a project (named in messages as such).
    let (annotations, annotations_source, annotations_sha256) =
        match (&args.annotations, &args.project) {
            (Some(path), _) => {
                let rows = match read_label_file(path)? {
                    LabelFile::Annotations(a) => a,
                    LabelFile::ImageLabels(_) => bail!(
                        "{}: this is an image_labels file; give the box annotations with \
                     --annotations and this file with --image-labels",
                        path.display()
                    ),
                };
                (rows, path.clone(), sha256_file(path)?)
            }
            (None, Some(project)) => {
                let rows = crate::cmd_labels::project_annotations(cli, project)?;
                // The checksum of the labels as a Kaggle train.csv would carry them.
                let mut bytes = Vec::new();
                radlab_labels::kaggle::write_train_csv(&mut bytes, &rows)
                    .or_else(|_| vindr::write_annotations(&mut bytes, &rows))?;
                use sha2::Digest;
                (
                    rows,
                    PathBuf::from(format!("project {project}")),
                    hex_string(&sha2::Sha256::digest(&bytes)),
                )
            }
            (None, None) => bail!("give --annotations FILE or --project NAME"),
        };
    let image_labels = match &args.image_labels {
        None => None,
        Some(path) => match read_label_file(path)? {
            LabelFile::ImageLabels(r) => Some(r),
            LabelFile::Annotations(_) => bail!(
                "{}: --image-labels takes a VinDr-CXR image_labels CSV (image_id, rad_id, one \
                 0/1 column per label)",
                path.display()
            ),
        },
    };
    let profile = crate::cmd_deid::ProfileArgs::new(
        args.profile.clone(),
        args.options.clone(),
        args.key_file.clone(),
        args.burned_in.clone(),
    )
    .profile()?;

    // The images, and each label id matched to one.
    let sources = match &args.images {
        Some(dir) => folder_sources(dir)?,
        None => catalog_sources(cli)?,
    };
    let mut by_key: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, s) in sources.iter().enumerate() {
        by_key.entry(s.sop.as_str()).or_insert(i);
        by_key.entry(s.id.as_str()).or_insert(i);
    }
    let where_images = match &args.images {
        Some(dir) => dir.display().to_string(),
        None => "the catalog".to_string(),
    };
    let resolve = |label_id: &str, file: &Path| -> Result<usize> {
        by_key.get(label_id).copied().with_context(|| {
            format!(
                "{}: image {label_id} is not in {where_images} (matched by SOP Instance UID or \
                 md5 of it); import it, or drop its rows",
                file.display()
            )
        })
    };
    let mut annotations = annotations;
    for a in &mut annotations {
        a.image_id = sources[resolve(&a.image_id, &annotations_source)?]
            .id
            .clone();
    }
    let mut image_labels = image_labels;
    if let (Some(rows), Some(path)) = (&mut image_labels, &args.image_labels) {
        for r in rows.iter_mut() {
            r.image_id = sources[resolve(&r.image_id, path)?].id.clone();
        }
    }
    let mut chosen: BTreeMap<String, usize> = BTreeMap::new();
    for a in &annotations {
        chosen.insert(a.image_id.clone(), by_key[a.image_id.as_str()]);
    }
    if chosen.is_empty() {
        bail!("{}: no annotations", annotations_source.display());
    }
    let split_of = read_split(args, &chosen, &by_key, &sources)?;

    // Work in a hidden folder beside the target; renamed into place at the very end.
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let partial = Scratch::new(
        args.out
            .join(format!(".{folder}.partial-{}", std::process::id())),
    )?;
    let root = partial.path().to_path_buf();
    // Originals from the catalog are staged in the data folder, never in the output.
    let raw = if args.images.is_none() {
        Some(Scratch::new(
            cli.data_dir
                .join(format!(".export-staging-{}", std::process::id())),
        )?)
    } else {
        None
    };
    let inputs = stage_inputs(cli, &chosen, &sources, raw.as_ref())?;
    let deid_dir = root.join(".deid");
    let outcomes = deidentify_files(&inputs, &deid_dir, &profile, &|_| {});
    let ids: Vec<&String> = chosen.keys().collect();
    for (id, o) in ids.iter().zip(&outcomes) {
        if let Some(why) = &o.review {
            bail!("image {id} was routed to review ({why}); release it only after review");
        }
        if !o.ok() || o.output.is_none() {
            bail!(
                "image {id}: de-identification failed: {}",
                o.error.as_deref().unwrap_or("the verifier found problems")
            );
        }
    }
    drop(raw);
    for split in SPLITS {
        std::fs::create_dir_all(root.join(split))?;
    }
    // Place (or render) each image; sizes for the boxes.
    let placed: Vec<Result<ManifestImage>> = ids
        .par_iter()
        .zip(&outcomes)
        .map(|(id, o)| {
            let staged = PathBuf::from(o.output.clone().unwrap_or_default());
            let split = split_of[id.as_str()];
            let target = root
                .join(split)
                .join(format!("{id}.{}", args.format.extension()));
            place_image(&staged, &target, args)
                .with_context(|| format!("image {id}"))
                .map(|(w, h, ow, oh)| ManifestImage {
                    image_id: id.to_string(),
                    split: split.to_string(),
                    width: w,
                    height: h,
                    original_width: ow,
                    original_height: oh,
                })
        })
        .collect();
    let images: Vec<ManifestImage> = placed.into_iter().collect::<Result<_>>()?;
    std::fs::remove_dir_all(&deid_dir).ok();

    // Labels per split.
    let mut per_split: BTreeMap<&str, Vec<Annotation>> = BTreeMap::new();
    for a in &annotations {
        per_split
            .entry(split_of[a.image_id.as_str()])
            .or_default()
            .push(a.clone());
    }
    let factors: BTreeMap<String, (f64, f64)> = images
        .iter()
        .filter(|i| (i.width, i.height) != (i.original_width, i.original_height))
        .map(|i| {
            (
                i.image_id.clone(),
                (
                    i.width as f64 / i.original_width as f64,
                    i.height as f64 / i.original_height as f64,
                ),
            )
        })
        .collect();
    let sizes: coco::Sizes = images
        .iter()
        .map(|i| (i.image_id.clone(), (i.width, i.height)))
        .collect();
    std::fs::create_dir_all(root.join("annotations"))?;
    let mut counts = BTreeMap::new();
    let mut image_counts = BTreeMap::new();
    for split in SPLITS {
        let rows = per_split.remove(split).unwrap_or_default();
        let fused = split == "test" || args.labels == LabelsMode::Fused;
        let mut rows = if fused {
            fuse_readers(&rows).map_err(|e| anyhow::anyhow!(e))?
        } else {
            let mut rows = rows;
            rows.sort_by(|a, b| a.image_id.cmp(&b.image_id));
            rows
        };
        scale_boxes(&mut rows, &factors);
        let ann_path = root.join(format!("annotations/annotations_{split}.csv"));
        let mut buf = Vec::new();
        if rows.is_empty() {
            buf.extend_from_slice(if fused {
                b"image_id,class_name,x_min,y_min,x_max,y_max\n".as_slice()
            } else {
                b"image_id,rad_id,class_name,x_min,y_min,x_max,y_max\n".as_slice()
            });
        } else {
            vindr::write_annotations(&mut buf, &rows)?;
        }
        std::fs::write(&ann_path, buf)?;
        let labels_rows: Vec<ImageLabels> = match &image_labels {
            Some(given) => {
                let mine: Vec<ImageLabels> = given
                    .iter()
                    .filter(|r| split_of.get(r.image_id.as_str()) == Some(&split))
                    .cloned()
                    .collect();
                if fused {
                    fuse_image_labels(&mine)
                } else {
                    mine
                }
            }
            None => image_labels_from_annotations(&rows),
        };
        let mut buf = Vec::new();
        if labels_rows.is_empty() {
            let mut header = vec!["image_id".to_string()];
            if !fused {
                header.push("rad_id".into());
            }
            header.extend(vindr_label_order().iter().map(|l| l.to_string()));
            buf.extend_from_slice(format!("{}\n", header.join(",")).as_bytes());
        } else {
            vindr::write_image_labels(&mut buf, &labels_rows)?;
        }
        std::fs::write(
            root.join(format!("annotations/image_labels_{split}.csv")),
            buf,
        )?;
        if args.coco {
            std::fs::create_dir_all(root.join("coco"))?;
            let mut buf = Vec::new();
            coco::write_dataset(
                &mut buf,
                &rows,
                &sizes,
                &box_classes(),
                &format!(".{}", args.format.extension()),
            )
            .map_err(|e| anyhow::anyhow!("COCO {split}: {e}"))?;
            std::fs::write(root.join(format!("coco/{split}.json")), buf)?;
        }
        if args.yolo {
            let dir = root.join("labels").join(split);
            std::fs::create_dir_all(&dir)?;
            let files = coco::to_yolo(&rows, &sizes, &box_classes())
                .map_err(|e| anyhow::anyhow!("YOLO {split}: {e}"))?;
            for (image, text) in files {
                std::fs::write(dir.join(format!("{image}.txt")), text)?;
            }
        }
        counts.insert(split.to_string(), label_counts(&rows));
        image_counts.insert(
            split.to_string(),
            images.iter().filter(|i| i.split == split).count(),
        );
    }
    if args.yolo {
        let mut classes = box_classes().join("\n");
        classes.push('\n');
        std::fs::write(root.join("labels/classes.txt"), classes)?;
    }

    let manifest = Manifest {
        manifest_version: 1,
        name: args.name.clone(),
        version: args.dataset_version.clone(),
        created: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        radlab_version: env!("CARGO_PKG_VERSION").to_string(),
        format: args.format.name().to_string(),
        size: args.size,
        jpeg_quality: (args.format == Format::Jpeg).then_some(args.quality),
        image_id_rule: "md5 (lowercase hex) of the original SOP Instance UID, as the vindr-cxr \
                        profile names its files"
            .into(),
        deidentification: serde_json::json!({
            "profile": profile.name(),
            "options": profile.options().iter().map(|o| o.name()).collect::<Vec<_>>(),
            "claims_basic_profile": profile.claims_basic_profile(),
            "burned_in_rules": match &args.burned_in {
                Some(p) => serde_json::json!({"file": file_name(p), "sha256": sha256_file(p)?}),
                None => serde_json::Value::Null,
            },
            "verified": "every image checked against its original by the radlab-deid verifier before it was written",
            "key": "the project key (never recorded)",
        }),
        labels: serde_json::json!({
            "annotations_file": file_name(&annotations_source),
            "annotations_sha256": annotations_sha256,
            "image_labels_file": args.image_labels.as_deref().map(file_name),
            "image_labels": if args.image_labels.is_some() { "as given (test: any reader, No finding only without findings)" } else { "derived from the annotations (a label is 1 when the reader has a row of it)" },
            "train": match args.labels { LabelsMode::PerReader => "per reader (rad_id)", LabelsMode::Fused => "fused" },
            "test": "fused",
            "fusion": {
                "method": "weighted boxes fusion, per class, each reader a source with score 1",
                "iou_thr": FUSION_IOU,
                "conf_type": "avg",
                "score": "share of the image's readers whose boxes agree",
                "image_level": "a mark any reader made is kept; No finding only when no other label is",
            },
            "coordinates": "pixels of the written image (scaled with it for png/jpeg)",
            "coco_categories_and_yolo_classes": box_classes(),
        }),
        split: split_record(args)?,
        image_counts,
        label_counts: counts,
        images,
        files: checksums(&root)?,
    };
    std::fs::write(
        root.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    if target.exists() {
        // Empty (checked above); rename cannot replace a folder that gained files since.
        std::fs::remove_dir(&target).with_context(|| {
            format!(
                "{} appeared while exporting; nothing was written",
                target.display()
            )
        })?;
    }
    let root = partial.keep();
    if let Err(e) = std::fs::rename(&root, &target) {
        let _ = std::fs::remove_dir_all(&root);
        bail!("cannot move the export into {}: {e}", target.display());
    }
    println!(
        "exported {} train and {} test image(s) ({}) to {}",
        manifest.image_counts["train"],
        manifest.image_counts["test"],
        args.format.name(),
        target.display()
    );
    for split in SPLITS {
        for (label, c) in &manifest.label_counts[split] {
            println!(
                "  {split:<5} {label:<20} {:>6} image(s) {:>6} box(es)",
                c.images, c.boxes
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn is_empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_none())
}

/// DICOM files of a folder, by SOP Instance UID; files that are not DICOM are skipped.
fn folder_sources(dir: &Path) -> Result<Vec<Source>> {
    if !dir.is_dir() {
        bail!("--images {}: not a folder", dir.display());
    }
    let files = input_files(dir);
    let found: Vec<Option<Source>> = files
        .par_iter()
        .map(|path| {
            let file = DicomFile::open(path).ok()?;
            let sop = InstanceInfo::from_file(&file)
                .sop_instance_uid
                .trim_end_matches(['\0', ' '])
                .to_string();
            (!sop.is_empty()).then(|| Source {
                id: vindr_image_id(&sop),
                sop,
                path: Some(path.clone()),
                blob: None,
            })
        })
        .collect();
    let skipped = found.iter().filter(|s| s.is_none()).count();
    if skipped > 0 {
        eprintln!(
            "warning: {skipped} file(s) under {} are not DICOM with a SOP Instance UID; skipped",
            dir.display()
        );
    }
    Ok(found.into_iter().flatten().collect())
}

fn catalog_sources(cli: &Cli) -> Result<Vec<Source>> {
    let rows = crate::cmd_import::catalog_instances(cli)?;
    Ok(rows
        .into_iter()
        .map(|r| Source {
            id: vindr_image_id(&r.sop_instance_uid),
            sop: r.sop_instance_uid,
            path: None,
            blob: Some(r.blob_hash),
        })
        .collect())
}

/// The input file of each chosen image, in `chosen`'s order: the folder's file, or the
/// catalogued object copied from the blob store into `raw`.
fn stage_inputs(
    cli: &Cli,
    chosen: &BTreeMap<String, usize>,
    sources: &[Source],
    raw: Option<&Scratch>,
) -> Result<Vec<PathBuf>> {
    let Some(raw) = raw else {
        return Ok(chosen
            .values()
            .map(|&i| sources[i].path.clone().unwrap_or_default())
            .collect());
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let blobs = cli.blob_store()?;
    runtime.block_on(blobs.check())?;
    let mut out = Vec::with_capacity(chosen.len());
    for (id, &i) in chosen {
        let hash = sources[i].blob.clone().unwrap_or_default();
        let bytes = runtime
            .block_on(blobs.get(&hash))
            .with_context(|| format!("image {id}: cannot read its object from the blob store"))?;
        let path = raw.path().join(format!("{id}.dcm"));
        std::fs::write(&path, &bytes)?;
        out.push(path);
    }
    Ok(out)
}

/// Image id to "train" / "test".
fn read_split<'a>(
    args: &ExportArgs,
    chosen: &'a BTreeMap<String, usize>,
    by_key: &BTreeMap<&str, usize>,
    sources: &[Source],
) -> Result<BTreeMap<&'a str, &'static str>> {
    let Some(path) = &args.split else {
        return Ok(chosen.keys().map(|k| (k.as_str(), "train")).collect());
    };
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
    let image_col = find("image_id").with_context(|| format!("{name}: no image_id column"))?;
    let (col, is_fold) = match (find("split"), find("fold")) {
        (Some(c), _) => (c, false),
        (None, Some(c)) => (c, true),
        _ => bail!("{name}: no split (or fold) column"),
    };
    if is_fold && args.test_fold.is_none() {
        bail!("{name} holds folds: name the fold to release as test with --test-fold");
    }
    let mut by_id: BTreeMap<String, &'static str> = BTreeMap::new();
    for record in csv.records() {
        let record = record.with_context(|| format!("{name}: malformed CSV"))?;
        let line = record.position().map_or(0, |p| p.line());
        let image = record.get(image_col).unwrap_or("").trim();
        let value = record.get(col).unwrap_or("").trim();
        let part = if is_fold {
            if Some(value) == args.test_fold.as_deref() {
                "test"
            } else {
                "train"
            }
        } else {
            match value {
                "train" => "train",
                "test" => "test",
                other => bail!(
                    "{name}, line {line}: split {other:?}; the VinDr-CXR layout has train and test only"
                ),
            }
        };
        let Some(&i) = by_key.get(image) else {
            continue; // an image of the split without labels or without a file
        };
        by_id.insert(sources[i].id.clone(), part);
    }
    let mut out = BTreeMap::new();
    for id in chosen.keys() {
        let part = by_id.get(id).with_context(|| {
            format!("{name}: image {id} has annotations but no split; split all labelled images")
        })?;
        out.insert(id.as_str(), *part);
    }
    Ok(out)
}

fn split_record(args: &ExportArgs) -> Result<serde_json::Value> {
    let Some(path) = &args.split else {
        return Ok(
            serde_json::json!({"file": null, "note": "no split given: every image is in train"}),
        );
    };
    let sidecar = path.with_extension("json");
    let made_by = std::fs::read(&sidecar)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    Ok(serde_json::json!({
        "file": file_name(path),
        "sha256": sha256_file(path)?,
        "test_fold": args.test_fold,
        "seed": made_by.as_ref().and_then(|m| m.get("seed").cloned()),
        "made_by": made_by,
    }))
}

/// Copy or render one de-identified image; (width, height, original width, original height).
fn place_image(staged: &Path, target: &Path, args: &ExportArgs) -> Result<(u32, u32, u32, u32)> {
    let file = DicomFile::open(staged)?;
    if args.format == Format::Dicom {
        let (w, h) = InstanceInfo::from_file(&file)
            .image
            .map(|i| (i.columns, i.rows))
            .unwrap_or((0, 0));
        std::fs::rename(staged, target)
            .or_else(|_| std::fs::copy(staged, target).map(|_| ()))
            .with_context(|| format!("cannot write {}", target.display()))?;
        return Ok((w, h, w, h));
    }
    let options = RenderOptions {
        frame: 0,
        voi: VoiChoice::Default,
        max_side: None,
    };
    let (full, _) = render_file(&file, &options)?;
    let (ow, oh) = (full.width, full.height);
    let image = match args.size {
        Some(side) => radlab_dicom::render::fit_within(&full, side)?,
        None => full,
    };
    let bytes = match args.format {
        Format::Jpeg => {
            use image::ImageEncoder;
            let mut buf = Vec::new();
            let color = if image.channels == 3 {
                image::ExtendedColorType::Rgb8
            } else {
                image::ExtendedColorType::L8
            };
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, args.quality)
                .write_image(&image.pixels, image.width, image.height, color)
                .context("JPEG encoding")?;
            buf
        }
        _ => radlab_dicom::render::encode_to_vec(&image, radlab_dicom::render::ImageFormat::Png)?,
    };
    std::fs::write(target, bytes).with_context(|| format!("cannot write {}", target.display()))?;
    Ok((image.width, image.height, ow, oh))
}

/// SHA-256 of every file under `root` (the manifest aside), by relative path.
fn checksums(root: &Path) -> Result<Vec<ManifestFile>> {
    let mut files: Vec<PathBuf> = input_files(root);
    files.retain(|p| p.file_name().is_some_and(|n| n != "manifest.json"));
    files
        .par_iter()
        .map(|p| {
            use sha2::Digest;
            let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
            let rel = p
                .strip_prefix(root)
                .unwrap_or(p)
                .components()
                .map(|c| c.as_os_str().to_string_lossy().to_string())
                .collect::<Vec<_>>()
                .join("/");
            Ok(ManifestFile {
                path: rel,
                bytes: bytes.len() as u64,
                sha256: hex_string(&sha2::Sha256::digest(&bytes)),
            })
        })
        .collect()
}
