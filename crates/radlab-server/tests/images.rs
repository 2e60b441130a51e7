//! Images into projects over HTTP, on SQLite and PostgreSQL: the corpus's chest radiographs
//! imported into the catalog, added by instance and all at once into splits, listed in
//! pages, moved between splits all or none; bad selections answered with 400.

mod common;

use std::sync::Arc;

use common::{block_on, error_code, json, sign_in, sqlite_url, start};
use radlab_server::{ServerConfig, add_user};
use radlab_store::{BlobStore, ImportOptions, NoProgress, import_paths};
use radlab_testkit::{corpus, postgres_database};

fn images_work(url: &str, backend: &str, corpus: &radlab_testkit::Corpus) {
    let (addr, catalog) = start(url, ServerConfig::default());
    let blobs_dir = tempfile::tempdir().unwrap();
    let uids: Vec<String> = block_on(async {
        add_user(&catalog, "owner", "owner password 1", "user")
            .await
            .unwrap();
        add_user(&catalog, "reader1", "reader password 1", "user")
            .await
            .unwrap();
        let blobs = BlobStore::local(blobs_dir.path().join("blobs")).unwrap();
        let summary = import_paths(
            &catalog,
            &blobs,
            &[corpus.path("dicom/cxr")],
            &ImportOptions::default(),
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
        assert_eq!(summary.imported, 5, "{backend}");
        let mut uids: Vec<String> = catalog
            .list_instances(None)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.sop_instance_uid)
            .collect();
        uids.sort();
        uids
    });
    let (owner, csrf) = sign_in(addr, "owner", "owner password 1");
    let as_owner = [("cookie", owner.as_str()), ("x-csrf-token", csrf.as_str())];
    let r = json(
        addr,
        "POST",
        "/api/v1/projects",
        &as_owner,
        r#"{"project_id":"cxr","template":"vindr-cxr"}"#,
    );
    assert_eq!(r.status, 201);
    let images = "/api/v1/projects/cxr/images";

    // Two instances to train, then everything to test: the two keep their split.
    let body = serde_json::json!({"instances": [uids[0], uids[1]], "split": "train"}).to_string();
    let r = json(addr, "POST", images, &as_owner, &body);
    assert_eq!(
        r.status,
        200,
        "{backend}: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["added"], 2);
    let r = json(
        addr,
        "POST",
        images,
        &as_owner,
        r#"{"all":true,"split":"test"}"#,
    );
    assert_eq!(
        (
            r.json()["added"].as_u64(),
            r.json()["already_in_project"].as_u64()
        ),
        (Some(3), Some(2))
    );
    let r = json(addr, "GET", &format!("{images}?split=train"), &as_owner, "");
    assert_eq!(r.json()["total"], 2);
    let listed = r.json()["images"].clone();
    for img in listed.as_array().unwrap() {
        let uid = img["sop_instance_uid"].as_str().unwrap();
        assert_eq!(img["image_id"], radlab_labels::export::vindr_image_id(uid));
        assert_eq!(img["state"], "waiting");
    }
    // Pages by image id.
    let r = json(
        addr,
        "GET",
        &format!("{images}?offset=2&limit=2"),
        &as_owner,
        "",
    );
    assert_eq!(
        (
            r.json()["total"].as_i64(),
            r.json()["images"].as_array().unwrap().len()
        ),
        (Some(5), 2)
    );

    // Moves are all or none.
    let first = listed[0]["image_id"].as_str().unwrap().to_string();
    let body = serde_json::json!({"image_ids": [first, "nope"], "split": "test"}).to_string();
    let r = json(addr, "POST", &format!("{images}/split"), &as_owner, &body);
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nope")
    );
    let r = json(addr, "GET", &format!("{images}?split=train"), &as_owner, "");
    assert_eq!(r.json()["total"], 2);
    let body = serde_json::json!({"image_ids": [first], "split": "test"}).to_string();
    let r = json(addr, "POST", &format!("{images}/split"), &as_owner, &body);
    assert_eq!(r.json()["moved"], 1);
    let r = json(addr, "GET", &format!("{images}?split=test"), &as_owner, "");
    assert_eq!(r.json()["total"], 4);

    // By query (QIDO-RS keys over the catalog), into another project: the DX images, then
    // the chest images of any modality dated from 2000 on.
    let r = json(
        addr,
        "POST",
        "/api/v1/projects",
        &as_owner,
        r#"{"project_id":"q","template":"vindr-cxr"}"#,
    );
    assert_eq!(r.status, 201);
    let rows = block_on(async { catalog.list_instances(None).await.unwrap() });
    let dx = rows.iter().filter(|r| r.modality == "DX").count();
    assert!(dx > 0);
    let r = json(
        addr,
        "POST",
        "/api/v1/projects/q/images",
        &as_owner,
        r#"{"query":{"ModalitiesInStudy":"DX"},"split":"train"}"#,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["added"].as_u64(), Some(dx as u64), "{backend}");
    let r = json(
        addr,
        "POST",
        "/api/v1/projects/q/images",
        &as_owner,
        r#"{"query":{"PatientID":"*","BodyPartExamined":"NO SUCH PART"},"split":"train"}"#,
    );
    assert_eq!(r.json()["added"].as_u64(), Some(0), "{backend}");
    for (body, says) in [
        (r#"{"query":{"Colour":"red"}}"#, "unknown key"),
        (r#"{"query":{}}"#, "at least one key"),
        (r#"{"query":{"StudyDate":"2020"}}"#, "YYYYMMDD"),
    ] {
        let r = json(addr, "POST", "/api/v1/projects/q/images", &as_owner, body);
        assert_eq!(r.status, 400, "{backend} {body}");
        let m = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(m.contains(says), "{m}");
    }

    // Bad selections name what is wrong and add nothing.
    for (body, says) in [
        (r#"{"instances":["1.2.3.4"],"split":"train"}"#, "1.2.3.4"),
        (
            r#"{"all":true,"split":"validation"}"#,
            "train, test or unassigned",
        ),
        (
            r#"{"all":true,"import_id":"x","split":"train"}"#,
            "exactly one",
        ),
        (r#"{"split":"train"}"#, "exactly one"),
    ] {
        let r = json(addr, "POST", images, &as_owner, body);
        assert_eq!(r.status, 400, "{backend} {body}");
        let m = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(m.contains(says), "{m}");
    }
    let r = json(addr, "GET", images, &as_owner, "");
    assert_eq!(r.json()["total"], 5);

    // An annotator lists but does not add; a non-member gets 403.
    let r = json(
        addr,
        "POST",
        "/api/v1/projects/cxr/members",
        &as_owner,
        r#"{"username":"reader1","role":"annotator"}"#,
    );
    assert_eq!(r.status, 201);
    let (reader, reader_csrf) = sign_in(addr, "reader1", "reader password 1");
    let as_reader = [
        ("cookie", reader.as_str()),
        ("x-csrf-token", reader_csrf.as_str()),
    ];
    assert_eq!(json(addr, "GET", images, &as_reader, "").status, 200);
    let r = json(
        addr,
        "POST",
        images,
        &as_reader,
        r#"{"all":true,"split":"train"}"#,
    );
    assert_eq!((r.status, error_code(&r).as_str()), (403, "forbidden"));
}

#[test]
fn images_on_sqlite() {
    let Some(corpus) = corpus("server_images_sqlite") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    images_work(&sqlite_url(&dir), "sqlite", &corpus);
}

#[test]
fn images_on_postgres() {
    let Some(corpus) = corpus("server_images_postgres") else {
        return;
    };
    let Some(db) = postgres_database("server_images") else {
        return;
    };
    images_work(&db.url, "postgres", &corpus);
}
