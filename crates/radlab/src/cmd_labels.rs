//! `radlab labels`: annotation files into a project of the catalog and back out.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use radlab_labels::{Annotation, kaggle, read_box_annotations, vindr};
use radlab_store::{Catalog, Layer};

use crate::Cli;
use crate::cmd_import::runtime;

#[derive(Args, Debug)]
pub struct LabelsArgs {
    #[command(subcommand)]
    command: LabelsCommand,
}

#[derive(Subcommand, Debug)]
enum LabelsCommand {
    /// Add the annotations of files to a project (readers' rows to their reader layers, rows
    /// without a reader to the consensus, submissions to the model layer).
    Import(ImportArgs),
    /// Write a project's current annotations as a Kaggle train.csv, a VinDr-CXR annotations
    /// CSV or a Kaggle submission.
    Export(ExportArgs),
    /// List the projects and how many annotations each holds.
    Ls(LsArgs),
}

#[derive(Args, Debug)]
struct ImportArgs {
    /// The project.
    #[arg(long)]
    project: String,
    /// Create the project if it does not exist.
    #[arg(long)]
    create: bool,
    /// The label schema template of a project made by --create.
    #[arg(long, default_value = "vindr-cxr")]
    schema: String,
    /// Kaggle train.csv, VinDr-CXR annotations_*.csv, or Kaggle submission files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

#[derive(Args, Debug)]
struct ExportArgs {
    #[arg(long)]
    project: String,
    /// kaggle (train.csv), vindr (annotations_*.csv) or submission.
    #[arg(long, default_value = "kaggle")]
    format: String,
    /// reader, consensus, model; default: reader and consensus (model for submission).
    #[arg(long)]
    layer: Option<String>,
    /// Output file; `-` for standard output.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args, Debug)]
struct LsArgs {
    #[arg(long)]
    json: bool,
}

pub fn labels(cli: &Cli, args: &LabelsArgs) -> Result<ExitCode> {
    let rt = runtime()?;
    rt.block_on(async {
        let catalog = Catalog::open(&cli.db_url()).await?;
        let result = match &args.command {
            LabelsCommand::Import(a) => import(&catalog, a).await,
            LabelsCommand::Export(a) => export(&catalog, a).await,
            LabelsCommand::Ls(a) => ls(&catalog, a).await,
        };
        catalog.close().await;
        result
    })
}

/// The current reader and consensus annotations of a project (for `radlab export`).
pub fn project_annotations(cli: &Cli, project: &str) -> Result<Vec<Annotation>> {
    runtime()?.block_on(async {
        let catalog = Catalog::open(&cli.db_url()).await?;
        if !catalog.project_exists(project).await? {
            bail!("no project {project} (radlab labels ls lists them)");
        }
        let rows = catalog
            .annotations(project, &[Layer::Reader, Layer::Consensus])
            .await?;
        catalog.close().await;
        Ok(rows.into_iter().map(|(_, a)| a).collect())
    })
}

/// Read one annotation file, by its header; submissions go to the model layer.
fn read_file(path: &PathBuf) -> Result<(Vec<Annotation>, Layer)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let name = path.display().to_string();
    if radlab_labels::csv_kind(&bytes) == Ok(radlab_labels::CsvKind::Submission) {
        Ok((kaggle::read_submission(&bytes[..], &name)?, Layer::Model))
    } else {
        Ok((read_box_annotations(&bytes, &name)?, Layer::Consensus))
    }
}

async fn import(catalog: &Catalog, args: &ImportArgs) -> Result<ExitCode> {
    // Every file is read and checked before anything is written.
    let mut files = Vec::new();
    for path in &args.files {
        files.push((path, read_file(path)?));
    }
    if !catalog.project_exists(&args.project).await? {
        match args.create {
            true => {
                let schema = radlab_labels::schema::LabelSchema::template(&args.schema)
                    .with_context(|| {
                        format!(
                            "--schema {:?}: use one of {}",
                            args.schema,
                            radlab_labels::schema::TEMPLATES.join(", ")
                        )
                    })?;
                catalog
                    .create_project(&args.project, &serde_json::to_string(&schema)?)
                    .await?
            }
            false => bail!(
                "no project {}: add --create to make it (radlab labels ls lists them)",
                args.project
            ),
        }
    }
    for (path, (rows, layer)) in files {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        let n = catalog
            .add_annotations(&args.project, &rows, layer, &format!("import:{name}"))
            .await?;
        let readers: std::collections::BTreeSet<&str> =
            rows.iter().filter_map(|r| r.reader.as_deref()).collect();
        eprintln!(
            "{}: {n} annotations into project {} ({} readers{})",
            path.display(),
            args.project,
            readers.len(),
            if layer == Layer::Model {
                ", model layer"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn export(catalog: &Catalog, args: &ExportArgs) -> Result<ExitCode> {
    if !catalog.project_exists(&args.project).await? {
        bail!("no project {} (radlab labels ls lists them)", args.project);
    }
    let layers: Vec<Layer> = match (args.layer.as_deref(), args.format.as_str()) {
        (Some("reader"), _) => vec![Layer::Reader],
        (Some("consensus"), _) => vec![Layer::Consensus],
        (Some("model"), _) => vec![Layer::Model],
        (Some(other), _) => bail!("--layer {other:?}: use reader, consensus or model"),
        (None, "submission") => vec![Layer::Model],
        (None, _) => vec![Layer::Reader, Layer::Consensus],
    };
    let rows: Vec<Annotation> = catalog
        .annotations(&args.project, &layers)
        .await?
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    let mut bytes = Vec::new();
    match args.format.as_str() {
        "kaggle" => kaggle::write_train_csv(&mut bytes, &rows).with_context(|| {
            format!("project {}: cannot write a Kaggle train.csv", args.project)
        })?,
        "vindr" => vindr::write_annotations(&mut bytes, &rows)?,
        "submission" => kaggle::write_submission(&mut bytes, &rows)?,
        other => bail!("--format {other:?}: use kaggle, vindr or submission"),
    }
    if args.out == std::path::Path::new("-") {
        std::io::stdout().write_all(&bytes)?;
    } else {
        let tmp = args.out.with_extension("partial");
        std::fs::write(&tmp, &bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &args.out)
            .with_context(|| format!("cannot write {}", args.out.display()))?;
        eprintln!("{}: {} annotations", args.out.display(), rows.len());
    }
    Ok(ExitCode::SUCCESS)
}

async fn ls(catalog: &Catalog, args: &LsArgs) -> Result<ExitCode> {
    let projects = catalog.list_projects().await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&projects)?);
    } else {
        for p in &projects {
            println!(
                "{:<24} {:<12} {:>8} annotations {:>7} images  created {}",
                p.project_id, p.template, p.annotations, p.images, p.created_at
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
