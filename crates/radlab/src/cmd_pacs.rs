//! `radlab pacs listen`: the storage SCP of radlab-net, importing each received object into
//! the catalog and blob store of the command line's options.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use radlab_net::dimse::status;
use radlab_net::{ReceivedObject, ScpConfig, StoreHandler, StoreOutcome};
use radlab_store::import::{Source, SourceLocation, import_sources};
use radlab_store::{BlobStore, Catalog, ImportOptions, NoProgress};

use crate::Cli;

#[derive(Args, Debug)]
pub struct PacsArgs {
    #[command(subcommand)]
    command: PacsCommand,
}

#[derive(Subcommand, Debug)]
enum PacsCommand {
    /// Receive images from a PACS or modality (C-ECHO, C-STORE of every storage SOP class)
    /// and import each one into the catalog as it arrives.
    Listen(ListenArgs),
}

#[derive(Args, Debug)]
pub struct ListenArgs {
    /// Our AE title; associations must call it.
    #[arg(long, default_value = "RADLAB")]
    aet: String,
    /// TCP port (0: any free port, printed on start).
    #[arg(long, default_value_t = 11112)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    bind: String,
    /// Associations served at once; more are rejected (transient, local limit exceeded).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    max_associations: u32,
    /// Largest PDU we receive, in bytes.
    #[arg(long, default_value_t = 65_536, value_parser = clap::value_parser!(u32).range(4096..=4_194_304))]
    max_pdu: u32,
    /// Calling AE title allowed to associate (repeatable); without it any may.
    #[arg(long = "allow-calling", value_name = "AET", num_args = 1..)]
    allow_calling: Vec<String>,
    /// Seconds a peer may stay silent before its association is dropped.
    #[arg(long, default_value_t = 120)]
    idle_timeout: u64,
}

pub fn pacs(cli: &Cli, args: &PacsArgs) -> Result<ExitCode> {
    match &args.command {
        PacsCommand::Listen(a) => listen(cli, a),
    }
}

/// Imports each received object; one at a time, so concurrent associations never race on
/// the catalog.
struct Importer {
    rt: tokio::runtime::Runtime,
    catalog: Catalog,
    blobs: BlobStore,
    lock: Mutex<()>,
}

impl StoreHandler for Importer {
    fn store(&self, object: &ReceivedObject<'_>) -> StoreOutcome {
        let _turn = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        // The catalog's source path names where the object came from, not the staging file.
        let display = format!(
            "pacs://{}/{}",
            object.calling_ae_title, object.sop_instance_uid
        );
        let source = Source {
            display,
            location: SourceLocation::File(object.path.to_path_buf()),
        };
        let options = ImportOptions {
            jobs: Some(1),
            ..ImportOptions::default()
        };
        let label = format!("pacs://{}", object.calling_ae_title);
        let result = self.rt.block_on(import_sources(
            &self.catalog,
            &self.blobs,
            &[label],
            vec![source],
            Vec::new(),
            &options,
            Arc::new(NoProgress),
        ));
        match result {
            Err(e) => {
                tracing::error!(
                    "pacs: association {}: the catalog or blob store failed: {e}",
                    object.association
                );
                StoreOutcome::Failed {
                    status: status::OUT_OF_RESOURCES,
                    comment: "catalog or blob store unavailable".into(),
                }
            }
            Ok(s) if s.imported + s.already_present + s.other_encodings >= 1 => {
                StoreOutcome::Stored
            }
            Ok(s) => {
                let code = s
                    .problems
                    .first()
                    .map(|p| p.reason_code.clone())
                    .unwrap_or_else(|| "already-quarantined".into());
                StoreOutcome::Failed {
                    status: status::CANNOT_UNDERSTAND,
                    comment: format!("not imported: {code}"),
                }
            }
        }
    }
}

fn listen(cli: &Cli, args: &ListenArgs) -> Result<ExitCode> {
    radlab_net::scp::check_ae_title(&args.aet)?;
    let rt = crate::cmd_import::runtime()?;
    let (catalog, blobs) = rt.block_on(crate::cmd_import::stores(cli))?;
    let listener = TcpListener::bind((args.bind.as_str(), args.port))
        .with_context(|| format!("cannot listen on {}:{}", args.bind, args.port))?;
    let addr = listener.local_addr()?;
    let staging_dir: PathBuf = cli
        .data_dir
        .join(format!(".pacs-staging-{}", std::process::id()));
    let config = ScpConfig {
        ae_title: args.aet.clone(),
        max_associations: args.max_associations as usize,
        max_pdu: args.max_pdu,
        allow_calling: args.allow_calling.clone(),
        staging_dir: staging_dir.clone(),
        idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
    };
    let importer = Arc::new(Importer {
        rt,
        catalog,
        blobs,
        lock: Mutex::new(()),
    });
    println!("radlab pacs listening on {addr} as AE {}", args.aet.trim());
    use std::io::Write as _;
    std::io::stdout().flush()?;
    let result = radlab_net::serve(listener, config, importer);
    let _ = std::fs::remove_dir_all(&staging_dir);
    result?;
    Ok(ExitCode::SUCCESS)
}
