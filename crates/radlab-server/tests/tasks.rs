//! The VinDr-CXR reading flow over HTTP, on SQLite and PostgreSQL: 3 blinded readers per
//! training image, 3 readers then 2 reviewers per test image; load balanced, nobody on the
//! same image twice, assignment re-runnable; task states and their conflicts; review tasks
//! opened by the last reader's submit; re-assign and un-assign.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use common::{User, error_code, json, login, post, sqlite_url, vindr_project};
use radlab_testkit::{corpus, postgres_database};

fn my_tasks(addr: SocketAddr, u: &User, query: &str) -> Vec<serde_json::Value> {
    let r = json(addr, "GET", &format!("/api/v1/tasks{query}"), &u.h(), "");
    assert_eq!(r.status, 200);
    r.json()["tasks"].as_array().unwrap().clone()
}

fn flow(url: &str, backend: &str, corpus: &radlab_testkit::Corpus) {
    let blobs = tempfile::tempdir().unwrap();
    let (addr, _catalog, uids) = vindr_project(url, corpus, blobs.path());
    let owner = login(addr, "owner");

    // Workflows: bad ones refused; 3 independent readers for train, 3 + 2 for test.
    for (split, body, says) in [
        (
            "train",
            r#"{"kind":"consensus","readers":3,"reviewers":0}"#,
            "reviewers",
        ),
        (
            "train",
            r#"{"kind":"vote","readers":3}"#,
            "independent, consensus or single",
        ),
        ("dev", r#"{"kind":"single"}"#, "train, test or unassigned"),
    ] {
        let r = json(
            addr,
            "PUT",
            &format!("/api/v1/projects/cxr/workflows/{split}"),
            &owner.h(),
            body,
        );
        assert_eq!(r.status, 400, "{backend} {body}");
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(says)
        );
    }
    let r = post(
        addr,
        &owner,
        "/api/v1/projects/cxr/assign",
        r#"{"split":"train"}"#,
    );
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no workflow"),
        "{backend}"
    );
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
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }

    // Assignment: 3 distinct readers per image, loads within one of each other; again: nothing.
    let r = post(
        addr,
        &owner,
        "/api/v1/projects/cxr/assign",
        r#"{"split":"train"}"#,
    );
    assert_eq!(
        (r.status, r.json()["tasks_created"].as_u64()),
        (200, Some(9)),
        "{backend}"
    );
    let loads: Vec<u64> = r.json()["load"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(loads.iter().sum::<u64>(), 9);
    assert!(
        loads.iter().max().unwrap() - loads.iter().min().unwrap() <= 1,
        "{loads:?}"
    );
    let r = post(
        addr,
        &owner,
        "/api/v1/projects/cxr/assign",
        r#"{"split":"train"}"#,
    );
    assert_eq!(r.json()["tasks_created"], 0);
    let r = post(
        addr,
        &owner,
        "/api/v1/projects/cxr/assign",
        r#"{"split":"test"}"#,
    );
    assert_eq!(r.json()["tasks_created"], 6);
    let r = json(addr, "GET", "/api/v1/projects/cxr/tasks", &owner.h(), "");
    let all = r.json()["tasks"].as_array().unwrap().clone();
    assert_eq!(all.len(), 15);
    let mut per_image: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for t in &all {
        assert!(
            per_image
                .entry(t["image_id"].as_str().unwrap().into())
                .or_default()
                .insert(t["username"].as_str().unwrap().into()),
            "a reader twice on one image"
        );
        assert!(
            t["username"].as_str().unwrap().starts_with('r')
                && !t["username"].as_str().unwrap().starts_with("rev")
        );
    }
    assert!(per_image.values().all(|r| r.len() == 3));

    // Readers see only their own tasks; the project's task list is the owner's.
    let readers: BTreeMap<&str, User> = ["r1", "r2", "r3", "r4"]
        .iter()
        .map(|n| (*n, login(addr, n)))
        .collect();
    let mut seen = 0;
    for (n, u) in &readers {
        let mine = my_tasks(addr, u, "?project=cxr");
        assert!(mine.iter().all(|t| t["username"] == *n));
        seen += mine.len();
        let r = json(addr, "GET", "/api/v1/projects/cxr/tasks", &u.h(), "");
        assert_eq!(r.status, 403);
    }
    assert_eq!(seen, 15);
    // The worklist comes a page at a time.
    let r1 = &readers["r1"];
    let ids = |q: &str| -> Vec<String> {
        my_tasks(addr, r1, q)
            .iter()
            .map(|t| t["task_id"].as_str().unwrap().to_string())
            .collect()
    };
    let all = ids("?project=cxr");
    assert!(all.len() >= 2);
    let mut paged = ids("?project=cxr&limit=1");
    assert_eq!(paged.len(), 1);
    paged.extend(ids("?project=cxr&offset=1&limit=1000"));
    assert_eq!(paged, all);

    // States: submit before start is a conflict; someone else's task is not found.
    let r1 = &readers["r1"];
    let t = my_tasks(addr, r1, "?state=NEW")[0]["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = post(addr, r1, &format!("/api/v1/tasks/{t}/submit"), "");
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (409, "conflict"),
        "{backend}"
    );
    let r = post(
        addr,
        &readers["r2"],
        &format!("/api/v1/tasks/{t}/start"),
        "",
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        post(addr, r1, &format!("/api/v1/tasks/{t}/start"), "").status,
        200
    );
    let r = post(addr, r1, &format!("/api/v1/tasks/{t}/start"), "");
    assert_eq!(r.status, 409);
    // Owners cannot un-assign a started task; they can re-assign it, to someone free.
    let r = json(
        addr,
        "DELETE",
        &format!("/api/v1/tasks/{t}"),
        &owner.h(),
        "",
    );
    assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));

    // Every reader submits everything: train images finish; test images open review tasks.
    // Their worklist summary counts what they had and what they submitted (their pace).
    for u in readers.values() {
        let before = json(addr, "GET", "/api/v1/tasks/summary", &u.h(), "").json();
        let mine = my_tasks(addr, u, "");
        let q = &before["projects"][0];
        assert_eq!(q["project_id"], "cxr", "{backend}: {before}");
        assert_eq!(
            (q["new"].as_i64().unwrap() + q["in_progress"].as_i64().unwrap()) as usize,
            mine.iter().filter(|t| t["state"] != "SUBMITTED").count(),
            "{backend}: {before}"
        );
        for task in mine {
            let id = task["task_id"].as_str().unwrap();
            if task["state"] == "NEW" {
                assert_eq!(
                    post(addr, u, &format!("/api/v1/tasks/{id}/start"), "").status,
                    200
                );
            }
            let r = post(addr, u, &format!("/api/v1/tasks/{id}/submit"), "");
            assert_eq!(
                r.status,
                200,
                "{backend}: {}",
                String::from_utf8_lossy(&r.body)
            );
        }
    }
    let states = |split: &str| -> Vec<String> {
        let r = json(
            addr,
            "GET",
            &format!("/api/v1/projects/cxr/images?split={split}"),
            &owner.h(),
            "",
        );
        r.json()["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["state"].as_str().unwrap().to_string())
            .collect()
    };
    for u in readers.values() {
        let after = json(addr, "GET", "/api/v1/tasks/summary", &u.h(), "").json();
        let q = &after["projects"][0];
        let total = my_tasks(addr, u, "").len() as i64;
        assert_eq!(q["new"], 0, "{backend}: {after}");
        assert_eq!(q["in_progress"], 0, "{backend}: {after}");
        assert_eq!(
            q["submitted"].as_i64().unwrap(),
            total,
            "{backend}: {after}"
        );
        assert_eq!(q["submitted_last_day"].as_i64().unwrap(), total);
        assert_eq!(q["submitted_last_week"].as_i64().unwrap(), total);
        assert!(q["median_seconds_per_image"].as_f64().unwrap() >= 0.0);
    }
    assert_eq!(states("train"), ["done", "done", "done"]);
    assert_eq!(states("test"), ["in_review", "in_review"]);
    for n in ["rev1", "rev2"] {
        let u = login(addr, n);
        let mine = my_tasks(addr, &u, "");
        assert_eq!(mine.len(), 2, "{backend} {n}");
        for task in mine {
            assert_eq!(task["kind"], "review");
            let id = task["task_id"].as_str().unwrap();
            assert_eq!(
                post(addr, &u, &format!("/api/v1/tasks/{id}/start"), "").status,
                200
            );
            assert_eq!(
                post(addr, &u, &format!("/api/v1/tasks/{id}/submit"), "").status,
                200
            );
        }
    }
    assert_eq!(states("test"), ["done", "done"]);

    // New images get readers on the next run; re-assign and un-assign work on NEW tasks.
    let body = serde_json::json!({"instances": [], "split": "train"}).to_string();
    assert_eq!(
        post(addr, &owner, "/api/v1/projects/cxr/images", &body).status,
        200
    );
    let r = post(addr, &owner, "/api/v1/projects/cxr/images/split", &serde_json::json!({"image_ids": [radlab_labels::export::vindr_image_id(&uids[4])], "split": "unassigned"}).to_string());
    assert_eq!(r.status, 200);
    let r = json(
        addr,
        "PUT",
        "/api/v1/projects/cxr/workflows/unassigned",
        &owner.h(),
        r#"{"kind":"single"}"#,
    );
    assert_eq!(r.status, 200);
    let r = post(
        addr,
        &owner,
        "/api/v1/projects/cxr/assign",
        r#"{"split":"unassigned"}"#,
    );
    // That image already has 3 reading tasks (submitted): nothing to add.
    assert_eq!(r.json()["tasks_created"], 0);
    let r = json(
        addr,
        "PUT",
        "/api/v1/projects/cxr/workflows/train",
        &owner.h(),
        r#"{"kind":"independent","readers":4}"#,
    );
    assert_eq!(r.status, 200);
    let r = post(
        addr,
        &owner,
        "/api/v1/projects/cxr/assign",
        r#"{"split":"train"}"#,
    );
    assert_eq!(r.json()["tasks_created"], 3, "{backend}");
    let r = json(addr, "GET", "/api/v1/projects/cxr/tasks", &owner.h(), "");
    let fresh: Vec<serde_json::Value> = r.json()["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["state"] == "NEW")
        .cloned()
        .collect();
    assert_eq!(fresh.len(), 3);
    let id = fresh[0]["task_id"].as_str().unwrap();
    let holder = fresh[0]["username"].as_str().unwrap();
    // Every annotator now reads that image: re-assigning to any of them is refused.
    let other = ["r1", "r2", "r3", "r4"]
        .into_iter()
        .find(|n| *n != holder)
        .unwrap();
    let r = post(
        addr,
        &owner,
        &format!("/api/v1/tasks/{id}/reassign"),
        &format!(r#"{{"username":"{other}"}}"#),
    );
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    let r = post(
        addr,
        &owner,
        &format!("/api/v1/tasks/{id}/reassign"),
        r#"{"username":"rev1"}"#,
    );
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("annotators")
    );
    let r = json(
        addr,
        "DELETE",
        &format!("/api/v1/tasks/{id}"),
        &owner.h(),
        "",
    );
    assert_eq!(r.status, 204);
    let r = json(
        addr,
        "DELETE",
        &format!("/api/v1/tasks/{id}"),
        &readers["r1"].h(),
        "",
    );
    assert_eq!(r.status, 404);
    // Five readers per image cannot come from four annotators.
    let r = json(
        addr,
        "PUT",
        "/api/v1/projects/cxr/workflows/train",
        &owner.h(),
        r#"{"kind":"independent","readers":5}"#,
    );
    assert_eq!(r.status, 200);
    let r = post(
        addr,
        &owner,
        "/api/v1/projects/cxr/assign",
        r#"{"split":"train"}"#,
    );
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("annotators")
    );
    progress_matches_lists(addr, &owner, backend);
}

/// The progress's counts (kept by the store as images and tasks are added, assigned,
/// moved, started, submitted, reviewed and un-assigned) against the images and tasks as
/// listed.
fn progress_matches_lists(addr: SocketAddr, owner: &User, backend: &str) {
    let p = json(addr, "GET", "/api/v1/projects/cxr/progress", &owner.h(), "").json();
    let tasks = json(addr, "GET", "/api/v1/projects/cxr/tasks", &owner.h(), "").json();
    let mut want: BTreeMap<String, [i64; 3]> = BTreeMap::new();
    for t in tasks["tasks"].as_array().unwrap() {
        let e = want
            .entry(t["username"].as_str().unwrap().to_string())
            .or_default();
        match t["state"].as_str().unwrap() {
            "NEW" => e[0] += 1,
            "IN_PROGRESS" => e[1] += 1,
            _ => e[2] += 1,
        }
    }
    let got: BTreeMap<String, [i64; 3]> = p["readers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_i64().unwrap();
            (
                r["username"].as_str().unwrap().to_string(),
                [n("new"), n("in_progress"), n("submitted")],
            )
        })
        .collect();
    assert_eq!(got, want, "{backend}: tasks by reader and state");
    let images = json(
        addr,
        "GET",
        "/api/v1/projects/cxr/images?limit=1000",
        &owner.h(),
        "",
    )
    .json();
    let mut want: BTreeMap<(String, String), i64> = BTreeMap::new();
    for i in images["images"].as_array().unwrap() {
        *want
            .entry((
                i["split"].as_str().unwrap().to_string(),
                i["state"].as_str().unwrap().to_string(),
            ))
            .or_default() += 1;
    }
    let got: BTreeMap<(String, String), i64> = p["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                (
                    i["split"].as_str().unwrap().to_string(),
                    i["state"].as_str().unwrap().to_string(),
                ),
                i["images"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, want, "{backend}: images by split and state");
}

#[test]
fn vindr_flow_on_sqlite() {
    let Some(corpus) = corpus("server_tasks_sqlite") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    flow(&sqlite_url(&dir), "sqlite", &corpus);
}

#[test]
fn vindr_flow_on_postgres() {
    let Some(corpus) = corpus("server_tasks_postgres") else {
        return;
    };
    let Some(db) = postgres_database("server_tasks") else {
        return;
    };
    flow(&db.url, "postgres", &corpus);
}
