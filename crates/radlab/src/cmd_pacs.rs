//! `radlab pacs listen`: the storage SCP of radlab-net, importing each received object into
//! the catalog and blob store of the command line's options, de-identified first with
//! `--deid` exactly as `radlab import --deid` does. `radlab serve --dicom-port` runs the same
//! SCP beside the HTTP server (`bind`, `spawn`).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use radlab_deid::{DeidOption, Profile};
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
    /// De-identify every object with this profile before it is imported, so that nothing
    /// identifying is catalogued or stored (profiles as for `radlab deid`).
    #[arg(long, value_name = "PROFILE")]
    deid: Option<String>,
    /// An Annex E option for --deid (repeatable; names as for `radlab deid --option`).
    #[arg(long = "deid-option", alias = "option", value_parser = crate::cmd_deid::parse_option, requires = "deid")]
    deid_options: Vec<radlab_deid::DeidOption>,
    /// The project key file for --deid.
    #[arg(long, env = "RADLAB_DEID_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// Burned-in text rules for --deid (see `radlab deid --burned-in`).
    #[arg(long, requires = "deid")]
    burned_in: Option<PathBuf>,
    /// With --deid: append the encrypted mapping back to the originals to this file (keep
    /// it outside the data folder).
    #[arg(long, requires = "deid")]
    mapping: Option<PathBuf>,
}

pub fn pacs(cli: &Cli, args: &PacsArgs) -> Result<ExitCode> {
    match &args.command {
        PacsCommand::Listen(a) => listen(cli, a),
    }
}

/// De-identification on arrival: the profile of `radlab import --deid`, and where the
/// encrypted mapping back to the originals goes.
pub(crate) struct Deid {
    profile: Profile,
    mapping: Option<PathBuf>,
}

impl Deid {
    /// The profile as `radlab import --deid` builds it (key, options, burned-in rules).
    pub(crate) fn new(
        profile: &str,
        options: &[DeidOption],
        key_file: Option<&Path>,
        burned_in: Option<&Path>,
        mapping: Option<&Path>,
        flag: &str,
    ) -> Result<Deid> {
        let Some(key_file) = key_file else {
            bail!("{flag} needs the project key: --key-file FILE (or RADLAB_DEID_KEY_FILE)");
        };
        let profile = crate::cmd_deid::ProfileArgs::new(
            profile.to_string(),
            options.to_vec(),
            key_file.to_path_buf(),
            burned_in.map(Path::to_path_buf),
        )
        .profile()?;
        Ok(Deid {
            profile,
            mapping: mapping.map(Path::to_path_buf),
        })
    }
}

/// Imports each received object, de-identified first when a profile is set; imports run
/// one at a time, so concurrent associations never race on the catalog.
pub(crate) struct Importer {
    rt: tokio::runtime::Handle,
    catalog: Catalog,
    blobs: BlobStore,
    deid: Option<Deid>,
    lock: Mutex<()>,
}

impl Importer {
    pub(crate) fn new(
        rt: tokio::runtime::Handle,
        catalog: Catalog,
        blobs: BlobStore,
        deid: Option<Deid>,
    ) -> Importer {
        Importer {
            rt,
            catalog,
            blobs,
            deid,
            lock: Mutex::new(()),
        }
    }

    /// Import one Part 10 file, catalogued under `display`.
    fn import(
        &self,
        association: u64,
        path: &Path,
        display: String,
        label: String,
    ) -> StoreOutcome {
        let source = Source {
            display,
            location: SourceLocation::File(path.to_path_buf()),
        };
        let options = ImportOptions {
            jobs: Some(1),
            ..ImportOptions::default()
        };
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
                    "pacs: association {association}: the catalog or blob store failed: {e}"
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

    /// De-identify the received file into a folder beside it (removed afterwards), then
    /// import the de-identified object; the catalog never sees the received one.
    fn store_deidentified(&self, deid: &Deid, object: &ReceivedObject<'_>) -> StoreOutcome {
        let out_dir = object.path.with_extension("deid");
        let outcome = radlab_deid::batch::deidentify_file(object.path, &out_dir, &deid.profile);
        let result = (|| {
            if let Some(why) = &outcome.review {
                tracing::warn!(
                    "pacs: association {}: routed to review, not imported: {why}",
                    object.association
                );
                return StoreOutcome::Failed {
                    status: status::CANNOT_UNDERSTAND,
                    comment: "not imported: routed to review (burned-in text suspected)".into(),
                };
            }
            let written = outcome.output.as_ref().map(PathBuf::from);
            let (Some(written), true) = (written, outcome.ok()) else {
                // Errors and findings name elements and reasons, never values.
                tracing::warn!(
                    "pacs: association {}: not de-identified: {}{}",
                    object.association,
                    outcome.error.as_deref().unwrap_or("no output"),
                    if outcome.findings.is_empty() {
                        String::new()
                    } else {
                        format!(" ({} verifier finding(s))", outcome.findings.len())
                    }
                );
                return StoreOutcome::Failed {
                    status: status::CANNOT_UNDERSTAND,
                    comment: "not imported: de-identification failed".into(),
                };
            };
            // Named by the profile from the new UIDs (or md5 of the old one for the VinDr
            // presets), never by anything identifying.
            let name = written
                .strip_prefix(&out_dir)
                .unwrap_or(&written)
                .to_string_lossy()
                .replace('\\', "/");
            let display = format!("pacs://{}/{name}", object.calling_ae_title);
            let label = format!("pacs://{}", object.calling_ae_title);
            let _turn = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            if let (Some(mapping), Some(record)) = (&deid.mapping, &outcome.mapping)
                && let Err(e) = radlab_deid::mapping::append_mapping(
                    mapping,
                    deid.profile.key(),
                    std::slice::from_ref(record),
                )
            {
                tracing::error!(
                    "pacs: association {}: cannot append to the mapping: {e}",
                    object.association
                );
                return StoreOutcome::Failed {
                    status: status::OUT_OF_RESOURCES,
                    comment: "cannot write the de-identification mapping".into(),
                };
            }
            self.import(object.association, &written, display, label)
        })();
        let _ = std::fs::remove_dir_all(&out_dir);
        result
    }
}

impl StoreHandler for Importer {
    fn store(&self, object: &ReceivedObject<'_>) -> StoreOutcome {
        if let Some(deid) = &self.deid {
            return self.store_deidentified(deid, object);
        }
        let _turn = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        // The catalog's source path names where the object came from, not the staging file.
        let display = format!(
            "pacs://{}/{}",
            object.calling_ae_title, object.sop_instance_uid
        );
        let label = format!("pacs://{}", object.calling_ae_title);
        self.import(object.association, object.path, display, label)
    }
}

/// How to run the SCP, from `radlab pacs listen` or `radlab serve --dicom-port`.
pub(crate) struct ScpSettings {
    pub aet: String,
    pub bind: String,
    pub port: u16,
    pub max_associations: usize,
    pub max_pdu: u32,
    pub allow_calling: Vec<String>,
    pub idle_timeout: Duration,
}

/// A bound SCP, ready to serve.
pub(crate) struct BoundScp {
    pub listener: TcpListener,
    pub address: SocketAddr,
    pub config: ScpConfig,
}

/// Check the settings, bind the port, and name the staging folder (in the data folder).
pub(crate) fn bind(cli: &Cli, settings: &ScpSettings) -> Result<BoundScp> {
    radlab_net::scp::check_ae_title(&settings.aet)?;
    let listener = TcpListener::bind((settings.bind.as_str(), settings.port))
        .with_context(|| format!("cannot listen on {}:{}", settings.bind, settings.port))?;
    let address = listener.local_addr()?;
    let config = ScpConfig {
        ae_title: settings.aet.clone(),
        max_associations: settings.max_associations,
        max_pdu: settings.max_pdu,
        allow_calling: settings.allow_calling.clone(),
        staging_dir: cli
            .data_dir
            .join(format!(".pacs-staging-{}", std::process::id())),
        idle_timeout: settings.idle_timeout.max(Duration::from_secs(1)),
    };
    // Made before the address is announced, so a sender never races its creation.
    std::fs::create_dir_all(&config.staging_dir)
        .with_context(|| format!("cannot create {}", config.staging_dir.display()))?;
    Ok(BoundScp {
        listener,
        address,
        config,
    })
}

/// The line tests and scripts read for the address.
pub(crate) fn announce(scp: &BoundScp, deid: Option<&Deid>) -> Result<()> {
    use std::io::Write as _;
    println!(
        "radlab pacs listening on {} as AE {}{}",
        scp.address,
        scp.config.ae_title.trim(),
        match deid {
            Some(d) => format!(", de-identifying with {}", d.profile.name()),
            None => String::new(),
        }
    );
    std::io::stdout().flush()?;
    Ok(())
}

/// Start the SCP on its own thread (inside `radlab serve`).
pub(crate) fn spawn(scp: BoundScp, importer: Arc<Importer>) -> Result<()> {
    std::thread::Builder::new()
        .name("pacs-listen".into())
        .spawn(move || {
            let staging = scp.config.staging_dir.clone();
            if let Err(e) = radlab_net::serve(scp.listener, scp.config, importer) {
                tracing::error!("pacs: the DICOM listener stopped: {e}");
                eprintln!("the DICOM listener stopped: {e}");
            }
            let _ = std::fs::remove_dir_all(&staging);
        })
        .context("cannot start the DICOM listener")?;
    Ok(())
}

fn listen(cli: &Cli, args: &ListenArgs) -> Result<ExitCode> {
    let deid = match &args.deid {
        Some(profile) => Some(Deid::new(
            profile,
            &args.deid_options,
            args.key_file.as_deref(),
            args.burned_in.as_deref(),
            args.mapping.as_deref(),
            "--deid",
        )?),
        None => None,
    };
    let rt = crate::cmd_import::runtime()?;
    let (catalog, blobs) = rt.block_on(crate::cmd_import::stores(cli))?;
    let scp = bind(
        cli,
        &ScpSettings {
            aet: args.aet.clone(),
            bind: args.bind.clone(),
            port: args.port,
            max_associations: args.max_associations as usize,
            max_pdu: args.max_pdu,
            allow_calling: args.allow_calling.clone(),
            idle_timeout: Duration::from_secs(args.idle_timeout),
        },
    )?;
    let importer = Arc::new(Importer::new(rt.handle().clone(), catalog, blobs, deid));
    announce(&scp, importer.deid.as_ref())?;
    let staging_dir = scp.config.staging_dir.clone();
    let result = radlab_net::serve(scp.listener, scp.config, importer);
    let _ = std::fs::remove_dir_all(&staging_dir);
    result?;
    Ok(ExitCode::SUCCESS)
}
