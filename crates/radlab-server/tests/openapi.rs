//! The OpenAPI document lists every endpoint the router serves: each documented method and
//! path answers (401 without credentials where it needs them), never 404 or 405; the page
//! renders it without scripts.

mod common;

use common::{json, sqlite_url, start};
use radlab_server::ServerConfig;
use radlab_server::openapi::ENDPOINTS;
use radlab_testkit::http;

#[test]
fn every_documented_endpoint_is_served_and_guarded() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _) = start(&sqlite_url(&dir), ServerConfig::default());
    let doc = http(addr, "GET", "/api/v1/openapi.json", &[], b"").json();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = 0;
    for ep in ENDPOINTS {
        let path = ep
            .path
            .replace("{project}", "p1")
            .replace("{task}", "t1")
            .replace("{job}", "j1")
            .replace("{split}", "train")
            .replace("{study}", "1.2.3")
            .replace("{series}", "1.2.3.4")
            .replace("{instance}", "1.2.3.4.5")
            .replace("{frames}", "1")
            .replace("{tag}", "7FE00010")
            .replace("{image}", "0a1b");
        let method = ep.method.to_uppercase();
        let r = json(addr, &method, &path, &[], ep.body.unwrap_or(""));
        assert!(
            r.status != 404 && r.status != 405,
            "{method} {path}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        if ep.access != "anyone" {
            assert_eq!(r.status, 401, "{method} {path} must need credentials");
        }
        assert!(
            doc["paths"][ep.path][ep.method].is_object(),
            "{method} {path} not in the document"
        );
        documented += 1;
    }
    let paths: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(paths, documented);
    let page = http(addr, "GET", "/api/v1/docs", &[], b"");
    let html = String::from_utf8(page.body).unwrap();
    assert!(html.contains("/api/v1/tasks/{task}/annotations") && !html.contains("<script"));
}
