//! `radlab user` and `radlab serve` as an administrator runs them: the first admin made on
//! the command line, the server on a free port, and nothing secret in its logs, even at the
//! most verbose level.

mod common;

use std::io::{Read, Write};
use std::process::Stdio;

use common::{radlab, text};
use radlab_testkit::http;

#[test]
fn users_from_the_command_line_sign_in_and_no_secret_reaches_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    const ADMIN_PW: &str = "Adm1n-very-secret-pw";
    let mut add = common::command()
        .args([
            "user",
            "add",
            "admin",
            "--admin",
            "--password-stdin",
            "--data-dir",
        ])
        .arg(&data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(format!("{ADMIN_PW}\n").as_bytes())
        .unwrap();
    let out = add.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains(ADMIN_PW));
    // Without --password-stdin a password is made up and printed once.
    let out = radlab(&["user", "add", "reader1"], &data);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let reader_pw = stdout
        .trim()
        .strip_prefix("password: ")
        .unwrap()
        .to_string();
    assert_eq!(reader_pw.len(), 24);
    let out = radlab(&["user", "add", "reader1"], &data);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("exists"), "{}", text(&out));
    let out = radlab(&["user", "ls", "--json"], &data);
    let users: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(users.as_array().unwrap().len(), 2);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("argon2"));

    let mut server = common::command()
        .args(["serve", "--listen", "127.0.0.1:0", "-vv", "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "trace")
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
    let (addr, _) = common::serving_address(&mut server);
    let login = |user: &str, pw: &str| {
        http(
            addr,
            "POST",
            "/api/v1/auth/login",
            &[("content-type", "application/json")],
            format!(r#"{{"username":"{user}","password":"{pw}"}}"#).as_bytes(),
        )
    };
    assert_eq!(login("admin", "Adm1n-wrong-password").status, 401);
    let r = login("admin", ADMIN_PW);
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
        br#"{"name":"nightly import"}"#,
    );
    assert_eq!(r.status, 201);
    let token = r.json()["token"].as_str().unwrap().to_string();
    assert_eq!(login("reader1", &reader_pw).status, 200);
    server.kill().unwrap();
    let _ = server.wait();
    let log = log.join().unwrap();
    assert!(log.contains("signed in"), "the log says nothing: {log}");
    let session = cookie.split_once('=').unwrap().1;
    for secret in [
        ADMIN_PW,
        "Adm1n-wrong-password",
        reader_pw.as_str(),
        &token,
        session,
        &csrf,
    ] {
        assert!(!log.contains(secret), "the server log holds a secret");
    }
}

/// Start `radlab serve` on a free port over `data`; its address, and the process.
fn serve(data: &std::path::Path) -> (std::net::SocketAddr, std::process::Child) {
    let mut server = common::command()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (addr, _) = common::serving_address(&mut server);
    (addr, server)
}

/// `radlab serve --demo`: the demo project with reading tasks and the demo accounts, whose
/// passwords are printed once; a second start keeps them and says so.
#[test]
fn the_demo_server_has_a_project_with_readers_and_tasks() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let start = || {
        common::command()
            .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut server = start();
    let (addr, printed) = common::serving_address(&mut server);
    let password = |name: &str| {
        printed
            .lines()
            .find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some(name)).then(|| w.next().unwrap().to_string())
            })
            .unwrap_or_else(|| panic!("no password for {name}: {printed}"))
    };
    assert!(printed.contains("/api/v1/docs"), "{printed}");
    let login = |name: &str, pw: &str| {
        let r = http(
            addr,
            "POST",
            "/api/v1/auth/login",
            &[("content-type", "application/json")],
            format!(r#"{{"username":"{name}","password":"{pw}"}}"#).as_bytes(),
        );
        assert_eq!(r.status, 200, "{name}");
        r.header("set-cookie")
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string()
    };
    let reader = login("reader1", &password("reader1"));
    let tasks = http(addr, "GET", "/api/v1/tasks", &[("cookie", &reader)], b"").json();
    assert_eq!(
        tasks["tasks"].as_array().unwrap().len(),
        5,
        "every image has 3 of 3 readers"
    );
    let admin = login("admin", &password("admin"));
    let p = http(
        addr,
        "GET",
        "/api/v1/projects/vindr-cxr-demo/progress",
        &[("cookie", &admin)],
        b"",
    )
    .json();
    assert_eq!(p["readers"].as_array().unwrap().len(), 3);
    let admin_pw = password("admin");
    server.kill().unwrap();
    let _ = server.wait();
    // Started again: the same project and accounts, no new passwords.
    let mut server = start();
    let (addr, printed) = common::serving_address(&mut server);
    assert!(printed.contains("there already"), "{printed}");
    let r = http(
        addr,
        "POST",
        "/api/v1/auth/login",
        &[("content-type", "application/json")],
        format!(r#"{{"username":"admin","password":"{admin_pw}"}}"#).as_bytes(),
    );
    assert_eq!(r.status, 200);
    server.kill().unwrap();
    let _ = server.wait();
}

fn call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    auth: &[(&str, &str)],
    body: &str,
) -> Option<radlab_testkit::HttpResponse> {
    // A killed server answers nothing: None.
    let mut h = vec![("content-type", "application/json")];
    h.extend_from_slice(auth);
    radlab_testkit::try_http(addr, method, path, &h, body.as_bytes()).ok()
}

/// kill -9 of the server during a burst of annotation writes loses no acknowledged write:
/// after a restart the layer holds every write the server answered 200 to (and at most the
/// one in flight when it died).
#[test]
fn a_killed_server_loses_no_acknowledged_annotation_write() {
    let Some(corpus) = radlab_testkit::corpus("serve_kill_9") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = radlab(
        &["import", corpus.path("dicom/cxr").to_str().unwrap()],
        &data,
    );
    assert!(out.status.success(), "{}", text(&out));
    for (name, admin) in [("owner", true), ("reader1", false)] {
        let mut add = common::command()
            .args(["user", "add", name, "--password-stdin"])
            .args(admin.then_some("--admin"))
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
            .write_all(format!("{name} password 1\n").as_bytes())
            .unwrap();
        assert!(add.wait().unwrap().success());
    }
    let (addr, mut server) = serve(&data);
    let token_of = |user: &str| {
        let r = call(
            addr,
            "POST",
            "/api/v1/auth/login",
            &[],
            &format!(r#"{{"username":"{user}","password":"{user} password 1"}}"#),
        )
        .unwrap();
        let cookie = r
            .header("set-cookie")
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let csrf = r.json()["csrf_token"].as_str().unwrap().to_string();
        let r = call(
            addr,
            "POST",
            "/api/v1/tokens",
            &[("cookie", &cookie), ("x-csrf-token", &csrf)],
            r#"{"name":"test"}"#,
        )
        .unwrap();
        format!("Bearer {}", r.json()["token"].as_str().unwrap())
    };
    let owner = token_of("owner");
    let o = [("authorization", owner.as_str())];
    for (path, body) in [
        (
            "/api/v1/projects",
            r#"{"project_id":"cxr","template":"vindr-cxr"}"#,
        ),
        (
            "/api/v1/projects/cxr/members",
            r#"{"username":"reader1","role":"annotator"}"#,
        ),
        (
            "/api/v1/projects/cxr/images",
            r#"{"all":true,"split":"train"}"#,
        ),
    ] {
        let r = call(addr, "POST", path, &o, body).unwrap();
        assert!(
            r.status == 200 || r.status == 201,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let r = call(
        addr,
        "PUT",
        "/api/v1/projects/cxr/workflows/train",
        &o,
        r#"{"kind":"single"}"#,
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let r = call(
        addr,
        "POST",
        "/api/v1/projects/cxr/assign",
        &o,
        r#"{"split":"train"}"#,
    )
    .unwrap();
    assert_eq!(
        r.json()["tasks_created"],
        5,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let reader = token_of("reader1");
    let rd = [("authorization", reader.as_str())];
    let tasks = call(addr, "GET", "/api/v1/tasks", &rd, "").unwrap().json();
    let task = tasks["tasks"][0]["task_id"].as_str().unwrap().to_string();
    assert_eq!(
        call(
            addr,
            "POST",
            &format!("/api/v1/tasks/{task}/start"),
            &rd,
            ""
        )
        .unwrap()
        .status,
        200
    );

    // A burst of writes, each adding one box; the server is killed in the middle of it.
    let writer = {
        let reader = reader.clone();
        let task = task.clone();
        std::thread::spawn(move || {
            let rd = [("authorization", reader.as_str())];
            let mut version = 0;
            let mut acknowledged = 0usize;
            let mut boxes: Vec<serde_json::Value> = Vec::new();
            for i in 0..10_000 {
                boxes.push(serde_json::json!({"label": "Nodule/Mass", "bbox": [1.0 + i as f64 % 50.0, 1.0, 60.0, 60.0], "note": format!("n{i}")}));
                let body =
                    serde_json::json!({"version": version, "annotations": boxes}).to_string();
                match call(
                    addr,
                    "PUT",
                    &format!("/api/v1/tasks/{task}/annotations"),
                    &rd,
                    &body,
                ) {
                    Some(r) if r.status == 200 => {
                        version = r.json()["version"].as_i64().unwrap();
                        acknowledged = boxes.len();
                    }
                    _ => break,
                }
            }
            acknowledged
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(1500));
    server.kill().unwrap(); // SIGKILL
    let _ = server.wait();
    let acknowledged = writer.join().unwrap();
    assert!(
        acknowledged >= 5,
        "only {acknowledged} writes before the kill"
    );

    let (addr, mut server) = serve(&data);
    let r = call(
        addr,
        "GET",
        &format!("/api/v1/tasks/{task}/annotations"),
        &rd,
        "",
    )
    .unwrap();
    let kept = r.json()["annotations"].as_array().unwrap().len();
    server.kill().unwrap();
    let _ = server.wait();
    assert!(
        kept == acknowledged || kept == acknowledged + 1,
        "{acknowledged} writes acknowledged, {kept} annotations after the restart"
    );
    eprintln!(
        "{acknowledged} acknowledged writes before kill -9; {kept} annotations after restart"
    );
}
