//! Jobs, on SQLite and PostgreSQL: an import of the corpus's radiographs into a project's
//! train split with progress and the right counts; label exports and reader fusion whose
//! result files equal what radlab-labels writes directly; who may start and see jobs; a
//! failing job; cancelling a queued job; and two servers on one database running ten jobs,
//! each exactly once.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use common::{User, block_on, error_code, json, login, post, sqlite_url, start_with};
use radlab_labels::Annotation;
use radlab_labels::consensus::{ConsensusOptions, Quorum, fuse_readers, write_consensus};
use radlab_server::ServerConfig;
use radlab_server::jobs::{JobConfig, JobQueue};
use radlab_store::{Catalog, Layer};
use radlab_testkit::{corpus, postgres_database};
use serde_json::Value;

/// A server over `url` taking uploads and results into `dir`, running `workers` jobs at
/// once; its job queue, to count the jobs it took.
fn server(url: &str, dir: &Path, workers: usize) -> (SocketAddr, Catalog, Arc<JobQueue>) {
    let slot = Arc::new(Mutex::new(None));
    let keep = slot.clone();
    let blobs = dir.join("blobs");
    let staging = dir.join("staging");
    let (addr, catalog) = start_with(url, ServerConfig::default(), move |s| {
        let s = s
            .with_uploads(
                radlab_store::BlobStore::local(blobs).unwrap(),
                staging,
                64 << 20,
            )
            .with_jobs(JobConfig {
                workers,
                poll: Duration::from_millis(50),
                heartbeat: Duration::from_millis(500),
                stale_after: Duration::from_secs(120),
            });
        *keep.lock().unwrap() = Some(s.jobs.clone());
        s
    });
    let queue = slot.lock().unwrap().take().unwrap();
    (addr, catalog, queue)
}

/// Users admin (site administrator), owner, ann and other, passwords "NAME password 1";
/// project "cxr" (VinDr-CXR) owned by owner, with ann as annotator.
fn people(addr: SocketAddr, catalog: &Catalog) -> [User; 4] {
    block_on(async {
        for (n, role) in [
            ("admin", "admin"),
            ("owner", "user"),
            ("ann", "user"),
            ("other", "user"),
        ] {
            radlab_server::add_user(catalog, n, &format!("{n} password 1"), role)
                .await
                .unwrap();
        }
    });
    let [admin, owner, ann, other] = ["admin", "owner", "ann", "other"].map(|n| login(addr, n));
    let r = post(
        addr,
        &owner,
        "/api/v1/projects",
        r#"{"project_id":"cxr","template":"vindr-cxr"}"#,
    );
    assert_eq!(r.status, 201);
    let r = post(
        addr,
        &owner,
        "/api/v1/projects/cxr/members",
        r#"{"username":"ann","role":"annotator"}"#,
    );
    assert_eq!(r.status, 201);
    [admin, owner, ann, other]
}

fn submit(addr: SocketAddr, u: &User, body: &Value) -> String {
    let r = post(addr, u, "/api/v1/jobs", &body.to_string());
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let job = &r.json()["job"];
    assert_eq!(job["state"], "queued");
    job["job_id"].as_str().unwrap().to_string()
}

/// Wait for a job to finish; the job, and every (done, total) seen on the way.
fn wait(addr: SocketAddr, u: &User, id: &str) -> (Value, Vec<(i64, i64)>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    loop {
        let r = json(addr, "GET", &format!("/api/v1/jobs/{id}"), &u.h(), "");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let job = r.json()["job"].clone();
        seen.push((
            job["done"].as_i64().unwrap(),
            job["total"].as_i64().unwrap(),
        ));
        if ["done", "failed", "cancelled"].contains(&job["state"].as_str().unwrap()) {
            return (job, seen);
        }
        assert!(Instant::now() < deadline, "job {id} did not finish: {job}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn result_file(addr: SocketAddr, u: &User, id: &str) -> Vec<u8> {
    let r = json(
        addr,
        "GET",
        &format!("/api/v1/jobs/{id}/result"),
        &u.h(),
        "",
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
    r.body
}

fn expect_400(addr: SocketAddr, u: &User, body: Value, naming: &str) {
    let r = post(addr, u, "/api/v1/jobs", &body.to_string());
    assert_eq!(
        r.status,
        400,
        "{body}: {}",
        String::from_utf8_lossy(&r.body)
    );
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains(naming), "{body}: {message}");
}

/// Readers R1..R3 with boxes on two images (one reader's box alone), "No finding" from
/// two readers on a third, and one consensus annotation.
fn annotations(images: &[String]) -> Vec<Annotation> {
    let a = |image: &str, reader: Option<&str>, label: &str, bbox: Option<[f64; 4]>| Annotation {
        image_id: image.to_string(),
        reader: reader.map(str::to_string),
        label: label.to_string(),
        bbox,
        score: None,
    };
    vec![
        a(
            &images[0],
            Some("R1"),
            "Aortic enlargement",
            Some([10.0, 10.0, 60.0, 60.0]),
        ),
        a(
            &images[0],
            Some("R2"),
            "Aortic enlargement",
            Some([12.0, 11.0, 62.5, 58.0]),
        ),
        a(
            &images[0],
            Some("R3"),
            "Cardiomegaly",
            Some([100.0, 120.0, 300.25, 280.0]),
        ),
        a(
            &images[1],
            Some("R1"),
            "Pleural effusion",
            Some([5.0, 200.0, 80.0, 260.0]),
        ),
        a(
            &images[1],
            Some("R2"),
            "Pleural effusion",
            Some([7.0, 205.0, 82.0, 255.0]),
        ),
        a(
            &images[1],
            Some("R3"),
            "Pleural effusion",
            Some([6.0, 198.0, 79.0, 262.0]),
        ),
        a(&images[2], Some("R1"), "No finding", None),
        a(&images[2], Some("R2"), "No finding", None),
        a(
            &images[1],
            None,
            "Pleural effusion",
            Some([6.0, 201.0, 80.0, 259.0]),
        ),
    ]
}

fn jobs_work(url: &str, backend: &str, corpus: &radlab_testkit::Corpus) {
    let dir = tempfile::tempdir().unwrap();
    let (addr, catalog, _) = server(url, dir.path(), 1);
    let [admin, owner, ann, other] = people(addr, &catalog);
    let folder = std::fs::canonicalize(corpus.path("dicom/cxr")).unwrap();
    let files = std::fs::read_dir(&folder).unwrap().count() as i64;

    // Who may start what.
    let import = serde_json::json!({
        "kind": "import",
        "project": "cxr",
        "params": {"paths": [folder], "split": "train"},
    });
    let r = json(addr, "POST", "/api/v1/jobs", &[], &import.to_string());
    assert_eq!(r.status, 401, "{backend}");
    assert_eq!(json(addr, "GET", "/api/v1/jobs", &[], "").status, 401);
    for u in [&owner, &ann] {
        let r = post(addr, u, "/api/v1/jobs", &import.to_string());
        assert_eq!(r.status, 403, "{backend}: imports are for administrators");
        assert_eq!(error_code(&r), "forbidden");
    }
    let export = serde_json::json!({"kind": "export_labels", "project": "cxr",
        "params": {"format": "vindr"}});
    assert_eq!(
        post(addr, &ann, "/api/v1/jobs", &export.to_string()).status,
        403,
        "{backend}: exports are for owners"
    );
    assert_eq!(
        post(addr, &other, "/api/v1/jobs", &export.to_string()).status,
        403,
        "{backend}: not a member"
    );

    // Bad requests name what is wrong.
    expect_400(
        addr,
        &admin,
        serde_json::json!({"kind": "reindex"}),
        "import, export_labels, fuse",
    );
    expect_400(
        addr,
        &admin,
        serde_json::json!({"kind": "import", "params": {"paths": ["relative/dir"]}}),
        "params.paths",
    );
    expect_400(
        addr,
        &admin,
        serde_json::json!({"kind": "import", "params": {}}),
        "params.paths",
    );
    expect_400(
        addr,
        &admin,
        serde_json::json!({"kind": "import", "project": "cxr",
            "params": {"paths": [folder], "split": "validation"}}),
        "params.split",
    );
    expect_400(
        addr,
        &owner,
        serde_json::json!({"kind": "export_labels", "project": "cxr",
            "params": {"format": "xml"}}),
        "params.format",
    );
    expect_400(
        addr,
        &owner,
        serde_json::json!({"kind": "export_labels", "params": {"format": "vindr"}}),
        "project",
    );
    expect_400(
        addr,
        &owner,
        serde_json::json!({"kind": "fuse", "project": "cxr", "params": {"iou_thr": 2}}),
        "params.iou_thr",
    );
    expect_400(
        addr,
        &owner,
        serde_json::json!({"kind": "fuse", "project": "cxr", "params": {"quorum": "most"}}),
        "params.quorum",
    );
    expect_400(
        addr,
        &owner,
        serde_json::json!({"kind": "fuse", "project": "cxr", "params": {"iuo_thr": 0.5}}),
        "params.iuo_thr",
    );

    // The import: progress per file, the right counts, the images in train.
    let id = submit(addr, &admin, &import);
    let (job, seen) = wait(addr, &admin, &id);
    assert_eq!(job["state"], "done", "{backend}: {job}");
    assert_eq!(
        (job["done"].as_i64(), job["total"].as_i64()),
        (Some(files), Some(files))
    );
    assert!(seen.iter().all(|(d, t)| d <= t || *t == 0), "{seen:?}");
    let result = &job["result"];
    assert_eq!(result["files_seen"], files, "{result}");
    assert_eq!(result["imported"], files, "{result}");
    assert_eq!(result["quarantined"], 0);
    assert_eq!(result["project"]["added"], files);
    assert_eq!(result["project"]["split"], "train");
    assert!(job["result_url"].is_null(), "an import has no result file");
    assert!(!job["worker"].as_str().unwrap().is_empty());
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["created_by"], "admin");
    let images = json(
        addr,
        "GET",
        "/api/v1/projects/cxr/images?split=train",
        &owner.h(),
        "",
    )
    .json();
    assert_eq!(images["total"], files, "{backend}");
    let image_ids: Vec<String> = images["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["image_id"].as_str().unwrap().to_string())
        .collect();
    // The owner of the project sees the administrator's import of it; nobody else does.
    assert_eq!(
        json(addr, "GET", &format!("/api/v1/jobs/{id}"), &owner.h(), "").status,
        200
    );
    for u in [&ann, &other] {
        let r = json(addr, "GET", &format!("/api/v1/jobs/{id}"), &u.h(), "");
        assert_eq!(r.status, 404, "{backend}");
        let r = post(addr, u, &format!("/api/v1/jobs/{id}/cancel"), "");
        assert_eq!(r.status, 404, "{backend}");
    }
    let r = json(
        addr,
        "GET",
        &format!("/api/v1/jobs/{id}/result"),
        &admin.h(),
        "",
    );
    assert_eq!((r.status, error_code(&r)), (404, "no_result_file".into()));
    assert_eq!(
        post(addr, &admin, &format!("/api/v1/jobs/{id}/cancel"), "").status,
        409,
        "a finished job cannot be cancelled"
    );

    // A failing import says why.
    let missing = dir.path().join("no-such-folder");
    let bad = serde_json::json!({"kind": "import", "params": {"paths": [missing]}});
    let bad_id = submit(addr, &admin, &bad);
    let (job, _) = wait(addr, &admin, &bad_id);
    assert_eq!(job["state"], "failed", "{backend}: {job}");
    let message = job["message"].as_str().unwrap();
    assert!(
        message.contains("does not exist") && message.contains("no-such-folder"),
        "{message}"
    );
    let r = json(
        addr,
        "GET",
        &format!("/api/v1/jobs/{bad_id}/result"),
        &admin.h(),
        "",
    );
    assert_eq!(r.status, 409);

    // Annotations of three readers and a consensus.
    let rows = annotations(&image_ids);
    block_on(catalog.add_annotations("cxr", &rows, Layer::Consensus, "test")).expect("annotations");
    let stored: Vec<Annotation> = block_on(catalog.annotations("cxr", &[]))
        .unwrap()
        .into_iter()
        .map(|(_, a)| a)
        .collect();

    // Exports equal what the library writes from the same rows.
    for (format, layer) in [
        ("vindr", None),
        ("kaggle", None),
        ("kaggle", Some("reader")),
    ] {
        let mut params = serde_json::json!({"format": format});
        if let Some(l) = layer {
            params["layer"] = serde_json::json!(l);
        }
        let id = submit(
            addr,
            &owner,
            &serde_json::json!({"kind": "export_labels", "project": "cxr", "params": params}),
        );
        let (job, _) = wait(addr, &owner, &id);
        assert_eq!(job["state"], "done", "{backend}: {job}");
        let rows: Vec<Annotation> = stored
            .iter()
            .filter(|a| layer.is_none() || a.reader.is_some())
            .cloned()
            .collect();
        let mut expected = Vec::new();
        match format {
            "vindr" => radlab_labels::vindr::write_annotations(&mut expected, &rows).unwrap(),
            _ => radlab_labels::kaggle::write_train_csv(&mut expected, &rows).unwrap(),
        }
        let got = result_file(addr, &owner, &id);
        assert_eq!(
            String::from_utf8(got).unwrap(),
            String::from_utf8(expected.clone()).unwrap(),
            "{backend}: {format} {layer:?}"
        );
        assert_eq!(job["result"]["rows"], rows.len());
        assert_eq!(job["result"]["bytes"], expected.len());
        assert_eq!(
            job["result_url"].as_str().unwrap(),
            format!("/api/v1/jobs/{id}/result")
        );
        // Not the annotator's, nor anyone else's.
        for u in [&ann, &other] {
            let r = json(
                addr,
                "GET",
                &format!("/api/v1/jobs/{id}/result"),
                &u.h(),
                "",
            );
            assert_eq!(r.status, 404);
        }
    }

    // Fusion equals radlab-labels' consensus of the same readers.
    for (params, quorum) in [
        (serde_json::json!({"iou_thr": 0.4, "quorum": 2}), Some(2)),
        (serde_json::json!({}), None),
    ] {
        let id = submit(
            addr,
            &owner,
            &serde_json::json!({"kind": "fuse", "project": "cxr", "params": params}),
        );
        let (job, _) = wait(addr, &owner, &id);
        assert_eq!(job["state"], "done", "{backend}: {job}");
        let readers: Vec<Annotation> = stored
            .iter()
            .filter(|a| a.reader.is_some())
            .cloned()
            .collect();
        let options = ConsensusOptions {
            quorum: quorum.map(Quorum::Count),
            ..ConsensusOptions::default()
        };
        let fused = fuse_readers(&readers, &options).unwrap();
        let mut expected = Vec::new();
        write_consensus(&mut expected, &fused).unwrap();
        assert_eq!(
            String::from_utf8(result_file(addr, &owner, &id)).unwrap(),
            String::from_utf8(expected).unwrap(),
            "{backend}: {params}"
        );
        assert_eq!(job["result"]["rows"], fused.len());
        assert_eq!(job["params"]["iou_thr"], 0.4);
    }

    // Lists: each their own, administrators all.
    let list =
        |u: &User, q: &str| json(addr, "GET", &format!("/api/v1/jobs{q}"), &u.h(), "").json();
    assert_eq!(list(&other, "")["total"], 0);
    assert_eq!(list(&owner, "")["total"], 5);
    assert_eq!(list(&admin, "")["total"], 7);
    let page = list(&admin, "?offset=1&limit=2");
    assert_eq!(page["jobs"].as_array().unwrap().len(), 2);
    assert_eq!(page["total"], 7);
    let all = list(&admin, "")["jobs"].as_array().unwrap().clone();
    assert_eq!(all.last().unwrap()["job_id"], id, "oldest last");
}

#[test]
fn jobs_on_sqlite() {
    let Some(corpus) = corpus("jobs_sqlite") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    jobs_work(&sqlite_url(&dir), "sqlite", &corpus);
}

#[test]
fn jobs_on_postgres() {
    let Some(corpus) = corpus("jobs_postgres") else {
        return;
    };
    let Some(db) = postgres_database("jobs") else {
        return;
    };
    jobs_work(&db.url, "postgres", &corpus);
}

/// A server that runs no jobs leaves them queued; a queued job is cancelled at once.
fn cancel_work(url: &str, backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (addr, catalog, queue) = server(url, dir.path(), 0);
    let [admin, owner, ann, _] = people(addr, &catalog);
    let export = serde_json::json!({"kind": "export_labels", "project": "cxr",
        "params": {"format": "kaggle"}});
    let id = submit(addr, &owner, &export);
    let other_id = submit(addr, &owner, &export);
    std::thread::sleep(Duration::from_millis(300));
    let r = json(addr, "GET", &format!("/api/v1/jobs/{id}"), &owner.h(), "");
    assert_eq!(r.json()["job"]["state"], "queued", "{backend}");
    let r = json(
        addr,
        "GET",
        &format!("/api/v1/jobs/{id}/result"),
        &owner.h(),
        "",
    );
    assert_eq!((r.status, error_code(&r)), (409, "not_done".into()));
    assert_eq!(
        post(addr, &ann, &format!("/api/v1/jobs/{id}/cancel"), "").status,
        404,
        "{backend}: an annotator cannot see the owner's job"
    );
    let r = post(addr, &owner, &format!("/api/v1/jobs/{id}/cancel"), "");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let job = &r.json()["job"];
    assert_eq!(job["state"], "cancelled", "{backend}");
    assert!(job["finished_at"].is_string());
    assert!(job["worker"].is_null(), "it never ran");
    let r = post(addr, &admin, &format!("/api/v1/jobs/{id}/cancel"), "");
    assert_eq!(r.status, 409, "{backend}: cancelled already");
    // Nothing took it, nor will: the other job is still queued.
    assert_eq!(queue.jobs_taken(), 0);
    let r = json(
        addr,
        "GET",
        &format!("/api/v1/jobs/{other_id}"),
        &owner.h(),
        "",
    );
    assert_eq!(r.json()["job"]["state"], "queued");
    // A server with workers on the same database runs the one left, not the cancelled one.
    let (b, _, queue_b) = server(url, dir.path(), 1);
    let (job, _) = wait(b, &owner, &other_id);
    assert_eq!(job["state"], "done", "{backend}: {job}");
    let r = json(b, "GET", &format!("/api/v1/jobs/{id}"), &owner.h(), "");
    assert_eq!(r.json()["job"]["state"], "cancelled");
    assert_eq!(queue_b.jobs_taken(), 1);
}

#[test]
fn cancel_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    cancel_work(&sqlite_url(&dir), "sqlite");
}

#[test]
fn cancel_on_postgres() {
    let Some(db) = postgres_database("jobs_cancel") else {
        return;
    };
    cancel_work(&db.url, "postgres");
}

/// Two servers (two workers each) on one database and one blob store; ten jobs queued at
/// once through both: each runs exactly once, and all finish.
fn two_servers(url: &str, backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (a, catalog, queue_a) = server(url, dir.path(), 2);
    let [_, owner, _, _] = people(a, &catalog);
    let images: Vec<String> = (0..3).map(|i| format!("image{i}")).collect();
    block_on(catalog.add_annotations("cxr", &annotations(&images), Layer::Consensus, "test"))
        .unwrap();
    let (b, _, queue_b) = server(url, dir.path(), 2);
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = [a, b]
        .into_iter()
        .map(|addr| {
            let barrier = barrier.clone();
            let h = owner.h().map(|(k, v)| (k.to_string(), v.to_string()));
            std::thread::spawn(move || {
                let h: Vec<(&str, &str)> =
                    h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                barrier.wait();
                (0..5)
                    .map(|i| {
                        let kind = if i % 2 == 0 { "export_labels" } else { "fuse" };
                        let body = serde_json::json!({"kind": kind, "project": "cxr",
                            "params": if kind == "fuse" { serde_json::json!({"quorum": 2}) }
                                else { serde_json::json!({"format": "vindr"}) }});
                        let r = json(addr, "POST", "/api/v1/jobs", &h, &body.to_string());
                        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
                        r.json()["job"]["job_id"].as_str().unwrap().to_string()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let ids: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert_eq!(ids.len(), 10);
    let mut workers = std::collections::BTreeMap::<String, usize>::new();
    for id in &ids {
        let (job, _) = wait(a, &owner, id);
        assert_eq!(job["state"], "done", "{backend}: {job}");
        assert_eq!(job["attempts"], 1, "{backend}: {job} taken once");
        *workers
            .entry(job["worker"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    // Every job was taken once in all: no server ran one twice.
    assert_eq!(
        queue_a.jobs_taken() + queue_b.jobs_taken(),
        10,
        "{backend}: {workers:?}"
    );
    let listed = json(a, "GET", "/api/v1/jobs?limit=1000", &owner.h(), "").json();
    assert_eq!(listed["total"], 10);
    eprintln!(
        "{backend}: server a took {}, server b {}; by worker {workers:?}",
        queue_a.jobs_taken(),
        queue_b.jobs_taken()
    );
}

#[test]
fn two_servers_on_one_sqlite_file_run_each_job_once() {
    let dir = tempfile::tempdir().unwrap();
    two_servers(&sqlite_url(&dir), "sqlite");
}

#[test]
fn two_servers_on_one_postgres_database_run_each_job_once() {
    let Some(db) = postgres_database("jobs_two") else {
        return;
    };
    two_servers(&db.url, "postgres");
}
