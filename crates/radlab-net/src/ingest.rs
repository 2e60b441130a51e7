//! Received objects into the catalog and blob store, de-identified first when a profile is
//! set, as `radlab import --deid` does.
//!
//! Two ways to answer the sender:
//! - [`Importer`] (acknowledge when imported): the C-STORE answer waits for the object to be
//!   decoded, de-identified and committed, one object at a time, so its status says what
//!   became of it. `pacs move`, `pacs get` and `pacs web-retrieve` use it: their job files
//!   count what was imported.
//! - [`Spool`] (acknowledge when queued, the SCP's default): the received file is renamed
//!   into a spool folder and the folder synced, then the sender hears Success; a worker
//!   thread takes the spool in batches (de-identification on all cores, one `import_sources`
//!   per batch) and removes each file once its outcome is committed. Files left by a crash
//!   or a stop are imported when the spool opens again. An object that cannot be imported
//!   (undecodable, refused by the de-identification) is moved to the spool's `failed`
//!   folder beside a text file giving the reason (the catalog's quarantine also lists what
//!   the import refused; what the de-identification refused never reaches the catalog):
//!   nothing that was acknowledged is dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use radlab_deid::Profile;
use radlab_store::import::{Source, SourceLocation, import_sources};
use radlab_store::{BlobStore, Catalog, ImportOptions, ImportSummary, NoProgress};

use crate::dimse::status;
use crate::scp::{ReceivedObject, StoreHandler, StoreOutcome};

/// De-identification on arrival: the profile (with its key), and the file the encrypted
/// mapping back to the originals is appended to.
pub struct Deid {
    pub profile: Profile,
    pub mapping: Option<PathBuf>,
}

/// One file to import: where it is, where it came from (`pacs://AET`, `dicomweb://HOST`),
/// and its name under that origin in the catalog (the SOP Instance UID).
#[derive(Debug, Clone)]
pub struct Incoming {
    pub path: PathBuf,
    pub origin: String,
    pub name: String,
}

/// Why one file of a batch was not imported: a reason code (catalog quarantine codes,
/// `deid-review`, `deid-failed`) and a sentence. Neither carries patient data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotImported {
    pub reason_code: String,
    pub reason: String,
}

/// The catalog or blob store could not be written: nothing of the batch was lost, try again.
#[derive(Debug, thiserror::Error)]
#[error("the catalog or blob store failed: {0}")]
pub struct StoreUnavailable(pub String);

/// Imports received files into one catalog and blob store; imports run one at a time
/// (per importer), so concurrent associations never race on the catalog.
pub struct Importer {
    rt: tokio::runtime::Handle,
    catalog: Catalog,
    blobs: BlobStore,
    deid: Option<Deid>,
    turn: Mutex<()>,
}

impl Importer {
    pub fn new(
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
            turn: Mutex::new(()),
        }
    }

    /// Import one Part 10 file that came from `origin`, catalogued as `origin/name`, or
    /// de-identified first; the answer for the sender (association `association`, for logs).
    pub fn store_file(
        &self,
        association: u64,
        path: &Path,
        origin: &str,
        name: &str,
    ) -> StoreOutcome {
        let incoming = [Incoming {
            path: path.to_path_buf(),
            origin: origin.to_string(),
            name: name.to_string(),
        }];
        match self.import_batch(&incoming, Some(1)) {
            Err(e) => {
                tracing::error!("pacs: association {association}: {e}");
                StoreOutcome::Failed {
                    status: status::OUT_OF_RESOURCES,
                    comment: "catalog or blob store unavailable".into(),
                }
            }
            Ok(results) => match results.into_iter().next() {
                Some(Ok(())) => StoreOutcome::Stored,
                // The SCP logs the comment; the reason sentence may name a UID.
                Some(Err(not)) => StoreOutcome::Failed {
                    status: status::CANNOT_UNDERSTAND,
                    comment: format!("not imported: {}", not.reason_code),
                },
                None => StoreOutcome::Failed {
                    status: status::CANNOT_UNDERSTAND,
                    comment: "not imported".into(),
                },
            },
        }
    }

    /// Import `files` in one run (de-identified first when a profile is set, on all cores;
    /// `jobs` decode threads, all cores when `None`): for each file, in order, whether it is
    /// now in the catalog (imported, or already there) or why not. Errors only when the
    /// catalog or blob store could not be written; what was committed before stays.
    pub fn import_batch(
        &self,
        files: &[Incoming],
        jobs: Option<usize>,
    ) -> Result<Vec<Result<(), NotImported>>, StoreUnavailable> {
        let mut results: Vec<Result<(), NotImported>> = vec![Ok(()); files.len()];
        // (index into files, path to import, catalog display name `origin/name`)
        let mut to_import: Vec<(usize, PathBuf, String)> = Vec::new();
        let work_dir;
        if let Some(deid) = &self.deid {
            // The de-identified copies go to a folder beside the first file (same file
            // system), removed when the batch is done.
            let Some(first) = files.first() else {
                return Ok(results);
            };
            work_dir = Some(first.path.with_extension("deid"));
            let out_dir = work_dir.as_ref().expect("set above");
            let paths: Vec<PathBuf> = files.iter().map(|f| f.path.clone()).collect();
            let outcomes =
                radlab_deid::batch::deidentify_files(&paths, out_dir, &deid.profile, &|_| {});
            let mut records = Vec::new();
            for (i, outcome) in outcomes.into_iter().enumerate() {
                if let Some(why) = &outcome.review {
                    results[i] = Err(NotImported {
                        reason_code: "deid-review".into(),
                        reason: format!("routed to review, not imported: {why}"),
                    });
                    continue;
                }
                let written = outcome.output.as_ref().map(PathBuf::from);
                let (Some(written), true) = (written, outcome.ok()) else {
                    // Errors and findings name elements and reasons, never values.
                    results[i] = Err(NotImported {
                        reason_code: "deid-failed".into(),
                        reason: format!(
                            "not de-identified: {}{}",
                            outcome.error.as_deref().unwrap_or("no output"),
                            if outcome.findings.is_empty() {
                                String::new()
                            } else {
                                format!(" ({} verifier finding(s))", outcome.findings.len())
                            }
                        ),
                    });
                    continue;
                };
                // Named by the profile from the new UIDs (or md5 of the old one for the
                // VinDr presets), never by anything identifying.
                let name = written
                    .strip_prefix(out_dir)
                    .unwrap_or(&written)
                    .to_string_lossy()
                    .replace('\\', "/");
                if let Some(record) = outcome.mapping {
                    records.push(record);
                }
                to_import.push((i, written, format!("{}/{name}", files[i].origin)));
            }
            if let (Some(mapping), false) = (&deid.mapping, records.is_empty()) {
                let _turn = self.turn.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) =
                    radlab_deid::mapping::append_mapping(mapping, deid.profile.key(), &records)
                {
                    let _ = std::fs::remove_dir_all(out_dir);
                    return Err(StoreUnavailable(format!(
                        "cannot append to the de-identification mapping: {e}"
                    )));
                }
            }
        } else {
            work_dir = None;
            to_import = files
                .iter()
                .enumerate()
                .map(|(i, f)| (i, f.path.clone(), format!("{}/{}", f.origin, f.name)))
                .collect();
        }
        let outcome = self.import_files(files, &to_import, jobs);
        if let Some(dir) = work_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        let summary = outcome?;
        // Content already quarantined is skipped before parsing, without a problem entry.
        if summary.already_quarantined > 0 {
            if let [(i, _, _)] = to_import.as_slice() {
                results[*i] = Err(NotImported {
                    reason_code: "already-quarantined".into(),
                    reason: "the same content is already in the catalog's quarantine".into(),
                });
            } else {
                tracing::info!(
                    "pacs: {} object(s) of a batch were already in the catalog's quarantine (same content)",
                    summary.already_quarantined
                );
            }
        }
        // The catalog names each problem by its display name.
        let by_display: std::collections::HashMap<&str, usize> = to_import
            .iter()
            .map(|(i, _, display)| (display.as_str(), *i))
            .collect();
        for problem in summary.problems {
            if let Some(&i) = by_display.get(problem.source_path.as_str()) {
                results[i] = Err(NotImported {
                    reason_code: problem.reason_code,
                    reason: problem.reason,
                });
            }
        }
        Ok(results)
    }

    fn import_files(
        &self,
        files: &[Incoming],
        to_import: &[(usize, PathBuf, String)],
        jobs: Option<usize>,
    ) -> Result<ImportSummary, StoreUnavailable> {
        if to_import.is_empty() {
            return Ok(ImportSummary::default());
        }
        let mut labels: Vec<String> = to_import
            .iter()
            .map(|(i, _, _)| files[*i].origin.clone())
            .collect();
        labels.sort();
        labels.dedup();
        let sources = to_import
            .iter()
            .map(|(_, path, display)| Source {
                display: display.clone(),
                location: SourceLocation::File(path.clone()),
            })
            .collect();
        let options = ImportOptions {
            jobs,
            ..ImportOptions::default()
        };
        let _turn = self.turn.lock().unwrap_or_else(|e| e.into_inner());
        self.rt
            .block_on(import_sources(
                &self.catalog,
                &self.blobs,
                &labels,
                sources,
                Vec::new(),
                &options,
                Arc::new(NoProgress),
            ))
            .map_err(|e| StoreUnavailable(e.to_string()))
    }
}

impl StoreHandler for Importer {
    fn store(&self, object: &ReceivedObject<'_>) -> StoreOutcome {
        // The catalog's source path names where the object came from, not the staging file.
        self.store_file(
            object.association,
            object.path,
            &format!("pacs://{}", object.calling_ae_title),
            object.sop_instance_uid,
        )
    }
}

/// Objects per batch the spool's worker imports at once.
const SPOOL_BATCH: usize = 64;
/// The pause in arrivals the spool's worker waits for before it imports.
const QUIET: Duration = Duration::from_millis(300);
/// The longest the worker waits for such a pause; then it imports until the spool is empty.
const MAX_DEFER: Duration = Duration::from_secs(10);

/// A durable queue of received objects in a folder, drained into an [`Importer`] by one
/// worker thread; the storage SCP's handler when it acknowledges on receipt.
///
/// A spooled file is named `<nanoseconds>-<sequence>_<calling AE, hex>_<SOP Instance
/// UID>.dcm`: arrival order, origin and catalog name, nothing else. Several processes may
/// spool into the same folder; one at a time drains it (an exclusive lock on `.lock`).
pub struct Spool {
    dir: PathBuf,
    importer: Arc<Importer>,
    sequence: AtomicU64,
    /// Set when a file arrives; the worker waits on it when the spool is empty.
    wake: (Mutex<bool>, Condvar),
    /// When the last object was spooled.
    last_arrival: Mutex<Option<Instant>>,
}

impl Spool {
    /// Open (create) the spool folder and its `failed` folder, readable by this user only.
    pub fn open(dir: &Path, importer: Arc<Importer>) -> std::io::Result<Arc<Spool>> {
        for d in [dir.to_path_buf(), dir.join("failed")] {
            std::fs::create_dir_all(&d)?;
            restrict(&d)?;
        }
        Ok(Arc::new(Spool {
            dir: dir.to_path_buf(),
            importer,
            sequence: AtomicU64::new(0),
            wake: (Mutex::new(false), Condvar::new()),
            last_arrival: Mutex::new(None),
        }))
    }

    /// Files waiting, oldest first.
    pub fn waiting(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "dcm"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Start the worker thread; it runs for the life of the process.
    pub fn start(self: &Arc<Self>) -> std::io::Result<()> {
        let spool = self.clone();
        std::thread::Builder::new()
            .name("pacs-spool".into())
            .spawn(move || spool.run())
            .map(|_| ())
    }

    fn run(&self) {
        lower_priority();
        // One process drains the folder at a time; the others only spool into it.
        let lock = match File::create(self.dir.join(".lock")) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(
                    "pacs: spool: cannot open its lock file ({}): nothing will be imported",
                    e.kind()
                );
                return;
            }
        };
        let mut told = false;
        while lock.try_lock().is_err() {
            if !told {
                tracing::info!(
                    "pacs: spool: another radlab process is importing from this spool; waiting"
                );
                told = true;
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        // De-identification folders of a batch cut short by a crash.
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.filter_map(|e| e.ok()) {
                if e.path().is_dir() && e.path().extension().is_some_and(|x| x == "deid") {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let left = self.waiting().len();
        if left > 0 {
            tracing::info!(
                "pacs: spool: {left} object(s) left from an earlier run, importing them"
            );
        }
        let mut backoff = Duration::from_secs(1);
        // While objects keep arriving, the import waits (receiving and importing on the same
        // cores and disk would slow both): until arrivals pause for QUIET, or for at most
        // MAX_DEFER, after which it catches up without waiting until the spool is empty.
        let mut deferred: Option<Instant> = None;
        let mut catching_up = false;
        loop {
            let waiting = self.waiting();
            if waiting.is_empty() {
                catching_up = false;
            } else if !catching_up {
                let since = self
                    .last_arrival
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .map(|t| t.elapsed());
                let started = *deferred.get_or_insert_with(Instant::now);
                match since {
                    Some(since) if since < QUIET && started.elapsed() < MAX_DEFER => {
                        std::thread::sleep(QUIET - since);
                        continue;
                    }
                    _ => {
                        catching_up = started.elapsed() >= MAX_DEFER;
                        deferred = None;
                    }
                }
            }
            let batch: Vec<PathBuf> = waiting.into_iter().take(SPOOL_BATCH).collect();
            if batch.is_empty() {
                let (flag, cv) = &self.wake;
                let mut woken = flag.lock().unwrap_or_else(|e| e.into_inner());
                if !*woken {
                    woken = cv
                        .wait_timeout(woken, Duration::from_secs(5))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                *woken = false;
                continue;
            }
            let incoming: Vec<Incoming> = batch.iter().map(|p| spooled(p)).collect();
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.importer.import_batch(&incoming, None)
            })) {
                Ok(Ok(results)) => {
                    backoff = Duration::from_secs(1);
                    self.settle(&incoming, results);
                }
                Ok(Err(e)) => {
                    tracing::error!(
                        "pacs: spool: {e}; {} object(s) stay spooled, trying again in {} s",
                        incoming.len(),
                        backoff.as_secs()
                    );
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
                Err(_) => {
                    tracing::error!(
                        "pacs: spool: internal error while importing a batch; its objects go to the failed folder"
                    );
                    let results = incoming
                        .iter()
                        .map(|_| {
                            Err(NotImported {
                                reason_code: "internal-error".into(),
                                reason: "internal error while importing".into(),
                            })
                        })
                        .collect();
                    self.settle(&incoming, results);
                }
            }
        }
    }

    /// Remove what was imported; move what was not to `failed/` with its reason.
    fn settle(&self, incoming: &[Incoming], results: Vec<Result<(), NotImported>>) {
        let (mut imported, mut failed) = (0, 0);
        for (item, result) in incoming.iter().zip(results) {
            match result {
                Ok(()) => {
                    imported += 1;
                    let _ = std::fs::remove_file(&item.path);
                }
                Err(not) => {
                    failed += 1;
                    // The reason sentence may name a UID: it goes to the file, not the log.
                    tracing::warn!(
                        "pacs: spool: an object from {} was not imported: {}; kept in the spool's failed folder with its reason",
                        item.origin,
                        not.reason_code
                    );
                    let name = item.path.file_name().unwrap_or_default();
                    let to = self.dir.join("failed").join(name);
                    let reason = to.with_extension("reason.txt");
                    let _ =
                        std::fs::write(&reason, format!("{}: {}\n", not.reason_code, not.reason));
                    if std::fs::rename(&item.path, &to).is_err() {
                        let _ = std::fs::remove_file(&item.path);
                    }
                }
            }
        }
        let _ = sync_dir(&self.dir);
        tracing::info!(
            "pacs: spool: batch of {} imported ({imported} in the catalog, {failed} failed)",
            incoming.len()
        );
    }

    fn wake(&self) {
        let (flag, cv) = &self.wake;
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_one();
    }

    /// Move a complete received file into the spool, durably (the folder synced after the
    /// rename).
    pub fn put(
        &self,
        path: &Path,
        calling_ae_title: &str,
        sop_instance_uid: &str,
    ) -> std::io::Result<()> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let seq = self.sequence.fetch_add(1, Ordering::Relaxed);
        let uid: String = sop_instance_uid
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '.')
            .take(64)
            .collect();
        let name = format!(
            "{nanos:020}-{seq:06}_{}_{uid}.dcm",
            hex::encode(calling_ae_title.trim().as_bytes())
        );
        let to = self.dir.join(name);
        std::fs::rename(path, &to)?;
        sync_dir(&self.dir)?;
        *self.last_arrival.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        self.wake();
        Ok(())
    }
}

impl StoreHandler for Spool {
    fn store(&self, object: &ReceivedObject<'_>) -> StoreOutcome {
        match self.put(
            object.path,
            object.calling_ae_title,
            object.sop_instance_uid,
        ) {
            Ok(()) => StoreOutcome::Stored,
            Err(e) => {
                tracing::error!(
                    "pacs: association {}: cannot spool the object ({})",
                    object.association,
                    e.kind()
                );
                StoreOutcome::Failed {
                    status: status::OUT_OF_RESOURCES,
                    comment: format!("cannot spool the object: {}", e.kind()),
                }
            }
        }
    }
}

/// A spooled file's origin and catalog name, from its file name.
fn spooled(path: &Path) -> Incoming {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut parts = stem.splitn(3, '_');
    let _arrival = parts.next();
    let aet = parts
        .next()
        .and_then(|h| hex::decode(h).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let uid = parts.next().unwrap_or_default().to_string();
    Incoming {
        path: path.to_path_buf(),
        origin: format!("pacs://{aet}"),
        name: if uid.is_empty() { stem } else { uid },
    }
}

/// Give the calling thread (and the threads it starts: the import's decoders) a lower
/// scheduling priority (nice 10) than the associations receiving objects, so a burst of
/// arrivals is acknowledged at disk speed while the spool is imported behind it. Linux only
/// (elsewhere a no-op): there `setpriority(PRIO_PROCESS, 0, ..)` applies to the calling
/// thread, and new threads inherit it.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority takes plain integers and touches no memory of ours.
    unsafe {
        let _ = libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(unix)]
fn restrict(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
fn restrict(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spooled_name_gives_back_origin_and_uid() {
        let p = Path::new("/s/00000000000000000001-000002_4f5247_1.2.3.4.dcm");
        let i = spooled(p);
        assert_eq!(i.origin, "pacs://ORG");
        assert_eq!(i.name, "1.2.3.4");
        // An AE title with an underscore survives (hex-encoded).
        let aet = hex::encode("A_B".as_bytes());
        let i = spooled(Path::new(&format!("/s/1-1_{aet}_9.9.dcm")));
        assert_eq!(i.origin, "pacs://A_B");
    }
}
