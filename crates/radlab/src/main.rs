//! `radlab`: the command-line front of the radlab crates. It parses arguments, calls a
//! library, and prints; the work lives in the libraries.

mod cmd_deid;
mod cmd_eval;
mod cmd_export;
mod cmd_fuse;
mod cmd_import;
mod cmd_labels;
mod cmd_pacs;
mod cmd_render;
mod cmd_serve;
mod cmd_split;
mod cmd_triage;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Build radiologist-annotated medical imaging datasets and score models on them.
#[derive(Parser, Debug)]
#[command(name = "radlab", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Folder for the default catalog (catalog.db) and blob store (blobs/).
    #[arg(
        long,
        global = true,
        env = "RADLAB_DATA",
        default_value = "radlab-data"
    )]
    data_dir: PathBuf,
    /// Catalog database: sqlite://PATH (default: DATA_DIR/catalog.db) or postgres://...
    #[arg(long, global = true, env = "RADLAB_DB")]
    db: Option<String>,
    /// Blob store: a folder, file://PATH, or s3://BUCKET[/PREFIX] on AWS S3 or any
    /// S3-compatible server (settings from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_REGION, AWS_ENDPOINT_URL, AWS_ALLOW_HTTP). Default: DATA_DIR/blobs.
    #[arg(long, global = true, env = "RADLAB_STORE", value_name = "DIR|URL")]
    store: Option<String>,
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Import DICOM files, folders and zip archives (and PNG/JPEG pictures) into the catalog.
    Import(cmd_import::ImportArgs),
    /// List what the catalog holds (instances, or the quarantine list).
    Ls(cmd_import::LsArgs),
    /// Render one frame of a DICOM file to PNG or WebP.
    Render(cmd_render::RenderArgs),
    /// Print the metadata radlab reads from a DICOM file, as JSON.
    Info(cmd_render::InfoArgs),
    /// Load the demo set shipped with radlab into the catalog and render thumbnails of it.
    Demo(cmd_import::DemoArgs),
    /// De-identify DICOM files (PS3.15 Annex E), verifying each output before keeping it.
    Deid(cmd_deid::DeidArgs),
    /// Check de-identified output against its input for anything that should not be there.
    Verify(cmd_deid::VerifyArgs),
    /// Show the mapping back to the originals that `deid --mapping` kept (needs the key).
    DeidMapping(cmd_deid::MappingArgs),
    /// Score predictions against ground truth (PASCAL VOC AP, VinBigData's mAP@0.4).
    Eval(cmd_eval::EvalArgs),
    /// Split images into train/test or k folds, stratified on every label, grouped by patient.
    Split(cmd_split::SplitArgs),
    /// Write a versioned dataset in the VinDr-CXR layout (de-identified images, CSVs, manifest).
    Export(cmd_export::ExportArgs),
    /// Fuse each image's readers into a consensus (WBF, NMS, soft-NMS; a quorum).
    Fuse(cmd_fuse::FuseArgs),
    /// Reader agreement: kappas and alpha per label, box F1, each reader against the others.
    Agree(cmd_fuse::AgreeArgs),
    /// Annotation files into a project of the catalog, and back out.
    Labels(cmd_labels::LabelsArgs),
    /// Serve the HTTP API (accounts and sessions so far) on the catalog.
    Serve(cmd_serve::ServeArgs),
    /// Manage accounts (the first administrator is made here).
    User(cmd_serve::UserArgs),
    /// DICOM networking with a PACS: `pacs listen` receives images (C-ECHO, C-STORE);
    /// `pacs echo`, `find` and `move` query and retrieve from one (C-FIND, C-MOVE);
    /// `pacs web-find` and `web-retrieve` do so over DICOMweb (QIDO-RS, WADO-RS).
    Pacs(cmd_pacs::PacsArgs),
    /// Which files are usable chest radiographs, and why the others are not (rules on
    /// metadata so far).
    Triage(cmd_triage::TriageArgs),
}

impl Cli {
    pub fn db_url(&self) -> String {
        self.db
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("catalog.db").display()))
    }

    /// The blob store of `--store` (default: the data folder's `blobs`). An S3 store is only
    /// configured here; [`radlab_store::BlobStore::check`] reaches it.
    pub fn blob_store(&self) -> anyhow::Result<radlab_store::BlobStore> {
        Ok(match self.store.as_deref() {
            Some(store) if !store.is_empty() => radlab_store::BlobStore::open(store)?,
            _ => radlab_store::BlobStore::local(self.data_dir.join("blobs"))?,
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A command whose output is piped into `head` ends quietly when the reader goes away,
    // as Unix tools do, instead of panicking on a broken pipe. Not the servers: they keep
    // Rust's default (the signal ignored, a write error per closed connection).
    #[cfg(unix)]
    if !matches!(cli.command, Command::Serve(_) | Command::Pacs(_)) {
        // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let default_level = match cli.verbose {
        0 => "warn,jpeg2k=off,dicom_parser=error",
        1 => "info,jpeg2k=warn",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match &cli.command {
        Command::Import(args) => cmd_import::import(&cli, args),
        Command::Ls(args) => cmd_import::ls(&cli, args),
        Command::Render(args) => cmd_render::render(args),
        Command::Info(args) => cmd_render::info(args),
        Command::Demo(args) => cmd_import::demo(&cli, args),
        Command::Deid(args) => cmd_deid::deid(args),
        Command::Verify(args) => cmd_deid::verify(args),
        Command::DeidMapping(args) => cmd_deid::show_mapping(args),
        Command::Eval(args) => cmd_eval::eval(args),
        Command::Split(args) => cmd_split::split(&cli, args),
        Command::Export(args) => cmd_export::export(&cli, args),
        Command::Fuse(args) => cmd_fuse::fuse(args),
        Command::Agree(args) => cmd_fuse::agree(args),
        Command::Labels(args) => cmd_labels::labels(&cli, args),
        Command::Serve(args) => cmd_serve::serve(&cli, args),
        Command::User(args) => cmd_serve::user(&cli, args),
        Command::Pacs(args) => cmd_pacs::pacs(&cli, args),
        Command::Triage(args) => cmd_triage::triage(&cli, args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
