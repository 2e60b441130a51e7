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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (addr, catalog) = rt.block_on(async {
        let catalog = Catalog::open(url).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = AppState::new(catalog.clone(), config);
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
