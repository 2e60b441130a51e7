//! `radlab pacs get` (C-GET) against a real Orthanc (Debian package `orthanc`, started by the
//! test with `radlab_testkit::orthanc`, our AE title `RADLAB` in its `DicomModalities`)
//! loaded with the corpus radiographs through its REST API: every study brought into an
//! empty catalog on the C-GET association with Pixel Data byte for byte as uploaded (JPEG
//! 2000, JPEG 2000 lossless, JPEG baseline, RLE, implicit and explicit VR), a dry run that
//! only counts, de-identification on the way in, a job with failures (a study Orthanc does
//! not have, then Orthanc stopped) resumed to fetch only what is missing, and Orthanc
//! refusing C-GET to our AE title.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::{
    Uploaded, assert_printed, describe, job_study, no_staging_left, pacs, part10_files, read_job,
    stored_objects_by_uid, text,
};
use radlab_testkit::{Modality, Orthanc};

/// Those of `part10_files` (five studies: JPEG 2000, JPEG 2000 lossless, implicit VR, JPEG
/// baseline, explicit VR) and the RLE encoding of the JPEG 2000 radiograph, another instance
/// of its study: six instances.
fn corpus_files(corpus: &radlab_testkit::Corpus) -> Vec<PathBuf> {
    let mut files = part10_files(corpus);
    files.push(corpus.path("dicom/cxr_derived/rg1_cr_chest_pa_mono1_rle.dcm"));
    files
}

/// Orthanc knowing our AE title RADLAB (`radlab`; its port unused: C-GET needs none),
/// loaded with `files`.
fn loaded_orthanc(test: &str, radlab: Modality, files: &[PathBuf]) -> Option<Orthanc> {
    common::loaded_orthanc(test, &[radlab], files)
}

fn radlab_modality() -> Modality {
    Modality::new("RADLAB", "127.0.0.1", radlab_testkit::free_port())
}

#[test]
fn get_of_every_study_brings_each_instance_with_its_pixels_unchanged() {
    const TEST: &str = "get_of_every_study_brings_each_instance_with_its_pixels_unchanged";
    let Some(corpus) = radlab_testkit::corpus(TEST) else {
        return;
    };
    let files = corpus_files(&corpus);
    let Some(orthanc) = loaded_orthanc(TEST, radlab_modality(), &files) else {
        return;
    };
    let uploaded: Vec<Uploaded> = files.iter().map(|f| describe(f)).collect();
    let studies: BTreeSet<&str> = uploaded.iter().map(|u| u.study.as_str()).collect();
    assert_eq!((studies.len(), uploaded.len()), (5, 6));
    // Compressed and uncompressed encodings, each of them sent as stored.
    let syntaxes: BTreeSet<&str> = uploaded
        .iter()
        .map(|u| u.transfer_syntax.as_str())
        .collect();
    for ts in [
        "1.2.840.10008.1.2",
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.5",
    ] {
        assert!(syntaxes.contains(ts), "{ts} missing from {syntaxes:?}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let job = tmp.path().join("job.json");
    let job_arg = job.to_str().unwrap();

    // The studies as `pacs find --json` lists them.
    let found = pacs(&["find", "--json"], &orthanc, &data);
    assert!(found.status.success(), "{}", text(&found));
    let listing = tmp.path().join("found.json");
    std::fs::write(&listing, &found.stdout).unwrap();
    let listing_arg = listing.to_str().unwrap();

    // The dry run counts and writes nothing.
    let out = pacs(
        &["get", "--from-find", listing_arg, "--dry-run"],
        &orthanc,
        &data,
    );
    assert_printed(&out, "would retrieve 5 of 5 studies, 6 instances");
    assert!(!data.join("pacs-jobs").exists() && stored_objects_by_uid(&data).is_empty());

    let out = pacs(
        &["get", "--from-find", listing_arg, "--job", job_arg],
        &orthanc,
        &data,
    );
    assert_printed(
        &out,
        "retrieved 5 of 5 studies this run (6 instances); 5 done, 0 failed",
    );
    let stored = stored_objects_by_uid(&data);
    assert_eq!(stored.len(), uploaded.len(), "{}", text(&out));
    for u in &uploaded {
        assert!(
            stored.get(&u.sop) == Some(&u.pixels),
            "pixel data of {} ({}) differs or is missing",
            u.sop,
            u.transfer_syntax
        );
    }
    let record = read_job(&job);
    assert_eq!(record["operation"], "get");
    assert!(record.get("destination").is_none(), "{record}");
    assert_eq!(record["studies"].as_array().unwrap().len(), studies.len());
    for study in &studies {
        let s = job_study(&record, study);
        let n = uploaded.iter().filter(|u| u.study == *study).count();
        assert_eq!(s["state"], "done", "{record}");
        assert_eq!(
            (&s["attempts"], &s["expected"], &s["arrived"]),
            (&1.into(), &n.into(), &n.into())
        );
    }
    no_staging_left(&data);
    // Catalogued as coming from the PACS.
    let ls = common::radlab(&["ls"], &data);
    assert!(ls.status.success(), "{}", text(&ls));
    for u in &uploaded {
        assert!(
            text(&ls).contains(&format!("pacs://ORTHANC/{}", u.sop)),
            "{}",
            text(&ls)
        );
    }

    // Resuming a finished job fetches nothing; a get job is not resumed by `move`.
    let out = pacs(&["get", "--resume", job_arg], &orthanc, &data);
    assert_printed(&out, "nothing to retrieve");
    let out = pacs(&["move", "--resume", job_arg], &orthanc, &data);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("radlab pacs get --resume {job_arg}")),
        "{}",
        text(&out)
    );

    // De-identified on the way in: new UIDs, the same pixels, nothing else stored.
    let deid_data = tmp.path().join("deid-data");
    let deid = common::deid_cr_options(tmp.path());
    let args: Vec<&str> = ["get"]
        .into_iter()
        .chain(deid.iter().map(String::as_str))
        .collect();
    let out = pacs(&args, &orthanc, &deid_data);
    common::assert_deidentified_cr(&out, &deid_data, &uploaded);
}

#[test]
fn a_failed_get_is_recorded_and_resume_fetches_only_what_is_missing() {
    common::a_failed_study_is_recorded_and_resumed(
        "a_failed_get_is_recorded_and_resume_fetches_only_what_is_missing",
        "get",
        &[],
        radlab_modality(),
    );
}

#[test]
fn orthanc_refusing_c_get_to_our_ae_title_is_a_clear_failure() {
    const TEST: &str = "orthanc_refusing_c_get_to_our_ae_title_is_a_clear_failure";
    let Some(corpus) = radlab_testkit::corpus(TEST) else {
        return;
    };
    let file = corpus.path("dicom/cxr/siim_acr_cr_chest_pa_jpeg_baseline.dcm");
    let study = describe(&file).study;
    let Some(orthanc) = loaded_orthanc(
        TEST,
        radlab_modality().without_get(),
        std::slice::from_ref(&file),
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let job = tmp.path().join("job.json");
    let out = pacs(
        &[
            "get",
            "--study",
            &study,
            "--job",
            job.to_str().unwrap(),
            "--attempts",
            "1",
        ],
        &orthanc,
        &data,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let peer = format!("ORTHANC at 127.0.0.1:{}", orthanc.dicom_port);
    assert!(text(&out).contains(&peer), "{}", text(&out));
    let record = read_job(&job);
    let s = job_study(&record, &study);
    assert_eq!((&s["state"], &s["attempts"]), (&"failed".into(), &1.into()));
    let why = s["failure"].as_str().unwrap();
    assert!(
        why.contains(&peer) && why.contains("does it allow C-GET for our AE title RADLAB?"),
        "{record}"
    );
    assert!(stored_objects_by_uid(&data).is_empty());
    no_staging_left(&data);
    // Orthanc said why in its log.
    assert!(
        orthanc.log().contains("Rejected Get request"),
        "{}",
        orthanc.log()
    );
}
