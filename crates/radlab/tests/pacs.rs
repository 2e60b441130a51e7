//! `radlab pacs listen` against dcmtk's `echoscu` and `storescu`: verification, the corpus's
//! radiographs sent compressed and uncompressed arriving with their Pixel Data bytes
//! unchanged, calling AE titles filtered, an undecodable object refused with nothing
//! stored, de-identification on arrival checked by `radlab verify` with no original
//! identifier left in the data folder, the same SCP inside `radlab serve`, and faults
//! driven by a raw TCP client (a peer vanishing mid-object, malformed PDUs, a silent peer,
//! a store that cannot write).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::{radlab, text};
use radlab_dicom::{DicomFile, InstanceInfo};

/// A running `radlab pacs listen`, killed when dropped.
struct Scp {
    child: Child,
    port: u16,
    data: PathBuf,
    log: Option<std::thread::JoinHandle<String>>,
}

impl Scp {
    fn start(data: &Path, extra: &[&str]) -> Scp {
        let (child, port, _, log) = common::start_listen(data, extra);
        Scp {
            child,
            port,
            data: data.to_path_buf(),
            log: Some(log),
        }
    }

    /// Stop the SCP once its spool is drained (everything acknowledged is imported or
    /// failed) and return what it logged.
    fn stop(self) -> String {
        assert!(
            drained(&self.data),
            "the spool was not drained: {:?}",
            spooled(&self.data)
        );
        self.kill()
    }

    /// Stop the SCP at once (a crash, for the spool) and return what it logged.
    fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log.take().unwrap().join().unwrap()
    }

    fn tool(&self, tool: &str, calling: &str, args: &[&str], files: &[PathBuf]) -> Output {
        Command::new(tool)
            .args(["-aet", calling, "-aec", "RADLAB"])
            .args(args)
            .arg("127.0.0.1")
            .arg(self.port.to_string())
            .args(files)
            .output()
            .unwrap_or_else(|e| panic!("run {tool}: {e}"))
    }
}

impl Drop for Scp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tools_and_corpus(test: &str) -> Option<radlab_testkit::Corpus> {
    if !radlab_testkit::has_tool(test, "echoscu") || !radlab_testkit::has_tool(test, "storescu") {
        return None;
    }
    radlab_testkit::corpus(test)
}

/// storescu's proposal for a file of this transfer syntax: its own encoding and the
/// uncompressed ones in one presentation context (`+C`), so the SCP must take the first.
fn proposal(transfer_syntax: &str) -> &'static [&'static str] {
    match transfer_syntax {
        "1.2.840.10008.1.2.4.50" => &["+C", "-xy"],
        "1.2.840.10008.1.2.4.51" => &["+C", "-xx"],
        "1.2.840.10008.1.2.4.70" => &["+C", "-xs"],
        "1.2.840.10008.1.2.4.80" => &["+C", "-xt"],
        "1.2.840.10008.1.2.4.81" => &["+C", "-xu"],
        "1.2.840.10008.1.2.4.90" => &["+C", "-xv"],
        "1.2.840.10008.1.2.4.91" => &["+C", "-xw"],
        "1.2.840.10008.1.2.5" => &["+C", "-xr"],
        // Otherwise storescu would convert to explicit VR, and the element header changes.
        "1.2.840.10008.1.2" => &["-xi"],
        _ => &[],
    }
}

fn dicom_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect();
    files.sort();
    files
}

/// Objects waiting in the spool of the SCPs of `data`.
fn spooled(data: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(data.join("incoming/spool"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
                .collect()
        })
        .unwrap_or_default()
}

/// Wait (up to two minutes) until nothing waits in the spool: every object the SCP
/// acknowledged is imported, or in the spool's failed folder.
fn drained(data: &Path) -> bool {
    for _ in 0..1200 {
        if spooled(data).is_empty() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

/// `radlab ls --json` once the spool is drained.
fn catalog(data: &Path) -> serde_json::Value {
    assert!(
        drained(data),
        "the spool was not drained: {:?}",
        spooled(data)
    );
    let out = radlab(&["ls", "--json"], data);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn instance_uids(data: &Path) -> BTreeSet<String> {
    catalog(data)["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["sop_instance_uid"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn echo_and_the_corpus_radiographs_arrive_with_their_pixels_unchanged() {
    const TEST: &str = "echo_and_the_corpus_radiographs_arrive_with_their_pixels_unchanged";
    let Some(corpus) = tools_and_corpus(TEST) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let scp = Scp::start(&data, &[]);

    let out = scp.tool("echoscu", "ECHOER", &[], &[]);
    assert!(out.status.success(), "echoscu: {}", text(&out));

    // One storescu per file, proposing the file's own transfer syntax first.
    let mut sent: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let mut files = dicom_files(&corpus.path("dicom/cxr"));
    files.extend(dicom_files(&corpus.path("dicom/cxr_derived")));
    let mut transfer_syntaxes = BTreeSet::new();
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let Some((uid, pixels)) = common::uid_and_pixels(&bytes) else {
            // A bare ACR-NEMA data set has no file meta for storescu to send it by.
            eprintln!("not sent (no Part 10 file meta): {}", file.display());
            continue;
        };
        let ts = DicomFile::from_bytes(&bytes)
            .unwrap()
            .transfer_syntax()
            .to_string();
        let out = scp.tool(
            "storescu",
            "SENDER",
            proposal(&ts),
            std::slice::from_ref(file),
        );
        transfer_syntaxes.insert(ts);
        assert!(
            out.status.success() && !text(&out).contains("E: "),
            "storescu {}: {}",
            file.display(),
            text(&out)
        );
        sent.entry(uid).or_default().push(pixels);
    }
    assert!(sent.len() >= 4, "sent {} instances", sent.len());
    assert!(
        transfer_syntaxes.len() >= 5,
        "compressed and uncompressed: {transfer_syntaxes:?}"
    );

    // Every instance is catalogued once; every encoding sent lies in the blob store with
    // its Pixel Data bytes as they were in the file sent.
    assert_eq!(instance_uids(&data), sent.keys().cloned().collect());
    let stored = common::stored_objects(&data);
    for (uid, encodings) in &sent {
        for pixels in encodings {
            assert!(
                stored.iter().any(|(u, p)| u == uid && p == pixels),
                "an encoding of {uid} did not arrive with its pixels unchanged"
            );
        }
    }
    let log = scp.stop();
    assert!(log.contains("stored"), "{log}");
    for uid in sent.keys() {
        assert!(!log.contains(uid.as_str()), "a UID reached the log: {log}");
    }
}

#[test]
fn a_folder_sent_recursively_arrives_whole() {
    const TEST: &str = "a_folder_sent_recursively_arrives_whole";
    let Some(corpus) = tools_and_corpus(TEST) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let scp = Scp::start(&data, &["--max-associations", "2", "--max-pdu", "16384"]);
    // The uncompressed and RLE files of cxr_derived, in a folder and a subfolder.
    let folder = tmp.path().join("send");
    std::fs::create_dir_all(folder.join("sub")).unwrap();
    let mut copied = Vec::new();
    for (i, file) in dicom_files(&corpus.path("dicom/cxr_derived"))
        .into_iter()
        .filter(|f| {
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            name.ends_with("_explicit_le.dcm") || name.ends_with("_rle.dcm")
        })
        .enumerate()
    {
        let to = if i % 2 == 0 {
            folder.join(file.file_name().unwrap())
        } else {
            folder.join("sub").join(file.file_name().unwrap())
        };
        std::fs::copy(&file, &to).unwrap();
        copied.push(to);
    }
    assert!(copied.len() >= 4, "{copied:?}");
    let out = scp.tool(
        "storescu",
        "SENDER",
        &["+sd", "+r", "-xr"],
        std::slice::from_ref(&folder),
    );
    assert!(
        out.status.success() && !text(&out).contains("E: "),
        "storescu +sd +r: {}",
        text(&out)
    );
    let expected: BTreeSet<String> = copied
        .iter()
        .filter_map(|f| common::uid_and_pixels(&std::fs::read(f).unwrap()).map(|(u, _)| u))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(instance_uids(&data), expected);
    // Nothing is left in the staging folder.
    let leftovers: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".pacs-staging"))
        .flat_map(|e| std::fs::read_dir(e.path()).unwrap().flatten())
        .map(|e| e.path())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    scp.stop();
}

#[test]
fn a_calling_ae_not_allowed_is_rejected() {
    const TEST: &str = "a_calling_ae_not_allowed_is_rejected";
    if !radlab_testkit::has_tool(TEST, "echoscu") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let scp = Scp::start(&data, &["--allow-calling", "GOODPACS", "OTHER"]);
    let out = scp.tool("echoscu", "STRANGER", &[], &[]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).to_lowercase().contains("reject"),
        "{}",
        text(&out)
    );
    let out = scp.tool("echoscu", "GOODPACS", &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    // A wrong called AE title is rejected too.
    let out = Command::new("echoscu")
        .args(["-aet", "GOODPACS", "-aec", "NOTRADLAB", "127.0.0.1"])
        .arg(scp.port.to_string())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let log = scp.stop();
    assert!(log.contains("not established"), "{log}");
}

#[test]
fn an_undecodable_object_is_refused_and_nothing_is_stored() {
    const TEST: &str = "an_undecodable_object_is_refused_and_nothing_is_stored";
    let Some(corpus) = tools_and_corpus(TEST) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let scp = Scp::start(&data, &["--ack", "imported"]);
    let bad = corpus.path("dicom/cxr_edge/pydicom_issue966_dx_chest_pa_corrupt_j2k.dcm");
    let out = scp.tool("storescu", "SENDER", &["+C", "-xv"], &[bad]);
    assert!(
        !out.status.success(),
        "storescu should report the failure status: {}",
        text(&out)
    );
    let listing = catalog(&data);
    assert_eq!(listing["counts"]["instances"], 0, "{listing}");
    assert!(common::stored_objects(&data).is_empty());
    let log = scp.stop();
    assert!(log.contains("failed with status 0xC000"), "{log}");
}

#[test]
fn an_undecodable_object_acknowledged_from_the_spool_is_quarantined_and_kept() {
    const TEST: &str = "an_undecodable_object_acknowledged_from_the_spool_is_quarantined_and_kept";
    let Some(corpus) = tools_and_corpus(TEST) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let scp = Scp::start(&data, &[]);
    let bad = corpus.path("dicom/cxr_edge/pydicom_issue966_dx_chest_pa_corrupt_j2k.dcm");
    let good = corpus.path("dicom/cxr_derived/rg1_cr_chest_pa_mono1_rle.dcm");
    // Acknowledged once spooled: storescu hears Success for both.
    let out = scp.tool(
        "storescu",
        "SENDER",
        &["+C", "-xv"],
        std::slice::from_ref(&bad),
    );
    assert!(
        out.status.success() && !text(&out).contains("E: "),
        "{}",
        text(&out)
    );
    let out = scp.tool("storescu", "SENDER", &["-xr"], &[good]);
    assert!(out.status.success(), "{}", text(&out));
    let listing = catalog(&data);
    assert_eq!(listing["counts"]["instances"], 1, "{listing}");
    assert_eq!(listing["counts"]["quarantined"], 1, "{listing}");
    // The object is kept, byte for byte as received, beside its reason.
    let failed: Vec<PathBuf> = dicom_files(&data.join("incoming/spool/failed"));
    assert_eq!(failed.len(), 1, "{failed:?}");
    let (uid, kept) = common::uid_and_pixels(&std::fs::read(&failed[0]).unwrap()).unwrap();
    let (_, sent) = common::uid_and_pixels(&std::fs::read(&bad).unwrap()).unwrap();
    assert_eq!(kept, sent);
    let reason = std::fs::read_to_string(failed[0].with_extension("reason.txt")).unwrap();
    assert!(!reason.trim().is_empty(), "{reason}");
    let log = scp.stop();
    assert!(log.contains("was not imported"), "{log}");
    assert!(!log.contains(&uid), "{log}");
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Patient Name and Patient ID of a file, where they have 4 characters or more.
fn patient_identifiers(file: &Path) -> Vec<Vec<u8>> {
    let f = DicomFile::from_bytes(&std::fs::read(file).unwrap()).unwrap();
    let info = InstanceInfo::from_file(&f);
    [info.patient_name, info.patient_id]
        .into_iter()
        .map(|s| s.trim().as_bytes().to_vec())
        .filter(|v| v.len() >= 4)
        .collect()
}

#[test]
fn deid_on_arrival_stores_only_verified_de_identified_objects() {
    const TEST: &str = "deid_on_arrival_stores_only_verified_de_identified_objects";
    let Some(corpus) = tools_and_corpus(TEST) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let key = tmp.path().join("project.key");
    std::fs::write(&key, b"0123456789abcdef0123456789abcdef").unwrap();
    let mapping = tmp.path().join("private/map.bin");
    std::fs::create_dir_all(mapping.parent().unwrap()).unwrap();
    let scp = Scp::start(
        &data,
        &[
            "--deid",
            "annex-e-basic",
            "--key-file",
            key.to_str().unwrap(),
            "--mapping",
            mapping.to_str().unwrap(),
        ],
    );
    // The Part 10 radiographs, copied into the folder `radlab verify` reads as the input.
    let sent_dir = tmp.path().join("sent");
    std::fs::create_dir_all(&sent_dir).unwrap();
    let mut identifiers: Vec<Vec<u8>> = Vec::new();
    let mut uids = Vec::new();
    for file in dicom_files(&corpus.path("dicom/cxr")) {
        let bytes = std::fs::read(&file).unwrap();
        let Some((uid, _)) = common::uid_and_pixels(&bytes) else {
            continue;
        };
        let f = DicomFile::from_bytes(&bytes).unwrap();
        if f.framing() != radlab_dicom::Framing::Part10 {
            continue;
        }
        let ts = f.transfer_syntax().to_string();
        let out = scp.tool(
            "storescu",
            "SENDER",
            proposal(&ts),
            std::slice::from_ref(&file),
        );
        assert!(
            out.status.success() && !text(&out).contains("E: "),
            "storescu {}: {}",
            file.display(),
            text(&out)
        );
        std::fs::copy(&file, sent_dir.join(file.file_name().unwrap())).unwrap();
        identifiers.extend(patient_identifiers(&file));
        uids.push(uid);
    }
    assert!(uids.len() >= 4, "sent {uids:?}");
    assert!(identifiers.len() >= 5, "{identifiers:?}");
    let log = scp.stop();
    assert!(log.contains("stored"), "{log}");

    // Catalogued under new UIDs only, from sources that name no original.
    let listing = catalog(&data);
    let instances = listing["instances"].as_array().unwrap();
    assert_eq!(instances.len(), uids.len(), "{listing}");
    for i in instances {
        let uid = i["sop_instance_uid"].as_str().unwrap();
        assert!(uid.starts_with("2.25."), "{uid}");
        let src = i["source_path"].as_str().unwrap();
        assert!(src.starts_with("pacs://SENDER/"), "{src}");
    }
    // No original identifier or UID anywhere in the data folder (catalog database, its
    // journal, blob store), nor in the log; the staging folder is gone.
    let files = common::files_under(&data);
    assert!(files.iter().any(|f| f.starts_with(data.join("blobs"))));
    for file in &files {
        assert!(
            !file.to_string_lossy().contains(".pacs-staging"),
            "left behind: {}",
            file.display()
        );
        let bytes = std::fs::read(file).unwrap();
        for id in &identifiers {
            assert!(
                !contains(&bytes, id),
                "{} holds an original identifier ({} bytes)",
                file.display(),
                id.len()
            );
        }
        for uid in &uids {
            assert!(
                !contains(&bytes, uid.as_bytes()),
                "{} holds an original UID",
                file.display()
            );
        }
    }
    for uid in &uids {
        assert!(!log.contains(uid.as_str()), "a UID reached the log");
    }
    for id in &identifiers {
        assert!(
            !contains(log.as_bytes(), id),
            "an identifier reached the log"
        );
    }

    // `radlab verify` on the stored objects, laid out as `radlab deid` names them
    // (study/series/instance.dcm, new UIDs), against the files sent.
    let export = tmp.path().join("export");
    for blob in common::files_under(&data.join("blobs")) {
        let bytes = std::fs::read(&blob).unwrap();
        let Ok(f) = DicomFile::from_bytes(&bytes) else {
            continue;
        };
        let info = InstanceInfo::from_file(&f);
        let to = export
            .join(&info.study_instance_uid)
            .join(&info.series_instance_uid)
            .join(format!("{}.dcm", info.sop_instance_uid));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(&to, &bytes).unwrap();
    }
    let verify = radlab(
        &[
            "verify",
            export.to_str().unwrap(),
            "--against",
            sent_dir.to_str().unwrap(),
            "--key-file",
            key.to_str().unwrap(),
        ],
        &data,
    );
    assert!(verify.status.success(), "{}", text(&verify));
    assert!(
        text(&verify).contains(&format!("{} verified clean", uids.len())),
        "{}",
        text(&verify)
    );
    // The mapping, under the key, leads back to the originals.
    let show = radlab(
        &[
            "deid-mapping",
            mapping.to_str().unwrap(),
            "--key-file",
            key.to_str().unwrap(),
        ],
        &data,
    );
    assert!(show.status.success(), "{}", text(&show));
    let originals: BTreeSet<String> = String::from_utf8_lossy(&show.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["original_sop_uid"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(originals, uids.iter().cloned().collect());

    // Without a key, --deid refuses to start and says how to give one.
    let nokey = common::command()
        .args([
            "pacs",
            "listen",
            "--port",
            "0",
            "--deid",
            "annex-e-basic",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!nokey.status.success());
    assert!(text(&nokey).contains("--key-file"), "{}", text(&nokey));
}

#[test]
fn the_scp_inside_radlab_serve_feeds_the_same_catalog() {
    const TEST: &str = "the_scp_inside_radlab_serve_feeds_the_same_catalog";
    let Some(corpus) = tools_and_corpus(TEST) else {
        return;
    };
    use radlab_testkit::http;
    use std::io::Write as _;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    const PW: &str = "admin password 1";
    let mut add = common::command()
        .args(["user", "add", "admin", "--admin", "--password-stdin"])
        .arg("--data-dir")
        .arg(&data)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(format!("{PW}\n").as_bytes())
        .unwrap();
    assert!(add.wait().unwrap().success());
    let mut server = common::command()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--dicom-port",
            "0",
            "--dicom-aet",
            "RLSERVE",
            "--dicom-allow-calling",
            "SENDER",
            "-v",
            "--data-dir",
        ])
        .arg(&data)
        // A key in the environment asks for nothing by itself (no --dicom-deid here).
        .env("RADLAB_DEID_KEY_FILE", tmp.path().join("no-such.key"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = server.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let (addr, before) = common::serving_address(&mut server);
    let dicom: std::net::SocketAddr = before
        .lines()
        .find_map(|l| l.strip_prefix("radlab pacs listening on "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no DICOM address in: {before}"))
        .parse()
        .unwrap();
    assert!(before.contains("as AE RLSERVE"), "{before}");
    let send = |calling: &str, tool: &str, files: &[PathBuf]| {
        Command::new(tool)
            .args(["-aet", calling, "-aec", "RLSERVE"])
            .args(if files.is_empty() {
                &[][..]
            } else {
                &["-xr"][..]
            })
            .arg(dicom.ip().to_string())
            .arg(dicom.port().to_string())
            .args(files)
            .output()
            .unwrap()
    };
    let out = send("SENDER", "echoscu", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let out = send("STRANGER", "echoscu", &[]);
    assert!(!out.status.success(), "{}", text(&out));
    let file = corpus.path("dicom/cxr_derived/rg1_cr_chest_pa_mono1_rle.dcm");
    let out = send("SENDER", "storescu", std::slice::from_ref(&file));
    assert!(
        out.status.success() && !text(&out).contains("E: "),
        "{}",
        text(&out)
    );
    assert!(drained(&data), "the spool was not drained");

    // An administrator sees it at once, through the HTTP API of the same server.
    let r = http(
        addr,
        "POST",
        "/api/v1/auth/login",
        &[("content-type", "application/json")],
        format!(r#"{{"username":"admin","password":"{PW}"}}"#).as_bytes(),
    );
    assert_eq!(r.status, 200);
    let cookie = r
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = r.json()["csrf_token"].as_str().unwrap().to_string();
    let headers = [
        ("content-type", "application/json"),
        ("cookie", cookie.as_str()),
        ("x-csrf-token", csrf.as_str()),
    ];
    let r = http(
        addr,
        "POST",
        "/api/v1/projects",
        &headers,
        br#"{"project_id":"cxr","template":"vindr-cxr"}"#,
    );
    assert!(
        r.status == 200 || r.status == 201,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let r = http(
        addr,
        "POST",
        "/api/v1/projects/cxr/images",
        &headers,
        br#"{"all":true,"split":"train"}"#,
    );
    assert!(
        r.status == 200 || r.status == 201,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["added"], 1, "{}", String::from_utf8_lossy(&r.body));
    let _ = server.kill();
    let _ = server.wait();
    let log = log.join().unwrap();
    assert!(log.contains("stored"), "{log}");
    assert!(log.contains("not established"), "{log}");
}

/// A PDU item: type, reserved byte, 16-bit big-endian length, body.
fn item(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind, 0];
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A PDU: type, reserved byte, 32-bit big-endian length, body.
fn pdu(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind, 0];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn ae(title: &str) -> [u8; 16] {
    let mut out = [b' '; 16];
    out[..title.len()].copy_from_slice(title.as_bytes());
    out
}

const CR_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.1";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

/// An A-ASSOCIATE-RQ (PS3.8 9.3.2) from FAULTY to RADLAB proposing CR Image Storage in
/// explicit VR little endian as presentation context 1.
fn associate_rq() -> Vec<u8> {
    let mut body = vec![0x00, 0x01, 0x00, 0x00];
    body.extend_from_slice(&ae("RADLAB"));
    body.extend_from_slice(&ae("FAULTY"));
    body.extend_from_slice(&[0u8; 32]);
    body.extend(item(0x10, b"1.2.840.10008.3.1.1.1"));
    let mut pc = vec![1, 0, 0, 0];
    pc.extend(item(0x30, CR_STORAGE.as_bytes()));
    pc.extend(item(0x40, EXPLICIT_LE.as_bytes()));
    body.extend(item(0x20, &pc));
    let mut user = item(0x51, &16_384u32.to_be_bytes());
    user.extend(item(0x52, b"1.2.826.0.1.3680043.9.9999"));
    body.extend(item(0x50, &user));
    pdu(0x01, &body)
}

/// A command element in implicit VR little endian.
fn element(tag: u16, value: &[u8]) -> Vec<u8> {
    let mut value = value.to_vec();
    if value.len() % 2 == 1 {
        value.push(0);
    }
    let mut out = vec![0, 0];
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(&value);
    out
}

/// A C-STORE-RQ command set with a data set to follow.
fn c_store_rq() -> Vec<u8> {
    let mut rest = Vec::new();
    rest.extend(element(0x0002, CR_STORAGE.as_bytes()));
    rest.extend(element(0x0100, &0x0001u16.to_le_bytes()));
    rest.extend(element(0x0110, &7u16.to_le_bytes()));
    rest.extend(element(0x0700, &0u16.to_le_bytes()));
    rest.extend(element(0x0800, &0u16.to_le_bytes()));
    rest.extend(element(0x1000, b"1.2.826.0.1.3680043.9.9999.1"));
    let mut out = element(0x0000, &(rest.len() as u32).to_le_bytes());
    out.extend(rest);
    out
}

/// A P-DATA-TF with one PDV on presentation context 1.
fn p_data(command: bool, last: bool, data: &[u8]) -> Vec<u8> {
    let mut body = ((data.len() + 2) as u32).to_be_bytes().to_vec();
    body.push(1);
    body.push(u8::from(command) | (u8::from(last) << 1));
    body.extend_from_slice(data);
    pdu(0x04, &body)
}

/// The type of the next PDU the SCP sends (its body read and dropped), or `None` when it
/// closed the connection.
fn read_pdu_type(stream: &mut std::net::TcpStream) -> Option<u8> {
    let mut header = [0u8; 6];
    stream.read_exact(&mut header).ok()?;
    let len = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).ok()?;
    Some(header[0])
}

/// A raw client associated with the SCP.
fn associated(port: u16) -> std::net::TcpStream {
    use std::io::Write as _;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    stream.write_all(&associate_rq()).unwrap();
    assert_eq!(read_pdu_type(&mut stream), Some(0x02), "A-ASSOCIATE-AC");
    stream
}

/// The files in the SCP's staging folder(s), partial or not.
fn staged(data: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(data)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(".pacs-staging"))
                .flat_map(|e| common::files_under(&e.path()))
                .collect()
        })
        .unwrap_or_default()
}

/// Wait up to 10 s for `done`.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

#[test]
fn a_peer_that_vanishes_mid_object_leaves_nothing_and_the_scp_serves_on() {
    const TEST: &str = "a_peer_that_vanishes_mid_object_leaves_nothing_and_the_scp_serves_on";
    if !radlab_testkit::has_tool(TEST, "echoscu") {
        return;
    }
    use std::io::Write as _;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let scp = Scp::start(&data, &[]);
    let mut stream = associated(scp.port);
    stream
        .write_all(&p_data(true, true, &c_store_rq()))
        .unwrap();
    // The first part of a data set: (0008,0016) and the start of a long element.
    let mut part = Vec::new();
    part.extend_from_slice(&[0x08, 0x00, 0x16, 0x00, b'U', b'I']);
    part.extend_from_slice(&(CR_STORAGE.len() as u16 + 1).to_le_bytes());
    part.extend_from_slice(CR_STORAGE.as_bytes());
    part.push(0);
    part.extend_from_slice(&[0x10, 0x00, 0x10, 0x00, b'P', b'N', 200, 0]);
    part.extend_from_slice(&[b'X'; 50]);
    stream.write_all(&p_data(false, false, &part)).unwrap();
    assert!(
        eventually(|| staged(&data).iter().any(|p| p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".partial-"))),
        "the object was not being received: {:?}",
        staged(&data)
    );
    drop(stream);
    assert!(
        eventually(|| staged(&data).is_empty()),
        "left in the staging folder: {:?}",
        staged(&data)
    );
    let out = scp.tool("echoscu", "ECHOER", &[], &[]);
    assert!(
        out.status.success(),
        "the SCP stopped serving: {}",
        text(&out)
    );
    assert_eq!(catalog(&data)["counts"]["instances"], 0);
    let log = scp.stop();
    assert!(
        log.contains("connection closed by the peer")
            && log.contains("one incomplete object dropped"),
        "{log}"
    );
}

#[test]
fn malformed_pdus_end_the_association_with_a_log_line_and_no_crash() {
    const TEST: &str = "malformed_pdus_end_the_association_with_a_log_line_and_no_crash";
    if !radlab_testkit::has_tool(TEST, "echoscu") {
        return;
    }
    use std::io::Write as _;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let scp = Scp::start(&data, &[]);
    // Garbage instead of an A-ASSOCIATE-RQ.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", scp.port)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: radlab\r\n\r\n")
        .unwrap();
    let answer = read_pdu_type(&mut stream);
    assert!(
        matches!(answer, None | Some(0x03) | Some(0x07)),
        "{answer:?}"
    );
    // After a good association: a P-DATA-TF announcing more than the agreed maximum, then
    // a PDU of an unknown type, then a PDV longer than its PDU.
    let bad: [Vec<u8>; 3] = [
        {
            let mut b = vec![0x04, 0, 0x7F, 0xFF, 0xFF, 0xFF];
            b.extend_from_slice(&[0xAB; 64]);
            b
        },
        pdu(0x09, &[1, 2, 3, 4]),
        {
            let mut body = 1000u32.to_be_bytes().to_vec();
            body.extend_from_slice(&[1, 3, 0, 0]);
            pdu(0x04, &body)
        },
    ];
    for garbage in &bad {
        let mut stream = associated(scp.port);
        stream.write_all(garbage).unwrap();
        // An A-ABORT, or the connection closed: never an answer as if all were well.
        let answer = read_pdu_type(&mut stream);
        assert!(matches!(answer, None | Some(0x07)), "{answer:?}");
    }
    let out = scp.tool("echoscu", "ECHOER", &[], &[]);
    assert!(
        out.status.success(),
        "the SCP stopped serving: {}",
        text(&out)
    );
    let log = scp.stop();
    assert!(log.contains("not established"), "{log}");
    assert_eq!(log.matches("aborted").count(), 3, "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn a_store_that_cannot_write_answers_a_failure_and_keeps_nothing() {
    const TEST: &str = "a_store_that_cannot_write_answers_a_failure_and_keeps_nothing";
    let Some(corpus) = tools_and_corpus(TEST) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let scp = Scp::start(&data, &["--ack", "imported"]);
    let file = corpus.path("dicom/cxr_derived/rg1_cr_chest_pa_mono1_rle.dcm");
    let send = || scp.tool("storescu", "SENDER", &["-xr"], std::slice::from_ref(&file));
    // The staging folder replaced by a plain file (which stops root too): the object
    // cannot be received.
    // Once an association is served, the SCP has made its staging folder.
    let out = scp.tool("echoscu", "SENDER", &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let staging = std::fs::read_dir(&data)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".pacs-staging")
        })
        .expect("a staging folder");
    std::fs::remove_dir_all(&staging).unwrap();
    std::fs::write(&staging, b"not a folder").unwrap();
    let out = send();
    assert!(
        !out.status.success() || text(&out).contains("0xa700"),
        "{}",
        text(&out)
    );
    std::fs::remove_file(&staging).unwrap();
    // The blob store's folder replaced by a plain file: the import cannot write its blob.
    let blobs = data.join("blobs");
    let _ = std::fs::remove_dir_all(&blobs);
    std::fs::write(&blobs, b"not a folder").unwrap();
    let out = send();
    assert!(!out.status.success(), "{}", text(&out));
    // Nothing catalogued, nothing quarantined, nothing staged.
    let listing = catalog(&data);
    assert_eq!(listing["counts"]["instances"], 0, "{listing}");
    assert_eq!(listing["counts"]["quarantined"], 0, "{listing}");
    assert!(staged(&data).is_empty(), "{:?}", staged(&data));
    // Once the disk is back, the same object is received and stored.
    std::fs::remove_file(&blobs).unwrap();
    let out = send();
    assert!(
        out.status.success() && !text(&out).contains("E: "),
        "{}",
        text(&out)
    );
    assert_eq!(catalog(&data)["counts"]["instances"], 1);
    let log = scp.stop();
    assert_eq!(log.matches("failed with status 0xA700").count(), 2, "{log}");
}

#[test]
fn a_spooled_object_survives_a_failing_store_and_a_crash_and_is_imported_on_restart() {
    const TEST: &str =
        "a_spooled_object_survives_a_failing_store_and_a_crash_and_is_imported_on_restart";
    let Some(corpus) = tools_and_corpus(TEST) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // The blob store's folder replaced by a plain file once the SCP runs: every import
    // fails until it is back.
    let scp = Scp::start(&data, &[]);
    let blobs = data.join("blobs");
    let _ = std::fs::remove_dir_all(&blobs);
    std::fs::write(&blobs, b"not a folder").unwrap();
    let files = [
        corpus.path("dicom/cxr_derived/rg1_cr_chest_pa_mono1_rle.dcm"),
        corpus.path("dicom/cxr_derived/siim_cr_chest_pa_mono2_rle.dcm"),
    ];
    let out = scp.tool("storescu", "SENDER", &["-xr"], &files);
    assert!(
        out.status.success() && !text(&out).contains("E: "),
        "{}",
        text(&out)
    );
    // Acknowledged, kept in the spool while the store fails.
    assert_eq!(spooled(&data).len(), 2, "{:?}", spooled(&data));
    // The worker waits for a 300 ms pause in arrivals, then its first try fails; time
    // enough for that on a loaded machine.
    std::thread::sleep(std::time::Duration::from_millis(3000));
    // A crash: the process killed with the objects still spooled.
    let log = scp.kill();
    assert!(log.contains("stay spooled"), "{log}");
    assert_eq!(spooled(&data).len(), 2);
    std::fs::remove_file(&blobs).unwrap();
    // Restarted, the SCP imports what was left before anything new arrives.
    let scp = Scp::start(&data, &[]);
    let listing = catalog(&data);
    assert_eq!(listing["counts"]["instances"], 2, "{listing}");
    assert_eq!(listing["counts"]["quarantined"], 0, "{listing}");
    let stored = common::stored_objects(&data);
    for file in &files {
        let sent = common::uid_and_pixels(&std::fs::read(file).unwrap()).unwrap();
        assert!(stored.contains(&sent), "pixels changed");
    }
    let log = scp.stop();
    assert!(log.contains("left from an earlier run"), "{log}");
}

#[test]
fn a_silent_peer_loses_its_association() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let scp = Scp::start(&data, &["--idle-timeout", "1"]);
    let mut stream = associated(scp.port);
    // Nothing sent: the SCP drops the association after a second (closed or A-ABORT).
    let answer = read_pdu_type(&mut stream);
    assert!(matches!(answer, None | Some(0x07)), "{answer:?}");
    let log = scp.stop();
    assert!(log.contains("silent too long"), "{log}");
}
