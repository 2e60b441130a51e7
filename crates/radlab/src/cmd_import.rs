//! `radlab import`, `radlab ls` and `radlab demo`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use radlab_dicom::render::ImageFormat;
use radlab_dicom::{DicomFile, RenderOptions, render_file_to};
use radlab_store::{
    BlobStore, Catalog, ImportOptions, ImportProgress, ImportSummary, NoProgress, PixelCheck,
    import_paths,
};

use crate::Cli;

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Files, folders (walked recursively) and .zip archives.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Print the summary as JSON on stdout (no progress bar).
    #[arg(long)]
    json: bool,
    /// Worker threads (default: all cores).
    #[arg(short, long)]
    jobs: Option<usize>,
    /// How pixel data is checked: `decode` every frame (finds any undecodable file), or
    /// check its `structure` only (lengths, frames, codestream markers; several times faster,
    /// misses damage inside compressed data).
    #[arg(long, value_enum, default_value = "decode")]
    check: CheckArg,
    /// Read, parse and decode every file even when its content is already catalogued
    /// (for benchmarks of the full path; the catalog still keeps one row per object).
    #[arg(long)]
    no_skip_known: bool,
    /// De-identify every file with this profile before it is imported, so that nothing
    /// identifying enters the catalog or the blob store (profiles as for `radlab deid`).
    #[arg(long, value_name = "PROFILE")]
    deid: Option<String>,
    /// An Annex E option for --deid (repeatable; names as for `radlab deid --option`).
    #[arg(long = "deid-option", value_parser = crate::cmd_deid::parse_option, requires = "deid")]
    deid_options: Vec<radlab_deid::DeidOption>,
    /// The project key file for --deid (RADLAB_DEID_KEY_FILE may stay set for a plain
    /// import: the key is read only with --deid).
    #[arg(long, env = "RADLAB_DEID_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// Burned-in text rules for --deid (see `radlab deid --burned-in`).
    #[arg(long, requires = "deid")]
    burned_in: Option<PathBuf>,
    /// With --deid: keep the encrypted mapping back to the originals in this file.
    #[arg(long, requires = "deid")]
    mapping: Option<PathBuf>,
    /// With --deid: write the input paths routed to review to this file.
    #[arg(long, requires = "deid")]
    review_list: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum CheckArg {
    Decode,
    Structure,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Show the quarantine list instead of the instances.
    #[arg(long)]
    quarantine: bool,
    /// Only instances of this modality (CR, DX, ...).
    #[arg(long)]
    modality: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Longest side of the rendered thumbnails.
    #[arg(long, default_value_t = 512)]
    size: u32,
}

struct Bar(ProgressBar);

impl ImportProgress for Bar {
    fn started(&self, total: u64) {
        self.0.set_length(total);
    }
    fn file_done(&self, _display: &str) {
        self.0.inc(1);
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Every instance of the catalog (for commands that match labels to images).
pub(crate) fn catalog_instances(cli: &Cli) -> Result<Vec<radlab_store::InstanceRow>> {
    runtime()?.block_on(async {
        let catalog = Catalog::open(&cli.db_url()).await?;
        let rows = catalog.list_instances(None).await;
        catalog.close().await;
        Ok(rows?)
    })
}

async fn open_stores(cli: &Cli) -> Result<(Catalog, BlobStore)> {
    let catalog = Catalog::open(&cli.db_url()).await?;
    let blobs = cli.blob_store()?;
    blobs.check().await?;
    Ok((catalog, blobs))
}

pub fn import(cli: &Cli, args: &ImportArgs) -> Result<ExitCode> {
    for path in &args.paths {
        if !path.exists() {
            anyhow::bail!("{}: no such file or folder", path.display());
        }
    }
    if args.deid.is_some() {
        return import_deidentified(cli, args);
    }
    import_paths_now(cli, args, &args.paths)
}

/// `import --deid`: de-identify into a staging folder inside the data folder, import that,
/// and remove it; files that fail or are routed to review are reported and not imported.
fn import_deidentified(cli: &Cli, args: &ImportArgs) -> Result<ExitCode> {
    let Some(key_file) = args.key_file.clone() else {
        anyhow::bail!("--deid needs the project key: --key-file FILE (or RADLAB_DEID_KEY_FILE)");
    };
    if let Some(zip) = args
        .paths
        .iter()
        .find(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip")))
    {
        anyhow::bail!(
            "{}: --deid reads files and folders; unpack the archive first",
            zip.display()
        );
    }
    let profile = crate::cmd_deid::ProfileArgs::new(
        args.deid.clone().unwrap_or_default(),
        args.deid_options.clone(),
        key_file,
        args.burned_in.clone(),
    )
    .profile()?;
    let staging = cli
        .data_dir
        .join(format!(".deid-staging-{}", std::process::id()));
    let batch = crate::cmd_deid::BatchArgs {
        mapping: args.mapping.clone(),
        review_list: args.review_list.clone(),
        json: args.json,
    };
    let result = (|| {
        let mut outcomes = Vec::new();
        for path in &args.paths {
            outcomes.extend(crate::cmd_deid::run_batch(path, &staging, &profile, &batch)?.0);
        }
        if !args.json {
            crate::cmd_deid::report(&outcomes, false, "de-identified")?;
        }
        if staging.exists() {
            import_paths_now(cli, args, std::slice::from_ref(&staging))
        } else {
            println!("nothing to import");
            Ok(ExitCode::SUCCESS)
        }
    })();
    let _ = std::fs::remove_dir_all(&staging);
    result
}

fn import_paths_now(cli: &Cli, args: &ImportArgs, paths: &[PathBuf]) -> Result<ExitCode> {
    let rt = runtime()?;
    let summary = rt.block_on(async {
        let (catalog, blobs) = open_stores(cli).await?;
        let progress: Arc<dyn ImportProgress> = if args.json {
            Arc::new(NoProgress)
        } else {
            let bar = ProgressBar::new(0).with_style(
                ProgressStyle::with_template(
                    "{spinner} {bar:40} {pos}/{len} files  {per_sec}  eta {eta}",
                )
                .expect("valid template"),
            );
            Arc::new(Bar(bar))
        };
        let options = ImportOptions {
            check: match args.check {
                CheckArg::Decode => PixelCheck::Decode,
                CheckArg::Structure => PixelCheck::Structure,
            },
            jobs: args.jobs,
            skip_known: !args.no_skip_known,
        };
        let summary = import_paths(&catalog, &blobs, paths, &options, progress).await?;
        catalog.close().await;
        anyhow::Ok(summary)
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(s: &ImportSummary) {
    let mb = s.bytes_read as f64 / 1e6;
    let secs = s.elapsed_seconds.max(1e-9);
    println!(
        "{} files, {:.1} MB in {:.2} s ({:.0} files/s, {:.1} MB/s)",
        s.files_seen,
        mb,
        s.elapsed_seconds,
        s.files_seen as f64 / secs,
        mb / secs
    );
    println!("  imported            {:>6}", s.imported);
    println!("  already present     {:>6}", s.already_present);
    println!("  other encodings     {:>6}", s.other_encodings);
    println!("  quarantined (new)   {:>6}", s.quarantined);
    println!("  already quarantined {:>6}", s.already_quarantined);
    if s.added_nothing() {
        println!("Nothing new: the catalog already holds everything under these paths.");
    }
    if !s.problems.is_empty() {
        println!();
        println!("{:<28}  {:<60}  reason", "code", "file");
        for p in &s.problems {
            println!("{:<28}  {:<60}  {}", p.reason_code, p.source_path, p.reason);
        }
    }
}

pub fn ls(cli: &Cli, args: &LsArgs) -> Result<ExitCode> {
    let rt = runtime()?;
    rt.block_on(async {
        let catalog = Catalog::open(&cli.db_url()).await?;
        if args.quarantine {
            let rows = catalog.list_quarantine().await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                for r in &rows {
                    println!("{:<28}  {}  {}", r.reason_code, r.source_path, r.reason);
                }
                println!("{} quarantined file(s)", rows.len());
            }
        } else {
            let rows = catalog.list_instances(args.modality.as_deref()).await?;
            let counts = catalog.counts().await?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"counts": counts, "instances": rows})
                    )?
                );
            } else {
                println!(
                    "{:<8} {:<10} {:<5} {:<13} {:>11} {:>4}  source",
                    "modality", "body part", "view", "photometric", "size", "bits"
                );
                for r in &rows {
                    println!(
                        "{:<8} {:<10} {:<5} {:<13} {:>11} {:>4}  {}",
                        r.modality,
                        r.body_part_examined,
                        r.view_position,
                        r.photometric,
                        format!("{}x{}", r.columns, r.rows),
                        r.bits_stored,
                        r.source_path
                    );
                }
                println!(
                    "{} patient(s), {} study(ies), {} series, {} instance(s), {} quarantined",
                    counts.patients,
                    counts.studies,
                    counts.series,
                    counts.instances,
                    counts.quarantined
                );
            }
        }
        catalog.close().await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The demo set, built into the binary so that one file is the whole deployment.
/// Sources and licences: demo/README.md.
const DEMO_FILES: &[(&str, &[u8])] = &[
    (
        "fodicom_CR-MONO1-10-chest_acrnema.dcm",
        include_bytes!("../../../demo/fodicom_CR-MONO1-10-chest_acrnema.dcm"),
    ),
    (
        "nema_wg04_RG1_J2KI_cr_chest_pa_mono1.dcm",
        include_bytes!("../../../demo/nema_wg04_RG1_J2KI_cr_chest_pa_mono1.dcm"),
    ),
    (
        "nih_cxr14_dx_sc_implicit_covid0000.dcm",
        include_bytes!("../../../demo/nih_cxr14_dx_sc_implicit_covid0000.dcm"),
    ),
    (
        "hannover_006f3a8a.png",
        include_bytes!("../../../demo/hannover_006f3a8a.png"),
    ),
    (
        "hannover_0957ce54.png",
        include_bytes!("../../../demo/hannover_0957ce54.png"),
    ),
];

/// Import the demo set shipped in the binary (written to DATA/demo-source first); a second
/// run adds nothing.
pub(crate) async fn import_demo_set(
    cli: &Cli,
    catalog: &Catalog,
    blobs: &BlobStore,
) -> Result<radlab_store::ImportSummary> {
    let source_dir = cli.data_dir.join("demo-source");
    std::fs::create_dir_all(&source_dir)
        .with_context(|| format!("cannot create {}", source_dir.display()))?;
    for (name, bytes) in DEMO_FILES {
        std::fs::write(source_dir.join(name), bytes)
            .with_context(|| format!("cannot write {}", source_dir.join(name).display()))?;
    }
    Ok(import_paths(
        catalog,
        blobs,
        std::slice::from_ref(&source_dir),
        &ImportOptions::default(),
        Arc::new(NoProgress),
    )
    .await?)
}

/// The catalog and blob store of the command line's options.
pub(crate) async fn stores(cli: &Cli) -> Result<(Catalog, BlobStore)> {
    open_stores(cli).await
}

pub fn demo(cli: &Cli, args: &DemoArgs) -> Result<ExitCode> {
    let rt = runtime()?;
    let (summary, rows, blobs) = rt.block_on(async {
        let (catalog, blobs) = open_stores(cli).await?;
        let summary = import_demo_set(cli, &catalog, &blobs).await?;
        let rows = catalog.list_instances(None).await?;
        catalog.close().await;
        anyhow::Ok((summary, rows, blobs))
    })?;
    print_summary(&summary);
    let render_dir = cli.data_dir.join("renders");
    std::fs::create_dir_all(&render_dir)?;
    println!();
    for row in &rows {
        let bytes = rt.block_on(blobs.get(&row.blob_hash))?;
        let file = DicomFile::from_bytes(&bytes)
            .with_context(|| format!("catalogued object {}", row.sop_instance_uid))?;
        let options = RenderOptions {
            max_side: Some(args.size),
            ..Default::default()
        };
        let png = render_file_to(&file, &options, ImageFormat::Png)?;
        let name = PathBuf::from(&row.source_path)
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| row.sop_instance_uid.clone());
        let out = render_dir.join(format!("{name}.png"));
        std::fs::write(&out, png).with_context(|| format!("cannot write {}", out.display()))?;
        println!("rendered {}", out.display());
    }
    println!(
        "\nCatalog: {}  (try: radlab ls --data-dir {})",
        cli.db_url(),
        cli.data_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
