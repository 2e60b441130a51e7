//! `radlab triage FILES`: a verdict per file from the rules on metadata and the network on
//! pixels (radlab-triage), as text or JSON lines. `radlab triage --project P`: a verdict per
//! image of a project, read from the blob store and recorded in the catalog (an
//! administrator's overrule kept). `--fix-orientation` writes (files) or stores (project) an
//! upright rendering of frontal radiographs seen in another orientation; the original is
//! never changed. `--model site.onnx`: a site's own network (radlab_triage::onnx) instead
//! of the built-in one, read and checked before anything is judged.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use radlab_triage::model::Classifier;
use radlab_triage::onnx::OnnxClassifier;
use radlab_triage::{RuleConfig, Triage, Verdict};

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct TriageArgs {
    #[command(subcommand)]
    command: Option<TriageCommand>,
    /// DICOM files, PNG or JPEG pictures, or folders of them (walked recursively, in name
    /// order).
    #[arg(required_unless_present = "project", conflicts_with = "project")]
    paths: Vec<PathBuf>,
    /// Judge every image of this project of the catalog, and record the verdicts there.
    #[arg(long)]
    project: Option<String>,
    /// A Modality value the project takes (repeatable; default CR and DX).
    #[arg(long = "modality", value_name = "MODALITY")]
    modalities: Vec<String>,
    /// One JSON object per line: the path as given, kind, the network's class, probability
    /// and orientation, valid, findings (code, reason).
    #[arg(long)]
    json: bool,
    /// The rules on metadata alone, no network.
    #[arg(long, conflicts_with = "model")]
    rules_only: bool,
    /// A site's own model (ONNX) to judge the pixels instead of the built-in network
    /// (docs/triage.md, "Plug in your own model"); read and checked before anything is
    /// judged.
    #[arg(long, value_name = "PATH.onnx")]
    model: Option<PathBuf>,
    /// For frontal radiographs the network sees in another orientation, an upright rendering
    /// (PNG; the original is never changed): written into DIR for files (default
    /// `upright`), stored in the blob store with the verdict for `--project`.
    #[arg(long, value_name = "DIR", num_args = 0..=1, require_equals = true,
          default_missing_value = "upright")]
    fix_orientation: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum TriageCommand {
    /// Train the triage network on the corpus (seeded: the same data and seed give the same
    /// weights), and write its weights and its evaluation report.
    Train(TrainArgs),
    /// Evaluate weights (default: the built-in ones) on the corpus and write the report.
    Evaluate(EvaluateArgs),
}

#[derive(Args, Debug)]
struct EvaluateArgs {
    /// The corpus: the folder of manifest.csv.
    #[arg(long, env = "RADLAB_CORPUS", default_value = "../shared/data")]
    corpus: PathBuf,
    /// Weights (safetensors) of the triage network to evaluate; default the built-in ones.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Weights (safetensors) of the left-right network; default the built-in ones.
    #[arg(long)]
    laterality_weights: Option<PathBuf>,
    /// Where to write the evaluation report (Markdown).
    #[arg(long, default_value = "docs/triage-report.md")]
    report: PathBuf,
    /// The seed the weights were trained with (it fixes the held-out split).
    #[arg(long, default_value_t = 2026)]
    seed: u64,
}

#[derive(Args, Debug)]
struct TrainArgs {
    /// The corpus: the folder of manifest.csv.
    #[arg(long, env = "RADLAB_CORPUS", default_value = "../shared/data")]
    corpus: PathBuf,
    /// Where to write the weights (safetensors).
    #[arg(
        long,
        default_value = "crates/radlab-triage/weights/triage.safetensors"
    )]
    out: PathBuf,
    /// Where to write the left-right network's weights (safetensors).
    #[arg(
        long,
        default_value = "crates/radlab-triage/weights/laterality.safetensors"
    )]
    laterality_out: PathBuf,
    /// Where to write the evaluation report (Markdown).
    #[arg(long, default_value = "docs/triage-report.md")]
    report: PathBuf,
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    #[arg(long, default_value_t = 60)]
    epochs: usize,
    /// Samples of each class per epoch.
    #[arg(long, default_value_t = 256)]
    per_class: usize,
    /// Epochs of the left-right network.
    #[arg(long, default_value_t = radlab_triage::laterality::EPOCHS)]
    laterality_epochs: usize,
}

fn train(args: &TrainArgs) -> Result<ExitCode> {
    let config = radlab_triage::train::TrainConfig {
        seed: args.seed,
        epochs: args.epochs,
        per_class: args.per_class,
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let corpus = radlab_triage::train::Corpus::load(&args.corpus, args.seed)
        .map_err(|e| anyhow::anyhow!(e))?;
    let (net, _) =
        radlab_triage::train::train_on_corpus(&corpus, &config, &mut |line| eprintln!("{line}"))
            .map_err(|e| anyhow::anyhow!(e))?;
    let weights = net.to_safetensors()?;
    let side_config = radlab_triage::train::TrainConfig {
        epochs: args.laterality_epochs,
        ..config
    };
    let side = radlab_triage::train::train_laterality_on_corpus(&corpus, &side_config, &mut |l| {
        eprintln!("{l}")
    })
    .map_err(|e| anyhow::anyhow!(e))?;
    let side_weights = side.to_safetensors()?;
    let id = radlab_triage::model_id(&weights, &side_weights);
    let how = format!(
        "Weights (`{}` and `{}`, {id}) written by `radlab triage train --seed {} --epochs {} \
         --per-class {} --laterality-epochs {}` (batch {}, AdamW, one-cycle learning rate \
         peaking at {}); this report by the same command, or by `radlab triage evaluate` from \
         the weights.",
        args.out.display(),
        args.laterality_out.display(),
        args.seed,
        args.epochs,
        args.per_class,
        args.laterality_epochs,
        config.batch,
        config.learning_rate
    );
    let model = radlab_triage::laterality::Builtin {
        triage: net.inference()?,
        laterality: side.inference()?,
    };
    let ev = radlab_triage::train::evaluate_on_corpus(&corpus, Box::new(model), id)
        .map_err(|e| anyhow::anyhow!(e))?;
    let report = radlab_triage::train::report(&ev, &how);
    write_atomically(&args.out, &weights)?;
    write_atomically(&args.laterality_out, &side_weights)?;
    write_atomically(&args.report, report.as_bytes())?;
    eprintln!(
        "trained in {:.0} s: valid/outlier {:.1}%, orientation {:.1}% held out; weights {}, report {}",
        started.elapsed().as_secs_f64(),
        ev.held_out.valid_accuracy() * 100.0,
        ev.held_out.orientation_accuracy() * 100.0,
        args.out.display(),
        args.report.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn evaluate(args: &EvaluateArgs) -> Result<ExitCode> {
    let (bytes, shown) = match &args.weights {
        Some(p) => (
            std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?,
            p.display().to_string(),
        ),
        None => (
            radlab_triage::BUILTIN_WEIGHTS.to_vec(),
            "crates/radlab-triage/weights/triage.safetensors".to_string(),
        ),
    };
    let (side_bytes, side_shown) = match &args.laterality_weights {
        Some(p) => (
            std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?,
            p.display().to_string(),
        ),
        None => (
            radlab_triage::laterality::BUILTIN_WEIGHTS.to_vec(),
            "crates/radlab-triage/weights/laterality.safetensors".to_string(),
        ),
    };
    let net = radlab_triage::Net::from_safetensors(&bytes)
        .with_context(|| format!("{shown}: not triage weights"))?;
    let side =
        radlab_triage::Net::from_safetensors_of(radlab_triage::model::LATERALITY, &side_bytes)
            .with_context(|| format!("{side_shown}: not left-right weights"))?;
    let corpus = radlab_triage::train::Corpus::load(&args.corpus, args.seed)
        .map_err(|e| anyhow::anyhow!(e))?;
    let id = radlab_triage::model_id(&bytes, &side_bytes);
    let model = radlab_triage::laterality::Builtin {
        triage: net.inference()?,
        laterality: side.inference()?,
    };
    let ev = radlab_triage::train::evaluate_on_corpus(&corpus, Box::new(model), id.clone())
        .map_err(|e| anyhow::anyhow!(e))?;
    let how = format!(
        "Weights `{shown}` and `{side_shown}` ({id}), trained by `radlab triage train --seed {}` \
         (see docs/triage.md); this report written by `radlab triage evaluate`.",
        args.seed
    );
    write_atomically(
        &args.report,
        radlab_triage::train::report(&ev, &how).as_bytes(),
    )?;
    eprintln!(
        "valid/outlier {:.1}%, orientation {:.1}% held out; report {}",
        ev.held_out.valid_accuracy() * 100.0,
        ev.held_out.orientation_accuracy() * 100.0,
        args.report.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

pub fn triage(cli: &crate::Cli, args: &TriageArgs) -> Result<ExitCode> {
    match &args.command {
        Some(TriageCommand::Train(a)) => return train(a),
        Some(TriageCommand::Evaluate(a)) => return evaluate(a),
        None => {}
    }
    let mut config = RuleConfig::default();
    if !args.modalities.is_empty() {
        config.modalities = args
            .modalities
            .iter()
            .map(|m| m.trim().to_ascii_uppercase())
            .collect();
    }
    let mut triage = if args.rules_only {
        Triage::rules_only(config)
    } else if let Some((classifier, name)) = site_model(args)? {
        Triage::with_classifier(config, classifier, name)
    } else {
        Triage::builtin(config).map_err(|e| anyhow::anyhow!(e))?
    };
    triage.keep_pixels = args.fix_orientation.is_some();
    if let Some(project) = &args.project {
        return triage_project(cli, project, &triage, args);
    }
    let mut files = Vec::new();
    for path in &args.paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = walk(path);
            found.sort();
            files.extend(found);
        } else if path.exists() {
            files.push(path.clone());
        } else {
            bail!("{}: no such file or folder", path.display());
        }
    }
    if let Some(dir) = &args.fix_orientation {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut written = std::collections::BTreeSet::new();
    let (mut valid, mut rejected) = (0usize, 0usize);
    // Files are read, decoded and judged on all cores a chunk at a time, and their verdicts
    // printed in the order given. A chunk is large enough that a slow file (a big JPEG 2000)
    // leaves no core waiting for long, small when the verdicts keep their pixels.
    let chunk = if triage.keep_pixels {
        rayon::current_num_threads().max(1) * 2
    } else {
        256
    };
    for files in files.chunks(chunk) {
        use rayon::prelude::*;
        let verdicts: Vec<Verdict> = files.par_iter().map(|f| triage.file(f)).collect();
        for (file, verdict) in files.iter().zip(verdicts) {
            if emit_file_verdict(args, file, verdict, &mut written)? {
                valid += 1;
            } else {
                rejected += 1;
            }
        }
    }
    if !args.json {
        eprintln!(
            "{valid} valid, {rejected} rejected of {} file(s) ({})",
            files.len(),
            triage.model()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Write a file's upright rendering where asked and print its verdict; says whether the
/// file is valid.
fn emit_file_verdict(
    args: &TriageArgs,
    file: &std::path::Path,
    mut verdict: Verdict,
    written: &mut std::collections::BTreeSet<PathBuf>,
) -> Result<bool> {
    if let (Some(dir), Some(png)) = (&args.fix_orientation, radlab_triage::upright(&verdict)) {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into());
        // Two inputs of the same name get -2, -3... in the order given.
        let mut target = dir.join(format!("{name}.upright.png"));
        let mut n = 1;
        while !written.insert(target.clone()) {
            n += 1;
            target = dir.join(format!("{name}-{n}.upright.png"));
        }
        let tmp = target.with_extension("partial");
        std::fs::write(&tmp, &png).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &target)
            .with_context(|| format!("cannot write {}", target.display()))?;
        verdict.upright = Some(target.display().to_string());
    }
    if args.json {
        println!("{}", serde_json::to_string(&verdict)?);
    } else {
        println!("{}", describe(&verdict));
    }
    Ok(verdict.valid)
}

/// A verdict as a line of text.
fn describe(v: &Verdict) -> String {
    let seen = match (v.class, v.probability) {
        (Some(c), Some(p)) => format!(", {c} p {p:.3}"),
        _ => String::new(),
    };
    let upright = v
        .upright
        .as_ref()
        .map(|u| format!(" (upright rendering: {u})"))
        .unwrap_or_default();
    if v.valid {
        format!("{}: valid ({}{seen})", v.path, v.kind)
    } else {
        let reasons: Vec<String> = v
            .findings
            .iter()
            .map(|f| format!("{}: {}", f.code, f.reason))
            .collect();
        format!(
            "{}: rejected ({}{seen}): {}{upright}",
            v.path,
            v.kind,
            reasons.join("; ")
        )
    }
}

/// The site's ONNX model of `--model`, read and checked, with its name for the verdicts.
fn site_model(args: &TriageArgs) -> Result<Option<(Box<dyn Classifier + Send + Sync>, String)>> {
    let Some(path) = &args.model else {
        return Ok(None);
    };
    let model = OnnxClassifier::load(path).map_err(|e| anyhow::anyhow!(e))?;
    let name = format!("{} {}", model.name(), model.shape());
    Ok(Some((Box::new(model), name)))
}

/// Judge every image of `project` from its blob, record the verdicts, print them.
fn triage_project(
    cli: &crate::Cli,
    project: &str,
    triage: &Triage,
    args: &TriageArgs,
) -> Result<ExitCode> {
    let json = args.json;
    let rt = crate::cmd_import::runtime()?;
    rt.block_on(async {
        let (catalog, blobs) = crate::cmd_import::stores(cli).await?;
        if !catalog.project_exists(project).await? {
            bail!("no project {project} in the catalog (radlab serve's admin page makes one)");
        }
        let mut verdicts = Vec::new();
        let mut offset = 0;
        loop {
            let (page, total) = catalog.project_images(project, None, offset, 500).await?;
            // A chunk's blobs are read, then judged on all cores, then their renderings
            // stored; verdicts keep the project's order.
            let chunk = rayon::current_num_threads().max(1) * 2;
            for images in page.chunks(chunk) {
                let mut blobs_of = Vec::with_capacity(images.len());
                for image in images {
                    match catalog.instance_identity(&image.sop_instance_uid).await? {
                        Some(id) => blobs_of.push(blobs.get(&id.blob_hash).await?),
                        None => bail!(
                            "image {} of {project} is not in the catalog",
                            image.image_id
                        ),
                    }
                }
                let judged: Vec<Verdict> = tokio::task::block_in_place(|| {
                    use rayon::prelude::*;
                    images
                        .par_iter()
                        .zip(blobs_of.par_iter())
                        .map(|(image, bytes)| triage.bytes(bytes, &image.image_id))
                        .collect()
                });
                for (image, mut v) in images.iter().zip(judged) {
                    if args.fix_orientation.is_some()
                        && let Some(png) = radlab_triage::upright(&v)
                    {
                        // Content-addressed like every blob; the DICOM is untouched.
                        let hash = radlab_dicom::content_hash(&png);
                        blobs.put(&hash, png.into()).await?;
                        v.upright = Some(hash);
                    }
                    v.grey = None;
                    verdicts.push((image.sop_instance_uid.clone(), v));
                }
            }
            offset += page.len() as i64;
            if page.is_empty() || offset >= total {
                break;
            }
        }
        let rows: Vec<radlab_store::NewVerdict> = verdicts
            .iter()
            .map(|(uid, v)| {
                Ok(radlab_store::NewVerdict {
                    image_id: v.path.clone(),
                    sop_instance_uid: uid.clone(),
                    model: if v.class.is_some() {
                        triage.model().to_string()
                    } else {
                        "rules".into()
                    },
                    valid: v.valid,
                    class: v.class.unwrap_or_default().to_string(),
                    probability: v.probability.map(|p| p.to_string()).unwrap_or_default(),
                    findings: serde_json::to_value(&v.findings)?,
                    orientation: v.orientation.clone().unwrap_or_default(),
                    upright_blob: v.upright.clone().unwrap_or_default(),
                })
            })
            .collect::<Result<_>>()?;
        catalog.record_triage(project, &rows).await?;
        let recorded = catalog.triage_verdicts(project).await?;
        let (mut valid, mut rejected) = (0usize, 0usize);
        for v in &recorded {
            if v.effective_valid() {
                valid += 1;
            } else {
                rejected += 1;
            }
            if json {
                println!("{}", serde_json::to_string(v)?);
            } else {
                let overrule = match v.overruled {
                    Some(true) => " (overruled to valid)",
                    Some(false) => " (overruled to invalid)",
                    None => "",
                };
                let reasons: Vec<String> = v
                    .verdict
                    .findings
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|f| {
                                format!(
                                    "{}: {}",
                                    f["code"].as_str().unwrap_or(""),
                                    f["reason"].as_str().unwrap_or("")
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let image = &v.verdict.image_id;
                if v.verdict.valid {
                    println!("{image}: valid{overrule}");
                } else {
                    println!("{image}: rejected: {}{overrule}", reasons.join("; "));
                }
            }
        }
        if !json {
            eprintln!(
                "{project}: {valid} valid, {rejected} rejected of {} image(s), recorded",
                recorded.len()
            );
        }
        catalog.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .flat_map(|e| {
            let p = e.path();
            if p.is_dir() { walk(&p) } else { vec![p] }
        })
        .collect()
}
