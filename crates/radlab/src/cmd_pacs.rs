//! `radlab pacs listen`: the storage SCP of radlab-net, importing each received object into
//! the catalog and blob store of the command line's options, de-identified first with
//! `--deid` exactly as `radlab import --deid` does. `radlab serve --dicom-port` runs the same
//! SCP beside the HTTP server (`bind`, `spawn`).
//!
//! The SCU commands: `radlab pacs echo` (C-ECHO), `find` (C-FIND, Study Root), `move`
//! (C-MOVE of studies to the storage SCP this command runs for the duration, through the same
//! `Importer`) and `get` (C-GET, the objects coming back on the same association, through the
//! same `Importer`), with a resumable retrieval job file (`radlab_net::job`); `web-find`
//! (QIDO-RS) and `web-retrieve` (WADO-RS, imported through the same `Importer`, with the same
//! kind of job file) against a DICOMweb server.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use radlab_deid::DeidOption;
use radlab_net::dimse::status;
use radlab_net::{ReceivedObject, ScpConfig, StoreHandler, StoreOutcome};
use radlab_store::{BlobStore, Catalog, QidoQuery, Visibility};

use radlab_net::job::{JobPeer, JobStudy, Operation, PacsJob, Retries, StudyState, save_json};
use radlab_net::scu::{self, Identifier, Peer};
use serde::{Deserialize, Serialize};

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
    /// Check that a PACS answers (C-ECHO).
    Echo(EchoArgs),
    /// Query a PACS for studies or series (C-FIND, Study Root).
    Find(FindArgs),
    /// Retrieve studies from a PACS (C-MOVE to the storage SCP this command runs meanwhile),
    /// importing each object as `pacs listen` does; a job file records what arrived, so a
    /// run can be resumed.
    Move(Box<MoveArgs>),
    /// Retrieve studies from a PACS by C-GET (the objects come back on the same association:
    /// no port to open, no AE title for the PACS to know beyond ours), importing each object
    /// as `pacs listen` does, with the resumable job file of `move`.
    Get(Box<GetArgs>),
    /// Search a DICOMweb server for studies (QIDO-RS), with the filters of `find`.
    WebFind(WebFindArgs),
    /// Retrieve studies from a DICOMweb server (WADO-RS) and import each object as `pacs
    /// move` does, with the same resumable job file.
    WebRetrieve(Box<WebRetrieveArgs>),
}

/// What to retrieve and how, the same for `move` and `web-retrieve`: the studies, the job
/// file, the retries.
#[derive(Args, Debug)]
pub struct JobArgs {
    /// A study to retrieve, by Study Instance UID (repeatable).
    #[arg(long = "study", value_name = "UID", num_args = 1..)]
    studies: Vec<String>,
    /// Retrieve the studies listed by `radlab pacs find --json` or `web-find --json` in this
    /// file.
    #[arg(long, value_name = "FILE")]
    from_find: Option<PathBuf>,
    /// Go on with this job file: retrieve only its studies that are not done.
    #[arg(long, value_name = "JOB.json")]
    resume: Option<PathBuf>,
    /// Where to write the job file (default: DATA/pacs-jobs/OPERATION-TIME-PID.json).
    #[arg(long, value_name = "JOB.json", conflicts_with = "resume")]
    job: Option<PathBuf>,
    /// Only count what would be retrieved (C-FIND or QIDO-RS); nothing is fetched or
    /// written.
    #[arg(long)]
    dry_run: bool,
    /// Attempts per study in this run.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    attempts: u32,
    /// Seconds before the second attempt, doubled for each next one (at most 60).
    #[arg(long, default_value_t = 2.0)]
    retry_delay: f64,
}

impl JobArgs {
    fn retries(&self) -> Retries {
        Retries {
            attempts: self.attempts,
            retry_delay: self.retry_delay,
        }
    }

    /// `--resume` takes the studies of the job file and nothing else that names studies.
    fn check_resume(&self, query: &QueryArgs) -> Result<()> {
        if !self.studies.is_empty() || self.from_find.is_some() || query.any() {
            bail!(
                "--resume takes the studies of the job file; leave out --study, --from-find and query options"
            );
        }
        Ok(())
    }

    /// The job file's path: `--job`, or `DATA/pacs-jobs/OPERATION-TIME-PID.json`.
    fn job_path(&self, cli: &Cli, operation: &str) -> PathBuf {
        self.job.clone().unwrap_or_else(|| {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            cli.data_dir
                .join("pacs-jobs")
                .join(format!("{operation}-{secs}-{}.json", std::process::id()))
        })
    }
}

/// De-identification on arrival, the same options for `listen`, `move` and `web-retrieve`.
#[derive(Args, Debug)]
pub struct DeidArgs {
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

impl DeidArgs {
    /// The profile and key to apply, or `None` without --deid.
    fn build(&self) -> Result<Option<Deid>> {
        self.deid
            .as_deref()
            .map(|profile| {
                deid(
                    profile,
                    &self.deid_options,
                    self.key_file.as_deref(),
                    self.burned_in.as_deref(),
                    self.mapping.as_deref(),
                    "--deid",
                )
            })
            .transpose()
    }
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
    #[command(flatten)]
    deid: DeidArgs,
    /// When a C-STORE is answered Success: `queued` (durable in the spool folder, imported
    /// by a worker; the fastest) or `imported` (after the import committed).
    #[arg(long, value_enum, default_value = "queued")]
    ack: Ack,
    /// Also answer C-FIND and C-MOVE (Study Root Query/Retrieve) over the images of this
    /// project; without it only C-ECHO and C-STORE are offered.
    #[arg(long, value_name = "PROJECT")]
    qr_project: Option<String>,
    /// A C-MOVE destination, AET=HOST:PORT (repeatable); a move to any other AE title is
    /// refused (A801).
    #[arg(long = "peer", value_name = "AET=HOST:PORT", requires = "qr_project")]
    peers: Vec<radlab_net::MovePeer>,
}

pub fn pacs(cli: &Cli, args: &PacsArgs) -> Result<ExitCode> {
    match &args.command {
        PacsCommand::Listen(a) => listen(cli, a),
        PacsCommand::Echo(a) => echo(a),
        PacsCommand::Find(a) => find(a),
        PacsCommand::Move(a) => retrieve(cli, &a.common, Retrieval::Move(a)),
        PacsCommand::Get(a) => retrieve(cli, &a.common, Retrieval::Get(a)),
        PacsCommand::WebFind(a) => web_find(a),
        PacsCommand::WebRetrieve(a) => web_retrieve(cli, a),
    }
}

pub(crate) use radlab_net::ingest::{Deid, Importer};

/// De-identification on arrival with the profile `radlab import --deid` builds (key,
/// options, burned-in rules), the encrypted mapping appended to `mapping`.
pub(crate) fn deid(
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

/// When the storage SCP answers a C-STORE with Success.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// Once the object is durable in the spool folder (synced); decoding, de-identification
    /// and cataloguing follow on a worker, in batches; what fails is kept in the spool's
    /// failed folder and quarantined.
    Queued,
    /// Once the object is decoded, de-identified (with --deid) and catalogued; a failure is
    /// answered to the sender (C000, A700).
    Imported,
}

/// The spool of the SCPs of this data folder.
pub(crate) fn spool_dir(cli: &Cli) -> PathBuf {
    cli.data_dir.join("incoming").join("spool")
}

/// The SCP's C-STORE handler for `ack`: the importer itself, or a spool it drains.
pub(crate) fn store_handler(
    cli: &Cli,
    ack: Ack,
    importer: Arc<Importer>,
) -> Result<Arc<dyn StoreHandler>> {
    Ok(match ack {
        Ack::Imported => importer,
        Ack::Queued => {
            let dir = spool_dir(cli);
            let spool = radlab_net::ingest::Spool::open(&dir, importer)
                .with_context(|| format!("cannot create the spool folder {}", dir.display()))?;
            spool
                .start()
                .context("cannot start the spool's import thread")?;
            spool
        }
    })
}

/// Query/retrieve over one project of the catalog: C-FIND keys become a QIDO-RS query of
/// the store (`QidoQuery`, project visibility), C-MOVE reads each instance's object from the
/// blob store by its hash.
pub(crate) struct ProjectQr {
    rt: tokio::runtime::Handle,
    catalog: Catalog,
    blobs: BlobStore,
    project: String,
}

/// At most this many QIDO-RS queries for one identifier (the product of its lists of
/// UIDs and modalities).
const MAX_EXPANDED_QUERIES: usize = 1000;

impl ProjectQr {
    /// One `QidoQuery` per combination of the identifier's list values (UIDs, modalities).
    fn queries(keys: &radlab_net::qr::QueryKeys) -> std::result::Result<Vec<QidoQuery>, String> {
        let options = |list: &[String]| -> Vec<Option<String>> {
            if list.is_empty() {
                vec![None]
            } else {
                list.iter().cloned().map(Some).collect()
            }
        };
        let (studies, series, instances, modalities) = (
            options(&keys.study_instance_uids),
            options(&keys.series_instance_uids),
            options(&keys.sop_instance_uids),
            options(&keys.modalities),
        );
        if studies.len() * series.len() * instances.len() * modalities.len() > MAX_EXPANDED_QUERIES
        {
            return Err("too many values in the identifier's lists".into());
        }
        let base = QidoQuery {
            patient_id: keys.patient_id.clone(),
            patient_name: keys.patient_name.clone(),
            accession_number: keys.accession_number.clone(),
            study_description: keys.study_description.clone(),
            series_description: keys.series_description.clone(),
            body_part_examined: keys.body_part_examined.clone(),
            study_date: keys.study_date.clone(),
            series_number: keys.series_number,
            instance_number: keys.instance_number,
            sop_class_uid: keys.sop_class_uid.clone(),
            ..QidoQuery::default()
        };
        let mut out = Vec::new();
        for st in &studies {
            for se in &series {
                for i in &instances {
                    for m in &modalities {
                        out.push(QidoQuery {
                            study_instance_uid: st.clone(),
                            series_instance_uid: se.clone(),
                            sop_instance_uid: i.clone(),
                            modality: m.clone(),
                            ..base.clone()
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// Every page of `fetch` for each query, each entity once (by `key`), in order.
    fn all_pages<T>(
        &self,
        keys: &radlab_net::qr::QueryKeys,
        key: impl Fn(&T) -> String,
        fetch: impl AsyncFn(&QidoQuery) -> radlab_store::Result<Vec<T>>,
    ) -> std::result::Result<Vec<T>, String> {
        const PAGE: i64 = 10_000;
        let queries = Self::queries(keys)?;
        self.rt.block_on(async {
            let mut seen = std::collections::HashSet::new();
            let mut out = Vec::new();
            for mut q in queries {
                q.limit = PAGE;
                loop {
                    let page = fetch(&q)
                        .await
                        .map_err(|e| format!("the catalog failed: {e}"))?;
                    let n = page.len() as i64;
                    for item in page {
                        if seen.insert(key(&item)) {
                            out.push(item);
                        }
                    }
                    if n < PAGE {
                        break;
                    }
                    q.offset += PAGE;
                }
            }
            Ok(out)
        })
    }
}

fn optional_number(n: Option<i64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_default()
}

impl radlab_net::QueryRetrieve for ProjectQr {
    fn find(
        &self,
        keys: &radlab_net::qr::QueryKeys,
    ) -> std::result::Result<Vec<radlab_net::qr::Match>, String> {
        use radlab_net::qr::Level;
        let project = Visibility::Project;
        let p = self.project.as_str();
        let c = &self.catalog;
        Ok(match keys.level {
            Level::Study => self
                .all_pages(
                    keys,
                    |s: &radlab_store::StudyMatch| s.study_instance_uid.clone(),
                    async |q| c.qido_studies(p, &project, q).await,
                )?
                .into_iter()
                .map(|s| {
                    radlab_net::qr::Match::from([
                        (0x0020_000D, s.study_instance_uid),
                        (0x0008_0020, s.study_date),
                        (0x0008_0030, s.study_time),
                        (0x0008_0050, s.accession_number),
                        (0x0008_1030, s.study_description),
                        (0x0010_0020, s.patient_id),
                        (0x0010_0010, s.patient_name),
                        (0x0010_0040, s.patient_sex),
                        (0x0010_0030, s.patient_birth_date),
                        (0x0008_0061, s.modalities.join("\\")),
                        (0x0020_1206, s.series.to_string()),
                        (0x0020_1208, s.instances.to_string()),
                    ])
                })
                .collect(),
            Level::Series => self
                .all_pages(
                    keys,
                    |s: &radlab_store::SeriesMatch| s.series_instance_uid.clone(),
                    async |q| c.qido_series(p, &project, q).await,
                )?
                .into_iter()
                .map(|s| {
                    radlab_net::qr::Match::from([
                        (0x0020_000D, s.study_instance_uid),
                        (0x0020_000E, s.series_instance_uid),
                        (0x0008_0060, s.modality),
                        (0x0018_0015, s.body_part_examined),
                        (0x0020_0011, optional_number(s.series_number)),
                        (0x0008_103E, s.series_description),
                        (0x0020_1209, s.instances.to_string()),
                    ])
                })
                .collect(),
            Level::Image => self
                .all_pages(
                    keys,
                    |i: &radlab_store::InstanceMatch| i.sop_instance_uid.clone(),
                    async |q| c.qido_instances(p, &project, q).await,
                )?
                .into_iter()
                .map(|i| {
                    radlab_net::qr::Match::from([
                        (0x0020_000D, i.study_instance_uid),
                        (0x0020_000E, i.series_instance_uid),
                        (0x0008_0018, i.sop_instance_uid),
                        (0x0008_0016, i.sop_class_uid),
                        (0x0020_0013, optional_number(i.instance_number)),
                        (0x0028_0010, i.rows.to_string()),
                        (0x0028_0011, i.columns.to_string()),
                        (0x0028_0008, i.frames.to_string()),
                        (0x0028_0100, i.bits_allocated.to_string()),
                    ])
                })
                .collect(),
        })
    }

    fn instances(
        &self,
        keys: &radlab_net::qr::QueryKeys,
    ) -> std::result::Result<Vec<radlab_net::qr::StoredInstance>, String> {
        let project = Visibility::Project;
        let p = self.project.as_str();
        let c = &self.catalog;
        Ok(self
            .all_pages(
                keys,
                |i: &radlab_store::InstanceMatch| i.sop_instance_uid.clone(),
                async |q| c.qido_instances(p, &project, q).await,
            )?
            .into_iter()
            .map(|i| radlab_net::qr::StoredInstance {
                sop_class_uid: i.sop_class_uid,
                sop_instance_uid: i.sop_instance_uid,
                transfer_syntax_uid: i.transfer_syntax_uid,
                key: i.blob_hash,
            })
            .collect())
    }

    fn load(
        &self,
        instance: &radlab_net::qr::StoredInstance,
    ) -> std::result::Result<Vec<u8>, String> {
        self.rt
            .block_on(self.blobs.get(&instance.key))
            .map(|b| b.to_vec())
            .map_err(|e| format!("the blob store failed: {e}"))
    }
}

/// Check that the project of `--qr-project` exists.
pub(crate) async fn check_qr_project(catalog: &Catalog, project: &str) -> Result<()> {
    if !catalog.project_exists(project).await? {
        bail!(
            "no project {project} for query/retrieve (make it first; `radlab serve` or `radlab labels`)"
        );
    }
    Ok(())
}

/// Query/retrieve over `project` for the SCP, moving to `peers`.
pub(crate) fn query_retrieve(
    rt: tokio::runtime::Handle,
    catalog: Catalog,
    blobs: BlobStore,
    project: &str,
    peers: Vec<radlab_net::MovePeer>,
) -> radlab_net::QueryRetrieveConfig {
    radlab_net::QueryRetrieveConfig {
        provider: Arc::new(ProjectQr {
            rt,
            catalog,
            blobs,
            project: project.to_string(),
        }),
        peers,
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
    /// Query/retrieve, and the project it answers for.
    pub query_retrieve: Option<(String, radlab_net::QueryRetrieveConfig)>,
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
    remove_stale_staging(&cli.data_dir);
    // Made before the address is announced, so a sender never races its creation.
    radlab_net::scp::make_staging_dir(&config.staging_dir)
        .with_context(|| format!("cannot create {}", config.staging_dir.display()))?;
    Ok(BoundScp {
        listener,
        address,
        config,
        query_retrieve: None,
    })
}

/// Remove the staging folders of SCP processes that are gone (stopped by a signal, their
/// half-received objects left behind); a live process's folder is left alone. Linux only
/// (it asks /proc whether the process lives).
fn remove_stale_staging(data_dir: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(".pacs-staging-")
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The line tests and scripts read for the address.
pub(crate) fn announce(scp: &BoundScp, deid: Option<&Deid>, ack: Ack) -> Result<()> {
    use std::io::Write as _;
    println!(
        "radlab pacs listening on {} as AE {}{}{}{}",
        scp.address,
        scp.config.ae_title.trim(),
        match ack {
            Ack::Queued => ", acknowledging once spooled",
            Ack::Imported => ", acknowledging once imported",
        },
        match deid {
            Some(d) => format!(", de-identifying with {}", d.profile.name()),
            None => String::new(),
        },
        match &scp.query_retrieve {
            Some((project, qr)) => format!(
                ", query/retrieve over project {project} ({} move destination(s))",
                qr.peers.len()
            ),
            None => String::new(),
        }
    );
    std::io::stdout().flush()?;
    Ok(())
}

/// Start the SCP on its own thread (inside `radlab serve`).
pub(crate) fn spawn(scp: BoundScp, handler: Arc<dyn StoreHandler>) -> Result<()> {
    std::thread::Builder::new()
        .name("pacs-listen".into())
        .spawn(move || {
            let staging = scp.config.staging_dir.clone();
            let qr = scp.query_retrieve.map(|(_, qr)| qr);
            if let Err(e) = radlab_net::serve_with(scp.listener, scp.config, handler, qr) {
                tracing::error!("pacs: the DICOM listener stopped: {e}");
                eprintln!("the DICOM listener stopped: {e}");
            }
            let _ = std::fs::remove_dir_all(&staging);
        })
        .context("cannot start the DICOM listener")?;
    Ok(())
}

fn listen(cli: &Cli, args: &ListenArgs) -> Result<ExitCode> {
    let deid = args.deid.build()?;
    let rt = crate::cmd_import::runtime()?;
    let (catalog, blobs) = rt.block_on(crate::cmd_import::stores(cli))?;
    let mut scp = bind(
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
    if let Some(project) = &args.qr_project {
        rt.block_on(check_qr_project(&catalog, project))?;
        scp.query_retrieve = Some((
            project.clone(),
            query_retrieve(
                rt.handle().clone(),
                catalog.clone(),
                blobs.clone(),
                project,
                args.peers.clone(),
            ),
        ));
    }
    announce(&scp, deid.as_ref(), args.ack)?;
    let importer = Arc::new(Importer::new(rt.handle().clone(), catalog, blobs, deid));
    let handler = store_handler(cli, args.ack, importer)?;
    let staging_dir = scp.config.staging_dir.clone();
    let qr = scp.query_retrieve.map(|(_, qr)| qr);
    let result = radlab_net::serve_with(scp.listener, scp.config, handler, qr);
    let _ = std::fs::remove_dir_all(&staging_dir);
    result?;
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------
// SCU: echo, find, move.

/// The PACS to talk to (for `move --resume`, taken from the job file when left out).
#[derive(Args, Debug, Clone)]
pub struct PeerArgs {
    /// The PACS's host name or address.
    #[arg(long)]
    host: Option<String>,
    /// The PACS's DICOM port.
    #[arg(long)]
    port: Option<u16>,
    /// The PACS's AE title (called AE).
    #[arg(long)]
    aec: Option<String>,
    /// Our AE title (calling AE); the PACS must know it.
    #[arg(long)]
    aet: Option<String>,
    /// Seconds of silence from the PACS before we give up on an operation.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

impl PeerArgs {
    fn peer(&self, job: Option<&JobPeer>) -> Result<Peer> {
        let host = self
            .host
            .clone()
            .or_else(|| job.map(|j| j.host.clone()))
            .context("--host is required")?;
        let port = self
            .port
            .or_else(|| job.map(|j| j.port))
            .context("--port is required")?;
        let aec = self
            .aec
            .clone()
            .or_else(|| job.map(|j| j.aec.clone()))
            .context("--aec is required (the PACS's AE title)")?;
        let aet = self
            .aet
            .clone()
            .or_else(|| job.map(|j| j.aet.clone()))
            .unwrap_or_else(|| "RADLAB".into());
        radlab_net::scp::check_ae_title(&aec)?;
        radlab_net::scp::check_ae_title(&aet)?;
        Ok(Peer {
            host,
            port,
            called_ae_title: aec,
            calling_ae_title: aet,
            timeout: Duration::from_secs(self.timeout.max(1)),
            max_pdu: 65_536,
        })
    }
}

#[derive(Args, Debug)]
pub struct EchoArgs {
    #[command(flatten)]
    peer: PeerArgs,
}

/// Matching keys of `find` and `move`.
#[derive(Args, Debug, Clone, Default)]
pub struct QueryArgs {
    /// Study date or range: YYYYMMDD, YYYYMMDD-YYYYMMDD, -YYYYMMDD or YYYYMMDD-.
    #[arg(long, value_parser = parse_date_range)]
    date: Option<String>,
    /// Modality (CR, DX, ...): Modalities in Study at study level, Modality at series level.
    #[arg(long)]
    modality: Option<String>,
    /// Body Part Examined (a series attribute; at study level, the studies with such a
    /// series).
    #[arg(long = "body-part")]
    body_part: Option<String>,
    /// Accession Number.
    #[arg(long)]
    accession: Option<String>,
    /// Patient ID.
    #[arg(long = "patient-id")]
    patient_id: Option<String>,
}

impl QueryArgs {
    fn any(&self) -> bool {
        self.date.is_some()
            || self.modality.is_some()
            || self.body_part.is_some()
            || self.accession.is_some()
            || self.patient_id.is_some()
    }
}

fn parse_date_range(s: &str) -> std::result::Result<String, String> {
    let ok_date = |d: &str| d.is_empty() || (d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()));
    let ok = match s.split_once('-') {
        Some((a, b)) => ok_date(a) && ok_date(b) && !(a.is_empty() && b.is_empty()),
        None => s.len() == 8 && ok_date(s),
    };
    if ok {
        Ok(s.to_string())
    } else {
        Err("a date is YYYYMMDD, a range YYYYMMDD-YYYYMMDD, -YYYYMMDD or YYYYMMDD-".into())
    }
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Study,
    Series,
}

#[derive(Args, Debug)]
pub struct FindArgs {
    #[command(flatten)]
    peer: PeerArgs,
    #[command(flatten)]
    query: QueryArgs,
    /// Query/Retrieve Level.
    #[arg(long, value_enum, default_value = "study")]
    level: Level,
    /// Also ask for and print Patient ID and Patient Name.
    #[arg(long)]
    show_patient: bool,
    /// Print a JSON list (the input of `pacs move --from-find`).
    #[arg(long)]
    json: bool,
}

/// The options `move` and `get` share: the PACS, what to retrieve and how, de-identification.
#[derive(Args, Debug)]
pub struct RetrieveArgs {
    #[command(flatten)]
    peer: PeerArgs,
    #[command(flatten)]
    query: QueryArgs,
    #[command(flatten)]
    run: JobArgs,
    #[command(flatten)]
    deid: DeidArgs,
}

#[derive(Args, Debug)]
pub struct MoveArgs {
    #[command(flatten)]
    common: RetrieveArgs,
    /// Move Destination: the AE title of the storage SCP this command runs (the PACS must
    /// know it with our host and --listen-port).
    #[arg(long, default_value = "RADLAB")]
    dest: String,
    /// Port of our storage SCP (the one the PACS has for --dest).
    #[arg(long, default_value_t = 11112)]
    listen_port: u16,
    /// Address our storage SCP listens on.
    #[arg(long, default_value = "0.0.0.0")]
    listen_bind: String,
    /// Calling AE titles our SCP accepts (repeatable; default: the PACS's, --aec).
    #[arg(long = "allow-calling", value_name = "AET", num_args = 1..)]
    allow_calling: Vec<String>,
}

#[derive(Args, Debug)]
pub struct GetArgs {
    #[command(flatten)]
    common: RetrieveArgs,
    /// Also propose this storage SOP class (repeatable; by default the radiograph classes:
    /// CR, DX, MG, intra-oral, Secondary Capture and its multi-frame variants). Kept in the
    /// job file for `--resume`.
    #[arg(long = "sop-class", value_name = "UID", num_args = 1..)]
    sop_classes: Vec<String>,
}

mod tag {
    pub const STUDY_DATE: u32 = 0x0008_0020;
    pub const ACCESSION_NUMBER: u32 = 0x0008_0050;
    pub const MODALITY: u32 = 0x0008_0060;
    pub const MODALITIES_IN_STUDY: u32 = 0x0008_0061;
    pub const STUDY_DESCRIPTION: u32 = 0x0008_1030;
    pub const SERIES_DESCRIPTION: u32 = 0x0008_103E;
    pub const PATIENT_NAME: u32 = 0x0010_0010;
    pub const PATIENT_ID: u32 = 0x0010_0020;
    pub const BODY_PART_EXAMINED: u32 = 0x0018_0015;
    pub const STUDY_INSTANCE_UID: u32 = 0x0020_000D;
    pub const SERIES_INSTANCE_UID: u32 = 0x0020_000E;
    pub const SERIES_NUMBER: u32 = 0x0020_0011;
    pub const STUDY_SERIES: u32 = 0x0020_1206;
    pub const STUDY_INSTANCES: u32 = 0x0020_1208;
    pub const SERIES_INSTANCES: u32 = 0x0020_1209;
}

/// A study found by C-FIND (the `--json` form of `pacs find`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FoundStudy {
    study_instance_uid: String,
    #[serde(default)]
    study_date: String,
    #[serde(default)]
    modalities: Vec<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    accession_number: String,
    #[serde(default)]
    series: Option<u32>,
    #[serde(default)]
    instances: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    patient_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    patient_name: Option<String>,
}

/// A series found by C-FIND.
#[derive(Debug, Clone, Serialize)]
struct FoundSeries {
    study_instance_uid: String,
    series_instance_uid: String,
    modality: String,
    series_number: String,
    body_part: String,
    description: String,
    instances: Option<u32>,
}

fn text(id: &Identifier, tag: u32) -> String {
    id.get(&tag).cloned().unwrap_or_default()
}

fn number(id: &Identifier, tag: u32) -> Option<u32> {
    id.get(&tag).and_then(|v| v.trim().parse().ok())
}

fn study_keys(q: &QueryArgs, show_patient: bool) -> Vec<(u32, String)> {
    let mut keys = vec![
        (tag::STUDY_INSTANCE_UID, String::new()),
        (tag::STUDY_DATE, q.date.clone().unwrap_or_default()),
        (
            tag::ACCESSION_NUMBER,
            q.accession.clone().unwrap_or_default(),
        ),
        (
            tag::MODALITIES_IN_STUDY,
            q.modality.clone().unwrap_or_default(),
        ),
        (tag::STUDY_DESCRIPTION, String::new()),
        (tag::STUDY_SERIES, String::new()),
        (tag::STUDY_INSTANCES, String::new()),
    ];
    if show_patient || q.patient_id.is_some() {
        keys.push((tag::PATIENT_ID, q.patient_id.clone().unwrap_or_default()));
    }
    if show_patient {
        keys.push((tag::PATIENT_NAME, String::new()));
    }
    keys
}

/// Studies matching `q`: one study-level C-FIND, after a series-level one for the studies
/// with a series of the body part (Body Part Examined is a series attribute).
fn find_studies(peer: &Peer, q: &QueryArgs, show_patient: bool) -> Result<Vec<FoundStudy>> {
    let mut keys = study_keys(q, show_patient);
    if let Some(body_part) = &q.body_part {
        let series = scu::find(
            peer,
            "SERIES",
            &[
                (tag::STUDY_INSTANCE_UID, String::new()),
                (tag::SERIES_INSTANCE_UID, String::new()),
                (tag::BODY_PART_EXAMINED, body_part.clone()),
                (tag::MODALITY, q.modality.clone().unwrap_or_default()),
            ],
        )?;
        let mut uids: Vec<String> = series
            .iter()
            .map(|s| text(s, tag::STUDY_INSTANCE_UID))
            .filter(|u| !u.is_empty())
            .collect();
        uids.sort();
        uids.dedup();
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        keys.retain(|(t, _)| *t != tag::STUDY_INSTANCE_UID);
        keys.push((tag::STUDY_INSTANCE_UID, uids.join("\\")));
    }
    let found = scu::find(peer, "STUDY", &keys)?;
    let mut studies: Vec<FoundStudy> = found
        .iter()
        .map(|id| FoundStudy {
            study_instance_uid: text(id, tag::STUDY_INSTANCE_UID),
            study_date: text(id, tag::STUDY_DATE),
            modalities: text(id, tag::MODALITIES_IN_STUDY)
                .split('\\')
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect(),
            description: text(id, tag::STUDY_DESCRIPTION),
            accession_number: text(id, tag::ACCESSION_NUMBER),
            series: number(id, tag::STUDY_SERIES),
            instances: number(id, tag::STUDY_INSTANCES),
            patient_id: show_patient.then(|| text(id, tag::PATIENT_ID)),
            patient_name: show_patient.then(|| text(id, tag::PATIENT_NAME)),
        })
        .filter(|s| !s.study_instance_uid.is_empty())
        .collect();
    studies.sort_by(|a, b| {
        (&a.study_date, &a.study_instance_uid).cmp(&(&b.study_date, &b.study_instance_uid))
    });
    Ok(studies)
}

/// Series matching `q`: the studies matching its study-level keys, then each one's series
/// of the modality and body part.
fn find_series(peer: &Peer, q: &QueryArgs) -> Result<Vec<FoundSeries>> {
    let study_query = QueryArgs {
        modality: None,
        body_part: None,
        ..q.clone()
    };
    let studies = find_studies(peer, &study_query, false)?;
    let mut out = Vec::new();
    for study in studies {
        let found = scu::find(
            peer,
            "SERIES",
            &[
                (tag::STUDY_INSTANCE_UID, study.study_instance_uid.clone()),
                (tag::SERIES_INSTANCE_UID, String::new()),
                (tag::MODALITY, q.modality.clone().unwrap_or_default()),
                (
                    tag::BODY_PART_EXAMINED,
                    q.body_part.clone().unwrap_or_default(),
                ),
                (tag::SERIES_NUMBER, String::new()),
                (tag::SERIES_DESCRIPTION, String::new()),
                (tag::SERIES_INSTANCES, String::new()),
            ],
        )?;
        for id in found {
            out.push(FoundSeries {
                study_instance_uid: study.study_instance_uid.clone(),
                series_instance_uid: text(&id, tag::SERIES_INSTANCE_UID),
                modality: text(&id, tag::MODALITY),
                series_number: text(&id, tag::SERIES_NUMBER),
                body_part: text(&id, tag::BODY_PART_EXAMINED),
                description: text(&id, tag::SERIES_DESCRIPTION),
                instances: number(&id, tag::SERIES_INSTANCES),
            });
        }
    }
    Ok(out)
}

fn echo(args: &EchoArgs) -> Result<ExitCode> {
    let peer = args.peer.peer(None)?;
    let started = std::time::Instant::now();
    let code = scu::echo(&peer)?;
    if code != status::SUCCESS {
        bail!("C-ECHO answered with status 0x{code:04X}");
    }
    println!(
        "C-ECHO {} at {}:{}: success ({} ms)",
        peer.called_ae_title,
        peer.host,
        peer.port,
        started.elapsed().as_millis()
    );
    Ok(ExitCode::SUCCESS)
}

fn count(n: Option<u32>) -> String {
    n.map(|n| n.to_string()).unwrap_or_else(|| "?".into())
}

/// The study-level output of `find` and `web-find`: a table, or the JSON list that
/// `move --from-find` and `web-retrieve --from-find` read.
fn print_studies(studies: &[FoundStudy], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(studies)?);
        return Ok(());
    }
    println!("study_instance_uid\tdate\tmodalities\tseries\tinstances\tdescription");
    for s in studies {
        let mut line = format!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            s.study_instance_uid,
            s.study_date,
            s.modalities.join(","),
            count(s.series),
            count(s.instances),
            s.description
        );
        if let (Some(id), Some(name)) = (&s.patient_id, &s.patient_name) {
            line.push_str(&format!("\t{id}\t{name}"));
        }
        println!("{line}");
    }
    let instances: u32 = studies.iter().filter_map(|s| s.instances).sum();
    println!("{} studies, {instances} instances", studies.len());
    Ok(())
}

fn find(args: &FindArgs) -> Result<ExitCode> {
    let peer = args.peer.peer(None)?;
    match args.level {
        Level::Study => {
            let studies = find_studies(&peer, &args.query, args.show_patient)?;
            print_studies(&studies, args.json)?;
        }
        Level::Series => {
            let series = find_series(&peer, &args.query)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&series)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "study_instance_uid\tseries_instance_uid\tmodality\tbody_part\tinstances\tdescription"
            );
            for s in &series {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    s.study_instance_uid,
                    s.series_instance_uid,
                    s.modality,
                    s.body_part,
                    count(s.instances),
                    s.description
                );
            }
            let instances: u32 = series.iter().filter_map(|s| s.instances).sum();
            println!("{} series, {instances} instances", series.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What to retrieve: `--study` UIDs, a `find --json` (or `web-find --json`) file, or the
/// studies `search` finds for the query options; exactly one of them. Each study with the
/// instance count the list gave, duplicates dropped.
fn chosen_studies(
    studies: &[String],
    from_find: Option<&Path>,
    query: &QueryArgs,
    search: impl FnOnce() -> Result<Vec<FoundStudy>>,
) -> Result<Vec<(String, Option<u32>)>> {
    let sources = [!studies.is_empty(), from_find.is_some(), query.any()];
    match sources.iter().filter(|s| **s).count() {
        0 => bail!(
            "say what to retrieve: --study UID, --from-find FILE, query options (--date, \
             --modality, --body-part, --accession, --patient-id) or --resume JOB"
        ),
        1 => {}
        _ => bail!("--study, --from-find and query options exclude each other"),
    }
    let mut out: Vec<(String, Option<u32>)> = Vec::new();
    if !studies.is_empty() {
        out = studies
            .iter()
            .map(|u| (u.trim().to_string(), None))
            .collect();
    } else if let Some(file) = from_find {
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{}: not the JSON list of `pacs find --json`",
                file.display()
            )
        })?;
        for row in rows {
            let uid = row["study_instance_uid"]
                .as_str()
                .with_context(|| format!("{}: a row without study_instance_uid", file.display()))?;
            // A series-level row's count is the series', not the study's.
            let expected = if row.get("series_instance_uid").is_some() {
                None
            } else {
                row["instances"].as_u64().map(|n| n as u32)
            };
            out.push((uid.to_string(), expected));
        }
    } else {
        out = search()?
            .into_iter()
            .map(|s| (s.study_instance_uid, s.instances))
            .collect();
    }
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|(uid, _)| !uid.is_empty() && seen.insert(uid.clone()));
    Ok(out)
}

/// The instances the PACS has for a study (study-level C-FIND), if it says.
fn expected_instances(peer: &Peer, study: &str) -> Option<u32> {
    let found = scu::find(
        peer,
        "STUDY",
        &[
            (tag::STUDY_INSTANCE_UID, study.to_string()),
            (tag::STUDY_INSTANCES, String::new()),
        ],
    )
    .ok()?;
    found
        .first()
        .and_then(|id| number(id, tag::STUDY_INSTANCES))
}

/// The storage SCP's handler during a move: the `Importer`, counting what it stored.
struct Counting {
    inner: Arc<Importer>,
    stored: std::sync::atomic::AtomicU32,
}

impl StoreHandler for Counting {
    fn store(&self, object: &ReceivedObject<'_>) -> StoreOutcome {
        let outcome = self.inner.store(object);
        if outcome == StoreOutcome::Stored {
            self.stored
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        outcome
    }
}

/// The operation of `retrieve`, with its own options.
enum Retrieval<'a> {
    Move(&'a MoveArgs),
    Get(&'a GetArgs),
}

/// How objects reach the importer during a run.
enum Transport {
    /// Our storage SCP runs on its own thread; the PACS sends to it.
    Move { destination: String },
    /// Objects come back on the C-GET association, on these storage contexts.
    Get {
        contexts: Vec<(String, Vec<String>)>,
    },
}

/// `radlab pacs move` and `get`: the job (new or resumed), the dry run, then each study
/// retrieved by C-MOVE to our SCP or by C-GET, imported through the same `Importer`, with
/// the job saved after every attempt.
fn retrieve(cli: &Cli, args: &RetrieveArgs, retrieval: Retrieval<'_>) -> Result<ExitCode> {
    let operation = match retrieval {
        Retrieval::Move(_) => Operation::Move,
        Retrieval::Get(_) => Operation::Get,
    };
    let (mut job, job_path) = match &args.run.resume {
        Some(path) => {
            args.run.check_resume(&args.query)?;
            (PacsJob::load(path, operation)?, path.clone())
        }
        None => {
            let peer = args.peer.peer(None)?;
            let studies = chosen_studies(
                &args.run.studies,
                args.run.from_find.as_deref(),
                &args.query,
                || find_studies(&peer, &args.query, false),
            )?;
            let pacs = JobPeer {
                host: peer.host.clone(),
                port: peer.port,
                aec: peer.called_ae_title.clone(),
                aet: peer.calling_ae_title.clone(),
            };
            let destination = match retrieval {
                Retrieval::Move(m) => Some(m.dest.clone()),
                Retrieval::Get(_) => None,
            };
            let job = PacsJob::new(operation, pacs, destination, studies);
            (job, args.run.job_path(cli, operation.name()))
        }
    };
    let peer = args.peer.peer(Some(&job.pacs))?;
    let transport = match retrieval {
        Retrieval::Move(_) => {
            let destination = job.destination.clone().unwrap_or_default();
            radlab_net::scp::check_ae_title(&destination)?;
            Transport::Move { destination }
        }
        Retrieval::Get(g) => {
            for class in &g.sop_classes {
                if !job.sop_classes.contains(class) {
                    job.sop_classes.push(class.clone());
                }
            }
            let classes: Vec<String> = scu::RADIOGRAPH_STORAGE_CLASSES
                .iter()
                .map(|c| c.to_string())
                .chain(job.sop_classes.iter().cloned())
                .collect();
            let contexts = scu::get_storage_contexts(&classes)
                .map_err(|e| anyhow::anyhow!("--sop-class: {e}"))?;
            Transport::Get { contexts }
        }
    };
    let todo = job.todo();

    if args.run.dry_run {
        let mut instances = 0u32;
        let mut unknown = 0usize;
        for &i in &todo {
            let study = &job.studies[i];
            match study
                .expected
                .or_else(|| expected_instances(&peer, &study.study_instance_uid))
            {
                Some(n) => instances += n,
                None => unknown += 1,
            }
        }
        println!(
            "dry run: would retrieve {} of {} studies, {instances} instances{}",
            todo.len(),
            job.studies.len(),
            if unknown > 0 {
                format!(" ({unknown} studies unknown to the PACS or without a count)")
            } else {
                String::new()
            }
        );
        return Ok(ExitCode::SUCCESS);
    }

    job.save(&job_path)?;
    println!("job: {}", job_path.display());
    if todo.is_empty() {
        println!(
            "nothing to retrieve: all {} studies are done",
            job.studies.len()
        );
        return Ok(ExitCode::SUCCESS);
    }

    let deid = args.deid.build()?;
    let rt = crate::cmd_import::runtime()?;
    let (catalog, blobs) = rt.block_on(crate::cmd_import::stores(cli))?;
    let counter = Arc::new(Counting {
        inner: Arc::new(Importer::new(rt.handle().clone(), catalog, blobs, deid)),
        stored: Default::default(),
    });
    let staging = match (&transport, &retrieval) {
        (Transport::Move { destination }, Retrieval::Move(m)) => {
            start_move_scp(cli, m, &peer, destination, counter.clone())?
        }
        _ => cli
            .data_dir
            .join(format!(".pacs-get-staging-{}", std::process::id())),
    };

    let attempts = args.run.attempts;
    let summary = radlab_net::job::run(
        &mut job,
        &job_path,
        args.run.retries(),
        &mut |study| {
            let uid = study.study_instance_uid.clone();
            if study.expected.is_none() {
                study.expected = expected_instances(&peer, &uid);
            }
            let before = counter.stored.load(std::sync::atomic::Ordering::SeqCst);
            let result = match &transport {
                Transport::Move { destination } => {
                    scu::move_study(&peer, destination, &uid, &mut |_, _, _| {})
                }
                Transport::Get { contexts } => scu::get_study(
                    &peer,
                    &uid,
                    contexts,
                    &staging,
                    counter.as_ref(),
                    &mut |remaining, completed, failed, warning| {
                        tracing::debug!(
                            "pacs: C-GET: {remaining} remaining, {completed} completed, {failed} failed, {warning} warning"
                        )
                    },
                ),
            };
            study.arrived = counter
                .stored
                .load(std::sync::atomic::Ordering::SeqCst)
                .saturating_sub(before);
            radlab_net::job::verdict(operation, &result, study.arrived, study.expected)
        },
        &mut |study, n, of, attempt| match &study.failure {
            None => println!("study {n}/{of}: done, {} instance(s)", study.arrived),
            Some(why) => eprintln!(
                "study {n}/{of}: attempt {} of {attempts} failed: {why}",
                attempt + 1
            ),
        },
    );
    let _ = std::fs::remove_dir_all(&staging);
    let summary = summary?;
    let failed = job.count(StudyState::Failed);
    println!(
        "retrieved {} of {} studies this run ({} instances); {} done, {failed} failed in all; job: {}",
        summary.done,
        todo.len(),
        summary.instances,
        job.count(StudyState::Done),
        job_path.display()
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Our storage SCP for a move, on its own thread for the rest of the run, importing through
/// `handler`; its staging folder.
fn start_move_scp(
    cli: &Cli,
    args: &MoveArgs,
    peer: &Peer,
    destination: &str,
    handler: Arc<Counting>,
) -> Result<PathBuf> {
    let allow_calling = if args.allow_calling.is_empty() {
        vec![peer.called_ae_title.trim().to_string()]
    } else {
        args.allow_calling.clone()
    };
    let scp = bind(
        cli,
        &ScpSettings {
            aet: destination.to_string(),
            bind: args.listen_bind.clone(),
            port: args.listen_port,
            max_associations: 8,
            max_pdu: 65_536,
            allow_calling,
            idle_timeout: Duration::from_secs(120),
        },
    )?;
    eprintln!(
        "receiving on {} as AE {}",
        scp.address,
        scp.config.ae_title.trim()
    );
    let staging = scp.config.staging_dir.clone();
    std::thread::Builder::new()
        .name("pacs-move-scp".into())
        .spawn(move || {
            if let Err(e) = radlab_net::serve(scp.listener, scp.config, handler) {
                tracing::error!("pacs: the storage SCP stopped: {e}");
            }
        })
        .context("cannot start the storage SCP")?;
    Ok(staging)
}

// ---------------------------------------------------------------------------------------
// DICOMweb client: web-find (QIDO-RS), web-retrieve (WADO-RS).

/// The password of `--user` comes only from this variable, never from the command line.
const PASSWORD_VAR: &str = "RADLAB_DICOMWEB_PASSWORD";

/// A DICOMweb server and how to sign in to it.
#[derive(Args, Debug, Clone)]
pub struct WebServerArgs {
    /// The DICOMweb root URL, under which `studies` lies (Orthanc:
    /// http://HOST:8042/dicom-web/; dcm4chee: http://HOST:8080/dcm4chee-arc/aets/DCM4CHEE/rs/).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Bearer token (OAuth access token). Prefer the variable: a command line is visible to
    /// every user of the machine.
    #[arg(long, env = "RADLAB_DICOMWEB_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// User name for HTTP basic authentication; the password is read from
    /// RADLAB_DICOMWEB_PASSWORD. Takes precedence over a token.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Seconds to connect, and of silence from the server while reading, before giving up.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

/// The server of a DICOMweb job: its URL and the kind of sign-in, never a secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WebJobServer {
    url: String,
    /// `none`, `bearer` or `basic`.
    auth: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<String>,
}

impl WebServerArgs {
    /// The client, and the job's record of the server. Under `--resume`, what the command
    /// line leaves out comes from the job (the URL, the basic user); secrets always come
    /// from the command line or the environment.
    fn client(
        &self,
        job: Option<&WebJobServer>,
    ) -> Result<(radlab_net::dicomweb_client::Client, WebJobServer)> {
        use radlab_net::dicomweb_client::{Auth, Client};
        let url = self
            .url
            .clone()
            .or_else(|| job.map(|j| j.url.clone()))
            .context("--url is required (the DICOMweb root URL)")?;
        let user = self.user.clone().or_else(|| {
            job.filter(|j| j.auth == "basic" && self.token.is_none())
                .and_then(|j| j.user.clone())
        });
        let token = self.token.clone().filter(|t| !t.trim().is_empty());
        let auth = if let Some(user) = user {
            let password = std::env::var(PASSWORD_VAR).map_err(|_| {
                anyhow::anyhow!("--user {user} needs the password in the variable {PASSWORD_VAR}")
            })?;
            Auth::Basic { user, password }
        } else if let Some(token) = token {
            Auth::Bearer(token.trim().to_string())
        } else if job.is_some_and(|j| j.auth == "bearer") {
            bail!("this job's server takes a bearer token: set RADLAB_DICOMWEB_TOKEN (or --token)");
        } else {
            Auth::None
        };
        let record = WebJobServer {
            url: url.clone(),
            auth: match &auth {
                Auth::None => "none",
                Auth::Bearer(_) => "bearer",
                Auth::Basic { .. } => "basic",
            }
            .into(),
            user: match &auth {
                Auth::Basic { user, .. } => Some(user.clone()),
                _ => None,
            },
        };
        let client = Client::new(&url, auth, Duration::from_secs(self.timeout.max(1)))?;
        Ok((client, record))
    }
}

fn web_query(q: &QueryArgs, show_patient: bool) -> radlab_net::dicomweb_client::StudyQuery {
    radlab_net::dicomweb_client::StudyQuery {
        date: q.date.clone(),
        modality: q.modality.clone(),
        body_part: q.body_part.clone(),
        accession: q.accession.clone(),
        patient_id: q.patient_id.clone(),
        study_uids: Vec::new(),
        include_patient: show_patient,
    }
}

fn web_search(
    rt: &tokio::runtime::Runtime,
    client: &radlab_net::dicomweb_client::Client,
    q: &QueryArgs,
    show_patient: bool,
) -> Result<Vec<FoundStudy>> {
    let found = rt.block_on(client.search_studies(&web_query(q, show_patient)))?;
    Ok(found
        .into_iter()
        .map(|s| FoundStudy {
            study_instance_uid: s.study_instance_uid,
            study_date: s.study_date,
            modalities: s.modalities,
            description: s.description,
            accession_number: s.accession_number,
            series: s.series,
            instances: s.instances,
            patient_id: s.patient_id,
            patient_name: s.patient_name,
        })
        .collect())
}

#[derive(Args, Debug)]
pub struct WebFindArgs {
    #[command(flatten)]
    server: WebServerArgs,
    #[command(flatten)]
    query: QueryArgs,
    /// Also ask for and print Patient ID and Patient Name.
    #[arg(long)]
    show_patient: bool,
    /// Print a JSON list (the input of `pacs web-retrieve --from-find`).
    #[arg(long)]
    json: bool,
}

fn web_find(args: &WebFindArgs) -> Result<ExitCode> {
    let (client, _) = args.server.client(None)?;
    let rt = crate::cmd_import::runtime()?;
    let studies = web_search(&rt, &client, &args.query, args.show_patient)?;
    print_studies(&studies, args.json)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct WebRetrieveArgs {
    #[command(flatten)]
    server: WebServerArgs,
    #[command(flatten)]
    query: QueryArgs,
    #[command(flatten)]
    run: JobArgs,
    #[command(flatten)]
    deid: DeidArgs,
}

/// A DICOMweb retrieval job file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WebJob {
    version: u32,
    operation: String,
    dicomweb: WebJobServer,
    studies: Vec<JobStudy>,
}

impl WebJob {
    fn load(path: &Path) -> Result<WebJob> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let job: WebJob = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is not a DICOMweb retrieval job file (those of `pacs move` and `pacs get` resume with `pacs move --resume` and `pacs get --resume`)",
                path.display()
            )
        })?;
        if job.version != 1 || job.operation != "web-retrieve" {
            bail!(
                "{}: a job of version 1 and operation web-retrieve is expected",
                path.display()
            );
        }
        Ok(job)
    }

    fn count(&self, state: StudyState) -> usize {
        self.studies.iter().filter(|s| s.state == state).count()
    }
}

/// `dicomweb://HOST[:PORT]`: where retrieved objects came from, as the catalog records it.
fn web_origin(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    format!("dicomweb://{host}")
}

fn web_retrieve(cli: &Cli, args: &WebRetrieveArgs) -> Result<ExitCode> {
    let rt = crate::cmd_import::runtime()?;
    let (mut job, job_path, client) = match &args.run.resume {
        Some(path) => {
            args.run.check_resume(&args.query)?;
            let mut job = WebJob::load(path)?;
            let (client, record) = args.server.client(Some(&job.dicomweb))?;
            job.dicomweb = record;
            (job, path.clone(), client)
        }
        None => {
            let (client, record) = args.server.client(None)?;
            let studies = chosen_studies(
                &args.run.studies,
                args.run.from_find.as_deref(),
                &args.query,
                || web_search(&rt, &client, &args.query, false),
            )?;
            let job = WebJob {
                version: 1,
                operation: "web-retrieve".into(),
                dicomweb: record,
                studies: studies
                    .into_iter()
                    .map(|(uid, expected)| JobStudy::new(uid, expected))
                    .collect(),
            };
            (job, args.run.job_path(cli, "web-retrieve"), client)
        }
    };
    let todo: Vec<usize> = (0..job.studies.len())
        .filter(|&i| job.studies[i].state != StudyState::Done)
        .collect();

    if args.run.dry_run {
        let mut instances = 0u32;
        let mut unknown = 0usize;
        for &i in &todo {
            let study = &job.studies[i];
            let n = match study.expected {
                Some(n) => Some(n),
                None => rt.block_on(client.study_instances(&study.study_instance_uid))?,
            };
            match n {
                Some(n) => instances += n,
                None => unknown += 1,
            }
        }
        println!(
            "dry run: would retrieve {} of {} studies, {instances} instances{}",
            todo.len(),
            job.studies.len(),
            if unknown > 0 {
                format!(" ({unknown} studies unknown to the server or without a count)")
            } else {
                String::new()
            }
        );
        return Ok(ExitCode::SUCCESS);
    }

    save_json(&job, &job_path)?;
    println!("job: {}", job_path.display());
    if todo.is_empty() {
        println!(
            "nothing to retrieve: all {} studies are done",
            job.studies.len()
        );
        return Ok(ExitCode::SUCCESS);
    }

    let deid = args.deid.build()?;
    let (catalog, blobs) = rt.block_on(crate::cmd_import::stores(cli))?;
    let importer = Importer::new(rt.handle().clone(), catalog, blobs, deid);
    let origin = web_origin(&job.dicomweb.url);
    // Each study's objects rest here from their arrival until they are imported.
    let staging = cli
        .data_dir
        .join(format!(".dicomweb-staging-{}", std::process::id()));

    let mut arrived_total = 0u32;
    let mut fatal: Option<anyhow::Error> = None;
    'studies: for (n, &i) in todo.iter().enumerate() {
        for attempt in 0..args.run.attempts {
            if attempt > 0 {
                std::thread::sleep(args.run.retries().delay_before(attempt));
            }
            let uid = job.studies[i].study_instance_uid.clone();
            job.studies[i].attempts += 1;
            let auth_failed = std::cell::Cell::new(false);
            let mut outcome = || -> std::result::Result<u32, String> {
                let web_error = |e: radlab_net::dicomweb_client::WebError| {
                    auth_failed.set(auth_failed.get() || e.is_auth());
                    e.to_string()
                };
                if job.studies[i].expected.is_none() {
                    job.studies[i].expected = rt
                        .block_on(client.study_instances(&uid))
                        .map_err(web_error)?;
                }
                let dir = staging.join(format!("study-{}", n + 1));
                let _ = std::fs::remove_dir_all(&dir);
                let parts = rt.block_on(client.retrieve_study(&uid, &dir));
                let result = match parts {
                    Err(e) => Err(web_error(e)),
                    Ok(parts) => {
                        let mut stored = 0u32;
                        let mut refused: Option<String> = None;
                        let mut refused_count = 0usize;
                        for (k, part) in parts.iter().enumerate() {
                            let name =
                                radlab_net::dicomweb_client::part10_sop_instance_uid(&part.path)
                                    .unwrap_or_else(|| format!("{uid}/{}", k + 1));
                            match importer.store_file((n + 1) as u64, &part.path, &origin, &name) {
                                StoreOutcome::Stored => stored += 1,
                                StoreOutcome::Failed { comment, .. } => {
                                    refused_count += 1;
                                    refused.get_or_insert(comment);
                                }
                            }
                        }
                        job.studies[i].arrived = stored;
                        if parts.is_empty() {
                            Err("the server returned no instance".into())
                        } else if let Some(why) = refused {
                            Err(format!(
                                "{refused_count} of {} objects not imported (first: {why})",
                                parts.len()
                            ))
                        } else {
                            match job.studies[i].expected {
                                Some(expected) if stored < expected => {
                                    Err(format!("{stored} of {expected} instances arrived"))
                                }
                                _ => Ok(stored),
                            }
                        }
                    }
                };
                let _ = std::fs::remove_dir_all(&dir);
                result
            };
            let result = outcome();
            job.studies[i].record(result);
            save_json(&job, &job_path)?;
            let study = &job.studies[i];
            match &study.failure {
                None => {
                    arrived_total += study.arrived;
                    println!(
                        "study {}/{}: done, {} instance(s)",
                        n + 1,
                        todo.len(),
                        study.arrived
                    );
                    break;
                }
                Some(why) => {
                    eprintln!(
                        "study {}/{}: attempt {} of {} failed: {why}",
                        n + 1,
                        todo.len(),
                        attempt + 1,
                        args.run.attempts
                    );
                    // The same credentials would be refused for every study.
                    if auth_failed.get() {
                        fatal = Some(anyhow::anyhow!("{why}"));
                        break 'studies;
                    }
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&staging);
    let failed = job.count(StudyState::Failed);
    let done_now = todo
        .iter()
        .filter(|&&i| job.studies[i].state == StudyState::Done)
        .count();
    println!(
        "retrieved {done_now} of {} studies this run ({arrived_total} instances); {} done, {failed} failed in all; job: {}",
        todo.len(),
        job.count(StudyState::Done),
        job_path.display()
    );
    if let Some(e) = fatal {
        return Err(e.context(format!(
            "stopped; resume with: radlab pacs web-retrieve --resume {}",
            job_path.display()
        )));
    }
    Ok(if job.count(StudyState::Done) == job.studies.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
