//! `radlab pacs web-find` (QIDO-RS) and `web-retrieve` (WADO-RS) against a real Orthanc with
//! its DICOMweb plugin (Debian packages `orthanc` and `orthanc-dicomweb`, started by the test
//! with `radlab_testkit::orthanc_with`) and HTTP basic authentication on, loaded with the
//! corpus radiographs through its REST API: searches compared with Orthanc's own
//! `/tools/find`, every study retrieved into an empty catalog with Pixel Data byte for byte as
//! uploaded, de-identification on the way in, a wrong password refused with an error naming
//! the server and not the password, and a job with failures resumed to fetch only what is
//! missing.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{
    Uploaded, describe, found_uids, job_study, no_staging_left, orthanc_studies, part10_files,
    read_job, stored_objects_by_uid, text,
};
use radlab_testkit::{Orthanc, OrthancOptions};

const USER: &str = "radlab-reader";
const PASSWORD: &str = "c0rrect-h0rse-battery";
const WRONG: &str = "wr0ng-passw0rd-42";

/// An Orthanc with DICOMweb and basic authentication, loaded with `files`.
fn dicomweb_orthanc(test: &str, files: &[PathBuf]) -> Option<Orthanc> {
    let orthanc = radlab_testkit::orthanc_with(
        test,
        &[],
        &OrthancOptions {
            dicomweb: true,
            users: vec![(USER.into(), PASSWORD.into())],
        },
    )?;
    for f in files {
        orthanc.upload(f);
    }
    Some(orthanc)
}

/// `radlab pacs SUB ARGS --url URL --user USER --data-dir DATA` with `password` in the
/// environment (none: the variable unset).
fn web(args: &[&str], orthanc: &Orthanc, data: &Path, password: Option<&str>) -> Output {
    let mut c = common::command();
    c.env_remove("RADLAB_DICOMWEB_TOKEN")
        .env_remove("RADLAB_DICOMWEB_PASSWORD");
    if let Some(p) = password {
        c.env("RADLAB_DICOMWEB_PASSWORD", p);
    }
    c.arg("pacs")
        .args(args)
        .args(["--user", USER, "--url"])
        .arg(orthanc.dicomweb_url().unwrap())
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("run radlab pacs")
}

#[test]
fn web_find_and_retrieve_bring_exactly_orthancs_studies_with_pixels_unchanged() {
    const TEST: &str = "web_find_and_retrieve_bring_exactly_orthancs_studies_with_pixels_unchanged";
    let Some(corpus) = radlab_testkit::corpus(TEST) else {
        return;
    };
    let files = part10_files(&corpus);
    let Some(orthanc) = dicomweb_orthanc(TEST, &files) else {
        return;
    };
    let url = orthanc.dicomweb_url().unwrap();
    let uploaded: Vec<Uploaded> = files.iter().map(|f| describe(f)).collect();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let pw = Some(PASSWORD);

    // Searches: exactly what Orthanc's own index finds.
    let all = found_uids(&web(&["web-find", "--json"], &orthanc, &data, pw));
    let uploaded_studies: BTreeSet<String> = uploaded.iter().map(|u| u.study.clone()).collect();
    assert_eq!(all, uploaded_studies);
    assert_eq!(all, orthanc_studies(&orthanc, serde_json::json!({})));
    let cr = found_uids(&web(
        &["web-find", "--modality", "CR", "--json"],
        &orthanc,
        &data,
        pw,
    ));
    assert_eq!(
        cr,
        orthanc_studies(&orthanc, serde_json::json!({"ModalitiesInStudy": "CR"}))
    );
    assert!(cr.len() >= 2 && cr.len() < all.len(), "{cr:?}");
    let dated = found_uids(&web(
        &["web-find", "--date", "20040101-20041231", "--json"],
        &orthanc,
        &data,
        pw,
    ));
    assert_eq!(
        dated,
        orthanc_studies(
            &orthanc,
            serde_json::json!({"StudyDate": "20040101-20041231"})
        )
    );
    assert_eq!(dated.len(), 2, "{dated:?}");
    let chest = found_uids(&web(
        &["web-find", "--body-part", "CHEST", "--json"],
        &orthanc,
        &data,
        pw,
    ));
    let expected = common::orthanc_studies_of_series(
        &orthanc,
        serde_json::json!({"BodyPartExamined": "CHEST"}),
    );
    assert_eq!(chest, expected);
    assert!(!chest.is_empty());
    let with_patient: Vec<&Uploaded> = uploaded
        .iter()
        .filter(|u| !u.patient_id.is_empty())
        .collect();
    let one = with_patient[0];
    let by_patient = found_uids(&web(
        &["web-find", "--patient-id", &one.patient_id, "--json"],
        &orthanc,
        &data,
        pw,
    ));
    assert!(by_patient.contains(&one.study), "{by_patient:?}");

    // The table: counts, and no patient data unless asked.
    let out = web(&["web-find", "--modality", "CR"], &orthanc, &data, pw);
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    let cr_instances = uploaded.iter().filter(|u| u.modality == "CR").count();
    assert!(
        table.contains(&format!("{} studies, {cr_instances} instances", cr.len())),
        "{table}"
    );
    for u in &with_patient {
        assert!(!table.contains(&u.patient_id), "{table}");
    }
    let shown = web(
        &["web-find", "--show-patient", "--json"],
        &orthanc,
        &data,
        pw,
    );
    assert!(String::from_utf8_lossy(&shown.stdout).contains(&one.patient_id));

    // A wrong password: refused, naming the server, never a password.
    let out = web(&["web-find", "--json"], &orthanc, &data, Some(WRONG));
    assert!(!out.status.success());
    let said = text(&out);
    assert!(said.contains("refused the credentials"), "{said}");
    assert!(said.contains(&url), "{said}");
    assert!(!said.contains(WRONG) && !said.contains(PASSWORD), "{said}");
    // No password at all: says where it goes.
    let out = web(&["web-find"], &orthanc, &data, None);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("RADLAB_DICOMWEB_PASSWORD"),
        "{}",
        text(&out)
    );
    // Credentials in the URL are refused, and not echoed.
    let out = common::command()
        .args(["pacs", "web-find", "--url"])
        .arg(url.replace("http://", &format!("http://{USER}:{PASSWORD}@")))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!text(&out).contains(PASSWORD), "{}", text(&out));

    // The dry run counts from QIDO-RS and writes nothing.
    let listing = tmp.path().join("all.json");
    let out = web(&["web-find", "--json"], &orthanc, &data, pw);
    std::fs::write(&listing, &out.stdout).unwrap();
    let listing_arg = listing.to_str().unwrap();
    let out = web(
        &["web-retrieve", "--from-find", listing_arg, "--dry-run"],
        &orthanc,
        &data,
        pw,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!(
            "would retrieve {} of {} studies, {} instances",
            all.len(),
            all.len(),
            uploaded.len()
        )),
        "{}",
        text(&out)
    );
    assert!(!data.join("pacs-jobs").exists() && stored_objects_by_uid(&data).is_empty());

    // Every study into an empty catalog: each instance, Pixel Data byte for byte.
    let job = tmp.path().join("job.json");
    let job_arg = job.to_str().unwrap();
    let out = web(
        &["web-retrieve", "--from-find", listing_arg, "--job", job_arg],
        &orthanc,
        &data,
        pw,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains(PASSWORD));
    let stored = stored_objects_by_uid(&data);
    assert_eq!(stored.len(), uploaded.len(), "{}", text(&out));
    for u in &uploaded {
        assert!(
            stored[&u.sop] == u.pixels,
            "pixel data of {} differs",
            u.sop
        );
    }
    let record = read_job(&job);
    assert_eq!(record["operation"], "web-retrieve");
    assert_eq!(record["dicomweb"]["auth"], "basic");
    assert_eq!(record["dicomweb"]["user"], USER);
    assert!(!record.to_string().contains(PASSWORD));
    for study in &all {
        let s = job_study(&record, study);
        let n = uploaded.iter().filter(|u| &u.study == study).count();
        assert_eq!(s["state"], "done", "{record}");
        assert_eq!(s["attempts"], 1);
        assert_eq!(s["expected"], n);
        assert_eq!(s["arrived"], n);
    }
    no_staging_left(&data);
    // Catalogued as coming from the server.
    let out = common::radlab(&["ls"], &data);
    assert!(
        text(&out).contains("dicomweb://127.0.0.1:"),
        "{}",
        text(&out)
    );

    // Resuming a finished job fetches nothing.
    let out = web(&["web-retrieve", "--resume", job_arg], &orthanc, &data, pw);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to retrieve"));

    // De-identified on the way in: nothing identifying reaches the catalog or blob store.
    let deid_data = tmp.path().join("deid-data");
    let deid = common::deid_cr_options(tmp.path());
    let args: Vec<&str> = ["web-retrieve"]
        .into_iter()
        .chain(deid.iter().map(String::as_str))
        .collect();
    let out = web(&args, &orthanc, &deid_data, pw);
    common::assert_deidentified_cr(&out, &deid_data, &uploaded);
}

#[test]
fn web_retrieve_records_failures_and_resume_fetches_only_what_is_missing() {
    const TEST: &str = "web_retrieve_records_failures_and_resume_fetches_only_what_is_missing";
    let Some(corpus) = radlab_testkit::corpus(TEST) else {
        return;
    };
    let files = part10_files(&corpus);
    let described: Vec<(PathBuf, Uploaded)> =
        files.iter().map(|f| (f.clone(), describe(f))).collect();
    let (first_file, first) = &described[0];
    let (second_file, second) = described
        .iter()
        .find(|(_, u)| u.study != first.study)
        .unwrap();
    // Orthanc has the first study only.
    let Some(orthanc) = dicomweb_orthanc(TEST, std::slice::from_ref(first_file)) else {
        return;
    };
    let url = orthanc.dicomweb_url().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let job = tmp.path().join("job.json");
    let job_arg = job.to_str().unwrap();
    let pw = Some(PASSWORD);

    let out = web(
        &[
            "web-retrieve",
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
        ],
        &orthanc,
        &data,
        pw,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let record = read_job(&job);
    let done = job_study(&record, &first.study);
    assert_eq!(done["state"], "done", "{record}");
    assert_eq!(done["arrived"], 1);
    let failed = job_study(&record, &second.study);
    assert_eq!(failed["state"], "failed", "{record}");
    assert_eq!(failed["attempts"], 2);
    assert!(
        failed["failure"].as_str().unwrap().contains("404"),
        "{record}"
    );
    assert_eq!(stored_objects_by_uid(&data).len(), 1);

    // The missing study appears on the server; a resume with a wrong password stops at
    // once, naming the server, and records the attempt.
    orthanc.upload(second_file);
    let out = web(
        &["web-retrieve", "--resume", job_arg],
        &orthanc,
        &data,
        Some(WRONG),
    );
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("refused the credentials") && said.contains(&url),
        "{said}"
    );
    assert!(!said.contains(WRONG) && !said.contains(PASSWORD), "{said}");
    let record = read_job(&job);
    assert_eq!(job_study(&record, &second.study)["attempts"], 3, "{record}");
    assert_eq!(job_study(&record, &second.study)["state"], "failed");

    // The dry run of the resume counts only the missing study.
    let out = web(
        &["web-retrieve", "--resume", job_arg, "--dry-run"],
        &orthanc,
        &data,
        pw,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("would retrieve 1 of 2 studies, 1 instances"),
        "{}",
        text(&out)
    );

    // Resumed with the right password (URL and user from the job): only that study.
    let mut c = common::command();
    let out = c
        .env_remove("RADLAB_DICOMWEB_TOKEN")
        .env("RADLAB_DICOMWEB_PASSWORD", PASSWORD)
        .args(["pacs", "web-retrieve", "--resume", job_arg, "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("retrieved 1 of 1 studies this run (1 instances); 2 done, 0 failed"),
        "{}",
        text(&out)
    );
    let record = read_job(&job);
    assert_eq!(job_study(&record, &first.study)["attempts"], 1, "{record}");
    let s = job_study(&record, &second.study);
    assert_eq!(s["state"], "done");
    assert_eq!(s["attempts"], 4);
    assert!(s["failure"].is_null());
    let stored = stored_objects_by_uid(&data);
    assert_eq!(stored.len(), 2);
    assert!(stored[&second.sop] == second.pixels);
    no_staging_left(&data);
}
