//! `radlab pacs listen` against dcmtk's `echoscu` and `storescu`: verification, the corpus's
//! radiographs sent compressed and uncompressed arriving with their Pixel Data bytes
//! unchanged, calling AE titles filtered, and an undecodable object refused with nothing
//! stored.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::{radlab, text};
use radlab_dicom::{DicomFile, InstanceInfo, pixel_data_span};

/// A running `radlab pacs listen`, killed when dropped.
struct Scp {
    child: Child,
    port: u16,
    log: Option<std::thread::JoinHandle<String>>,
}

impl Scp {
    fn start(data: &Path, extra: &[&str]) -> Scp {
        let mut child = common::command()
            .args([
                "pacs",
                "listen",
                "--aet",
                "RADLAB",
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "-v",
            ])
            .args(extra)
            .arg("--data-dir")
            .arg(data)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
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
        let addr = line
            .trim()
            .strip_prefix("radlab pacs listening on ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line: {line}"));
        let port = addr.rsplit(':').next().unwrap().parse().unwrap();
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Scp {
            child,
            port,
            log: Some(log),
        }
    }

    /// Stop the SCP and return what it logged.
    fn stop(mut self) -> String {
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

/// SOP Instance UID and the Pixel Data element's bytes (header included) of a Part 10 file.
fn uid_and_pixels(bytes: &[u8]) -> Option<(String, Vec<u8>)> {
    let span = pixel_data_span(bytes)?;
    let file = DicomFile::from_bytes(bytes).ok()?;
    let uid = InstanceInfo::from_file(&file).sop_instance_uid;
    Some((uid, bytes[span].to_vec()))
}

/// Every blob of the data folder's store, as (SOP Instance UID, Pixel Data bytes).
fn stored_objects(data: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    let mut stack = vec![data.join("blobs")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if let Some(object) = uid_and_pixels(&std::fs::read(&path).unwrap()) {
                found.push(object);
            }
        }
    }
    found
}

fn catalog(data: &Path) -> serde_json::Value {
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
        let Some((uid, pixels)) = uid_and_pixels(&bytes) else {
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
    let stored = stored_objects(&data);
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
        .filter_map(|f| uid_and_pixels(&std::fs::read(f).unwrap()).map(|(u, _)| u))
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
    let scp = Scp::start(&data, &[]);
    let bad = corpus.path("dicom/cxr_edge/pydicom_issue966_dx_chest_pa_corrupt_j2k.dcm");
    let out = scp.tool("storescu", "SENDER", &["+C", "-xv"], &[bad]);
    assert!(
        !out.status.success(),
        "storescu should report the failure status: {}",
        text(&out)
    );
    let listing = catalog(&data);
    assert_eq!(listing["counts"]["instances"], 0, "{listing}");
    assert!(stored_objects(&data).is_empty());
    let log = scp.stop();
    assert!(log.contains("failed with status 0xC000"), "{log}");
}
