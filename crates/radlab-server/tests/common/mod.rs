//! Helpers shared by the server's tests (each test file uses some).
#![allow(dead_code)]

use std::net::SocketAddr;

use radlab_server::{AppState, ServerConfig};
use radlab_store::Catalog;
use radlab_testkit::{HttpResponse, http};

thread_local! {
    /// The runtime of the server this test thread started: the catalog's connections belong
    /// to it (a PostgreSQL connection opened on another runtime dies with that runtime).
    static SERVER_RUNTIME: std::cell::RefCell<Option<tokio::runtime::Handle>> =
        const { std::cell::RefCell::new(None) };
}

/// A server on a free port over `url`, running on its own runtime thread.
pub fn start(url: &str, config: ServerConfig) -> (SocketAddr, Catalog) {
    start_with(url, config, |s| s)
}

/// [`start`], with the state adjusted by `adjust` (e.g. to take uploads).
pub fn start_with(
    url: &str,
    config: ServerConfig,
    adjust: impl FnOnce(AppState) -> AppState,
) -> (SocketAddr, Catalog) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (addr, catalog) = rt.block_on(async {
        let catalog = Catalog::open(url).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = adjust(AppState::new(catalog.clone(), config));
        tokio::spawn(radlab_server::serve(listener, state));
        (addr, catalog)
    });
    SERVER_RUNTIME.with(|h| *h.borrow_mut() = Some(rt.handle().clone()));
    // The runtime lives as long as the test process.
    std::mem::forget(rt);
    (addr, catalog)
}

pub fn json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpResponse {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    http(addr, method, path, &all, body.as_bytes())
}

pub fn error_code(r: &HttpResponse) -> String {
    r.json()["error"]["code"].as_str().unwrap_or("").to_string()
}

pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    match SERVER_RUNTIME.with(|h| h.borrow().clone()) {
        Some(handle) => handle.block_on(f),
        None => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f),
    }
}

/// Sign in: the cookie pair to send back and the CSRF token.
pub fn sign_in(addr: SocketAddr, user: &str, password: &str) -> (String, String) {
    let r = json(
        addr,
        "POST",
        "/api/v1/auth/login",
        &[],
        &format!(r#"{{"username":"{user}","password":"{password}"}}"#),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let cookie = r.header("set-cookie").unwrap().to_string();
    let pair = cookie.split(';').next().unwrap().to_string();
    (pair, r.json()["csrf_token"].as_str().unwrap().to_string())
}

/// A SQLite catalog URL in `dir`.
pub fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("catalog.db").display())
}

/// A signed-in user: the cookie pair and the CSRF token, as headers.
pub struct User {
    pub cookie: String,
    pub csrf: String,
}

impl User {
    pub fn h(&self) -> [(&str, &str); 2] {
        [
            ("cookie", self.cookie.as_str()),
            ("x-csrf-token", self.csrf.as_str()),
        ]
    }
}

/// Sign in a user whose password is "NAME password 1".
pub fn login(addr: SocketAddr, name: &str) -> User {
    let (cookie, csrf) = sign_in(addr, name, &format!("{name} password 1"));
    User { cookie, csrf }
}

pub fn post(addr: SocketAddr, u: &User, path: &str, body: &str) -> HttpResponse {
    json(addr, "POST", path, &u.h(), body)
}

/// A running server with the VinDr-CXR project "cxr": users owner, r1..r4 (annotators),
/// rev1, rev2 (reviewers), passwords "NAME password 1"; the corpus's five radiographs
/// imported, the first three in train, the others in test; returns the SOP Instance UIDs in
/// order.
pub fn vindr_project(
    url: &str,
    corpus: &radlab_testkit::Corpus,
    blobs: &std::path::Path,
) -> (SocketAddr, Catalog, Vec<String>) {
    // The server reads objects (and stored renderings) from the same blob store.
    let (addr, catalog) = start_with(url, ServerConfig::default(), |s| {
        s.with_uploads(
            radlab_store::BlobStore::local(blobs.join("blobs")).unwrap(),
            blobs.join("staging"),
            1 << 30,
        )
    });
    let names = ["owner", "r1", "r2", "r3", "r4", "rev1", "rev2"];
    let uids: Vec<String> = block_on(async {
        for n in names {
            radlab_server::add_user(&catalog, n, &format!("{n} password 1"), "user")
                .await
                .unwrap();
        }
        let store = radlab_store::BlobStore::local(blobs.join("blobs")).unwrap();
        radlab_store::import_paths(
            &catalog,
            &store,
            &[corpus.path("dicom/cxr")],
            &radlab_store::ImportOptions::default(),
            std::sync::Arc::new(radlab_store::NoProgress),
        )
        .await
        .unwrap();
        let mut u: Vec<String> = catalog
            .list_instances(None)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.sop_instance_uid)
            .collect();
        u.sort();
        u
    });
    let owner = login(addr, "owner");
    let r = post(
        addr,
        &owner,
        "/api/v1/projects",
        r#"{"project_id":"cxr","template":"vindr-cxr"}"#,
    );
    assert_eq!(r.status, 201);
    for (n, role) in [
        ("r1", "annotator"),
        ("r2", "annotator"),
        ("r3", "annotator"),
        ("r4", "annotator"),
        ("rev1", "reviewer"),
        ("rev2", "reviewer"),
    ] {
        let body = format!(r#"{{"username":"{n}","role":"{role}"}}"#);
        assert_eq!(
            post(addr, &owner, "/api/v1/projects/cxr/members", &body).status,
            201
        );
    }
    for (range, split) in [(0..3, "train"), (3..uids.len(), "test")] {
        let body = serde_json::json!({"instances": &uids[range], "split": split}).to_string();
        assert_eq!(
            post(addr, &owner, "/api/v1/projects/cxr/images", &body).status,
            200
        );
    }
    (addr, catalog, uids)
}
