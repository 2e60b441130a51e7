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

/// Every blob of the data folder's store, as (SOP Instance UID, Pixel Data bytes); an
/// instance stored in several encodings appears once per encoding.
pub fn stored_objects(data: &Path) -> Vec<(String, Vec<u8>)> {
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
