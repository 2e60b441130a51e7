//! Two `radlab serve` processes' worth of servers on one database (PostgreSQL, and SQLite's
//! one file): assignments run on both at once give each image its readers exactly once, and
//! the last readers of an image submitting at once through both open its review exactly
//! once; no write is lost.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};

use common::{User, json, login, post, sqlite_url, start, vindr_project};
use radlab_server::ServerConfig;
use radlab_testkit::{corpus, postgres_database};

fn two_servers(url: &str, backend: &str, corpus: &radlab_testkit::Corpus) {
    let blobs = tempfile::tempdir().unwrap();
    let (a, _, _) = vindr_project(url, corpus, blobs.path());
    let (b, _) = start(url, ServerConfig::default());
    let owner = login(a, "owner");
    for (split, body) in [
        ("train", r#"{"kind":"independent","readers":3}"#),
        ("test", r#"{"kind":"consensus","readers":3,"reviewers":2}"#),
    ] {
        let path = format!("/api/v1/projects/cxr/workflows/{split}");
        assert_eq!(json(a, "PUT", &path, &owner.h(), body).status, 200);
    }
    // Both servers assign both splits at the same moment, twice over.
    let barrier = Arc::new(Barrier::new(4));
    let handles: Vec<_> = [(a, "train"), (b, "train"), (a, "test"), (b, "test")]
        .into_iter()
        .map(|(addr, split)| {
            let barrier = barrier.clone();
            let h = owner.h().map(|(k, v)| (k.to_string(), v.to_string()));
            std::thread::spawn(move || {
                let h: Vec<(&str, &str)> =
                    h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                barrier.wait();
                let r = json(
                    addr,
                    "POST",
                    "/api/v1/projects/cxr/assign",
                    &h,
                    &format!(r#"{{"split":"{split}"}}"#),
                );
                assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
                r.json()["tasks_created"].as_u64().unwrap()
            })
        })
        .collect();
    let created: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(created, 15, "{backend}: each image's readers exactly once");
    let tasks = json(b, "GET", "/api/v1/projects/cxr/tasks", &owner.h(), "").json();
    let mut per_image: BTreeMap<String, usize> = BTreeMap::new();
    for t in tasks["tasks"].as_array().unwrap() {
        *per_image
            .entry(t["image_id"].as_str().unwrap().into())
            .or_default() += 1;
    }
    assert!(
        per_image.values().all(|n| *n == 3),
        "{backend}: {per_image:?}"
    );

    // Every reader starts every task, then all submit at once, half through each server.
    let readers: Vec<User> = ["r1", "r2", "r3", "r4"]
        .iter()
        .map(|n| login(a, n))
        .collect();
    let mut jobs = Vec::new();
    for (i, u) in readers.iter().enumerate() {
        let mine = json(a, "GET", "/api/v1/tasks", &u.h(), "").json();
        for t in mine["tasks"].as_array().unwrap() {
            let id = t["task_id"].as_str().unwrap().to_string();
            assert_eq!(
                post(a, u, &format!("/api/v1/tasks/{id}/start"), "").status,
                200
            );
            // Each reader also saves a box through the other server.
            let addr = if jobs.len() % 2 == 0 { a } else { b };
            let body = r#"{"version":0,"annotations":[{"label":"Aortic enlargement","bbox":[10,10,60,60]}]}"#;
            let r = json(
                addr,
                "PUT",
                &format!("/api/v1/tasks/{id}/annotations"),
                &u.h(),
                body,
            );
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            jobs.push((
                if i % 2 == 0 { a } else { b },
                u.h().map(|(k, v)| (k.to_string(), v.to_string())),
                id,
            ));
        }
    }
    let barrier = Arc::new(Barrier::new(jobs.len()));
    let handles: Vec<_> = jobs
        .into_iter()
        .map(|(addr, h, id)| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let h: Vec<(&str, &str)> =
                    h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                barrier.wait();
                json(addr, "POST", &format!("/api/v1/tasks/{id}/submit"), &h, "").status
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200, "{backend}");
    }
    let tasks = json(a, "GET", "/api/v1/projects/cxr/tasks", &owner.h(), "").json();
    let reviews = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "review")
        .count();
    assert_eq!(
        reviews, 4,
        "{backend}: 2 test images x 2 reviewers, opened once each"
    );
    let states = json(b, "GET", "/api/v1/projects/cxr/images", &owner.h(), "").json();
    let in_review = states["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["state"] == "in_review")
        .count();
    assert_eq!(in_review, 2);
    // No write lost: every reader's box on every image.
    let all = json(b, "GET", "/api/v1/projects/cxr/annotations", &owner.h(), "").json();
    assert_eq!(
        all["annotations"].as_array().unwrap().len(),
        15,
        "{backend}"
    );
}

#[test]
fn two_servers_on_one_sqlite_file() {
    let Some(corpus) = corpus("server_two_sqlite") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    two_servers(&sqlite_url(&dir), "sqlite", &corpus);
}

#[test]
fn two_servers_on_one_postgres_database() {
    let Some(corpus) = corpus("server_two_postgres") else {
        return;
    };
    let Some(db) = postgres_database("server_two") else {
        return;
    };
    two_servers(&db.url, "postgres", &corpus);
}
