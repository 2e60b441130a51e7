//! `radlab pacs echo`, `find` and `move` against a real Orthanc (Debian package `orthanc`,
//! started by the test with `radlab_testkit::orthanc`) loaded with the corpus radiographs
//! through its REST API: echo, C-FIND by modality / date / body part compared with what
//! Orthanc's REST API says, C-MOVE of every CR study into an empty catalog with Pixel Data
//! byte for byte as uploaded, a dry run, and a retrieval job with failures (a study Orthanc
//! does not have, then Orthanc stopped) resumed to fetch only what is missing.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

use common::text;
use radlab_dicom::{DicomFile, InstanceInfo, pixel_data_span};
use radlab_testkit::{Modality, Orthanc};

/// What an uploaded file is.
#[derive(Debug, Clone)]
struct Uploaded {
    study: String,
    sop: String,
    modality: String,
    pixels: Vec<u8>,
}

fn part10_files(corpus: &radlab_testkit::Corpus) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus.path("dicom/cxr"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect();
    // A third CR study (the Part 10 form of the ACR-NEMA file of dicom/cxr).
    files.push(corpus.path("dicom/cxr_derived/cr_mono1_10_chest_part10_explicit_le.dcm"));
    files.sort();
    // A bare ACR-NEMA data set has no file meta: Orthanc would not take it.
    files.retain(|f| {
        let b = std::fs::read(f).unwrap();
        b.len() > 132 && &b[128..132] == b"DICM"
    });
    files
}

/// The store's objects by SOP Instance UID.
fn stored_objects_by_uid(data: &Path) -> BTreeMap<String, Vec<u8>> {
    common::stored_objects(data).into_iter().collect()
}

fn describe(file: &Path) -> Uploaded {
    let bytes = std::fs::read(file).unwrap();
    let span = pixel_data_span(&bytes).expect("pixel data");
    let dicom = DicomFile::from_bytes(&bytes).unwrap();
    let info = InstanceInfo::from_file(&dicom);
    Uploaded {
        study: info.study_instance_uid.clone(),
        sop: info.sop_instance_uid.clone(),
        modality: info.modality.clone(),
        pixels: bytes[span].to_vec(),
    }
}

fn pacs(args: &[&str], orthanc: &Orthanc, data: &Path) -> Output {
    common::command()
        .arg("pacs")
        .args(args)
        .args(["--host", "127.0.0.1", "--aec", "ORTHANC", "--aet", "RADLAB"])
        .arg("--port")
        .arg(orthanc.dicom_port.to_string())
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("run radlab pacs")
}

/// Orthanc knowing our SCP as RADLAB at 127.0.0.1:`listen_port`, loaded with `files`.
fn loaded_orthanc(test: &str, listen_port: u16, files: &[PathBuf]) -> Option<Orthanc> {
    let orthanc =
        radlab_testkit::orthanc(test, &[Modality::new("RADLAB", "127.0.0.1", listen_port)])?;
    for f in files {
        orthanc.upload(f);
    }
    Some(orthanc)
}

/// Study Instance UIDs of Orthanc's `/tools/find` at study level for `query`.
fn orthanc_studies(orthanc: &Orthanc, query: serde_json::Value) -> BTreeSet<String> {
    let body = serde_json::json!({"Level": "Study", "Query": query, "Expand": true});
    orthanc
        .post("/tools/find", body.to_string().as_bytes())
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["MainDicomTags"]["StudyInstanceUID"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn found_uids(out: &Output) -> BTreeSet<String> {
    assert!(out.status.success(), "{}", text(out));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.iter()
        .map(|r| r["study_instance_uid"].as_str().unwrap().to_string())
        .collect()
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
    let body = serde_json::json!({"Level": "Series", "Query": {"BodyPartExamined": "CHEST"},
        "Expand": true});
    let chest_series = orthanc.post("/tools/find", body.to_string().as_bytes());
    let expected: BTreeSet<String> = chest_series
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let study = orthanc.get(&format!("/studies/{}", s["ParentStudy"].as_str().unwrap()));
            study["MainDicomTags"]["StudyInstanceUID"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
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

fn read_job(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn job_study<'a>(job: &'a serde_json::Value, uid: &str) -> &'a serde_json::Value {
    job["studies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["study_instance_uid"] == uid)
        .unwrap_or_else(|| panic!("{uid} not in {job}"))
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
    // No staging folder left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".pacs-staging"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

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
    const TEST: &str = "a_failed_study_is_recorded_and_resume_fetches_only_what_is_missing";
    let Some(corpus) = radlab_testkit::corpus(TEST) else {
        return;
    };
    let files = part10_files(&corpus);
    let described: Vec<(PathBuf, Uploaded)> =
        files.iter().map(|f| (f.clone(), describe(f))).collect();
    let cr: Vec<&(PathBuf, Uploaded)> = described
        .iter()
        .filter(|(_, u)| u.modality == "CR")
        .collect();
    let (first_file, first) = cr[0];
    let (second_file, second) = cr[1];
    assert_ne!(first.study, second.study);
    let listen = radlab_testkit::free_port();
    // Orthanc has the first study only.
    let Some(mut orthanc) = loaded_orthanc(TEST, listen, std::slice::from_ref(first_file)) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let job = tmp.path().join("job.json");
    let job_arg = job.to_str().unwrap();
    let port = listen.to_string();
    let listen_args = ["--listen-bind", "127.0.0.1", "--listen-port", &port];

    let mut args = vec![
        "move",
        "--study",
        &first.study,
        "--study",
        &second.study,
        "--job",
        job_arg,
        "--attempts",
        "2",
        "--retry-delay",
        "0.1",
    ];
    args.extend(listen_args);
    let out = pacs(&args, &orthanc, &data);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let record = read_job(&job);
    let a = job_study(&record, &first.study);
    assert_eq!(
        (&a["state"], &a["arrived"], &a["attempts"]),
        (&"done".into(), &1.into(), &1.into())
    );
    let b = job_study(&record, &second.study);
    assert_eq!(b["state"], "failed", "{record}");
    assert_eq!(b["attempts"], 2);
    assert_eq!(b["arrived"], 0);
    // Orthanc 1.10 answers a move of a study it lacks with 0xC000; another PACS may answer
    // success with nothing moved: both are failures.
    let why = b["failure"].as_str().unwrap();
    assert!(
        why.contains("C-MOVE status 0xC000") || why.contains("nothing arrived"),
        "{record}"
    );
    assert_eq!(stored_objects_by_uid(&data).len(), 1);

    // Orthanc stopped: the resumed job fails again, saying why, and keeps what was done.
    orthanc.stop();
    let mut args = vec!["move", "--resume", job_arg, "--attempts", "1"];
    args.extend(listen_args);
    let out = pacs(&args, &orthanc, &data);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let record = read_job(&job);
    let b = job_study(&record, &second.study);
    assert_eq!(b["attempts"], 3);
    assert!(
        b["failure"]
            .as_str()
            .unwrap()
            .contains("no association with ORTHANC"),
        "{record}"
    );
    assert_eq!(job_study(&record, &first.study)["attempts"], 1);

    // Back up, with the second study: --resume fetches only that one.
    orthanc.start().unwrap();
    orthanc.upload(second_file);
    let dry = pacs(&["move", "--resume", job_arg, "--dry-run"], &orthanc, &data);
    assert!(
        String::from_utf8_lossy(&dry.stdout).contains("would retrieve 1 of 2 studies, 1 instances"),
        "{}",
        text(&dry)
    );
    let mut args = vec!["move", "--resume", job_arg];
    args.extend(listen_args);
    let out = pacs(&args, &orthanc, &data);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("retrieved 1 of 1 studies this run (1 instances)"),
        "{}",
        text(&out)
    );
    let record = read_job(&job);
    let a = job_study(&record, &first.study);
    assert_eq!(a["attempts"], 1, "the done study was not moved again");
    let b = job_study(&record, &second.study);
    assert_eq!((&b["state"], &b["attempts"]), (&"done".into(), &4.into()));
    assert!(b["failure"].is_null());
    let stored = stored_objects_by_uid(&data);
    assert_eq!(stored.len(), 2);
    assert!(stored[&first.sop] == first.pixels && stored[&second.sop] == second.pixels);
}
