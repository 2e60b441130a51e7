//! `radlab user` and `radlab serve` as an administrator runs them: the first admin made on
//! the command line, the server on a free port, and nothing secret in its logs, even at the
//! most verbose level.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
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
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: std::net::SocketAddr = line
        .trim()
        .strip_prefix("radlab serving on http://")
        .and_then(|l| l.strip_suffix("/api/v1/health"))
        .unwrap_or_else(|| panic!("{line}"))
        .parse()
        .unwrap();
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
