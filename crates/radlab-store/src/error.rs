//! Errors of the catalog and blob store.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("catalog database: {0}")]
    Database(String),
    #[error("blob store: {0}")]
    Blob(String),
    #[error("{path}: {message}")]
    Source { path: String, message: String },
    /// The work was cancelled (an import whose progress said so).
    #[error("cancelled")]
    Cancelled,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

impl From<object_store::Error> for StoreError {
    fn from(e: object_store::Error) -> Self {
        StoreError::Blob(e.to_string())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
