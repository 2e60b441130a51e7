//! Triage verdicts over the API: owners read a project's verdicts and overrule one (kept,
//! then taken back); readers are refused; an image without a verdict is a 404.

mod common;

use common::{block_on, error_code, json, login, sqlite_url, vindr_project};
use radlab_store::NewVerdict;

#[test]
fn owners_read_and_overrule_triage_verdicts() {
    const TEST: &str = "owners_read_and_overrule_triage_verdicts";
    let Some(corpus) = radlab_testkit::corpus(TEST) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let blobs = tempfile::tempdir().unwrap();
    let (addr, catalog, _) = vindr_project(&sqlite_url(&dir), &corpus, blobs.path());
    let images = block_on(catalog.project_images("cxr", None, 0, 10))
        .unwrap()
        .0;
    // An upright rendering stored for the first image, as `--fix-orientation` does.
    let png = b"\x89PNG\r\n\x1a\n not really a picture".to_vec();
    let upright_hash = radlab_dicom::content_hash(&png);
    let store = radlab_store::BlobStore::local(blobs.path()).unwrap();
    block_on(store.put(&upright_hash, png.clone().into())).unwrap();
    let verdicts: Vec<NewVerdict> = images
        .iter()
        .enumerate()
        .map(|(i, img)| NewVerdict {
            image_id: img.image_id.clone(),
            sop_instance_uid: img.sop_instance_uid.clone(),
            model: "rules".into(),
            valid: i != 0,
            class: String::new(),
            probability: String::new(),
            findings: if i == 0 {
                serde_json::json!([{"code": "view", "reason": "View Position LL is a lateral view, not frontal (PA or AP)"}])
            } else {
                serde_json::json!([])
            },
            orientation: if i == 0 { "90".into() } else { "0".into() },
            upright_blob: if i == 0 { upright_hash.clone() } else { String::new() },
        })
        .collect();
    block_on(catalog.record_triage("cxr", &verdicts)).unwrap();
    let first = &images[0].image_id;

    let owner = login(addr, "owner");
    let r = json(addr, "GET", "/api/v1/projects/cxr/triage", &owner.h(), "");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    assert_eq!(body["verdicts"].as_array().unwrap().len(), images.len());
    assert_eq!(body["rejected"], 1);
    let v = body["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["image_id"] == first.as_str())
        .unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["findings"][0]["code"], "view");
    assert!(v["overruled"].is_null());

    // A reader may not see them (blinding: a reader never learns what triage said).
    let reader = login(addr, "r1");
    let r = json(addr, "GET", "/api/v1/projects/cxr/triage", &reader.h(), "");
    assert_eq!(r.status, 403);
    let path = format!("/api/v1/projects/cxr/triage/{first}");
    let r = json(addr, "PUT", &path, &reader.h(), r#"{"valid": true}"#);
    assert_eq!(r.status, 403);

    // The owner keeps the lateral one; the counts follow; then takes it back.
    let r = json(addr, "PUT", &path, &owner.h(), r#"{"valid": true}"#);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let body = json(addr, "GET", "/api/v1/projects/cxr/triage", &owner.h(), "").json();
    assert_eq!(body["rejected"], 0);
    let v = body["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["image_id"] == first.as_str())
        .unwrap()
        .clone();
    assert_eq!(v["overruled"], true);
    assert_eq!(v["overruled_by"], "owner");
    let r = json(addr, "PUT", &path, &owner.h(), r#"{"valid": null}"#);
    assert_eq!(r.status, 200);
    let body = json(addr, "GET", "/api/v1/projects/cxr/triage", &owner.h(), "").json();
    assert_eq!(body["rejected"], 1);

    // No verdict, a bad body.
    let r = json(
        addr,
        "PUT",
        "/api/v1/projects/cxr/triage/nope",
        &owner.h(),
        r#"{"valid": true}"#,
    );
    assert_eq!(r.status, 404);
    assert_eq!(error_code(&r), "not_found");
    let r = json(addr, "PUT", &path, &owner.h(), r#"{"valid": "yes"}"#);
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));

    // The upright rendering: to owners, not to readers; 404 for an image without one.
    let upright = format!("/api/v1/projects/cxr/triage/{first}/upright.png");
    let r = json(addr, "GET", &upright, &owner.h(), "");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.body, png);
    let r = json(addr, "GET", &upright, &reader.h(), "");
    assert_eq!(r.status, 403);
    let other = &images[1].image_id;
    let r = json(
        addr,
        "GET",
        &format!("/api/v1/projects/cxr/triage/{other}/upright.png"),
        &owner.h(),
        "",
    );
    assert_eq!(r.status, 404);
    assert_eq!(error_code(&r), "not_found");
}
