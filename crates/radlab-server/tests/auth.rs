//! Accounts and access over real HTTP, on SQLite and on PostgreSQL: 401 without
//! credentials, sessions with HttpOnly SameSite=Strict cookies, CSRF on cookie writes, API
//! tokens, admin-only routes, the sign-in rate limit, bad input answered with the JSON error.

mod common;

use common::{block_on, error_code, json, sign_in, start};
use radlab_server::{ServerConfig, add_user};
use radlab_testkit::{http, postgres_database};

fn the_access_rules_hold(url: &str, backend: &str) {
    let (addr, catalog) = start(url, ServerConfig::default());
    const ADMIN_PW: &str = "correct horse battery";
    const READER_PW: &str = "reader password 1";
    block_on(async {
        add_user(&catalog, "admin", ADMIN_PW, "admin")
            .await
            .unwrap();
    });

    // No credentials: 401 everywhere but health; unknown paths get the JSON error too.
    assert_eq!(http(addr, "GET", "/api/v1/health", &[], b"").status, 200);
    for (method, path) in [
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/users"),
        ("POST", "/api/v1/tokens"),
    ] {
        let r = json(addr, method, path, &[], "{}");
        assert_eq!(r.status, 401, "{backend} {method} {path}");
        assert_eq!(error_code(&r), "unauthenticated");
    }
    let r = http(addr, "GET", "/api/v2/nothing", &[], b"");
    assert_eq!((r.status, error_code(&r).as_str()), (404, "not_found"));
    let r = json(
        addr,
        "GET",
        "/api/v1/me",
        &[("authorization", "Bearer rl_nope")],
        "",
    );
    assert_eq!(r.status, 401);

    // Wrong password and unknown user: the same 401.
    for body in [
        r#"{"username":"admin","password":"wrong password!"}"#,
        r#"{"username":"nobody","password":"wrong password!"}"#,
    ] {
        let r = json(addr, "POST", "/api/v1/auth/login", &[], body);
        assert_eq!(
            (r.status, error_code(&r).as_str()),
            (401, "bad_credentials"),
            "{backend}"
        );
        assert_eq!(r.json()["error"]["message"], "wrong user name or password");
    }
    // Malformed JSON: a 400 that says so.
    let r = json(addr, "POST", "/api/v1/auth/login", &[], "{not json");
    assert_eq!((r.status, error_code(&r).as_str()), (400, "bad_request"));
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("JSON")
    );

    // Signing in sets an HttpOnly, SameSite=Strict session cookie (not Secure without TLS).
    let r = json(
        addr,
        "POST",
        "/api/v1/auth/login",
        &[],
        &format!(r#"{{"username":"admin","password":"{ADMIN_PW}"}}"#),
    );
    assert_eq!(r.status, 200);
    let cookie = r.header("set-cookie").unwrap();
    assert!(cookie.starts_with("radlab_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "{cookie}");
    assert_eq!(r.json()["user"]["site_role"], "admin");
    assert!(r.json()["user"].get("password_hash").is_none());
    let (session, csrf) = sign_in(addr, "admin", ADMIN_PW);
    let with_cookie = [("cookie", session.as_str())];
    let r = json(addr, "GET", "/api/v1/me", &with_cookie, "");
    assert_eq!(
        (r.status, r.json()["user"]["username"].as_str()),
        (200, Some("admin"))
    );
    // The session's CSRF token, for a page opened in a new tab of the signed-in browser.
    assert_eq!(r.json()["csrf_token"].as_str(), Some(csrf.as_str()));

    // A cookie write without the CSRF header, or with a wrong one, is refused.
    for headers in [
        vec![("cookie", session.as_str())],
        vec![("cookie", session.as_str()), ("x-csrf-token", "guess")],
    ] {
        let r = json(
            addr,
            "POST",
            "/api/v1/tokens",
            &headers,
            r#"{"name":"script"}"#,
        );
        assert_eq!(
            (r.status, error_code(&r).as_str()),
            (403, "csrf"),
            "{backend}"
        );
    }
    let r = json(
        addr,
        "POST",
        "/api/v1/tokens",
        &[
            ("cookie", session.as_str()),
            ("x-csrf-token", csrf.as_str()),
        ],
        r#"{"name":"import script"}"#,
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let token = r.json()["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("rl_") && token.len() == 67);
    let bearer = format!("Bearer {token}");

    // An API token needs no CSRF header; admins add accounts; input is checked.
    let with_token = [("authorization", bearer.as_str())];
    let r = json(
        addr,
        "POST",
        "/api/v1/users",
        &with_token,
        &format!(r#"{{"username":"reader1","password":"{READER_PW}"}}"#),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["user"]["site_role"], "user");
    for (body, status, says) in [
        (
            format!(r#"{{"username":"reader1","password":"{READER_PW}"}}"#),
            409,
            "exists",
        ),
        (
            r#"{"username":"reader2","password":"short"}"#.to_string(),
            400,
            "12 characters",
        ),
        (
            r#"{"username":"bad name","password":"long enough password"}"#.to_string(),
            400,
            "letters",
        ),
        (
            r#"{"username":"r3","password":"long enough password","site_role":"root"}"#.to_string(),
            400,
            "admin or user",
        ),
        (r#"{"username":"r4"}"#.to_string(), 400, "password"),
    ] {
        let r = json(addr, "POST", "/api/v1/users", &with_token, &body);
        assert_eq!(r.status, status, "{backend} {body}");
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains(says), "{message}");
    }
    let r = json(addr, "GET", "/api/v1/users", &with_token, "");
    let users = r.json();
    let names: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "reader1"]);

    // A user who is not an administrator cannot list or add accounts.
    let (reader, reader_csrf) = sign_in(addr, "reader1", READER_PW);
    let r = json(
        addr,
        "GET",
        "/api/v1/users",
        &[("cookie", reader.as_str())],
        "",
    );
    assert_eq!((r.status, error_code(&r).as_str()), (403, "forbidden"));
    let r = json(
        addr,
        "POST",
        "/api/v1/users",
        &[
            ("cookie", reader.as_str()),
            ("x-csrf-token", reader_csrf.as_str()),
        ],
        r#"{"username":"sneaky","password":"long enough password"}"#,
    );
    assert_eq!(r.status, 403);

    // Signing out ends the session.
    let r = json(
        addr,
        "POST",
        "/api/v1/auth/logout",
        &[
            ("cookie", reader.as_str()),
            ("x-csrf-token", reader_csrf.as_str()),
        ],
        "",
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        json(
            addr,
            "GET",
            "/api/v1/me",
            &[("cookie", reader.as_str())],
            ""
        )
        .status,
        401
    );

    // Five failures lock the name out, the right password included, with Retry-After.
    for _ in 0..5 {
        let r = json(
            addr,
            "POST",
            "/api/v1/auth/login",
            &[],
            r#"{"username":"reader1","password":"not the password"}"#,
        );
        assert_eq!(r.status, 401);
    }
    let r = json(
        addr,
        "POST",
        "/api/v1/auth/login",
        &[],
        &format!(r#"{{"username":"reader1","password":"{READER_PW}"}}"#),
    );
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (429, "rate_limited"),
        "{backend}"
    );
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=301).contains(&wait), "{wait}");
}

#[test]
fn access_rules_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("catalog.db").display());
    the_access_rules_hold(&url, "sqlite");
}

#[test]
fn access_rules_on_postgres() {
    let Some(db) = postgres_database("server_access_rules") else {
        return;
    };
    the_access_rules_hold(&db.url, "postgres");
}

#[test]
fn secure_cookies_behind_tls() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("catalog.db").display());
    let (addr, catalog) = start(
        &url,
        ServerConfig {
            secure_cookies: true,
            session_hours: 1,
            ..ServerConfig::default()
        },
    );
    block_on(async {
        add_user(&catalog, "admin", "a long enough password", "admin")
            .await
            .unwrap();
    });
    let r = json(
        addr,
        "POST",
        "/api/v1/auth/login",
        &[],
        r#"{"username":"admin","password":"a long enough password"}"#,
    );
    let cookie = r.header("set-cookie").unwrap();
    assert!(
        cookie.contains("; Secure") && cookie.contains("Max-Age=3600"),
        "{cookie}"
    );
}
