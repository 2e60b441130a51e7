//! `radlab pacs echo`, `find` and `move` against a real Orthanc (Debian package `orthanc`,
//! started by the test with `radlab_testkit::orthanc`) loaded with the corpus radiographs
//! through its REST API: echo, C-FIND by modality / date / body part compared with what
//! Orthanc's REST API says, C-MOVE of every CR study into an empty catalog with Pixel Data
//! byte for byte as uploaded, a dry run, and a retrieval job with failures (a study Orthanc
//! does not have, then Orthanc stopped) resumed to fetch only what is missing.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::{
    Uploaded, describe, found_uids, job_study, no_staging_left, orthanc_studies, pacs,
    part10_files, read_job, stored_objects_by_uid, text,
};
use radlab_dicom::{DicomFile, InstanceInfo};
use radlab_testkit::{Modality, Orthanc};

/// Orthanc knowing our SCP as RADLAB at 127.0.0.1:`listen_port`, loaded with `files`.
fn loaded_orthanc(test: &str, listen_port: u16, files: &[PathBuf]) -> Option<Orthanc> {
    common::loaded_orthanc(
        test,
        &[Modality::new("RADLAB", "127.0.0.1", listen_port)],
        files,
    )
}

#[test]
fn echo_and_find_return_exactly_orthancs_matches() {
    const TEST: &str = "echo_and_find_return_exactly_orthancs_matches";
    let Some(corpus) = radlab_testkit::corpus(TEST) else {
        return;
    };
    let files = part10_files(&corpus);
    let Some(orthanc) = loaded_orthanc(TEST, radlab_testkit::free_port(), &files) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");

    let out = pacs(&["echo"], &orthanc, &data);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("success"));

    // A wrong called AE title is refused by nobody (Orthanc does not check it by default),
    // but a closed port is an error that names the peer.
    let closed = common::command()
        .args(["pacs", "echo", "--host", "127.0.0.1", "--aec", "ORTHANC"])
        .arg("--port")
        .arg(radlab_testkit::free_port().to_string())
        .output()
        .unwrap();
    assert!(!closed.status.success());
    assert!(
        text(&closed).contains("no association with ORTHANC"),
        "{}",
        text(&closed)
    );

    let all = found_uids(&pacs(&["find", "--json"], &orthanc, &data));
    let uploaded: BTreeSet<String> = files.iter().map(|f| describe(f).study).collect();
    assert_eq!(all, uploaded);
    assert_eq!(all, orthanc_studies(&orthanc, serde_json::json!({})));

    let cr = found_uids(&pacs(
        &["find", "--modality", "CR", "--json"],
        &orthanc,
        &data,
    ));
    assert_eq!(
        cr,
        orthanc_studies(&orthanc, serde_json::json!({"ModalitiesInStudy": "CR"}))
    );
    assert!(cr.len() >= 2 && cr.len() < all.len(), "{cr:?}");

    let dated = found_uids(&pacs(
        &["find", "--date", "20040101-20041231", "--json"],
        &orthanc,
        &data,
    ));
    assert_eq!(
        dated,
        orthanc_studies(
            &orthanc,
            serde_json::json!({"StudyDate": "20040101-20041231"})
        )
    );
    assert_eq!(dated.len(), 2, "{dated:?}");

    let cr_2004 = found_uids(&pacs(
        &[
            "find",
            "--date",
            "20040101-20041231",
            "--modality",
            "CR",
            "--json",
        ],
        &orthanc,
        &data,
    ));
    assert_eq!(
        cr_2004,
        orthanc_studies(
            &orthanc,
            serde_json::json!({"StudyDate": "20040101-20041231", "ModalitiesInStudy": "CR"})
        )
    );
    assert_eq!(cr_2004.len(), 1);

    // Body part is a series attribute: the studies with a CHEST series.
    let chest = found_uids(&pacs(
        &["find", "--body-part", "CHEST", "--json"],
        &orthanc,
        &data,
    ));
    let expected = common::orthanc_studies_of_series(
        &orthanc,
        serde_json::json!({"BodyPartExamined": "CHEST"}),
    );
    assert_eq!(chest, expected);
    assert!(!chest.is_empty());

    // Counts as Orthanc has them; no patient data unless asked.
    let out = pacs(&["find", "--modality", "CR"], &orthanc, &data);
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(table.contains(&format!("{} studies", cr.len())), "{table}");
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let info = InstanceInfo::from_file(&DicomFile::from_bytes(&bytes).unwrap());
        if !info.patient_id.is_empty() {
            assert!(!table.contains(&info.patient_id), "{table}");
        }
    }
    let shown = pacs(&["find", "--show-patient", "--json"], &orthanc, &data);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("\"patient_id\""));

    // Series level: the DX series, with their instance counts.
    let out = pacs(
        &["find", "--level", "series", "--modality", "DX", "--json"],
        &orthanc,
        &data,
    );
    assert!(out.status.success(), "{}", text(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let dx: usize = files
        .iter()
        .filter(|f| describe(f).modality == "DX")
        .count();
    assert_eq!(rows.len(), dx, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r["modality"] == "DX" && r["instances"] == 1)
    );
}

#[test]
fn move_of_every_cr_study_brings_each_instance_with_its_pixels_unchanged() {
    const TEST: &str = "move_of_every_cr_study_brings_each_instance_with_its_pixels_unchanged";
    let Some(corpus) = radlab_testkit::corpus(TEST) else {
        return;
    };
    let files = part10_files(&corpus);
    let listen = radlab_testkit::free_port();
    let Some(orthanc) = loaded_orthanc(TEST, listen, &files) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let job = tmp.path().join("job.json");
    let port = listen.to_string();
    let cr: Vec<Uploaded> = files
        .iter()
        .map(|f| describe(f))
        .filter(|u| u.modality == "CR")
        .collect();
    let cr_studies: BTreeSet<&str> = cr.iter().map(|u| u.study.as_str()).collect();

    // The dry run counts and writes nothing.
    let out = pacs(&["move", "--modality", "CR", "--dry-run"], &orthanc, &data);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!(
            "would retrieve {} of {} studies, {} instances",
            cr_studies.len(),
            cr_studies.len(),
            cr.len()
        )),
        "{}",
        text(&out)
    );
    assert!(!data.join("pacs-jobs").exists() && stored_objects_by_uid(&data).is_empty());

    let out = pacs(
        &[
            "move",
            "--modality",
            "CR",
            "--dest",
            "RADLAB",
            "--listen-bind",
            "127.0.0.1",
            "--listen-port",
            &port,
            "--job",
            job.to_str().unwrap(),
        ],
        &orthanc,
        &data,
    );
    assert!(out.status.success(), "{}", text(&out));
    let stored = stored_objects_by_uid(&data);
    assert_eq!(stored.len(), cr.len(), "{}", text(&out));
    for u in &cr {
        assert!(
            stored[&u.sop] == u.pixels,
            "pixel data of {} differs",
            u.sop
        );
    }
    let record = read_job(&job);
    assert_eq!(
        record["studies"].as_array().unwrap().len(),
        cr_studies.len()
    );
    for study in &cr_studies {
        let s = job_study(&record, study);
        assert_eq!(s["state"], "done", "{record}");
        assert_eq!(s["attempts"], 1);
        let n = cr.iter().filter(|u| u.study == *study).count();
        assert_eq!(s["expected"], n);
        assert_eq!(s["arrived"], n);
    }
    no_staging_left(&data);

    // Resuming a finished job moves nothing.
    let out = pacs(
        &["move", "--resume", job.to_str().unwrap()],
        &orthanc,
        &data,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to retrieve"));
}

#[test]
fn a_failed_study_is_recorded_and_resume_fetches_only_what_is_missing() {
    let listen = radlab_testkit::free_port();
    let port = listen.to_string();
    common::a_failed_study_is_recorded_and_resumed(
        "a_failed_study_is_recorded_and_resume_fetches_only_what_is_missing",
        "move",
        &["--listen-bind", "127.0.0.1", "--listen-port", &port],
        Modality::new("RADLAB", "127.0.0.1", listen),
    );
}
