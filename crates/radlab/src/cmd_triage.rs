//! `radlab triage FILES`: a verdict per file from the rules on metadata (radlab-triage),
//! as text or JSON lines. `radlab triage --project P`: a verdict per image of a project,
//! read from the blob store and recorded in the catalog (an administrator's overrule kept).
//! `--model site.onnx`: a site's own network (radlab_triage::onnx), read and checked.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use radlab_triage::model::Classifier;
use radlab_triage::onnx::OnnxClassifier;
use radlab_triage::{RuleConfig, triage_file};

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
    /// One JSON object per line: the path as given, kind, valid, findings (code, reason).
    #[arg(long)]
    json: bool,
    /// A site's own model (ONNX) to judge the pixels instead of the built-in network
    /// (docs/triage.md, "Plug in your own model"); read and checked before anything is
    /// judged.
    #[arg(long, value_name = "PATH.onnx")]
    model: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum TriageCommand {
    /// Train the triage network on the corpus (seeded: the same data and seed give the same
    /// weights), and write its weights and its evaluation report.
    Train(TrainArgs),
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
    /// Where to write the evaluation report (Markdown).
    #[arg(long, default_value = "docs/triage-report.md")]
    report: PathBuf,
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    #[arg(long, default_value_t = 24)]
    epochs: usize,
    /// Samples of each class per epoch.
    #[arg(long, default_value_t = 256)]
    per_class: usize,
}

fn train(args: &TrainArgs) -> Result<ExitCode> {
    let config = radlab_triage::train::TrainConfig {
        seed: args.seed,
        epochs: args.epochs,
        per_class: args.per_class,
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let run = radlab_triage::train::train_on_corpus(&args.corpus, &config, &mut |line| {
        eprintln!("{line}")
    })
    .map_err(|e| anyhow::anyhow!(e))?;
    let weights = run.net.to_safetensors()?;
    let command = format!(
        "radlab triage train --seed {} --epochs {} --per-class {}",
        args.seed, args.epochs, args.per_class
    );
    let report = radlab_triage::train::report(&run, &config, &command);
    for (path, bytes) in [(&args.out, weights), (&args.report, report.into_bytes())] {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let tmp = path.with_extension("partial");
        std::fs::write(&tmp, &bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    }
    eprintln!(
        "trained in {:.0} s: valid/outlier {:.1}%, orientation {:.1}% held out; weights {}, report {}",
        started.elapsed().as_secs_f64(),
        run.held_out.valid_accuracy() * 100.0,
        run.held_out.orientation_accuracy() * 100.0,
        args.out.display(),
        args.report.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn triage(cli: &crate::Cli, args: &TriageArgs) -> Result<ExitCode> {
    if let Some(TriageCommand::Train(a)) = &args.command {
        return train(a);
    }
    // The network's verdicts are not wired into this command yet: the site's model is read
    // and checked, and said on stderr; the verdicts stay the rules'.
    if let Some((_, name)) = site_model(args)? {
        eprintln!("{name}: read and checked; the verdicts here are the rules on metadata");
    }
    let mut config = RuleConfig::default();
    if !args.modalities.is_empty() {
        config.modalities = args
            .modalities
            .iter()
            .map(|m| m.trim().to_ascii_uppercase())
            .collect();
    }
    if let Some(project) = &args.project {
        return triage_project(cli, project, &config, args.json);
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
    let (mut valid, mut rejected) = (0usize, 0usize);
    for file in &files {
        let verdict = triage_file(file, &config);
        if verdict.valid {
            valid += 1;
        } else {
            rejected += 1;
        }
        if args.json {
            println!("{}", serde_json::to_string(&verdict)?);
        } else if verdict.valid {
            println!("{}: valid ({})", verdict.path, verdict.kind);
        } else {
            let reasons: Vec<String> = verdict
                .findings
                .iter()
                .map(|f| format!("{}: {}", f.code, f.reason))
                .collect();
            println!("{}: rejected: {}", verdict.path, reasons.join("; "));
        }
    }
    if !args.json {
        eprintln!(
            "{valid} valid, {rejected} rejected of {} file(s)",
            files.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The site's own model of `--model`, read and checked (an error names the file and what is
/// wrong), with its name for verdicts (`onnx FILE [N, 1, 64, 64] -> [N, 12]`); `None`
/// without `--model`.
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
    config: &RuleConfig,
    json: bool,
) -> Result<ExitCode> {
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
            for image in &page {
                let verdict = match catalog.instance_identity(&image.sop_instance_uid).await? {
                    Some(id) => {
                        let bytes = blobs.get(&id.blob_hash).await?;
                        radlab_triage::triage_bytes(&bytes, &image.image_id, config)
                    }
                    None => bail!(
                        "image {} of {project} is not in the catalog",
                        image.image_id
                    ),
                };
                verdicts.push((image.sop_instance_uid.clone(), verdict));
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
                    model: "rules".into(),
                    valid: v.valid,
                    class: String::new(),
                    probability: String::new(),
                    findings: serde_json::to_value(&v.findings)?,
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
