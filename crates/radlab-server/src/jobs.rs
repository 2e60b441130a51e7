//! Long jobs: imports of server-side folders, label exports and reader fusion, queued in
//! the catalog (`radlab_store`'s job queue) and run by workers in every `radlab serve`
//! process that has a blob store, so that several servers on one database share the work
//! and each job runs exactly once.
//!
//! - `POST /api/v1/jobs` `{kind, project?, params}` → 202 `{job}`. Kinds:
//!   - `import` (site administrators): `params {paths, project?, split?}`: the server-side
//!     folders, zip and DICOM files imported as `radlab import` does, progress per file; the
//!     instances the run catalogued then go into the project's split (unassigned unless
//!     given). Result: the import's counts.
//!   - `export_labels` (project owners): `params {format: kaggle | vindr | submission,
//!     layer?: reader | consensus | model}`: the project's current annotations as
//!     `radlab labels export` writes them, a CSV result file.
//!   - `fuse` (project owners): `params {iou_thr: 0.4, quorum?, skip_box_thr: 0,
//!     conf_type: avg}`: the WBF consensus of the readers' layers as `radlab fuse` writes it,
//!     a CSV result file.
//! - `GET /api/v1/jobs?offset=&limit=`: the caller's jobs, newest first (administrators:
//!   every job).
//! - `GET /api/v1/jobs/{job}`: the job, its state and progress (`done` of `total`,
//!   `message`) and result. Its maker, owners of its project and administrators; 404 for
//!   anyone else.
//! - `GET /api/v1/jobs/{job}/result`: the result file (`text/csv`) of a done job.
//! - `POST /api/v1/jobs/{job}/cancel`: a queued job is cancelled at once, a running one
//!   stops at its next progress report.
//!
//! Workers: [`spawn_workers`] starts `JobConfig::workers` tokio tasks (one job each at a
//! time). A worker takes the oldest queued job, or waits for this server to queue one (or
//! for the poll interval, for jobs other servers queued). While a job runs, a reporter
//! writes its progress when it changed and a heartbeat otherwise; a server whose heartbeats
//! stop has its jobs queued again by the others after `stale_after`. Logs carry job ids,
//! kinds and counts only (paths and parameters can name patients).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use radlab_labels::consensus::{ConsensusOptions, Method, Quorum, fuse_readers, write_consensus};
use radlab_labels::fusion::{ConfType, WbfOptions};
use radlab_labels::{Annotation, kaggle, vindr};
use radlab_store::{
    ImageSelection, ImportOptions, ImportProgress, Job, JobControl, JobState, Layer, ProjectRole,
    SiteRole, StoreError,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::Notify;

use crate::auth::{Caller, random_token};
use crate::error::ApiError;
use crate::projects::{access, require_owner};
use crate::{AppState, body};

/// The kinds of job.
pub const KINDS: [&str; 3] = ["import", "export_labels", "fuse"];

/// How a server runs jobs.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// Jobs this server runs at once (0: it runs none, and only queues them for others).
    pub workers: usize,
    /// How often an idle worker looks for jobs other servers queued.
    pub poll: Duration,
    /// How often a running job's heartbeat is written when its progress does not change.
    pub heartbeat: Duration,
    /// A running job whose heartbeat is older than this belonged to a server that died: it
    /// is queued again.
    pub stale_after: Duration,
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            workers: 0,
            poll: Duration::from_millis(500),
            heartbeat: Duration::from_secs(10),
            stale_after: Duration::from_secs(120),
        }
    }
}

/// This server's side of the queue: its configuration, the wake-up of its idle workers, and
/// how many jobs it has taken.
#[derive(Debug)]
pub struct JobQueue {
    pub config: JobConfig,
    wake: Notify,
    server: String,
    taken: AtomicU64,
}

impl JobQueue {
    pub fn new(config: JobConfig) -> Self {
        let tag = random_token("").unwrap_or_else(|_| "0".repeat(64));
        JobQueue {
            config,
            wake: Notify::new(),
            server: format!("w{}-{}", std::process::id(), &tag[..8]),
            taken: AtomicU64::new(0),
        }
    }

    /// How many jobs this server's workers have taken since it started.
    pub fn jobs_taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }
}

/// Start this server's workers (none when `JobConfig::workers` is 0 or the server has no
/// blob store). Call from inside the runtime.
pub fn spawn_workers(state: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    let n = state.jobs.config.workers;
    if n == 0 {
        return Vec::new();
    }
    if state.uploads.is_none() {
        tracing::warn!("no blob store: this server runs no jobs");
        return Vec::new();
    }
    tracing::info!(workers = n, "job workers started");
    (0..n)
        .map(|i| {
            let worker = format!("{}-{i}", state.jobs.server);
            tokio::spawn(worker_loop(state.clone(), worker))
        })
        .collect()
}

async fn worker_loop(state: AppState, worker: String) {
    let config = state.jobs.config.clone();
    let sweep_every = (config.stale_after / 4).max(Duration::from_millis(100));
    let mut last_sweep: Option<Instant> = None;
    loop {
        if last_sweep.is_none_or(|t| t.elapsed() >= sweep_every) {
            last_sweep = Some(Instant::now());
            match state.catalog.requeue_stale_jobs(config.stale_after).await {
                Ok(s) if s.requeued + s.failed + s.cancelled > 0 => tracing::warn!(
                    requeued = s.requeued,
                    failed = s.failed,
                    cancelled = s.cancelled,
                    "jobs of a server that stopped answering"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!("job queue: {e}"),
            }
        }
        match state.catalog.claim_next_job(&worker).await {
            Ok(Some(job)) => {
                state.jobs.taken.fetch_add(1, Ordering::Relaxed);
                run_job(&state, &worker, job).await;
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("job queue: {e}"),
        }
        tokio::select! {
            _ = state.jobs.wake.notified() => {}
            _ = tokio::time::sleep(config.poll) => {}
        }
    }
}

/// What a job body reports, and whether it should stop.
struct JobContext {
    job_id: String,
    worker: String,
    done: AtomicI64,
    total: AtomicI64,
    message: Mutex<String>,
    changed: AtomicBool,
    cancel: AtomicBool,
    lost: AtomicBool,
}

impl JobContext {
    fn set(&self, done: i64, total: i64, message: &str) {
        self.done.store(done, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
        if let Ok(mut m) = self.message.lock() {
            *m = message.to_string();
        }
        self.changed.store(true, Ordering::Release);
    }

    fn stopping(&self) -> bool {
        self.cancel.load(Ordering::Acquire)
    }

    /// Write the progress when it changed, else a heartbeat when `heartbeat_due`.
    async fn report(&self, catalog: &radlab_store::Catalog, heartbeat_due: bool) -> bool {
        let control = if self.changed.swap(false, Ordering::AcqRel) {
            let message = self.message.lock().map(|m| m.clone()).unwrap_or_default();
            catalog
                .job_progress(
                    &self.job_id,
                    &self.worker,
                    self.done.load(Ordering::Relaxed),
                    self.total.load(Ordering::Relaxed),
                    &message,
                )
                .await
        } else if heartbeat_due {
            catalog.job_heartbeat(&self.job_id, &self.worker).await
        } else {
            return false;
        };
        match control {
            Ok(JobControl::Continue) => {}
            Ok(JobControl::Cancel) => self.cancel.store(true, Ordering::Release),
            Ok(JobControl::Lost) => {
                self.lost.store(true, Ordering::Release);
                self.cancel.store(true, Ordering::Release);
            }
            Err(e) => tracing::warn!(job = self.job_id, "cannot record progress: {e}"),
        }
        true
    }
}

/// An import's progress, file by file, into the job.
struct ImportReport(Arc<JobContext>);

impl ImportProgress for ImportReport {
    fn started(&self, total_files: u64) {
        self.0.set(0, total_files as i64, "importing files");
    }

    fn file_done(&self, _display: &str) {
        self.0.done.fetch_add(1, Ordering::Relaxed);
        self.0.changed.store(true, Ordering::Release);
    }

    fn cancelled(&self) -> bool {
        self.0.stopping()
    }
}

/// How a job body ended.
enum Ended {
    Done {
        message: String,
        result: Value,
        blob: String,
    },
    Failed(String),
    Cancelled,
}

async fn run_job(state: &AppState, worker: &str, job: Job) {
    let started = Instant::now();
    tracing::info!(job = job.job_id, kind = job.kind, worker, "job started");
    let ctx = Arc::new(JobContext {
        job_id: job.job_id.clone(),
        worker: worker.to_string(),
        done: AtomicI64::new(0),
        total: AtomicI64::new(0),
        message: Mutex::new(String::new()),
        changed: AtomicBool::new(false),
        cancel: AtomicBool::new(false),
        lost: AtomicBool::new(false),
    });
    let reporter = {
        let ctx = ctx.clone();
        let catalog = state.catalog.clone();
        let every = state.jobs.config.heartbeat;
        tokio::spawn(async move {
            let mut last = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if ctx.report(&catalog, last.elapsed() >= every).await {
                    last = Instant::now();
                }
            }
        })
    };
    // The body runs as its own task, so that a panic in it fails the job, not the worker.
    let ended = match tokio::spawn(execute(state.clone(), ctx.clone(), job.clone())).await {
        Ok(ended) => ended,
        Err(e) => {
            tracing::error!(job = job.job_id, kind = job.kind, "job panicked: {e}");
            Ended::Failed(
                "the job stopped on an internal error; the server's log says where".into(),
            )
        }
    };
    reporter.abort();
    let _ = reporter.await;
    ctx.report(&state.catalog, false).await;
    if ctx.lost.load(Ordering::Acquire) {
        tracing::warn!(job = job.job_id, "job given to another worker meanwhile");
        return;
    }
    let (outcome, written) = match &ended {
        Ended::Done {
            message,
            result,
            blob,
        } => (
            "done",
            state
                .catalog
                .finish_job(&job.job_id, worker, message, &result.to_string(), blob)
                .await,
        ),
        Ended::Failed(m) => (
            "failed",
            state.catalog.fail_job(&job.job_id, worker, m).await,
        ),
        Ended::Cancelled => (
            "cancelled",
            state
                .catalog
                .job_cancelled(&job.job_id, worker, "cancelled while running")
                .await,
        ),
    };
    match written {
        Ok(true) => tracing::info!(
            job = job.job_id,
            kind = job.kind,
            outcome,
            done = ctx.done.load(Ordering::Relaxed),
            total = ctx.total.load(Ordering::Relaxed),
            ms = started.elapsed().as_millis() as u64,
            "job ended"
        ),
        Ok(false) => tracing::warn!(job = job.job_id, "job given to another worker meanwhile"),
        Err(e) => tracing::error!(job = job.job_id, "cannot record the end of a job: {e}"),
    }
}

async fn execute(state: AppState, ctx: Arc<JobContext>, job: Job) -> Ended {
    let params: Value = match serde_json::from_str(&job.params) {
        Ok(v) => v,
        Err(_) => return Ended::Failed("the job's stored parameters do not parse".into()),
    };
    let Some(uploads) = state.uploads.clone() else {
        return Ended::Failed("the server that took the job has no blob store".into());
    };
    let ended = match job.kind.as_str() {
        "import" => run_import(&state, &uploads.blobs, &ctx, &job, &params).await,
        "export_labels" => run_export(&state, &uploads.blobs, &ctx, &job, &params).await,
        "fuse" => run_fuse(&state, &uploads.blobs, &ctx, &job, &params).await,
        other => Err(Ended::Failed(format!(
            "this server does not know job kind {other:?} (kinds: {})",
            KINDS.join(", ")
        ))),
    };
    match ended {
        Ok(e) | Err(e) => e,
    }
}

/// A store error as a job's end.
fn store_failed(what: &str, e: StoreError) -> Ended {
    match e {
        StoreError::Cancelled => Ended::Cancelled,
        e => Ended::Failed(format!("{what}: {e}")),
    }
}

/// A result file: into the blob store under its content hash.
async fn store_result(blobs: &radlab_store::BlobStore, bytes: Vec<u8>) -> Result<String, Ended> {
    let hash = blake3::hash(&bytes).to_hex().to_string();
    blobs
        .put(&hash, bytes.into())
        .await
        .map_err(|e| store_failed("cannot store the result file", e))?;
    Ok(hash)
}

async fn run_import(
    state: &AppState,
    blobs: &radlab_store::BlobStore,
    ctx: &Arc<JobContext>,
    job: &Job,
    params: &Value,
) -> Result<Ended, Ended> {
    let p = ImportParams::parse(params, Some(&job.project_id)).map_err(Ended::Failed)?;
    let paths: Vec<PathBuf> = p.paths.iter().map(PathBuf::from).collect();
    for path in &paths {
        if !path.exists() {
            return Err(Ended::Failed(format!(
                "params.paths: {} does not exist on the server that ran the job ({}); paths \
                 are read there",
                path.display(),
                ctx.worker
            )));
        }
    }
    ctx.set(0, 0, "finding files");
    let summary = radlab_store::import_paths(
        &state.catalog,
        blobs,
        &paths,
        &ImportOptions::default(),
        Arc::new(ImportReport(ctx.clone())),
    )
    .await
    .map_err(|e| store_failed("the import stopped", e))?;
    let files = summary.files_seen as i64;
    ctx.set(files, files, "imported");
    let mut result = json!({
        "import_id": summary.import_id,
        "files_seen": summary.files_seen,
        "imported": summary.imported,
        "already_present": summary.already_present,
        "other_encodings": summary.other_encodings,
        "quarantined": summary.quarantined,
        "already_quarantined": summary.already_quarantined,
        "bytes_read": summary.bytes_read,
        "problems": summary.problems.iter().take(100).map(|q| json!({
            "path": q.source_path, "reason_code": q.reason_code, "reason": q.reason,
        })).collect::<Vec<_>>(),
        "problems_total": summary.problems.len(),
    });
    let mut message = format!(
        "{} files: {} imported, {} already present, {} quarantined",
        summary.files_seen, summary.imported, summary.already_present, summary.quarantined
    );
    if let Some(project) = &p.project {
        let added = state
            .catalog
            .add_project_images(
                project,
                &ImageSelection::Import(summary.import_id.clone()),
                None,
                &p.split,
            )
            .await
            .map_err(|e| store_failed("adding the images to the project", e))?;
        result["project"] = json!({
            "project_id": project,
            "split": p.split,
            "added": added.added,
            "already_in_project": added.already,
        });
        message.push_str(&format!(
            "; {} added to {project} ({})",
            added.added, p.split
        ));
    }
    Ok(Ended::Done {
        message,
        result,
        blob: String::new(),
    })
}

/// The current annotations of `layers` of a project.
async fn project_rows(
    state: &AppState,
    project: &str,
    layers: &[Layer],
) -> Result<Vec<Annotation>, Ended> {
    Ok(state
        .catalog
        .annotations(project, layers)
        .await
        .map_err(|e| store_failed("cannot read the project's annotations", e))?
        .into_iter()
        .map(|(_, a)| a)
        .collect())
}

/// The CSV of `rows` in `format`, as `radlab labels export` writes it.
pub fn labels_csv(format: &str, rows: &[Annotation]) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    match format {
        "kaggle" => kaggle::write_train_csv(&mut bytes, rows)
            .map_err(|e| format!("cannot write a Kaggle train.csv: {e}"))?,
        "vindr" => vindr::write_annotations(&mut bytes, rows)
            .map_err(|e| format!("cannot write a VinDr-CXR annotations CSV: {e}"))?,
        "submission" => kaggle::write_submission(&mut bytes, rows)
            .map_err(|e| format!("cannot write a Kaggle submission: {e}"))?,
        other => return Err(format!("format {other:?}: use kaggle, vindr or submission")),
    }
    Ok(bytes)
}

async fn run_export(
    state: &AppState,
    blobs: &radlab_store::BlobStore,
    ctx: &Arc<JobContext>,
    job: &Job,
    params: &Value,
) -> Result<Ended, Ended> {
    let p = ExportParams::parse(params).map_err(Ended::Failed)?;
    ctx.set(0, 1, "reading the annotations");
    let rows = project_rows(state, &job.project_id, &p.layers()).await?;
    if ctx.stopping() {
        return Err(Ended::Cancelled);
    }
    ctx.set(0, 1, "writing the CSV");
    let format = p.format.clone();
    let (bytes, rows) =
        tokio::task::spawn_blocking(move || labels_csv(&format, &rows).map(|b| (b, rows.len())))
            .await
            .map_err(|_| Ended::Failed("writing the CSV stopped on an internal error".into()))?
            .map_err(|e| Ended::Failed(format!("project {}: {e}", job.project_id)))?;
    let size = bytes.len();
    let blob = store_result(blobs, bytes).await?;
    ctx.set(1, 1, "written");
    Ok(Ended::Done {
        message: format!("{rows} annotations written ({} format)", p.format),
        result: json!({
            "format": p.format,
            "layers": p.layers().iter().map(|l| l.as_str()).collect::<Vec<_>>(),
            "rows": rows,
            "bytes": size,
        }),
        blob,
    })
}

async fn run_fuse(
    state: &AppState,
    blobs: &radlab_store::BlobStore,
    ctx: &Arc<JobContext>,
    job: &Job,
    params: &Value,
) -> Result<Ended, Ended> {
    let p = FuseParams::parse(params).map_err(Ended::Failed)?;
    ctx.set(0, 1, "reading the readers' layers");
    let rows = project_rows(state, &job.project_id, &[Layer::Reader]).await?;
    if ctx.stopping() {
        return Err(Ended::Cancelled);
    }
    ctx.set(0, 1, "fusing the readers");
    let options = p.options();
    let (bytes, counts) = tokio::task::spawn_blocking(move || {
        let fused = fuse_readers(&rows, &options)?;
        let mut bytes = Vec::new();
        write_consensus(&mut bytes, &fused).map_err(|e| e.to_string())?;
        let images = fused
            .iter()
            .map(|f| f.image_id.as_str())
            .collect::<std::collections::HashSet<_>>()
            .len();
        let readers = rows
            .iter()
            .filter_map(|r| r.reader.as_deref())
            .collect::<std::collections::HashSet<_>>()
            .len();
        let counts = json!({
            "rows": fused.len(),
            "images": images,
            "readers": readers,
            "reader_boxes": rows.iter().filter(|r| r.bbox.is_some()).count(),
            "fused_boxes": fused.iter().filter(|f| f.bbox.is_some()).count(),
        });
        Ok::<_, String>((bytes, counts))
    })
    .await
    .map_err(|_| Ended::Failed("the fusion stopped on an internal error".into()))?
    .map_err(|e| Ended::Failed(format!("project {}: {e}", job.project_id)))?;
    let mut result = counts;
    result["bytes"] = json!(bytes.len());
    let blob = store_result(blobs, bytes).await?;
    ctx.set(1, 1, "written");
    Ok(Ended::Done {
        message: format!(
            "{} readers' boxes fused into {} boxes on {} images",
            result["reader_boxes"], result["fused_boxes"], result["images"]
        ),
        result,
        blob,
    })
}

// Parameters: checked when the job is queued (a 400 naming the field) and again when it
// runs.

fn object<'a>(params: &'a Value, allowed: &[&str]) -> Result<&'a Map<String, Value>, String> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    let map = match params {
        Value::Null => EMPTY.get_or_init(Map::new),
        Value::Object(m) => m,
        _ => return Err("params must be a JSON object".into()),
    };
    if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!(
            "params.{k} is not a parameter of this kind of job (it takes: {})",
            allowed.join(", ")
        ));
    }
    Ok(map)
}

fn string(map: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("params.{key} must be a string")),
    }
}

fn number(map: &Map<String, Value>, key: &str, default: f64) -> Result<f64, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("params.{key} must be a number")),
        Some(_) => Err(format!("params.{key} must be a number")),
    }
}

/// An import's parameters.
struct ImportParams {
    paths: Vec<String>,
    project: Option<String>,
    split: String,
}

impl ImportParams {
    /// `project` is the job's project (given beside the params), which `params.project` may
    /// repeat.
    fn parse(params: &Value, project: Option<&str>) -> Result<ImportParams, String> {
        let map = object(params, &["paths", "project", "split"])?;
        let paths = match map.get("paths") {
            Some(Value::Array(a)) if !a.is_empty() => a
                .iter()
                .map(|p| match p {
                    Value::String(s) if std::path::Path::new(s).is_absolute() => Ok(s.clone()),
                    Value::String(_) => Err(
                        "params.paths: give absolute paths (they are read on the server)"
                            .to_string(),
                    ),
                    _ => Err("params.paths must be a list of path strings".to_string()),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(Value::Array(_)) | None | Some(Value::Null) => {
                return Err("params.paths: list the server-side folders or files to import".into());
            }
            Some(_) => return Err("params.paths must be a list of path strings".into()),
        };
        let project = project.filter(|p| !p.is_empty()).map(str::to_string);
        let project = match (project, string(map, "project")?) {
            (Some(a), Some(b)) if a != b => {
                return Err(format!(
                    "params.project {b:?} is not the job's project {a:?}: give it once"
                ));
            }
            (a, b) => a.or(b),
        };
        let split = string(map, "split")?;
        if split.is_some() && project.is_none() {
            return Err("params.split needs a project to add the images to".into());
        }
        let split = split.unwrap_or_else(|| "unassigned".into());
        if !radlab_store::SPLITS.contains(&split.as_str()) {
            return Err(format!(
                "params.split {split:?}: use train, test or unassigned"
            ));
        }
        Ok(ImportParams {
            paths,
            project,
            split,
        })
    }

    fn to_json(&self) -> Value {
        let mut v = json!({"paths": self.paths});
        if let Some(p) = &self.project {
            v["project"] = json!(p);
            v["split"] = json!(self.split);
        }
        v
    }
}

/// A label export's parameters.
struct ExportParams {
    format: String,
    layer: Option<String>,
}

impl ExportParams {
    fn parse(params: &Value) -> Result<ExportParams, String> {
        let map = object(params, &["format", "layer"])?;
        let format = string(map, "format")?.unwrap_or_else(|| "kaggle".into());
        if !["kaggle", "vindr", "submission"].contains(&format.as_str()) {
            return Err(format!(
                "params.format {format:?}: use kaggle, vindr or submission"
            ));
        }
        let layer = string(map, "layer")?;
        if let Some(l) = &layer
            && !["reader", "consensus", "model"].contains(&l.as_str())
        {
            return Err(format!(
                "params.layer {l:?}: use reader, consensus or model"
            ));
        }
        Ok(ExportParams { format, layer })
    }

    /// The layers exported: the one asked for; else reader and consensus (model for a
    /// submission), as `radlab labels export` does.
    fn layers(&self) -> Vec<Layer> {
        match (self.layer.as_deref(), self.format.as_str()) {
            (Some("reader"), _) => vec![Layer::Reader],
            (Some("consensus"), _) => vec![Layer::Consensus],
            (Some(_), _) | (None, "submission") => vec![Layer::Model],
            (None, _) => vec![Layer::Reader, Layer::Consensus],
        }
    }

    fn to_json(&self) -> Value {
        let mut v = json!({"format": self.format});
        if let Some(l) = &self.layer {
            v["layer"] = json!(l);
        }
        v
    }
}

/// A fusion's parameters.
struct FuseParams {
    iou_thr: f64,
    skip_box_thr: f64,
    conf_type: String,
    quorum: Option<String>,
}

impl FuseParams {
    fn parse(params: &Value) -> Result<FuseParams, String> {
        let map = object(params, &["iou_thr", "quorum", "skip_box_thr", "conf_type"])?;
        let iou_thr = number(map, "iou_thr", 0.4)?;
        if !(0.0..1.0).contains(&iou_thr) {
            return Err(format!("params.iou_thr {iou_thr} must be in [0, 1)"));
        }
        let skip_box_thr = number(map, "skip_box_thr", 0.0)?;
        if !(0.0..=1.0).contains(&skip_box_thr) {
            return Err(format!(
                "params.skip_box_thr {skip_box_thr} must be in [0, 1]"
            ));
        }
        let conf_type = string(map, "conf_type")?.unwrap_or_else(|| "avg".into());
        if ConfType::parse(&conf_type).is_none() {
            return Err(format!(
                "params.conf_type {conf_type:?}: use avg, max, box_and_model_avg or \
                 absent_model_aware_avg"
            ));
        }
        let quorum = match map.get("quorum") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(_) => {
                return Err(
                    "params.quorum must be a count of readers (2) or a share (0.5, \"2/3\")".into(),
                );
            }
        };
        if let Some(q) = &quorum {
            Quorum::parse(q).map_err(|e| format!("params.quorum: {e}"))?;
        }
        Ok(FuseParams {
            iou_thr,
            skip_box_thr,
            conf_type,
            quorum,
        })
    }

    /// The options of `radlab fuse --fusion-iou IOU_THR --quorum Q` (WBF, every reader
    /// weighing 1).
    fn options(&self) -> ConsensusOptions {
        ConsensusOptions {
            method: Method::Wbf(WbfOptions {
                iou_thr: self.iou_thr,
                skip_box_thr: self.skip_box_thr,
                weights: None,
                conf_type: ConfType::parse(&self.conf_type).unwrap_or(ConfType::Avg),
                allows_overflow: false,
            }),
            quorum: self.quorum.as_deref().and_then(|q| Quorum::parse(q).ok()),
            reader_weights: Default::default(),
        }
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "iou_thr": self.iou_thr,
            "skip_box_thr": self.skip_box_thr,
            "conf_type": self.conf_type,
        });
        if let Some(q) = &self.quorum {
            v["quorum"] = json!(q);
        }
        v
    }
}

// The API.

/// A job as the API shows it.
fn job_json(job: &Job) -> Value {
    let parse = |s: &str| {
        if s.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(s).unwrap_or(Value::Null)
        }
    };
    let result_url = (job.state == JobState::Done && !job.result_blob.is_empty())
        .then(|| format!("/api/v1/jobs/{}/result", job.job_id));
    let or_null = |s: &str| (!s.is_empty()).then(|| s.to_string());
    json!({
        "job_id": job.job_id,
        "kind": job.kind,
        "project": or_null(&job.project_id),
        "params": parse(&job.params),
        "state": job.state,
        "cancel_requested": job.cancel_requested,
        "done": job.done,
        "total": job.total,
        "message": job.message,
        "result": parse(&job.result),
        "result_url": result_url,
        "created_by": job.created_by_name,
        "created_at": job.created_at,
        "started_at": or_null(&job.started_at),
        "finished_at": or_null(&job.finished_at),
        "worker": or_null(&job.worker),
        "attempts": job.attempts,
    })
}

fn no_job(job_id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no job {job_id} that you may see"),
    )
}

/// A job the caller may see: their own, one of a project they own, or any for an
/// administrator; 404 otherwise (as for a job that does not exist).
async fn visible_job(state: &AppState, caller: &Caller, job_id: &str) -> Result<Job, ApiError> {
    let job = state
        .catalog
        .job(job_id)
        .await?
        .ok_or_else(|| no_job(job_id))?;
    if caller.user.site_role == SiteRole::Admin || job.created_by == caller.user.user_id {
        return Ok(job);
    }
    if !job.project_id.is_empty()
        && state
            .catalog
            .member_roles(&job.project_id, &caller.user.user_id)
            .await?
            .contains(&ProjectRole::Owner)
    {
        return Ok(job);
    }
    Err(no_job(job_id))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewJob {
    kind: String,
    #[serde(default)]
    project: Option<String>,
    #[serde(default)]
    params: Value,
}

/// `POST /api/v1/jobs` `{kind, project?, params}`: queue a job; 202 with it.
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    payload: Result<Json<NewJob>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let new = body(payload)?;
    let project = new.project.clone().filter(|p| !p.is_empty());
    let (project, params) = match new.kind.as_str() {
        "import" => {
            caller
                .require_admin()
                .map_err(|_| ApiError::forbidden("an import job needs a site administrator"))?;
            let p = ImportParams::parse(&new.params, project.as_deref())
                .map_err(ApiError::bad_request)?;
            if let Some(project) = &p.project {
                access(&state, &caller, project).await?;
            }
            (p.project.clone(), p.to_json())
        }
        kind @ ("export_labels" | "fuse") => {
            let project = project.ok_or_else(|| {
                ApiError::bad_request(format!("project: name the project a {kind} job is of"))
            })?;
            let roles = access(&state, &caller, &project).await?;
            require_owner(&caller, &roles, &format!("a {kind} job"))?;
            let params = if kind == "fuse" {
                FuseParams::parse(&new.params).map(|p| p.to_json())
            } else {
                ExportParams::parse(&new.params).map(|p| p.to_json())
            }
            .map_err(ApiError::bad_request)?;
            (Some(project), params)
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "kind {other:?} is not a kind of job: use one of {}",
                KINDS.join(", ")
            )));
        }
    };
    if state.uploads.is_none() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "jobs_off",
            "this server runs no jobs (it has no blob store)",
        ));
    }
    let id = random_token("j_")?;
    let job = state
        .catalog
        .enqueue_job(
            &id[..18],
            &new.kind,
            project.as_deref().unwrap_or(""),
            &params.to_string(),
            &caller.user.user_id,
        )
        .await?;
    state.jobs.wake.notify_one();
    tracing::info!(job = job.job_id, kind = job.kind, "job queued");
    Ok((StatusCode::ACCEPTED, Json(json!({"job": job_json(&job)}))))
}

#[derive(Deserialize)]
pub(crate) struct Page {
    #[serde(default)]
    offset: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

/// `GET /api/v1/jobs?offset=&limit=`: the caller's jobs (an administrator's: all), newest
/// first.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let offset = page.offset.unwrap_or(0).max(0);
    let limit = page.limit.unwrap_or(100).clamp(1, 1000);
    let whose = (caller.user.site_role != SiteRole::Admin).then_some(caller.user.user_id.as_str());
    let (jobs, total) = state.catalog.jobs(whose, offset, limit).await?;
    Ok(Json(json!({
        "jobs": jobs.iter().map(job_json).collect::<Vec<_>>(),
        "total": total,
        "offset": offset,
        "limit": limit,
    })))
}

/// `GET /api/v1/jobs/{job}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(job_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let job = visible_job(&state, &caller, &job_id).await?;
    Ok(Json(json!({"job": job_json(&job)})))
}

/// `GET /api/v1/jobs/{job}/result`: a done job's result file.
pub(crate) async fn result(
    State(state): State<AppState>,
    caller: Caller,
    Path(job_id): Path<String>,
) -> Result<Response, ApiError> {
    let job = visible_job(&state, &caller, &job_id).await?;
    if job.state != JobState::Done {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_done",
            format!(
                "job {job_id} is {}: its result comes when it is done",
                job.state.as_str()
            ),
        ));
    }
    if job.result_blob.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_result_file",
            format!(
                "a {} job has no result file; its result is in GET /api/v1/jobs/{job_id}",
                job.kind
            ),
        ));
    }
    let blobs = state
        .uploads
        .as_ref()
        .map(|u| u.blobs.clone())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "jobs_off",
                "this server has no blob store to read the result from",
            )
        })?;
    let bytes = blobs.get(&job.result_blob).await?;
    let name = format!("{}-{}.csv", job.kind, job.job_id);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CACHE_CONTROL, "private, no-cache".to_string()),
        ],
        Body::from(bytes),
    )
        .into_response())
}

/// `POST /api/v1/jobs/{job}/cancel`: whoever may see the job.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(job_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let job = visible_job(&state, &caller, &job_id).await?;
    if job.state.finished() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "finished",
            format!("job {job_id} is {} already", job.state.as_str()),
        ));
    }
    let job = state
        .catalog
        .cancel_job(&job_id)
        .await?
        .ok_or_else(|| no_job(&job_id))?;
    tracing::info!(
        job = job.job_id,
        state = job.state.as_str(),
        "job cancel asked"
    );
    Ok(Json(json!({"job": job_json(&job)})))
}
