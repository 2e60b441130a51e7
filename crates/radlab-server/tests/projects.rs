//! Projects over HTTP, on SQLite and PostgreSQL: the VinDr-CXR template with its exact
//! labels and Kaggle ids, schemas checked, members in project roles, 403 across projects,
//! and a schema that can only be extended once the project has annotations.

mod common;

use common::{block_on, error_code, json, sign_in, sqlite_url, start};
use radlab_labels::schema::LabelSchema;
use radlab_server::{ServerConfig, add_user};
use radlab_testkit::postgres_database;

fn projects_work(url: &str, backend: &str) {
    let (addr, catalog) = start(url, ServerConfig::default());
    block_on(async {
        add_user(&catalog, "admin", "admin password 1", "admin")
            .await
            .unwrap();
        add_user(&catalog, "owner", "owner password 1", "user")
            .await
            .unwrap();
        add_user(&catalog, "reader1", "reader password 1", "user")
            .await
            .unwrap();
        add_user(&catalog, "outsider", "outsider password", "user")
            .await
            .unwrap();
    });
    let (owner, owner_csrf) = sign_in(addr, "owner", "owner password 1");
    let as_owner = [
        ("cookie", owner.as_str()),
        ("x-csrf-token", owner_csrf.as_str()),
    ];

    // From the template: 22 local + 6 image labels, exact spellings, Kaggle ids.
    let r = json(
        addr,
        "POST",
        "/api/v1/projects",
        &as_owner,
        r#"{"project_id":"vindr-cxr-1","template":"vindr-cxr"}"#,
    );
    assert_eq!(
        r.status,
        201,
        "{backend}: {}",
        String::from_utf8_lossy(&r.body)
    );
    let schema: LabelSchema = serde_json::from_value(r.json()["schema"].clone()).unwrap();
    assert_eq!(schema.labels.len(), 28);
    let local: Vec<&str> = schema
        .labels
        .iter()
        .filter(|l| l.scope == radlab_labels::schema::LabelScope::Local)
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(local.len(), 22);
    assert!(local.contains(&"Nodule/Mass") && local.contains(&"Enlarged PA"));
    for (name, id) in radlab_labels::KAGGLE_CLASSES.iter().zip(0u32..) {
        assert_eq!(schema.label(name).unwrap().export_id, Some(id), "{name}");
    }
    assert!(schema.label("No finding").unwrap().exclusive);
    assert_eq!(r.json()["roles"], serde_json::json!(["owner"]));

    // Bad requests say what is wrong.
    for (body, status, says) in [
        (
            r#"{"project_id":"vindr-cxr-1","template":"vindr-cxr"}"#,
            409,
            "exists",
        ),
        (
            r#"{"project_id":"p2","template":"vindr-xyz"}"#,
            400,
            "vindr-cxr",
        ),
        (r#"{"project_id":"p2"}"#, 400, "template"),
        (
            r#"{"project_id":"bad name","template":"vindr-cxr"}"#,
            400,
            "letters",
        ),
        (
            r##"{"project_id":"p2","schema":{"labels":[{"name":"A","scope":"local","color":"#ff0000"},{"name":"A","scope":"image","color":"#00ff00"}]}}"##,
            400,
            "twice",
        ),
        (
            r#"{"project_id":"p2","schema":{"labels":[{"name":"A","scope":"local","color":"red"}]}}"#,
            400,
            "#rrggbb",
        ),
        (
            r##"{"project_id":"p2","schema":{"labels":[{"name":"A","scope":"local","color":"#ff0000","parent":"B"}]}}"##,
            400,
            "parent",
        ),
    ] {
        let r = json(addr, "POST", "/api/v1/projects", &as_owner, body);
        assert_eq!(r.status, status, "{backend} {body}");
        let m = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(m.contains(says), "{m}");
    }

    // Members: the owner adds a reader; an outsider is refused everywhere (403).
    let r = json(
        addr,
        "POST",
        "/api/v1/projects/vindr-cxr-1/members",
        &as_owner,
        r#"{"username":"reader1","role":"annotator"}"#,
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let r = json(
        addr,
        "POST",
        "/api/v1/projects/vindr-cxr-1/members",
        &as_owner,
        r#"{"username":"reader1","role":"boss"}"#,
    );
    assert_eq!(r.status, 400);
    let r = json(
        addr,
        "POST",
        "/api/v1/projects/vindr-cxr-1/members",
        &as_owner,
        r#"{"username":"ghost","role":"reviewer"}"#,
    );
    assert_eq!(r.status, 400);
    let r = json(
        addr,
        "GET",
        "/api/v1/projects/vindr-cxr-1/members",
        &as_owner,
        "",
    );
    assert_eq!(r.json()["members"].as_array().unwrap().len(), 2);
    let (reader, reader_csrf) = sign_in(addr, "reader1", "reader password 1");
    let as_reader = [
        ("cookie", reader.as_str()),
        ("x-csrf-token", reader_csrf.as_str()),
    ];
    let r = json(addr, "GET", "/api/v1/projects/vindr-cxr-1", &as_reader, "");
    assert_eq!(
        (r.status, r.json()["roles"].clone()),
        (200, serde_json::json!(["annotator"]))
    );
    // An annotator cannot change the schema or the members.
    let r = json(
        addr,
        "POST",
        "/api/v1/projects/vindr-cxr-1/members",
        &as_reader,
        r#"{"username":"outsider","role":"annotator"}"#,
    );
    assert_eq!(r.status, 403);
    let (outsider, outsider_csrf) = sign_in(addr, "outsider", "outsider password");
    let as_outsider = [
        ("cookie", outsider.as_str()),
        ("x-csrf-token", outsider_csrf.as_str()),
    ];
    for (method, path) in [
        ("GET", "/api/v1/projects/vindr-cxr-1"),
        ("GET", "/api/v1/projects/vindr-cxr-1/members"),
        ("POST", "/api/v1/projects/vindr-cxr-1/members"),
        ("PUT", "/api/v1/projects/vindr-cxr-1/schema"),
    ] {
        let r = json(
            addr,
            method,
            path,
            &as_outsider,
            r#"{"username":"outsider","role":"owner"}"#,
        );
        assert_eq!(
            (r.status, error_code(&r).as_str()),
            (403, "forbidden"),
            "{backend} {method} {path}"
        );
    }
    let r = json(addr, "GET", "/api/v1/projects", &as_outsider, "");
    assert_eq!(r.json()["projects"], serde_json::json!([]));
    let r = json(addr, "GET", "/api/v1/projects/nothing-here", &as_owner, "");
    assert_eq!(r.status, 404);
    // An administrator sees every project.
    let (admin, _) = sign_in(addr, "admin", "admin password 1");
    let r = json(
        addr,
        "GET",
        "/api/v1/projects",
        &[("cookie", admin.as_str())],
        "",
    );
    assert_eq!(r.json()["projects"].as_array().unwrap().len(), 1);

    // Before any annotation the schema may change freely (a label removed here).
    let mut edited = schema.clone();
    edited.labels.retain(|l| l.name != "Edema");
    let body = serde_json::json!({"schema": edited}).to_string();
    let r = json(
        addr,
        "PUT",
        "/api/v1/projects/vindr-cxr-1/schema",
        &as_owner,
        &body,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // Once annotated, only an extension: adding passes, removing or rescoping is refused.
    block_on(async {
        let a = radlab_labels::Annotation {
            image_id: "img1".into(),
            reader: Some("reader1".into()),
            label: "Cardiomegaly".into(),
            bbox: Some([1.0, 2.0, 30.0, 40.0]),
            score: None,
        };
        catalog
            .add_annotations("vindr-cxr-1", &[a], radlab_store::Layer::Consensus, "test")
            .await
            .unwrap();
    });
    let r = json(addr, "GET", "/api/v1/projects/vindr-cxr-1", &as_owner, "");
    assert_eq!(r.json()["schema_in_use"], true);
    let mut more = edited.clone();
    let mut extra = more.labels[0].clone();
    extra.name = "Aortic calcification".into();
    extra.hotkey = Some("z".into());
    extra.export_id = None;
    more.labels.push(extra);
    let body = serde_json::json!({"schema": more}).to_string();
    let r = json(
        addr,
        "PUT",
        "/api/v1/projects/vindr-cxr-1/schema",
        &as_owner,
        &body,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let mut fewer = more.clone();
    fewer.labels.retain(|l| l.name != "Cardiomegaly");
    let mut rescoped = more.clone();
    rescoped.labels[0].scope = radlab_labels::schema::LabelScope::Image;
    for s in [fewer, rescoped] {
        let body = serde_json::json!({"schema": s}).to_string();
        let r = json(
            addr,
            "PUT",
            "/api/v1/projects/vindr-cxr-1/schema",
            &as_owner,
            &body,
        );
        assert_eq!(
            (r.status, error_code(&r).as_str()),
            (409, "schema_in_use"),
            "{backend}"
        );
    }
}

#[test]
fn projects_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    projects_work(&sqlite_url(&dir), "sqlite");
}

#[test]
fn projects_on_postgres() {
    let Some(db) = postgres_database("server_projects") else {
        return;
    };
    projects_work(&db.url, "postgres");
}
