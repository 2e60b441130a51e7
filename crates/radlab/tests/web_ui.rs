//! The web UI end to end: `radlab serve` with corpus chest radiographs catalogued and the
//! UI embedded, driven in headless Debian chromium by playwright-core (web/tests/e2e.mjs):
//! an admin makes a VinDr-CXR project and assigns readers, two readers read blind, a
//! reviewer makes the consensus; the canvas matches the server's rendering of a MONOCHROME1
//! radiograph; the first page fits 1366x768 and every page checked passes axe-core's WCAG
//! 2.1 AA rules. Screenshots and a report land in target/web-ui-artifacts/.
//!
//! Needs the corpus, node, `web/node_modules` (npm ci) and chromium; without one of them it
//! skips loudly. scripts/test installs them all.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use radlab_testkit::{corpus, repo_root, skip};

const TEST: &str = "web_ui::readers_reviewers_and_admin_in_the_browser";

#[test]
fn readers_reviewers_and_admin_in_the_browser() {
    let Some(corpus) = corpus(TEST) else { return };
    let root = repo_root();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !std::path::Path::new(&chromium).exists() {
        return skip(
            TEST,
            "no chromium (apt-get install chromium; scripts/test does)",
        );
    }
    if Command::new("node").arg("--version").output().is_err() {
        return skip(TEST, "no node on PATH");
    }
    if !root.join("web/node_modules/playwright-core").is_dir() {
        return skip(
            TEST,
            "web/node_modules is missing (npm ci in web/; scripts/test does)",
        );
    }
    if !radlab_server_has_ui() {
        return skip(
            TEST,
            "this radlab was built without the web UI (npm run build in web/, then rebuild)",
        );
    }

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = common::radlab(
        &["import", corpus.path("dicom/cxr").to_str().unwrap()],
        &data,
    );
    assert!(out.status.success(), "{}", common::text(&out));
    // A study of two images (the viewer's thumbnail strip): the SIIM radiograph again under
    // another SOP Instance UID and instance number, in the same study and series.
    if radlab_testkit::has_tool(TEST, "dcmodify") {
        let second = tmp.path().join("siim_second.dcm");
        std::fs::copy(
            corpus.path("dicom/cxr/siim_acr_cr_chest_pa_jpeg_baseline.dcm"),
            &second,
        )
        .unwrap();
        let o = Command::new("dcmodify")
            .args([
                "-nb",
                "-m",
                "(0008,0018)=1.2.826.0.1.3680043.10.1088.20261127.2",
                "-m",
                "(0020,0013)=2",
            ])
            .arg(&second)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", common::text(&o));
        let out = common::radlab(&["import", second.to_str().unwrap()], &data);
        assert!(out.status.success(), "{}", common::text(&out));
    }
    let mut passwords = serde_json::Map::new();
    for (user, admin) in [
        ("admin", true),
        ("reader1", false),
        ("reader2", false),
        ("reviewer1", false),
    ] {
        let pw = format!("{user}-e2e-password-1234");
        let mut c = common::command();
        c.args(["user", "add", user, "--password-stdin", "--data-dir"])
            .arg(&data)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if admin {
            c.arg("--admin");
        }
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{pw}\n").as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", common::text(&o));
        passwords.insert(user.into(), pw.into());
    }
    let mut server = common::command()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (addr, _) = common::serving_address(&mut server);
    let artifacts = root.join("target/web-ui-artifacts");
    let _ = std::fs::remove_dir_all(&artifacts);
    let status = Command::new("node")
        .arg(root.join("web/tests/e2e.mjs"))
        .current_dir(root.join("web"))
        .env("RADLAB_URL", format!("http://{addr}"))
        .env(
            "RADLAB_PASSWORDS",
            serde_json::Value::Object(passwords).to_string(),
        )
        .env("RADLAB_ARTIFACTS", &artifacts)
        // For `radlab triage --project` on the server's data folder.
        .env("RADLAB_BIN", env!("CARGO_BIN_EXE_radlab"))
        .env("RADLAB_DATA_DIR", &data)
        .env("CHROMIUM", &chromium)
        .env(
            "RADLAB_UPLOAD_FILE",
            corpus.path("dicom/other/nema_wg04_RG2_JPLL_cr_hip.dcm"),
        )
        .env(
            "RADLAB_TWO_IMAGE_STUDY",
            if radlab_testkit::has_tool(TEST, "dcmodify") {
                "1"
            } else {
                ""
            },
        )
        .status()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        status.success(),
        "the browser tests failed; screenshots and report.json in {}",
        artifacts.display()
    );
}

/// Whether the binary under test serves the UI (it was built with web/dist present).
fn radlab_server_has_ui() -> bool {
    radlab_server::web::built()
}
