//! The content-addressed blob store: original objects keyed by their BLAKE3 hash, on a local
//! folder by default, or in an S3-compatible bucket (AWS S3, SeaweedFS, MinIO, ...) through
//! `object_store`'s `aws` backend.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ClientConfigKey, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};

use crate::error::{Result, StoreError};

/// What to tell someone whose S3 request failed.
const S3_HINT: &str = "check that the bucket exists, AWS_ENDPOINT_URL (set it for a non-AWS S3 \
                       server such as SeaweedFS or MinIO, with AWS_ALLOW_HTTP=true for an \
                       http:// endpoint), AWS_REGION, and the credentials AWS_ACCESS_KEY_ID / \
                       AWS_SECRET_ACCESS_KEY";

/// Explicit settings of an S3-compatible store, for [`BlobStore::s3`]. Fields left `None`
/// keep object_store's defaults (region `us-east-1`, AWS's own endpoint, credentials from
/// the instance metadata service).
#[derive(Clone, Default)]
pub struct S3Options {
    /// The server's address, e.g. `http://127.0.0.1:8333` (AWS's when `None`).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Permit a plain-HTTP endpoint.
    pub allow_http: bool,
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id.as_ref().map(|_| "..."))
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "..."),
            )
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// Blobs addressed by content hash, under `objects/aa/bb/HASH`. Writes are atomic (a local
/// folder writes a temporary file and renames it; an S3 PUT replaces the whole object at
/// once), so a reader never sees half a blob, and writing the same blob twice is harmless.
#[derive(Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    /// Where the blobs are, for messages: a folder or `s3://bucket/prefix` (never a secret).
    location: String,
    kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Local,
    /// An S3 bucket: failures get [`S3_HINT`].
    S3,
    Other,
}

impl std::fmt::Debug for BlobStore {
    // The backend is left out: an S3 client's debug form could show its credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// `s3://bucket/some/prefix` (or `s3a://`) as (bucket, prefix); errors never echo what could
/// be a credential.
fn parse_s3_url(url: &str) -> Result<(String, String)> {
    let rest = url
        .strip_prefix("s3://")
        .or_else(|| url.strip_prefix("s3a://"))
        .ok_or_else(|| StoreError::Config(format!("{url:?} is not an s3://BUCKET/PREFIX URL")))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.contains('@') || bucket.contains(':') {
        return Err(StoreError::Config(
            "the s3:// store URL must not hold credentials or a port: give s3://BUCKET/PREFIX, \
             the credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the server in \
             AWS_ENDPOINT_URL"
                .into(),
        ));
    }
    if bucket.is_empty() {
        return Err(StoreError::Config(format!(
            "{url:?} names no bucket: give s3://BUCKET or s3://BUCKET/PREFIX"
        )));
    }
    if rest.contains(['?', '#']) {
        return Err(StoreError::Config(format!(
            "{url:?}: the store URL takes no query or fragment; S3 settings come from the AWS_* \
             environment variables"
        )));
    }
    let prefix = prefix.trim_matches('/');
    if prefix
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
        && !prefix.is_empty()
    {
        return Err(StoreError::Config(format!(
            "{url:?}: the prefix has an empty, . or .. part"
        )));
    }
    Ok((bucket.to_string(), prefix.to_string()))
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
            location: root.display().to_string(),
            kind: Kind::Local,
        })
    }

    /// The store a `--store` value names: `s3://BUCKET[/PREFIX]` (configured from the standard
    /// AWS environment variables: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`
    /// or `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL` for an S3-compatible server,
    /// `AWS_ALLOW_HTTP=true` for a plain-HTTP one), `file://PATH`, or a local folder.
    pub fn open(url: &str) -> Result<Self> {
        if url.starts_with("s3://") || url.starts_with("s3a://") {
            return Self::s3_with(url, AmazonS3Builder::from_env());
        }
        if let Some(path) = url.strip_prefix("file://") {
            return Self::local(path);
        }
        if let Some((scheme, _)) = url.split_once("://") {
            return Err(StoreError::Config(format!(
                "the blob store {scheme}:// is not supported: give a folder, file://PATH or \
                 s3://BUCKET/PREFIX"
            )));
        }
        Self::local(url)
    }

    /// An S3-compatible store at `url` (`s3://BUCKET[/PREFIX]`) with explicit settings and
    /// nothing read from the environment.
    pub fn s3(url: &str, options: &S3Options) -> Result<Self> {
        let mut builder = AmazonS3Builder::new().with_allow_http(options.allow_http);
        if let Some(endpoint) = &options.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &options.region {
            builder = builder.with_region(region);
        }
        if let Some(key) = &options.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &options.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        Self::s3_with(url, builder)
    }

    fn s3_with(url: &str, builder: AmazonS3Builder) -> Result<Self> {
        let (bucket, prefix) = parse_s3_url(url)?;
        let location = if prefix.is_empty() {
            format!("s3://{bucket}")
        } else {
            format!("s3://{bucket}/{prefix}")
        };
        let endpoint = builder
            .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
            .or_else(|| builder.get_config_value(&AmazonS3ConfigKey::Endpoint));
        let allow_http = builder
            .get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp))
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"))
            && !allow_http
        {
            return Err(StoreError::Config(format!(
                "blob store {location}: the S3 endpoint (AWS_ENDPOINT_URL) is a plain http:// \
                 address: set AWS_ALLOW_HTTP=true to use it, or give an https:// one"
            )));
        }
        let store = builder
            .with_url(format!("s3://{bucket}"))
            // Path-style requests (`endpoint/bucket/key`), which every S3-compatible server
            // understands; AWS takes them too.
            .with_virtual_hosted_style_request(false)
            // Fail within seconds when the server is unreachable or misconfigured, still
            // riding out a brief outage.
            .with_retry(RetryConfig {
                max_retries: 5,
                retry_timeout: Duration::from_secs(30),
                ..RetryConfig::default()
            })
            .build()
            .map_err(|e| StoreError::Config(format!("blob store {location}: {e}; {S3_HINT}")))?;
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(store)
        } else {
            Arc::new(PrefixStore::new(store, prefix.as_str()))
        };
        Ok(BlobStore {
            store,
            location,
            kind: Kind::S3,
        })
    }

    /// A store over any `object_store` backend (S3, GCS, Azure, memory).
    pub fn from_object_store(store: Arc<dyn ObjectStore>) -> Self {
        BlobStore {
            location: store.to_string(),
            store,
            kind: Kind::Other,
        }
    }

    /// Where the blobs are: a folder or `s3://bucket/prefix`.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Reach the store once (a listing of the blob prefix), so that a wrong endpoint, bucket
    /// or credential fails at start-up with a message rather than at the first image.
    pub async fn check(&self) -> Result<()> {
        if self.kind == Kind::Local {
            return Ok(());
        }
        self.store
            .list_with_delimiter(Some(&ObjectPath::from("objects")))
            .await
            .map(|_| ())
            .map_err(|e| self.error("cannot reach the store", e))
    }

    fn error(&self, what: &str, e: object_store::Error) -> StoreError {
        if self.kind == Kind::S3 {
            StoreError::Blob(format!("{}: {what}: {e}; {S3_HINT}", self.location))
        } else {
            StoreError::Blob(format!("{}: {what}: {e}", self.location))
        }
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
            Err(e) => Err(self.error(&format!("cannot look up blob {hash}"), e)),
        }
    }

    /// Store `bytes` under `hash` unless already there.
    pub async fn put(&self, hash: &str, bytes: Bytes) -> Result<()> {
        if self.contains(hash).await? {
            return Ok(());
        }
        self.store
            .put(&Self::key(hash)?, PutPayload::from_bytes(bytes))
            .await
            .map_err(|e| self.error(&format!("cannot write blob {hash}"), e))?;
        Ok(())
    }

    pub async fn get(&self, hash: &str) -> Result<Bytes> {
        let key = Self::key(hash)?;
        let read = async { self.store.get(&key).await?.bytes().await };
        match read.await {
            Ok(bytes) => Ok(bytes),
            // A missing blob is the catalog's problem, not the store's configuration.
            Err(e @ object_store::Error::NotFound { .. }) => Err(StoreError::Blob(format!(
                "{}: blob {hash} is missing: {e}",
                self.location
            ))),
            Err(e) => Err(self.error(&format!("cannot read blob {hash}"), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls() {
        assert_eq!(
            parse_s3_url("s3://bucket").unwrap(),
            ("bucket".into(), "".into())
        );
        assert_eq!(
            parse_s3_url("s3://bucket/a/b/").unwrap(),
            ("bucket".into(), "a/b".into())
        );
        assert_eq!(
            parse_s3_url("s3a://bucket/p").unwrap(),
            ("bucket".into(), "p".into())
        );
        for bad in [
            "s3://",
            "s3:///p",
            "s3://b/a//c",
            "s3://b/../c",
            "s3://b/p?x=1",
        ] {
            assert!(parse_s3_url(bad).is_err(), "{bad}");
        }
        let secret = parse_s3_url("s3://AKIA:hunter2@bucket/p").unwrap_err();
        assert!(!secret.to_string().contains("hunter2"), "{secret}");
    }

    #[test]
    fn open_refuses_unknown_schemes_and_plain_http_without_consent() {
        let e = BlobStore::open("gs://bucket/p").unwrap_err().to_string();
        assert!(e.contains("s3://BUCKET/PREFIX"), "{e}");
        let e = BlobStore::s3(
            "s3://bucket/p",
            &S3Options {
                endpoint: Some("http://127.0.0.1:1".into()),
                ..S3Options::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("AWS_ALLOW_HTTP=true"), "{e}");
        assert!(e.contains("s3://bucket/p"), "{e}");
    }

    #[test]
    fn open_takes_folders_and_file_urls() {
        let dir = std::env::temp_dir().join(format!("radlab-blobs-{}", std::process::id()));
        let store = BlobStore::open(&format!("file://{}", dir.display())).unwrap();
        assert_eq!(store.location(), dir.display().to_string());
        let store = BlobStore::open(&dir.display().to_string()).unwrap();
        assert_eq!(store.location(), dir.display().to_string());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn debug_never_shows_secrets() {
        let options = S3Options {
            endpoint: Some("https://s3.example.invalid".into()),
            access_key_id: Some("AKIAEXAMPLE".into()),
            secret_access_key: Some("hunter2".into()),
            ..S3Options::default()
        };
        assert!(!format!("{options:?}").contains("hunter2"));
        let store = BlobStore::s3("s3://bucket/p", &options).unwrap();
        let shown = format!("{store:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("AKIAEXAMPLE"),
            "{shown}"
        );
    }
}
