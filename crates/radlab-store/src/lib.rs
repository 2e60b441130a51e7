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
//! - [`BlobStore`]: original objects keyed by content hash, in a local folder by default
//!   (behind `object_store`, so S3-compatible stores fit).
//! - DICOMweb reads (`Catalog::qido_studies`, `qido_series`, `qido_instances`): a project's
//!   studies, series and instances as QIDO-RS matches them, limited to what the caller sees.
//! - [`import`]: `radlab import` — discovery of folders and zip files, parallel reading and
//!   decoding, de-duplication by content and SOP Instance UID, the quarantine list.

mod accounts;
mod blobs;
mod catalog;
mod dicomweb;
mod error;
pub mod import;
mod labels;
mod project_images;
mod task_layers;
mod tasks;

pub use accounts::{SiteRole, User, check_username};
pub use blobs::BlobStore;
pub use catalog::{
    Backend, Catalog, CatalogCounts, InsertOutcome, InstanceIdentity, InstanceRow, NewInstance,
    QuarantineEntry,
};
pub use dicomweb::{InstanceMatch, QidoQuery, SeriesMatch, StudyMatch, Visibility};
pub use error::{Result, StoreError};
pub use import::{
    ImportOptions, ImportProgress, ImportSummary, NoProgress, PixelCheck, import_paths,
};
pub use labels::{Layer, Member, ProjectRole, ProjectSummary};
pub use project_images::{Added, ImageSelection, ProjectImage, SPLITS};
pub use task_layers::{LayerAnnotation, LayerKey, LayerState, LayerWriteError};
pub use tasks::{Assignment, ReaderProgress, Task, Workflow};
