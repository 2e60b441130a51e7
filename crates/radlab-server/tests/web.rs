//! The web UI as the server hands it out: the page at `/` (or, in a binary built without
//! it, a page that says how to build it), hashed bundles cached for good, gzip when the
//! browser takes it, a strict Content Security Policy, and 404 for anything else outside
//! the API. What the UI does is tested in a browser: crates/radlab/tests/web_ui.rs.

mod common;

use radlab_server::ServerConfig;
use radlab_testkit::http;

#[test]
fn the_page_its_bundles_and_their_headers() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _catalog) = common::start(&common::sqlite_url(&dir), ServerConfig::default());
    let r = http(addr, "GET", "/", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    let csp = r.header("content-security-policy").unwrap();
    for rule in [
        "script-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(csp.contains(rule), "{csp}");
    }
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let page = String::from_utf8_lossy(&r.body).to_string();
    if !radlab_server::web::built() {
        assert!(page.contains("npm run build"), "{page}");
        eprintln!(
            "\n*** web.rs: this build has no web UI (web/dist missing); checked the page that says so ***\n"
        );
        return;
    }
    // The bundles the page names: cached for good, gzip-compressed on request, and the
    // same bytes either way.
    let assets: Vec<&str> = page
        .split('"')
        .filter(|s| s.starts_with("/assets/"))
        .collect();
    assert!(assets.iter().any(|a| a.ends_with(".js")), "{page}");
    for a in assets {
        let plain = http(addr, "GET", a, &[], b"");
        assert_eq!(plain.status, 200, "{a}");
        assert_eq!(
            plain.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        assert!(plain.header("content-encoding").is_none());
        let gz = http(addr, "GET", a, &[("accept-encoding", "gzip, br")], b"");
        assert_eq!(gz.header("content-encoding"), Some("gzip"), "{a}");
        assert!(gz.body.len() < plain.body.len(), "{a}");
        let mut unzipped = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&gz.body[..]),
            &mut unzipped,
        )
        .unwrap();
        assert_eq!(unzipped, plain.body, "{a}");
        let refused = http(addr, "GET", a, &[("accept-encoding", "gzip;q=0")], b"");
        assert!(refused.header("content-encoding").is_none());
        let ct = plain.header("content-type").unwrap();
        assert!(
            ct.starts_with("text/javascript") || ct.starts_with("text/css"),
            "{a}: {ct}"
        );
    }
    // Anything else outside the API is not found, in the API's error format.
    let r = http(addr, "GET", "/assets/nothing.js", &[], b"");
    assert_eq!(r.status, 404);
    assert_eq!(common::error_code(&r), "not_found");
    let r = http(addr, "GET", "/etc/passwd", &[], b"");
    assert_eq!(r.status, 404);
    let r = http(addr, "GET", "/assets/../../Cargo.toml", &[], b"");
    assert_eq!(r.status, 404);
}
