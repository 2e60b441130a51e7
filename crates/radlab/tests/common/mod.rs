//! Helpers shared by the tests that drive the `radlab` binary (each test file uses some).
#![allow(dead_code)]

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Output};

/// The binary with nothing taken from the environment: no catalog, store or key.
pub fn command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_radlab"));
    c.env_remove("RADLAB_DB")
        .env_remove("RADLAB_STORE")
        .env_remove("RADLAB_DEID_KEY_FILE");
    c
}

/// `radlab ARGS --data-dir DATA`.
pub fn radlab(args: &[&str], data: &Path) -> Output {
    command()
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("run radlab")
}

/// What the command printed, both streams.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The server's address from its "radlab serving on" line, and what it printed before.
pub fn serving_address(server: &mut std::process::Child) -> (std::net::SocketAddr, String) {
    let mut out = std::io::BufReader::new(server.stdout.take().unwrap());
    let mut before = String::new();
    loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the server said: {before}"
        );
        if let Some(rest) = line.trim().strip_prefix("radlab serving on http://") {
            let addr = rest
                .strip_suffix("/api/v1/health")
                .unwrap_or_else(|| panic!("{line}"))
                .parse()
                .unwrap();
            // Keep draining stdout so the server never blocks on a full pipe.
            std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
            return (addr, before);
        }
        before.push_str(&line);
    }
}

/// The SOP Instance UID and the Pixel Data element's bytes (header included) of a Part 10
/// file or data set.
pub fn uid_and_pixels(bytes: &[u8]) -> Option<(String, Vec<u8>)> {
    let span = radlab_dicom::pixel_data_span(bytes)?;
    let file = radlab_dicom::DicomFile::from_bytes(bytes).ok()?;
    let uid = radlab_dicom::InstanceInfo::from_file(&file).sop_instance_uid;
    Some((uid, bytes[span].to_vec()))
}

/// Every file under `dir`, recursively, in path order (none when `dir` does not exist).
pub fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Every blob of the data folder's store, as (SOP Instance UID, Pixel Data bytes); an
/// instance stored in several encodings appears once per encoding.
pub fn stored_objects(data: &Path) -> Vec<(String, Vec<u8>)> {
    files_under(&data.join("blobs"))
        .iter()
        .filter_map(|path| uid_and_pixels(&std::fs::read(path).unwrap()))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Retrieval from a PACS (`pacs move`, `get`, `web-retrieve`) in the tests against Orthanc.

/// A corpus radiograph uploaded to a PACS by a test.
#[derive(Debug, Clone)]
pub struct Uploaded {
    pub study: String,
    pub sop: String,
    pub modality: String,
    pub patient_id: String,
    pub transfer_syntax: String,
    /// The Pixel Data element's bytes, header included.
    pub pixels: Vec<u8>,
}

/// What a Part 10 file of the corpus is.
pub fn describe(file: &Path) -> Uploaded {
    let bytes = std::fs::read(file).unwrap();
    let span = radlab_dicom::pixel_data_span(&bytes).expect("pixel data");
    let dicom = radlab_dicom::DicomFile::from_bytes(&bytes).unwrap();
    let info = radlab_dicom::InstanceInfo::from_file(&dicom);
    Uploaded {
        study: info.study_instance_uid.clone(),
        sop: info.sop_instance_uid.clone(),
        modality: info.modality.clone(),
        patient_id: info.patient_id.clone(),
        transfer_syntax: info.transfer_syntax_uid.clone(),
        pixels: bytes[span].to_vec(),
    }
}

/// The Part 10 radiographs of `dicom/cxr` and the Part 10 form of its ACR-NEMA file
/// (`dicom/cxr_derived`): three CR and two DX studies, one instance each. A bare ACR-NEMA
/// data set has no file meta: Orthanc would not take it.
pub fn part10_files(corpus: &radlab_testkit::Corpus) -> Vec<std::path::PathBuf> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(corpus.path("dicom/cxr"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect();
    files.push(corpus.path("dicom/cxr_derived/cr_mono1_10_chest_part10_explicit_le.dcm"));
    files.sort();
    files.retain(|f| std::fs::read(f).is_ok_and(|b| b.len() > 132 && &b[128..132] == b"DICM"));
    files
}

/// The store's objects by SOP Instance UID.
pub fn stored_objects_by_uid(data: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    stored_objects(data).into_iter().collect()
}

/// An Orthanc for `test` knowing `modalities`, loaded with `files` (`None` after a loud
/// skip when Orthanc is not installed).
pub fn loaded_orthanc(
    test: &str,
    modalities: &[radlab_testkit::Modality],
    files: &[std::path::PathBuf],
) -> Option<radlab_testkit::Orthanc> {
    let orthanc = radlab_testkit::orthanc(test, modalities)?;
    for f in files {
        orthanc.upload(f);
    }
    Some(orthanc)
}

/// `radlab pacs ARGS` against `orthanc`'s DICOM port (calling AE `RADLAB`), on `data`.
pub fn pacs(args: &[&str], orthanc: &radlab_testkit::Orthanc, data: &Path) -> Output {
    command()
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

/// A job file.
pub fn read_job(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The entry of study `uid` in a job file.
pub fn job_study<'a>(job: &'a serde_json::Value, uid: &str) -> &'a serde_json::Value {
    job["studies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["study_instance_uid"] == uid)
        .unwrap_or_else(|| panic!("{uid} not in {job}"))
}

/// No staging folder left in the data folder (`.pacs-staging-*`, `.pacs-get-staging-*`,
/// `.dicomweb-staging-*`).
pub fn no_staging_left(data: &Path) {
    let leftovers: Vec<_> = std::fs::read_dir(data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.contains("staging"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Orthanc's `/tools/find` answers (expanded) at `level` for `query`.
fn orthanc_find(
    orthanc: &radlab_testkit::Orthanc,
    level: &str,
    query: serde_json::Value,
) -> Vec<serde_json::Value> {
    let body = serde_json::json!({"Level": level, "Query": query, "Expand": true});
    orthanc
        .post("/tools/find", body.to_string().as_bytes())
        .as_array()
        .unwrap()
        .clone()
}

/// Study Instance UIDs of Orthanc's `/tools/find` at study level for `query`.
pub fn orthanc_studies(
    orthanc: &radlab_testkit::Orthanc,
    query: serde_json::Value,
) -> std::collections::BTreeSet<String> {
    orthanc_find(orthanc, "Study", query)
        .iter()
        .map(|s| {
            s["MainDicomTags"]["StudyInstanceUID"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Study Instance UIDs of the studies holding a series that matches `query` (Orthanc's
/// `/tools/find` at series level, as a body part is searched).
pub fn orthanc_studies_of_series(
    orthanc: &radlab_testkit::Orthanc,
    query: serde_json::Value,
) -> std::collections::BTreeSet<String> {
    orthanc_find(orthanc, "Series", query)
        .iter()
        .map(|s| {
            let study = orthanc.get(&format!("/studies/{}", s["ParentStudy"].as_str().unwrap()));
            study["MainDicomTags"]["StudyInstanceUID"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// The Study Instance UIDs of a successful `find --json` or `web-find --json`.
pub fn found_uids(out: &Output) -> std::collections::BTreeSet<String> {
    assert!(out.status.success(), "{}", text(out));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.iter()
        .map(|r| r["study_instance_uid"].as_str().unwrap().to_string())
        .collect()
}

/// The resumable job of `radlab pacs OPERATION` (`move` or `get`; `fetch_args` added to
/// every run that fetches, `radlab` our AE title in Orthanc's `DicomModalities`): a job of
/// two CR studies of which Orthanc has only the first records that one done and the other
/// failed (Orthanc 1.10 answers `0xC000` for a study it lacks; another PACS may answer
/// success with nothing sent: both are failures), after 2 attempts; resumed with Orthanc
/// stopped, it fails again (`no association with ORTHANC`, attempts counted over runs); with
/// Orthanc back and the study uploaded, `--dry-run --resume` counts 1 of 2 studies and
/// `--resume` fetches only that one, never the done one again, pixels unchanged, no staging
/// folder left.
pub fn a_failed_study_is_recorded_and_resumed(
    test: &str,
    operation: &str,
    fetch_args: &[&str],
    radlab: radlab_testkit::Modality,
) {
    let Some(corpus) = radlab_testkit::corpus(test) else {
        return;
    };
    let described: Vec<(std::path::PathBuf, Uploaded)> = part10_files(&corpus)
        .into_iter()
        .map(|f| {
            let u = describe(&f);
            (f, u)
        })
        .filter(|(_, u)| u.modality == "CR")
        .collect();
    let [(first_file, first), (second_file, second), ..] = &described[..] else {
        panic!("two CR studies expected in the corpus");
    };
    assert_ne!(first.study, second.study);
    let Some(mut orthanc) = loaded_orthanc(test, &[radlab], std::slice::from_ref(first_file))
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let job = tmp.path().join("job.json");
    let job_arg = job.to_str().unwrap();
    let run = |orthanc: &radlab_testkit::Orthanc, args: &[&str]| {
        pacs(&[&[operation], args, fetch_args].concat(), orthanc, &data)
    };
    let dimse = format!("C-{}", operation.to_uppercase());

    let studies = ["--study", &first.study, "--study", &second.study];
    let options = ["--job", job_arg, "--attempts", "2", "--retry-delay", "0.1"];
    let out = run(&orthanc, &[&studies[..], &options[..]].concat());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let record = read_job(&job);
    let a = job_study(&record, &first.study);
    assert_eq!(
        (&a["state"], &a["arrived"], &a["attempts"]),
        (&"done".into(), &1.into(), &1.into())
    );
    let b = job_study(&record, &second.study);
    assert_eq!(
        (&b["state"], &b["attempts"], &b["arrived"]),
        (&"failed".into(), &2.into(), &0.into()),
        "{record}"
    );
    let why = b["failure"].as_str().unwrap();
    assert!(
        why.contains(&format!("{dimse} status 0xC000")) || why.contains("nothing arrived"),
        "{record}"
    );
    assert_eq!(stored_objects_by_uid(&data).len(), 1);

    // Orthanc stopped: the resumed job fails again, saying why, and keeps what was done.
    orthanc.stop();
    let out = run(&orthanc, &["--resume", job_arg, "--attempts", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let record = read_job(&job);
    let b = job_study(&record, &second.study);
    assert_eq!(b["attempts"], 3);
    let why = b["failure"].as_str().unwrap();
    assert!(why.contains("no association with ORTHANC"), "{record}");
    assert_eq!(job_study(&record, &first.study)["attempts"], 1);

    // Back up, with the second study: --resume fetches only that one.
    orthanc.start().unwrap();
    orthanc.upload(second_file);
    let dry = run(&orthanc, &["--resume", job_arg, "--dry-run"]);
    assert_printed(&dry, "would retrieve 1 of 2 studies, 1 instances");
    let out = run(&orthanc, &["--resume", job_arg]);
    assert_printed(&out, "retrieved 1 of 1 studies this run (1 instances)");
    let record = read_job(&job);
    let a = job_study(&record, &first.study);
    assert_eq!(a["attempts"], 1, "the done study was not fetched again");
    let b = job_study(&record, &second.study);
    assert_eq!((&b["state"], &b["attempts"]), (&"done".into(), &4.into()));
    assert!(b["failure"].is_null());
    let stored = stored_objects_by_uid(&data);
    assert_eq!(stored.len(), 2);
    assert!(stored[&first.sop] == first.pixels && stored[&second.sop] == second.pixels);
    no_staging_left(&data);
}

/// That a command succeeded and printed `needle` on stdout.
pub fn assert_printed(out: &Output, needle: &str) {
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains(needle),
        "expected {needle:?} in: {}",
        text(out)
    );
}

/// The options that retrieve the CR studies de-identified with `annex-e-basic` and a
/// project key written into `dir`.
pub fn deid_cr_options(dir: &Path) -> Vec<String> {
    let key = dir.join("project.key");
    std::fs::write(&key, b"0123456789abcdef0123456789abcdef").unwrap();
    ["--modality", "CR", "--deid", "annex-e-basic", "--key-file"]
        .into_iter()
        .map(String::from)
        .chain([key.to_string_lossy().to_string()])
        .collect()
}

/// After a retrieval with [`deid_cr_options`] into `data`: it succeeded, every CR instance
/// of `uploaded` is stored under a new SOP Instance UID with its pixels unchanged, nothing
/// else is stored, no staging folder is left.
pub fn assert_deidentified_cr(out: &Output, data: &Path, uploaded: &[Uploaded]) {
    assert!(out.status.success(), "{}", text(out));
    let cr: Vec<&Uploaded> = uploaded.iter().filter(|u| u.modality == "CR").collect();
    let stored = stored_objects_by_uid(data);
    assert_eq!(stored.len(), cr.len(), "{}", text(out));
    for u in cr {
        assert!(!stored.contains_key(&u.sop), "{} kept its UID", u.sop);
        assert!(stored.values().any(|p| *p == u.pixels));
    }
    no_staging_left(data);
}

/// `radlab pacs listen` on a free loopback port as AE RADLAB with `-v` and `extra`: the child,
/// its port, its first line (the announcement), and a thread collecting its log.
pub fn start_listen(
    data: &Path,
    extra: &[&str],
) -> (
    std::process::Child,
    u16,
    String,
    std::thread::JoinHandle<String>,
) {
    use std::io::Read as _;
    let mut child = command()
        .args(["pacs", "listen", "--aet", "RADLAB", "--port", "0"])
        .args(["--bind", "127.0.0.1", "-v"])
        .args(extra)
        .arg("--data-dir")
        .arg(data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start radlab pacs listen");
    let mut stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    assert!(
        out.read_line(&mut line).unwrap() > 0,
        "the SCP did not start"
    );
    let port = line
        .trim()
        .strip_prefix("radlab pacs listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line: {line}"));
    // Keep draining stdout so the SCP never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (child, port, line, log)
}
