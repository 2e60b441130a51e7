//! Annotations through tasks, on SQLite and PostgreSQL: checked against the schema and the
//! image, optimistic concurrency (a stale write gets 409 and changes nothing), submitted
//! tasks read-only, blinding on every read path, and the review task's view of every reader
//! with a fused proposal; what was written comes back out as each reader's layer and the
//! consensus.

mod common;

use std::net::SocketAddr;

use common::{User, block_on, error_code, json, login, post, sqlite_url, vindr_project};
use radlab_testkit::{corpus, postgres_database};

fn tasks_of(addr: SocketAddr, u: &User) -> Vec<serde_json::Value> {
    let r = json(addr, "GET", "/api/v1/tasks", &u.h(), "");
    r.json()["tasks"].as_array().unwrap().clone()
}

fn put(
    addr: SocketAddr,
    u: &User,
    task: &str,
    body: &serde_json::Value,
) -> radlab_testkit::HttpResponse {
    json(
        addr,
        "PUT",
        &format!("/api/v1/tasks/{task}/annotations"),
        &u.h(),
        &body.to_string(),
    )
}

fn annotations_work(url: &str, backend: &str, corpus: &radlab_testkit::Corpus) {
    let blobs = tempfile::tempdir().unwrap();
    let (addr, catalog, _) = vindr_project(url, corpus, blobs.path());
    let owner = login(addr, "owner");
    for (split, body) in [
        ("train", r#"{"kind":"independent","readers":3}"#),
        ("test", r#"{"kind":"consensus","readers":3,"reviewers":2}"#),
    ] {
        let r = json(
            addr,
            "PUT",
            &format!("/api/v1/projects/cxr/workflows/{split}"),
            &owner.h(),
            body,
        );
        assert_eq!(r.status, 200);
    }
    for split in ["train", "test"] {
        let r = post(
            addr,
            &owner,
            "/api/v1/projects/cxr/assign",
            &format!(r#"{{"split":"{split}"}}"#),
        );
        assert_eq!(r.status, 200);
    }
    let readers: Vec<(String, User)> = ["r1", "r2", "r3", "r4"]
        .iter()
        .map(|n| (n.to_string(), login(addr, n)))
        .collect();
    let (name_a, a) = &readers[0];
    let task = tasks_of(addr, a)[0].clone();
    let t = task["task_id"].as_str().unwrap().to_string();
    let image = task["image_id"].as_str().unwrap().to_string();

    // A fresh layer; saving needs a started task.
    let r = json(
        addr,
        "GET",
        &format!("/api/v1/tasks/{t}/annotations"),
        &a.h(),
        "",
    );
    assert_eq!(
        (r.status, r.json()["version"].as_i64()),
        (200, Some(0)),
        "{backend}"
    );
    let (w, h) = (
        r.json()["image"]["columns"].as_f64().unwrap(),
        r.json()["image"]["rows"].as_f64().unwrap(),
    );
    let good = serde_json::json!({"version": 0, "annotations": [
        {"label": "Cardiomegaly", "bbox": [w * 0.3, h * 0.5, w * 0.7, h * 0.8], "note": "CTR 0.6"},
        {"label": "Pneumonia"},
    ], "comment": "portable film"});
    let r = put(addr, a, &t, &good);
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (409, "task_not_started")
    );
    assert_eq!(
        post(addr, a, &format!("/api/v1/tasks/{t}/start"), "").status,
        200
    );

    // Bad annotations are refused with what is wrong, and nothing is written.
    for (bad, says) in [
        (
            serde_json::json!([{"label": "Unicorn", "bbox": [1, 1, 5, 5]}]),
            "not a label",
        ),
        (serde_json::json!([{"label": "Nodule/Mass"}]), "box label"),
        (
            serde_json::json!([{"label": "COPD", "bbox": [1, 1, 5, 5]}]),
            "image-level",
        ),
        (
            serde_json::json!([{"label": "Nodule/Mass", "bbox": [10, 10, 5, 20]}]),
            "x_max > x_min",
        ),
        (
            serde_json::json!([{"label": "Nodule/Mass", "bbox": [w - 5.0, 10, w + 20.0, 20]}]),
            "outside the image",
        ),
        (
            serde_json::json!([{"label": "No finding"}, {"label": "COPD"}]),
            "excludes",
        ),
    ] {
        let r = put(
            addr,
            a,
            &t,
            &serde_json::json!({"version": 0, "annotations": bad}),
        );
        assert_eq!(r.status, 400, "{backend} {bad}");
        let m = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(m.contains(says), "{m}");
    }
    let r = json(
        addr,
        "PUT",
        &format!("/api/v1/tasks/{t}/annotations"),
        &a.h(),
        "{\"version\": ",
    );
    assert_eq!(r.status, 400);

    // A good write, then a stale one (refused, nothing changed), then a current one.
    let r = put(addr, a, &t, &good);
    assert_eq!(
        r.status,
        200,
        "{backend}: {}",
        String::from_utf8_lossy(&r.body)
    );
    let v1 = r.json()["version"].as_i64().unwrap();
    assert!(v1 > 0);
    let kept_id = r.json()["annotations"][0]["annotation_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = put(
        addr,
        a,
        &t,
        &serde_json::json!({"version": 0, "annotations": []}),
    );
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (409, "stale"),
        "{backend}"
    );
    let r = json(
        addr,
        "GET",
        &format!("/api/v1/tasks/{t}/annotations"),
        &a.h(),
        "",
    );
    assert_eq!(
        (
            r.json()["version"].as_i64(),
            r.json()["annotations"].as_array().unwrap().len()
        ),
        (Some(v1), 2)
    );
    assert_eq!(r.json()["comment"], "portable film");
    let mut next = good.clone();
    next["version"] = serde_json::json!(v1);
    next["annotations"][1] = serde_json::json!({"label": "Tuberculosis"});
    let r = put(addr, a, &t, &next);
    assert_eq!(r.status, 200);
    assert!(r.json()["version"].as_i64().unwrap() > v1);
    assert_eq!(
        r.json()["annotations"][0]["annotation_id"],
        kept_id.as_str()
    );
    assert_eq!(r.json()["annotations"][1]["label"], "Tuberculosis");

    // Blinding: another reader of the same image sees nothing of it, on every path.
    let (name_b, b) = readers
        .iter()
        .find(|(_, u)| {
            tasks_of(addr, u)
                .iter()
                .any(|x| x["image_id"] == image.as_str())
                && u.cookie != a.cookie
        })
        .unwrap();
    assert_ne!(name_a, name_b);
    assert_eq!(
        json(
            addr,
            "GET",
            &format!("/api/v1/tasks/{t}/annotations"),
            &b.h(),
            ""
        )
        .status,
        404
    );
    assert_eq!(put(addr, b, &t, &next).status, 404);
    let r = json(addr, "GET", "/api/v1/projects/cxr/annotations", &b.h(), "");
    assert_eq!(r.status, 403);
    let r = json(addr, "GET", "/api/v1/projects/cxr/tasks", &b.h(), "");
    assert_eq!(r.status, 403);
    let own = tasks_of(addr, b)
        .into_iter()
        .find(|x| x["image_id"] == image.as_str())
        .unwrap();
    let r = json(
        addr,
        "GET",
        &format!(
            "/api/v1/tasks/{}/annotations",
            own["task_id"].as_str().unwrap()
        ),
        &b.h(),
        "",
    );
    assert_eq!(r.json()["annotations"], serde_json::json!([]));
    assert!(r.json().get("readers").is_none());
    assert!(
        r.json().get("proposal").is_none(),
        "no fused proposal before review"
    );
    let r = json(
        addr,
        "GET",
        &format!("/api/v1/tasks/{}", own["task_id"].as_str().unwrap()),
        &b.h(),
        "",
    );
    // No task detail path exists for a reader to peek through.
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (405, "method_not_allowed")
    );

    // Every reader draws the same box on each test image and submits everything.
    let test_images: Vec<String> = {
        let r = json(
            addr,
            "GET",
            "/api/v1/projects/cxr/images?split=test",
            &owner.h(),
            "",
        );
        r.json()["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["image_id"].as_str().unwrap().to_string())
            .collect()
    };
    for (_, u) in &readers {
        for task in tasks_of(addr, u) {
            let id = task["task_id"].as_str().unwrap();
            if task["state"] == "NEW" {
                assert_eq!(
                    post(addr, u, &format!("/api/v1/tasks/{id}/start"), "").status,
                    200
                );
            }
            if test_images.contains(&task["image_id"].as_str().unwrap().to_string()) {
                let r = json(
                    addr,
                    "GET",
                    &format!("/api/v1/tasks/{id}/annotations"),
                    &u.h(),
                    "",
                );
                let v = r.json()["version"].clone();
                let body = serde_json::json!({"version": v, "annotations": [
                    {"label": "Aortic enlargement", "bbox": [100.0, 100.0, 200.0, 220.0]}]});
                assert_eq!(put(addr, u, id, &body).status, 200);
            }
            assert_eq!(
                post(addr, u, &format!("/api/v1/tasks/{id}/submit"), "").status,
                200
            );
        }
    }
    // A submitted task is read-only.
    let r = put(addr, a, &t, &next);
    assert_eq!((r.status, error_code(&r).as_str()), (409, "task_submitted"));

    // The review task sees every reader and a fused proposal; the consensus is written.
    let rev = login(addr, "rev1");
    let review = tasks_of(addr, &rev)[0].clone();
    let rid = review["task_id"].as_str().unwrap();
    assert_eq!(
        post(addr, &rev, &format!("/api/v1/tasks/{rid}/start"), "").status,
        200
    );
    let r = json(
        addr,
        "GET",
        &format!("/api/v1/tasks/{rid}/annotations"),
        &rev.h(),
        "",
    );
    assert_eq!(
        r.json()["readers"].as_array().unwrap().len(),
        3,
        "{backend}"
    );
    let proposal = r.json()["proposal"].as_array().unwrap().clone();
    assert_eq!(proposal.len(), 1);
    assert_eq!(proposal[0]["label"], "Aortic enlargement");
    assert_eq!(proposal[0]["readers"].as_array().unwrap().len(), 3);
    let body = serde_json::json!({"version": 0, "annotations": [
        {"label": "Aortic enlargement", "bbox": proposal[0]["bbox"].clone(), "note": "agreed"}]});
    assert_eq!(put(addr, &rev, rid, &body).status, 200);
    assert_eq!(
        post(addr, &rev, &format!("/api/v1/tasks/{rid}/submit"), "").status,
        200
    );

    // The owner reads everything: each reader's layer under their name, and the consensus.
    let r = json(
        addr,
        "GET",
        "/api/v1/projects/cxr/annotations",
        &owner.h(),
        "",
    );
    assert_eq!(r.status, 200);
    let all = r.json()["annotations"].as_array().unwrap().clone();
    assert!(
        all.iter()
            .any(|x| x["reader"].is_null() && x["image_id"] == review["image_id"])
    );
    assert!(
        all.iter()
            .any(|x| x["reader"] == name_a.as_str() && x["label"] == "Tuberculosis")
    );
    let rows = block_on(async {
        catalog
            .annotations("cxr", &[radlab_store::Layer::Reader])
            .await
            .unwrap()
    });
    assert_eq!(
        rows.iter().filter(|(_, x)| x.image_id == image).count(),
        2,
        "{backend}"
    );
    progress_and_reopen(addr, backend, &owner, a, &t, &next, &test_images);
}

/// Progress: images by state, readers' tasks, and the readers' agreement so far; then
/// reopening, which only an owner may do, and not for a reading task of an image in review.
fn progress_and_reopen(
    addr: SocketAddr,
    backend: &str,
    owner: &User,
    a: &User,
    t: &str,
    next: &serde_json::Value,
    test_images: &[String],
) {
    let r = json(addr, "GET", "/api/v1/projects/cxr/progress", &owner.h(), "");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let p = r.json();
    let count = |split: &str, st: &str| {
        p["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["split"] == split && x["state"] == st)
            .map_or(0, |x| x["images"].as_i64().unwrap())
    };
    assert_eq!(
        (count("train", "done"), count("test", "in_review")),
        (3, 2),
        "{backend}"
    );
    let submitted: i64 = p["readers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| !x["username"].as_str().unwrap().starts_with("rev"))
        .map(|x| x["submitted"].as_i64().unwrap())
        .sum();
    assert_eq!(submitted, 15);
    assert!(
        p["readers"][0]["median_seconds_per_image"]
            .as_f64()
            .is_some()
    );
    assert_eq!(p["agreement"]["images_read"], 5);
    let f1 = |label: &str| {
        p["agreement"]["boxes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["label"] == label)
            .unwrap()["f1"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(f1("Aortic enlargement"), 1.0);
    assert_eq!(f1("Cardiomegaly"), 0.0);
    assert_eq!(
        json(addr, "GET", "/api/v1/projects/cxr/progress", &a.h(), "").status,
        403
    );

    assert_eq!(
        post(addr, a, &format!("/api/v1/tasks/{t}/reopen"), "").status,
        404
    );
    let r = post(addr, owner, &format!("/api/v1/tasks/{t}/reopen"), "");
    assert_eq!(
        (r.status, r.json()["task"]["state"].as_str()),
        (200, Some("IN_PROGRESS")),
        "{backend}"
    );
    let r = json(
        addr,
        "GET",
        &format!("/api/v1/tasks/{t}/annotations"),
        &a.h(),
        "",
    );
    let mut again = next.clone();
    again["version"] = r.json()["version"].clone();
    again["annotations"] = serde_json::json!([{"label": "No finding"}]);
    assert_eq!(put(addr, a, t, &again).status, 200);
    let tasks = json(addr, "GET", "/api/v1/projects/cxr/tasks", &owner.h(), "").json();
    let in_review = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| {
            x["kind"] == "reading"
                && test_images.contains(&x["image_id"].as_str().unwrap().to_string())
        })
        .unwrap()["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = post(
        addr,
        owner,
        &format!("/api/v1/tasks/{in_review}/reopen"),
        "",
    );
    assert_eq!(r.status, 409);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("in review")
    );
}

#[test]
fn annotations_on_sqlite() {
    let Some(corpus) = corpus("server_annotations_sqlite") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    annotations_work(&sqlite_url(&dir), "sqlite", &corpus);
}

#[test]
fn annotations_on_postgres() {
    let Some(corpus) = corpus("server_annotations_postgres") else {
        return;
    };
    let Some(db) = postgres_database("server_annotations") else {
        return;
    };
    annotations_work(&db.url, "postgres", &corpus);
}
