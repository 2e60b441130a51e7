//! Embeds the web UI (`web/dist`, built by `npm run build` in `web/`) into the binary, each
//! file with its content type and a gzip copy, so that `radlab serve` is the whole
//! deployment. Without a build of the UI, the server says how to make one at `/`.

use std::io::Write;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let dist = std::env::var_os("RADLAB_WEB_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../web/dist"));
    println!("cargo:rerun-if-env-changed=RADLAB_WEB_DIST");
    println!("cargo:rerun-if-changed={}", dist.display());
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        collect(&dist, &dist, &mut files);
    }
    files.sort();
    let mut code = String::from("pub static ASSETS: &[Asset] = &[\n");
    for (i, (route, path)) in files.iter().enumerate() {
        let raw = std::fs::read(path).expect("a file of web/dist is readable");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&raw).expect("gzip in memory");
        let gz = gz.finish().expect("gzip in memory");
        let gz_path = out.join(format!("web_asset_{i}.gz"));
        std::fs::write(&gz_path, &gz).expect("OUT_DIR is writable");
        code.push_str(&format!(
            "    Asset {{ path: {route:?}, content_type: {ct:?}, body: include_bytes!({raw:?}), gzip: include_bytes!({gz:?}) }},\n",
            ct = content_type(route),
            raw = path.display().to_string(),
            gz = gz_path.display().to_string(),
        ));
    }
    code.push_str("];\n");
    std::fs::write(out.join("web_assets.rs"), code).expect("OUT_DIR is writable");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(root, &p, files);
        } else if let Ok(rel) = p.strip_prefix(root) {
            let route = format!("/{}", rel.to_string_lossy().replace('\\', "/"));
            files.push((route, p));
        }
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
