//! The content-addressed blob store: original objects keyed by their BLAKE3 hash, on a local
//! folder by default (behind `object_store`, so an S3-compatible store can take its place).

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::{Result, StoreError};

/// Blobs addressed by content hash. Writes are atomic (temporary file, then rename), so a
/// reader never sees half a blob, and writing the same blob twice is harmless.
#[derive(Clone, Debug)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
}

impl BlobStore {
    /// A store rooted at a local folder (created if missing).
    pub fn local(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        std::fs::create_dir_all(root).map_err(|e| {
            StoreError::Config(format!(
                "cannot create the blob folder {}: {e}",
                root.display()
            ))
        })?;
        let fs = LocalFileSystem::new_with_prefix(root).map_err(|e| {
            StoreError::Config(format!(
                "cannot open the blob folder {}: {e}",
                root.display()
            ))
        })?;
        Ok(BlobStore {
            store: Arc::new(fs),
        })
    }

    /// A store over any `object_store` backend (S3, GCS, Azure, memory).
    pub fn from_object_store(store: Arc<dyn ObjectStore>) -> Self {
        BlobStore { store }
    }

    fn key(hash: &str) -> Result<ObjectPath> {
        if hash.len() < 8 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::Blob(format!("{hash:?} is not a content hash")));
        }
        Ok(ObjectPath::from(format!(
            "objects/{}/{}/{}",
            &hash[..2],
            &hash[2..4],
            hash
        )))
    }

    pub async fn contains(&self, hash: &str) -> Result<bool> {
        match self.store.head(&Self::key(hash)?).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Store `bytes` under `hash` unless already there.
    pub async fn put(&self, hash: &str, bytes: Bytes) -> Result<()> {
        if self.contains(hash).await? {
            return Ok(());
        }
        self.store
            .put(&Self::key(hash)?, PutPayload::from_bytes(bytes))
            .await?;
        Ok(())
    }

    pub async fn get(&self, hash: &str) -> Result<Bytes> {
        let result = self.store.get(&Self::key(hash)?).await?;
        Ok(result.bytes().await?)
    }
}
