//! The web UI, served by the server itself: the files of `web/dist`, embedded at build time
//! (build.rs). `/` is the page; `/assets/...` are the hashed bundles, cached for good;
//! answers are gzip-compressed when the browser takes it, and carry a strict Content
//! Security Policy (scripts, styles and connections from this origin only, no framing).

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// One embedded file.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
    pub gzip: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// Whether this binary carries the web UI.
pub fn built() -> bool {
    ASSETS.iter().any(|a| a.path == "/index.html")
}

const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; \
                   script-src 'self'; connect-src 'self'; worker-src 'self' blob:; \
                   object-src 'none'; base-uri 'self'; form-action 'self'; \
                   frame-ancestors 'none'";

const NOT_BUILT: &str = "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">\
<title>radlab</title><body>\
<h1>radlab</h1><p>This radlab binary was built without its web UI. Build it with \
<code>npm ci &amp;&amp; npm run build</code> in <code>web/</code>, then build radlab again \
(<code>scripts/demo</code> does both).</p><p>The API and its documentation: \
<a href=\"/api/v1/docs\">/api/v1/docs</a>.</p></body></html>";

/// `GET /` and every path outside `/api`: a file of the UI, else 404 (the UI's routes live
/// in the URL's fragment, so the server never sees them).
pub async fn asset(uri: Uri, headers: HeaderMap) -> Response {
    let path = match uri.path() {
        "/" => "/index.html",
        p => p,
    };
    let Some(a) = ASSETS.iter().find(|a| a.path == path) else {
        if path == "/index.html" {
            return page(StatusCode::OK, NOT_BUILT);
        }
        return crate::error::ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such page: the web UI is at /, the API under /api/v1 (docs at /api/v1/docs)",
        )
        .into_response();
    };
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').any(|e| {
                let mut parts = e.split(';');
                let name = parts.next().unwrap_or("").trim();
                let refused = parts.any(|q| q.trim().replace(' ', "") == "q=0");
                (name == "gzip" || name == "*") && !refused
            })
        });
    let mut response = if gzip {
        let mut r = a.gzip.into_response();
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        a.body.into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    // Bundles are named by their content hash: never stale. The page itself is checked
    // every time, so a new binary's UI is picked up at the next load.
    let cache = if a.path.starts_with("/assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    security_headers(h);
    response
}

fn page(status: StatusCode, html: &'static str) -> Response {
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    security_headers(h);
    r
}

fn security_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}
