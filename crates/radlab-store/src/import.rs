//! `radlab import`: walk folders and zip files, read every file in parallel, and record what
//! can be used in the catalog and blob store; everything else goes to the quarantine list.
//!
//! Reading, hashing, parsing and a full decode of every frame run on all cores (rayon); one
//! writer stores blobs and commits catalog rows in batches. A file's blob is written before
//! its catalog row, so the catalog never points at a missing object. Files already in the
//! catalog (same content hash) or already quarantined are skipped before parsing, which makes
//! a second run over the same folders cheap and a no-op.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use radlab_dicom::{DicomError, DicomFile, InstanceInfo, content_hash, decode_frame, wrap};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::blobs::BlobStore;
use crate::catalog::{Catalog, InsertOutcome, NewInstance, QuarantineEntry};
use crate::error::{Result, StoreError};

/// Where a file to import lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceLocation {
    File(PathBuf),
    /// An entry of a zip archive.
    ZipEntry {
        archive: PathBuf,
        index: usize,
    },
}

/// A file found by [`discover`].
#[derive(Debug, Clone)]
pub struct Source {
    /// The path as shown to users and stored in the catalog (`archive.zip!entry` for zips).
    pub display: String,
    pub location: SourceLocation,
}

/// How thoroughly import checks pixel data before accepting a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PixelCheck {
    /// Decode every frame (finds any undecodable file; the default).
    #[default]
    Decode,
    /// Check lengths, frames and codestream marker structure without decoding
    /// (`radlab_dicom::check_structure`): much faster, misses damage inside entropy-coded data.
    Structure,
}

/// Knobs of an import run.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub check: PixelCheck,
    /// Worker threads for reading and decoding (default: all cores).
    pub jobs: Option<usize>,
    /// Skip files whose content is already catalogued or quarantined, before parsing them.
    /// Off, every file is read, parsed, decoded and written again (a benchmark of the full
    /// path); the catalog still keeps one row per object.
    pub skip_known: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            check: PixelCheck::Decode,
            jobs: None,
            skip_known: true,
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportSummary {
    pub import_id: String,
    pub files_seen: u64,
    pub imported: u64,
    pub already_present: u64,
    /// Files holding an instance already catalogued from another file, in another encoding
    /// (same SOP Instance UID, same decoded pixels); recorded as another source of it.
    pub other_encodings: u64,
    /// Files put on the quarantine list by this run.
    pub quarantined: u64,
    /// Files skipped because an earlier run quarantined the same content at the same path.
    pub already_quarantined: u64,
    pub bytes_read: u64,
    pub elapsed_seconds: f64,
    /// The files of this run that could not be used, with why.
    pub problems: Vec<QuarantineEntry>,
}

impl ImportSummary {
    /// True when the run added nothing to the catalog or the quarantine list.
    pub fn added_nothing(&self) -> bool {
        self.imported == 0 && self.quarantined == 0
    }
}

/// Progress callbacks for a UI (the CLI shows a progress bar; a server job records them).
pub trait ImportProgress: Send + Sync {
    fn started(&self, _total_files: u64) {}
    fn file_done(&self, _display: &str) {}
    /// True once the import should stop (a cancelled job): no more files are read, what was
    /// written stays catalogued, and the import ends with [`StoreError::Cancelled`].
    fn cancelled(&self) -> bool {
        false
    }
}

/// No progress display.
pub struct NoProgress;
impl ImportProgress for NoProgress {}

/// Find every file under `paths` (folders are walked, `.zip` files are opened and their
/// entries listed). Paths that cannot be read become problems, not failures.
pub fn discover(paths: &[PathBuf]) -> (Vec<Source>, Vec<QuarantineEntry>) {
    let mut sources = Vec::new();
    let mut problems = Vec::new();
    let unreadable = |path: &Path, message: String| QuarantineEntry {
        source_path: path.display().to_string(),
        content_hash: String::new(),
        size_bytes: 0,
        reason_code: "io".into(),
        reason: message,
    };
    for root in paths {
        // Absolute paths in the catalog: a relative one means nothing to the next reader.
        let root = &std::fs::canonicalize(root).unwrap_or_else(|_| root.clone());
        for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    let path = e.path().unwrap_or(root).to_path_buf();
                    problems.push(unreadable(&path, format!("cannot list: {e}")));
                    continue;
                }
            };
            if !entry.file_type().is_file() {
                continue;
            }
            let path = entry.into_path();
            let is_zip = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
            if !is_zip {
                sources.push(Source {
                    display: path.display().to_string(),
                    location: SourceLocation::File(path),
                });
                continue;
            }
            match list_zip(&path) {
                Ok(entries) => sources.extend(entries),
                Err(message) => problems.push(QuarantineEntry {
                    reason_code: "bad_archive".into(),
                    ..unreadable(&path, message)
                }),
            }
        }
    }
    (sources, problems)
}

fn list_zip(path: &Path) -> std::result::Result<Vec<Source>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open the archive: {e}"))?;
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| format!("not a readable zip archive: {e}"))?;
    let mut out = Vec::new();
    for index in 0..archive.len() {
        let entry = archive
            .by_index(index)
            .map_err(|e| format!("entry {index}: {e}"))?;
        if entry.is_file() {
            out.push(Source {
                display: format!(
                    "{}!{}",
                    path.display(),
                    entry
                        .name()
                        .map(|n| n.into_owned())
                        .unwrap_or_else(|_| String::from_utf8_lossy(entry.name_raw()).into_owned())
                ),
                location: SourceLocation::ZipEntry {
                    archive: path.to_path_buf(),
                    index,
                },
            });
        }
    }
    Ok(out)
}

fn read_source(source: &Source) -> std::result::Result<Vec<u8>, String> {
    match &source.location {
        SourceLocation::File(path) => std::fs::read(path).map_err(|e| format!("cannot read: {e}")),
        SourceLocation::ZipEntry { archive, index } => {
            let file = std::fs::File::open(archive)
                .map_err(|e| format!("cannot open the archive: {e}"))?;
            let mut zip = zip::ZipArchive::new(file)
                .map_err(|e| format!("not a readable zip archive: {e}"))?;
            let mut entry = zip
                .by_index(*index)
                .map_err(|e| format!("cannot read the zip entry: {e}"))?;
            let mut bytes = Vec::with_capacity(entry.size() as usize);
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| format!("cannot inflate the zip entry: {e}"))?;
            Ok(bytes)
        }
    }
}

/// A file after the parallel stage.
enum Prepared {
    Ready(Box<NewInstance>, Bytes),
    Known { quarantined: bool },
    Problem(QuarantineEntry),
}

/// Read, hash, parse and decode one file. Never panics on bad input: every failure becomes a
/// quarantine entry naming the file and the reason.
fn prepare(
    source: &Source,
    known: &KnownContent,
    skip_known: bool,
    check: PixelCheck,
) -> (Prepared, u64) {
    let bytes = match read_source(source) {
        Ok(b) => b,
        Err(message) => {
            return (
                Prepared::Problem(QuarantineEntry {
                    source_path: source.display.clone(),
                    content_hash: String::new(),
                    size_bytes: 0,
                    reason_code: "io".into(),
                    reason: message,
                }),
                0,
            );
        }
    };
    let size = bytes.len() as u64;
    let hash = content_hash(&bytes);
    if skip_known {
        if known.instances.contains(&hash) {
            return (Prepared::Known { quarantined: false }, size);
        }
        if known.quarantined.contains(&hash) {
            return (Prepared::Known { quarantined: true }, size);
        }
    }
    let problem = |err: DicomError| {
        Prepared::Problem(QuarantineEntry {
            source_path: source.display.clone(),
            content_hash: hash.clone(),
            size_bytes: size,
            reason_code: err.reason_code().to_string(),
            reason: err.to_string(),
        })
    };
    let name = source
        .display
        .rsplit(['/', '!'])
        .next()
        .unwrap_or(&source.display)
        .to_string();
    let (file, blob, kind) = if wrap::is_picture(&bytes) {
        let wrapped = match wrap::wrap_picture(&bytes, &name) {
            Ok(f) => f,
            Err(e) => return (problem(e), size),
        };
        let blob = match wrap::to_part10_bytes(&wrapped) {
            Ok(b) => b,
            Err(e) => return (problem(e), size),
        };
        (wrapped, Bytes::from(blob), "picture")
    } else {
        match DicomFile::from_bytes(&bytes) {
            Ok(f) => (f, Bytes::from(bytes), "dicom"),
            Err(e) => return (problem(e), size),
        }
    };
    let checked = match check {
        PixelCheck::Decode => check_decodable(&file),
        // The pixel hash is then computed only if a SOP Instance UID collides.
        PixelCheck::Structure => radlab_dicom::check_structure(&file).map(|()| String::new()),
    };
    let pixel_hash = match checked {
        Ok(h) => h,
        Err(e) => return (problem(e), size),
    };
    let info = InstanceInfo::from_file(&file);
    let blob_hash = if kind == "dicom" {
        hash.clone()
    } else {
        content_hash(&blob)
    };
    (
        Prepared::Ready(
            Box::new(NewInstance {
                info,
                content_hash: hash,
                blob_hash,
                pixel_hash,
                size_bytes: size,
                source_kind: kind,
                source_path: source.display.clone(),
                source_name: name,
            }),
            blob,
        ),
        size,
    )
}

/// An object is usable when it has pixel data and every frame decodes; returns the hash of
/// the decoded pixels, which tells a re-encoded copy of an instance from a different object.
pub fn check_decodable(file: &DicomFile) -> std::result::Result<String, DicomError> {
    let layout = radlab_dicom::PixelLayout::from_object(file.object())?;
    let mut hasher = radlab_dicom::PixelHasher::new();
    for frame in 0..layout.frames {
        hasher.add_frame(&decode_frame(file, frame)?);
    }
    Ok(hasher.finish())
}

struct KnownContent {
    instances: HashSet<String>,
    quarantined: HashSet<String>,
}

/// Import every file under `paths` into `catalog` and `blobs`.
pub async fn import_paths(
    catalog: &Catalog,
    blobs: &BlobStore,
    paths: &[PathBuf],
    options: &ImportOptions,
    progress: Arc<dyn ImportProgress>,
) -> Result<ImportSummary> {
    let (sources, problems) = discover(paths);
    let labels: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    import_sources(
        catalog, blobs, &labels, sources, problems, options, progress,
    )
    .await
}

/// Import already discovered sources (lets callers and tests act between discovery and
/// reading, as when files vanish mid-import).
pub async fn import_sources(
    catalog: &Catalog,
    blobs: &BlobStore,
    labels: &[String],
    sources: Vec<Source>,
    discovery_problems: Vec<QuarantineEntry>,
    options: &ImportOptions,
    progress: Arc<dyn ImportProgress>,
) -> Result<ImportSummary> {
    let started = Instant::now();
    let import_id = format!(
        "imp-{}",
        &content_hash(format!("{:?}{}", labels, crate::catalog::now_rfc3339()).as_bytes())[..16]
    );
    catalog.begin_import(&import_id, labels).await?;
    let known = Arc::new(KnownContent {
        instances: catalog
            .instance_content_hashes()
            .await?
            .into_iter()
            .collect(),
        quarantined: catalog
            .quarantined_content_hashes()
            .await?
            .into_iter()
            .collect(),
    });
    let mut summary = ImportSummary {
        import_id: import_id.clone(),
        files_seen: sources.len() as u64,
        ..Default::default()
    };
    progress.started(sources.len() as u64);
    tracing::info!(
        import_id,
        files = sources.len(),
        known = known.instances.len(),
        "import started"
    );

    let threads = options
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let (tx, mut rx) = mpsc::channel::<(Prepared, u64, String)>(threads * 2);
    let skip_known = options.skip_known;
    let check = options.check;
    let producer_known = known.clone();
    let producer_progress = progress.clone();
    let producer = std::thread::spawn(move || {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("radlab-import-{i}"))
            .build()
            .map_err(|e| StoreError::Config(format!("cannot start worker threads: {e}")))?;
        pool.install(|| {
            use rayon::prelude::*;
            sources.par_iter().for_each_with(tx, |tx, source| {
                if tx.is_closed() || producer_progress.cancelled() {
                    return;
                }
                let (prepared, size) = prepare(source, &producer_known, skip_known, check);
                // The receiver only goes away when the writer failed; stop quietly then.
                let _ = tx.blocking_send((prepared, size, source.display.clone()));
            });
        });
        Ok::<(), StoreError>(())
    });

    let mut problems = discovery_problems;
    let mut seen_in_run: HashSet<String> = HashSet::new();
    let mut batch: Vec<(NewInstance, Bytes)> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut items = vec![first];
        while items.len() < 64 {
            match rx.try_recv() {
                Ok(item) => items.push(item),
                Err(_) => break,
            }
        }
        for (prepared, size, display) in items {
            summary.bytes_read += size;
            match prepared {
                Prepared::Ready(new, blob) => {
                    if skip_known && !seen_in_run.insert(new.content_hash.clone()) {
                        summary.already_present += 1;
                    } else {
                        batch.push((*new, blob));
                    }
                }
                Prepared::Known { quarantined: true } => summary.already_quarantined += 1,
                Prepared::Known { quarantined: false } => summary.already_present += 1,
                Prepared::Problem(entry) => problems.push(entry),
            }
            progress.file_done(&display);
        }
        if !batch.is_empty() {
            write_batch(
                catalog,
                blobs,
                &import_id,
                &mut batch,
                &mut summary,
                &mut problems,
            )
            .await?;
        }
        if progress.cancelled() {
            break;
        }
    }
    drop(rx);
    let joined = producer.join();
    if progress.cancelled() {
        // The run's row says how far it got; what was written stays catalogued.
        catalog
            .finish_import(
                &import_id,
                summary.files_seen,
                summary.imported,
                summary.already_present,
                0,
            )
            .await?;
        tracing::info!(import_id, imported = summary.imported, "import cancelled");
        return Err(StoreError::Cancelled);
    }
    match joined {
        Ok(result) => result?,
        Err(_) => {
            return Err(StoreError::Config(
                "an import worker thread panicked".into(),
            ));
        }
    }

    // Quarantine: a file seen at the same path with the same content is not added twice.
    let added = catalog.quarantine(&problems, &import_id).await?;
    summary.quarantined = added;
    summary.already_quarantined += problems.len() as u64 - added;
    summary.problems = problems;
    summary.elapsed_seconds = started.elapsed().as_secs_f64();
    // Counts and reason codes only: paths and names can carry patient identity.
    tracing::info!(
        import_id,
        imported = summary.imported,
        already_present = summary.already_present,
        other_encodings = summary.other_encodings,
        quarantined = summary.quarantined,
        seconds = summary.elapsed_seconds,
        "import finished"
    );
    catalog
        .finish_import(
            &import_id,
            summary.files_seen,
            summary.imported,
            summary.already_present,
            summary.quarantined,
        )
        .await?;
    Ok(summary)
}

async fn write_batch(
    catalog: &Catalog,
    blobs: &BlobStore,
    import_id: &str,
    batch: &mut Vec<(NewInstance, Bytes)>,
    summary: &mut ImportSummary,
    problems: &mut Vec<QuarantineEntry>,
) -> Result<()> {
    for (new, blob) in batch.iter() {
        blobs.put(&new.blob_hash, blob.clone()).await?;
    }
    let rows: Vec<NewInstance> = batch.iter().map(|(n, _)| n.clone()).collect();
    let outcomes = catalog.insert_instances(&rows, import_id).await?;
    for ((new, blob), outcome) in batch.drain(..).zip(outcomes) {
        let outcome = match outcome {
            InsertOutcome::ConflictingUid { .. } => {
                match compare_pixels(catalog, blobs, import_id, &new, &blob).await? {
                    Ok(outcome) => outcome,
                    Err(e) => {
                        problems.push(QuarantineEntry {
                            source_path: new.source_path,
                            content_hash: new.content_hash,
                            size_bytes: new.size_bytes,
                            reason_code: e.reason_code().to_string(),
                            reason: e.to_string(),
                        });
                        continue;
                    }
                }
            }
            other => other,
        };
        match outcome {
            InsertOutcome::Inserted => summary.imported += 1,
            InsertOutcome::AlreadyPresent => summary.already_present += 1,
            InsertOutcome::SameInstanceOtherEncoding => summary.other_encodings += 1,
            InsertOutcome::ConflictingUid {
                existing_content_hash,
            } => problems.push(QuarantineEntry {
                source_path: new.source_path,
                content_hash: new.content_hash,
                size_bytes: new.size_bytes,
                reason_code: "conflicting_sop_instance_uid".into(),
                reason: format!(
                    "SOP Instance UID {} is already catalogued with different content \
                     (blob {}); the catalogued object was kept",
                    new.info.sop_instance_uid,
                    &existing_content_hash[..16.min(existing_content_hash.len())]
                ),
            }),
        }
    }
    Ok(())
}

/// A file whose SOP Instance UID is catalogued with other content, where one side was
/// checked by structure only (no pixel hash): decode both to tell another encoding of the
/// same instance (recorded as another source of it) from a different object (a conflict).
/// The inner error is the new file failing to decode.
async fn compare_pixels(
    catalog: &Catalog,
    blobs: &BlobStore,
    import_id: &str,
    new: &NewInstance,
    blob: &Bytes,
) -> Result<std::result::Result<InsertOutcome, DicomError>> {
    let Some(existing) = catalog
        .instance_identity(&new.info.sop_instance_uid)
        .await?
    else {
        return Ok(Ok(InsertOutcome::AlreadyPresent));
    };
    let conflict = InsertOutcome::ConflictingUid {
        existing_content_hash: existing.content_hash.clone(),
    };
    if !new.pixel_hash.is_empty() && !existing.pixel_hash.is_empty() {
        return Ok(Ok(conflict)); // both decoded at import and they differ
    }
    let new_hash = if new.pixel_hash.is_empty() {
        match DicomFile::from_bytes(blob).and_then(|f| check_decodable(&f)) {
            Ok(h) => h,
            Err(e) => return Ok(Err(e)),
        }
    } else {
        new.pixel_hash.clone()
    };
    let existing_hash = if existing.pixel_hash.is_empty() {
        let stored = blobs.get(&existing.blob_hash).await?;
        let hash = DicomFile::from_bytes(&stored)
            .and_then(|f| check_decodable(&f))
            .unwrap_or_else(|_| "undecodable".to_string());
        catalog
            .set_pixel_hash(&new.info.sop_instance_uid, &hash)
            .await?;
        hash
    } else {
        existing.pixel_hash
    };
    if new_hash != existing_hash {
        return Ok(Ok(conflict));
    }
    catalog.add_source(new, import_id).await?;
    Ok(Ok(InsertOutcome::SameInstanceOtherEncoding))
}
