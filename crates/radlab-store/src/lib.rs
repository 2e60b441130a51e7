//! # radlab-store
//!
//! The only crate that talks to the catalog database and the blob store.
//!
//! - [`Catalog`]: patient / study / series / instance rows, the quarantine list and import
//!   runs, in SQLite (embedded, the default) or PostgreSQL, with the same migrations.
//! - Projects and their annotations (`Catalog::create_project`, `add_annotations`,
//!   `annotations`): an append-only log per project, the current labels derived from it.
//! - Accounts, browser sessions and API tokens (`Catalog::create_user`, `session`,
//!   `api_token_user`): stored hashed, never in clear.
//! - [`BlobStore`]: original objects keyed by content hash, in a local folder by default or an
//!   S3-compatible bucket (`BlobStore::open("s3://bucket/prefix")`, object_store's aws backend).
//! - DICOMweb reads (`Catalog::qido_studies`, `qido_series`, `qido_instances`): a project's
//!   studies, series and instances as QIDO-RS matches them, limited to what the caller sees.
//! - The job queue (`Catalog::enqueue_job`, `claim_next_job`, `job_progress`, `finish_job`,
//!   `requeue_stale_jobs`): long jobs any of several servers may run, each exactly once.
//! - [`import`]: `radlab import` — discovery of folders and zip files, parallel reading and
//!   decoding, de-duplication by content and SOP Instance UID, the quarantine list.

mod accounts;
mod blobs;
mod catalog;
mod dicomweb;
mod error;
pub mod import;
mod jobs;
mod labels;
mod project_images;
mod task_layers;
mod tasks;
mod triage;

pub use accounts::{SiteRole, User, check_username};
pub use blobs::{BlobStore, S3Options};
pub use catalog::{
    Backend, Catalog, CatalogCounts, InsertOutcome, InstanceIdentity, InstanceRow, NewInstance,
    QuarantineEntry,
};
pub use dicomweb::{InstanceMatch, QidoQuery, SeriesMatch, StudyMatch, Visibility};
pub use error::{Result, StoreError};
pub use import::{
    ImportOptions, ImportProgress, ImportSummary, NoProgress, PixelCheck, import_paths,
};
pub use jobs::{Job, JobControl, JobState, MAX_ATTEMPTS, StaleJobs};
pub use labels::{Layer, Member, ProjectRole, ProjectSummary};
pub use project_images::{Added, ImageSelection, ProjectImage, SPLITS};
pub use task_layers::{LayerAnnotation, LayerKey, LayerState, LayerWriteError};
pub use tasks::{Assignment, QueueSummary, ReaderProgress, Task, Workflow};
pub use triage::{NewVerdict, Verdict};
