//! Uploads into a project over HTTP: a corpus radiograph lands in the catalog and the split
//! (once, however often it is sent); a non-DICOM body, a broken DICOM file, another media
//! type and an oversized body get 422, 422, 415 and 413 with the JSON error, and nothing
//! stored changes; only owners upload.

mod common;

use common::{block_on, error_code, json, login, post, sqlite_url, start_with};
use radlab_server::{ServerConfig, add_user};
use radlab_testkit::{corpus, http};

#[test]
fn uploads_land_once_and_bad_ones_change_nothing() {
    let Some(corpus) = corpus("server_uploads") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let blobs = radlab_store::BlobStore::local(dir.path().join("blobs")).unwrap();
    let staging = dir.path().join("staging");
    let (addr, catalog) = start_with(&sqlite_url(&dir), ServerConfig::default(), |s| {
        s.with_uploads(blobs, staging.clone(), 1_500_000)
    });
    block_on(async {
        for n in ["owner", "r1"] {
            add_user(&catalog, n, &format!("{n} password 1"), "user")
                .await
                .unwrap();
        }
    });
    let owner = login(addr, "owner");
    assert_eq!(
        post(
            addr,
            &owner,
            "/api/v1/projects",
            r#"{"project_id":"cxr","template":"vindr-cxr"}"#
        )
        .status,
        201
    );
    assert_eq!(
        post(
            addr,
            &owner,
            "/api/v1/projects/cxr/members",
            r#"{"username":"r1","role":"annotator"}"#
        )
        .status,
        201
    );
    let upload = |headers: &[(&str, &str)], body: &[u8]| {
        let mut h = owner.h().to_vec();
        h.extend_from_slice(headers);
        http(
            addr,
            "POST",
            "/api/v1/projects/cxr/upload?split=train",
            &h,
            body,
        )
    };
    let dicom = [("content-type", "application/dicom")];
    let counts = || block_on(async { catalog.counts().await.unwrap() });

    let file =
        std::fs::read(corpus.path("dicom/cxr/fodicom_CR-MONO1-10-chest_acrnema.dcm")).unwrap();
    let r = upload(&dicom, &file);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        (
            r.json()["new_in_catalog"].as_bool(),
            r.json()["new_in_project"].as_bool()
        ),
        (Some(true), Some(true))
    );
    let r = upload(&dicom, &file);
    assert_eq!(
        (
            r.status,
            r.json()["new_in_catalog"].as_bool(),
            r.json()["new_in_project"].as_bool()
        ),
        (201, Some(false), Some(false))
    );
    let r = json(
        addr,
        "GET",
        "/api/v1/projects/cxr/images?split=train",
        &owner.h(),
        "",
    );
    assert_eq!(r.json()["total"], 1);
    let before = counts();
    assert_eq!(before.instances, 1);

    // Bad uploads: each a 4xx with the JSON error; the catalog and quarantine stay as they were.
    let broken = std::fs::read(corpus.path("dicom/invalid/pydicom_MR_truncated.dcm")).unwrap();
    let png = std::fs::read(
        corpus
            .path("png")
            .read_dir()
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path(),
    )
    .unwrap_or_default();
    let big =
        std::fs::read(corpus.path("dicom/cxr/pylibjpeg_JPEG2KLossless_dx_chest_mono2_cp1251.dcm"))
            .unwrap();
    for (headers, body, status, code) in [
        (
            &dicom[..],
            b"this is not a DICOM file at all".to_vec(),
            422,
            "not_dicom",
        ),
        (&dicom[..], broken, 422, "not_dicom"),
        (
            &[("content-type", "image/png")][..],
            png,
            415,
            "unsupported_media_type",
        ),
        (&dicom[..], big, 413, "too_large"),
    ] {
        let r = upload(headers, &body);
        assert_eq!(
            (r.status, error_code(&r).as_str()),
            (status, code),
            "{}",
            String::from_utf8_lossy(&r.body)
        );
    }
    assert_eq!(counts(), before);
    assert!(
        std::fs::read_dir(&staging).map(|d| d.count()).unwrap_or(0) == 0,
        "staging left files"
    );

    // Only owners upload.
    let r1 = login(addr, "r1");
    let mut h = r1.h().to_vec();
    h.push(("content-type", "application/dicom"));
    let r = http(
        addr,
        "POST",
        "/api/v1/projects/cxr/upload?split=train",
        &h,
        &file,
    );
    assert_eq!(r.status, 403);
}
