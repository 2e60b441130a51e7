//! Scale benchmark (issue 5): a project of the seed's raw pool, 100,000 images and 17
//! readers, on SQLite or PostgreSQL, driven through the HTTP API of an in-process
//! `radlab serve`. Prints one JSON object: seconds to add the images to the project, to set
//! the workflow (3 readers per image) and to assign; p50 / p95 / p99 of a reader's worklist
//! (first page, first page of NEW tasks, a deep page) and of the owner's progress.
//!
//! usage: cargo run --release -p radlab-server --example scale -- \
//!            [--db sqlite|postgres://...] [--images 100000] [--readers 17] \
//!            [--per-image 3] [--requests 200]
//!
//! The catalog: the shared corpus's DICOM files are imported as `radlab import` does
//! (structure checks), then each of the `--images` rows is one of those files catalogued
//! again (`Catalog::insert_instances`) with its own Study, Series and SOP Instance UIDs
//! (2.25 UIDs derived from the copy's number) and its own content hash; its blob is the
//! source file's (one blob per distinct source file: the rows differ only in UIDs).

use std::sync::Arc;
use std::time::Instant;

use radlab_server::{AppState, ServerConfig, add_user};
use radlab_store::{
    BlobStore, Catalog, ImportOptions, NewInstance, NoProgress, PixelCheck, ProjectRole,
};
use radlab_testkit::try_http;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

/// The catalogued corpus instances to copy: (their metadata, blob hash, pixel hash, size).
async fn corpus_sources(
    catalog: &Catalog,
    blobs: &BlobStore,
) -> Vec<(radlab_dicom::InstanceInfo, String, String, u64, String)> {
    let corpus = radlab_testkit::corpus("scale").expect("the shared corpus");
    radlab_store::import_paths(
        catalog,
        blobs,
        &[corpus.path("dicom")],
        &ImportOptions {
            check: PixelCheck::Structure,
            ..ImportOptions::default()
        },
        Arc::new(NoProgress),
    )
    .await
    .expect("import the corpus");
    let mut sources = Vec::new();
    for row in catalog.list_instances(None).await.unwrap() {
        let Ok(bytes) = std::fs::read(&row.source_path) else {
            continue;
        };
        let Ok(file) = radlab_dicom::DicomFile::from_bytes(&bytes) else {
            continue;
        };
        let Some(id) = catalog
            .instance_identity(&row.sop_instance_uid)
            .await
            .unwrap()
        else {
            continue;
        };
        sources.push((
            radlab_dicom::InstanceInfo::from_file(&file),
            id.blob_hash,
            id.pixel_hash,
            row.size_bytes as u64,
            row.source_path,
        ));
    }
    assert!(!sources.is_empty(), "no corpus instance to copy");
    sources
}

fn percentiles(mut v: Vec<f64>) -> serde_json::Value {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| -> Option<f64> {
        (!v.is_empty()).then(|| v[((v.len() - 1) as f64 * q).round() as usize])
    };
    serde_json::json!({"n": v.len(), "p50": at(0.5), "p95": at(0.95), "p99": at(0.99)})
}

/// Sign in; the headers that authenticate later calls (cookie, CSRF token).
fn login(addr: std::net::SocketAddr, user: &str, password: &str) -> (String, String) {
    let body = serde_json::json!({"username": user, "password": password}).to_string();
    let r = try_http(
        addr,
        "POST",
        "/api/v1/auth/login",
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .expect("login");
    assert_eq!(r.status, 200, "login {user}");
    let cookie = r
        .header("set-cookie")
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .to_string();
    (
        cookie,
        r.json()["csrf_token"].as_str().unwrap_or("").to_string(),
    )
}

/// One call that must succeed: its answer as JSON and its time in seconds.
fn call(
    addr: std::net::SocketAddr,
    auth: &(String, String),
    method: &str,
    path: &str,
    body: &str,
) -> (serde_json::Value, f64) {
    let headers = [
        ("content-type", "application/json"),
        ("cookie", auth.0.as_str()),
        ("x-csrf-token", auth.1.as_str()),
    ];
    let t = Instant::now();
    let r = try_http(addr, method, path, &headers, body.as_bytes())
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let s = t.elapsed().as_secs_f64();
    assert!(
        r.status < 400,
        "{method} {path}: {} {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    (r.json(), s)
}

/// `n` timed calls (after 5 untimed ones), in milliseconds.
fn sample(
    addr: std::net::SocketAddr,
    auth: &(String, String),
    path: &str,
    n: usize,
    check: impl Fn(&serde_json::Value),
) -> serde_json::Value {
    for _ in 0..5 {
        check(&call(addr, auth, "GET", path, "").0);
    }
    percentiles(
        (0..n)
            .map(|_| call(addr, auth, "GET", path, "").1 * 1e3)
            .collect(),
    )
}

fn main() {
    let images: usize = arg("--images", "100000").parse().expect("--images N");
    let readers: usize = arg("--readers", "17").parse().expect("--readers N");
    let per_image: usize = arg("--per-image", "3").parse().expect("--per-image N");
    let requests: usize = arg("--requests", "200").parse().expect("--requests N");
    let db = arg("--db", "sqlite");
    // --dir keeps the catalog and blobs there (to look at them after the run).
    let temp = tempfile::tempdir().unwrap();
    let dir = if std::env::args().any(|a| a == "--dir") {
        std::path::PathBuf::from(arg("--dir", ""))
    } else {
        temp.path().to_path_buf()
    };
    let dir = &dir;
    let url = if db == "sqlite" {
        format!("sqlite://{}", dir.join("catalog.db").display())
    } else {
        db.clone()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (addr, catalogue_seconds, source_files) = rt.block_on(async {
        let catalog = Catalog::open(&url).await.unwrap();
        let blobs = BlobStore::local(dir.join("blobs")).unwrap();
        let sources = corpus_sources(&catalog, &blobs).await;
        // The copies: fresh UIDs (and so a fresh content hash), the source file's blob.
        let t = Instant::now();
        let batch_size = 1000;
        let mut k = 0;
        while k < images {
            let batch: Vec<NewInstance> = (k..(k + batch_size).min(images))
                .map(|n| {
                    let (info, blob, pixels, size, path) = &sources[n % sources.len()];
                    let mut info = info.clone();
                    let seed = n.to_string();
                    info.study_instance_uid =
                        radlab_dicom::derived_uid("scale-study", seed.as_bytes());
                    info.series_instance_uid =
                        radlab_dicom::derived_uid("scale-series", seed.as_bytes());
                    info.sop_instance_uid = radlab_dicom::derived_uid("scale-sop", seed.as_bytes());
                    NewInstance {
                        content_hash: radlab_dicom::content_hash(info.sop_instance_uid.as_bytes()),
                        blob_hash: blob.clone(),
                        pixel_hash: pixels.clone(),
                        size_bytes: *size,
                        source_kind: "dicom",
                        source_path: format!("{path}#copy{n}"),
                        source_name: format!("copy{n}.dcm"),
                        info,
                    }
                })
                .collect();
            catalog.insert_instances(&batch, "scale").await.unwrap();
            k += batch_size;
        }
        let catalogue_seconds = t.elapsed().as_secs_f64();
        let owner = add_user(&catalog, "owner", "owner password 1", "user")
            .await
            .unwrap();
        let schema =
            serde_json::to_string(&radlab_labels::schema::LabelSchema::vindr_cxr()).unwrap();
        catalog.create_project("scale", &schema).await.unwrap();
        catalog
            .add_member("scale", &owner.user_id, ProjectRole::Owner)
            .await
            .unwrap();
        for i in 0..readers {
            let u = add_user(&catalog, &format!("r{i}"), "reader password 1", "user")
                .await
                .unwrap();
            catalog
                .add_member("scale", &u.user_id, ProjectRole::Annotator)
                .await
                .unwrap();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(radlab_server::serve(
            listener,
            AppState::new(catalog, ServerConfig::default()),
        ));
        (addr, catalogue_seconds, sources.len())
    });
    let owner = login(addr, "owner", "owner password 1");
    let (added, add_seconds) = call(
        addr,
        &owner,
        "POST",
        "/api/v1/projects/scale/images",
        r#"{"import_id": "scale", "split": "train"}"#,
    );
    assert_eq!(added["added"].as_u64(), Some(images as u64), "{added}");
    let (_, workflow_seconds) = call(
        addr,
        &owner,
        "PUT",
        "/api/v1/projects/scale/workflows/train",
        &format!(r#"{{"kind": "independent", "readers": {per_image}}}"#),
    );
    let (assigned, assign_seconds) = call(
        addr,
        &owner,
        "POST",
        "/api/v1/projects/scale/assign",
        r#"{"split": "train"}"#,
    );
    let tasks = (images * per_image) as u64;
    assert_eq!(
        assigned["tasks_created"].as_u64(),
        Some(tasks),
        "{assigned}"
    );
    let load = assigned["load"]["r0"].as_u64().unwrap_or(0);
    // A reader's worklist: first page, first page of NEW tasks (what a reader opens next),
    // a deep page (the last full page of 100).
    let reader = login(addr, "r0", "reader password 1");
    let page = |v: &serde_json::Value| {
        assert_eq!(
            v["tasks"].as_array().map(Vec::len),
            Some(100),
            "a full page"
        );
    };
    let first = sample(addr, &reader, "/api/v1/tasks?project=scale", requests, page);
    let new = sample(
        addr,
        &reader,
        "/api/v1/tasks?project=scale&state=NEW",
        requests,
        page,
    );
    let deep_offset = load.saturating_sub(100);
    let deep = sample(
        addr,
        &reader,
        &format!("/api/v1/tasks?project=scale&offset={deep_offset}"),
        requests,
        page,
    );
    let progress = sample(
        addr,
        &owner,
        "/api/v1/projects/scale/progress",
        requests,
        |v| {
            let n: u64 = v["readers"]
                .as_array()
                .map(|r| r.iter().filter_map(|p| p["new"].as_u64()).sum())
                .unwrap_or(0);
            assert_eq!(n, tasks, "every task NEW: {v}");
        },
    );
    println!(
        "{}",
        serde_json::json!({
            "backend": if db == "sqlite" { "sqlite" } else { "postgres" },
            "images": images,
            "readers": readers,
            "per_image": per_image,
            "source_files": source_files,
            "tasks": tasks,
            "tasks_of_r0": load,
            "catalogue_seconds": catalogue_seconds,
            "add_seconds": add_seconds,
            "workflow_seconds": workflow_seconds,
            "assign_seconds": assign_seconds,
            "worklist_first_page_ms": first,
            "worklist_new_ms": new,
            "worklist_deep_page_ms": deep,
            "worklist_deep_offset": deep_offset,
            "progress_ms": progress,
        })
    );
}
