//! Load generator: N readers working at once against an in-process `radlab serve` for a
//! while, on SQLite or PostgreSQL. Each reader signs in, then loops: list their tasks, start
//! the next, fetch the image as a viewer does (its WADO-RS metadata, then frame 1 as stored,
//! `transfer-syntax=*`, as OHIF asks), read its annotations, save them every `--save-every`
//! seconds a few times (one box more each time), submit, take the next. Prints one JSON object: requests per second,
//! p50 / p95 / p99 latency per kind of call, errors.
//!
//! usage: cargo run --release -p radlab-server --example load -- \
//!            [--db sqlite|postgres://...] [--readers 50] [--seconds 60] [--save-every 2]
//!
//! Needs the shared corpus: its DICOM files that import are the images, each read by 20 of
//! the readers (an independent workflow, the most it allows), so that every reader has more
//! tasks than the run lasts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use radlab_server::{AppState, ServerConfig, add_user};
use radlab_store::{BlobStore, Catalog, ImageSelection, ImportOptions, NoProgress, ProjectRole};
use radlab_testkit::try_http;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

type Samples = Arc<Mutex<BTreeMap<&'static str, Vec<f64>>>>;

fn main() {
    let readers: usize = arg("--readers", "50").parse().expect("--readers N");
    let seconds: u64 = arg("--seconds", "60").parse().expect("--seconds N");
    let save_every: f64 = arg("--save-every", "2").parse().expect("--save-every S");
    let db = arg("--db", "sqlite");
    let dir = tempfile::tempdir().unwrap();
    let url = if db == "sqlite" {
        format!("sqlite://{}", dir.path().join("catalog.db").display())
    } else {
        db.clone()
    };
    let corpus = radlab_testkit::corpus("load").expect("the shared corpus");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (addr, wado) = rt.block_on(async {
        let catalog = Catalog::open(&url).await.unwrap();
        let blobs = BlobStore::local(dir.path().join("blobs")).unwrap();
        radlab_store::import_paths(
            &catalog,
            &blobs,
            &[corpus.path("dicom")],
            &ImportOptions::default(),
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
        let instances = catalog.list_instances(None).await.unwrap();
        let uids: Vec<String> = instances
            .iter()
            .map(|r| r.sop_instance_uid.clone())
            .collect();
        // Where each image is in the project's DICOMweb, by the image id tasks carry.
        let wado: BTreeMap<String, String> = instances
            .iter()
            .map(|r| {
                (
                    radlab_labels::export::vindr_image_id(&r.sop_instance_uid),
                    format!(
                        "/api/v1/projects/load/dicomweb/studies/{}/series/{}/instances/{}",
                        r.study_instance_uid, r.series_instance_uid, r.sop_instance_uid
                    ),
                )
            })
            .collect();
        let owner = add_user(&catalog, "owner", "owner password 1", "user")
            .await
            .unwrap();
        let schema =
            serde_json::to_string(&radlab_labels::schema::LabelSchema::vindr_cxr()).unwrap();
        catalog.create_project("load", &schema).await.unwrap();
        catalog
            .add_member("load", &owner.user_id, ProjectRole::Owner)
            .await
            .unwrap();
        for i in 0..readers {
            let u = add_user(&catalog, &format!("r{i}"), "reader password 1", "user")
                .await
                .unwrap();
            catalog
                .add_member("load", &u.user_id, ProjectRole::Annotator)
                .await
                .unwrap();
        }
        catalog
            .add_project_images("load", &ImageSelection::Instances(uids), None, "train")
            .await
            .unwrap();
        catalog
            .set_workflow(
                "load",
                &radlab_store::Workflow {
                    split: "train".into(),
                    kind: "independent".into(),
                    readers: readers.min(20) as i64,
                    reviewers: 0,
                },
            )
            .await
            .unwrap();
        catalog.assign("load", "train").await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(radlab_server::serve(
            listener,
            AppState::new(catalog, ServerConfig::default()).with_uploads(
                blobs,
                dir.path().join("staging"),
                64 << 20,
            ),
        ));
        (addr, Arc::new(wado))
    });
    let samples: Samples = Arc::new(Mutex::new(BTreeMap::new()));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let threads: Vec<_> = (0..readers)
        .map(|i| {
            let samples = samples.clone();
            let errors = errors.clone();
            let wado = wado.clone();
            std::thread::spawn(move || {
                reader(addr, i, deadline, save_every, &wado, &samples, &errors)
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ran_out = elapsed < seconds as f64 * 0.95;
    let samples = samples.lock().unwrap();
    let total: usize = samples.values().map(Vec::len).sum();
    let mut per_kind = serde_json::Map::new();
    let mut annotation_calls: Vec<f64> = Vec::new();
    for (kind, v) in samples.iter() {
        let mut v = v.clone();
        v.sort_by(f64::total_cmp);
        per_kind.insert(kind.to_string(), percentiles(&v));
        if kind.contains("annotations") {
            annotation_calls.extend(&v);
        }
    }
    annotation_calls.sort_by(f64::total_cmp);
    let errors = errors.lock().unwrap();
    println!(
        "{}",
        serde_json::json!({
            "backend": if db == "sqlite" { "sqlite" } else { "postgres" },
            "readers": readers,
            "seconds": elapsed,
            "requests": total,
            "requests_per_second": total as f64 / elapsed,
            "errors": errors.len(),
            "ran_out_of_tasks": ran_out,
            "first_errors": errors.iter().take(5).collect::<Vec<_>>(),
            "annotation_calls_ms": percentiles(&annotation_calls),
            "by_call_ms": per_kind,
        })
    );
}

fn percentiles(sorted: &[f64]) -> serde_json::Value {
    let at = |q: f64| -> Option<f64> {
        (!sorted.is_empty()).then(|| sorted[((sorted.len() - 1) as f64 * q).round() as usize])
    };
    serde_json::json!({"n": sorted.len(), "p50": at(0.5), "p95": at(0.95), "p99": at(0.99)})
}

/// One reader's session until the deadline.
fn reader(
    addr: std::net::SocketAddr,
    i: usize,
    deadline: Instant,
    save_every: f64,
    wado: &BTreeMap<String, String>,
    samples: &Samples,
    errors: &Mutex<Vec<String>>,
) {
    let call = |kind: &'static str, method: &str, path: &str, h: &[(&str, &str)], body: &str| {
        let mut headers = vec![("content-type", "application/json")];
        headers.extend_from_slice(h);
        let t = Instant::now();
        let r = try_http(addr, method, path, &headers, body.as_bytes());
        let ms = t.elapsed().as_secs_f64() * 1e3;
        samples.lock().unwrap().entry(kind).or_default().push(ms);
        match r {
            Ok(r) if r.status < 400 => Some(r),
            Ok(r) => {
                errors.lock().unwrap().push(format!(
                    "{method} {path}: {} {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ));
                None
            }
            Err(e) => {
                errors.lock().unwrap().push(format!("{method} {path}: {e}"));
                None
            }
        }
    };
    let body = format!(r#"{{"username":"r{i}","password":"reader password 1"}}"#);
    let Some(r) = call("login", "POST", "/api/v1/auth/login", &[], &body) else {
        return;
    };
    let cookie = r
        .header("set-cookie")
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .to_string();
    let csrf = r.json()["csrf_token"].as_str().unwrap_or("").to_string();
    let h = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    // Readers start a little apart, as people do.
    std::thread::sleep(Duration::from_millis((i as u64 * 37) % 1000));
    while Instant::now() < deadline {
        let Some(r) = call("next task", "GET", "/api/v1/tasks?state=NEW", &h, "") else {
            return;
        };
        let tasks = r.json();
        let Some(task) = tasks["tasks"].as_array().and_then(|t| t.first()).cloned() else {
            return; // nothing left to read
        };
        let id = task["task_id"].as_str().unwrap_or("").to_string();
        if call(
            "start",
            "POST",
            &format!("/api/v1/tasks/{id}/start"),
            &h,
            "",
        )
        .is_none()
        {
            continue;
        }
        // The viewer opens the image: metadata, then the first frame as stored.
        if let Some(base) = task["image_id"].as_str().and_then(|id| wado.get(id)) {
            call("wado metadata", "GET", &format!("{base}/metadata"), &h, "");
            let accept = [
                h[0],
                (
                    "accept",
                    "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*",
                ),
            ];
            call(
                "wado frame",
                "GET",
                &format!("{base}/frames/1"),
                &accept,
                "",
            );
        }
        let Some(r) = call(
            "get annotations",
            "GET",
            &format!("/api/v1/tasks/{id}/annotations"),
            &h,
            "",
        ) else {
            continue;
        };
        let view = r.json();
        let mut version = view["version"].as_i64().unwrap_or(0);
        // Boxes inside the image, whatever its size.
        let (w, h_px) = (
            view["image"]["columns"].as_f64().unwrap_or(64.0),
            view["image"]["rows"].as_f64().unwrap_or(64.0),
        );
        let mut boxes = Vec::new();
        for k in 0..3 {
            std::thread::sleep(Duration::from_secs_f64(save_every));
            if Instant::now() >= deadline {
                return;
            }
            let x = k as f64 / 4.0;
            boxes.push(serde_json::json!({"label": "Nodule/Mass", "bbox": [w * x, h_px * 0.1, w * (x + 0.2), h_px * 0.4]}));
            let body = serde_json::json!({"version": version, "annotations": boxes}).to_string();
            match call(
                "save annotations",
                "PUT",
                &format!("/api/v1/tasks/{id}/annotations"),
                &h,
                &body,
            ) {
                Some(r) => version = r.json()["version"].as_i64().unwrap_or(version),
                None => break,
            }
        }
        call(
            "submit",
            "POST",
            &format!("/api/v1/tasks/{id}/submit"),
            &h,
            "",
        );
    }
}
