//! Test helpers shared by radlab's crates (dev-dependency only).
//!
//! - [`corpus`]: the shared test corpus (`../shared/data` beside the repository, or
//!   `RADLAB_CORPUS`) and its `manifest.csv`. Tests that need it call [`corpus`] and return
//!   early, printing a loud SKIPPED line, when it is absent.
//! - [`reference_python`]: the Python of the virtualenv with the reference decoders
//!   (pydicom, pylibjpeg, numpy), made by `scripts/test`, or `RADLAB_REF_PYTHON`.
//! - [`has_tool`]: whether a reference command-line tool (dcmtk) is on PATH.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/radlab-testkit sits two levels below the root")
        .to_path_buf()
}

/// Print a skip notice that stands out in test output.
pub fn skip(test: &str, why: &str) {
    eprintln!("\n*** SKIPPED {test}: {why} ***\n");
}

/// One row of the corpus manifest.
#[derive(Debug, Clone)]
pub struct ManifestRow {
    pub path: String,
    pub expected: String,
    pub decode_pydicom: String,
    pub transfer_syntax: String,
    pub photometric: String,
    pub license: String,
    pub fields: BTreeMap<String, String>,
}

/// The shared corpus.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub root: PathBuf,
    pub manifest: Vec<ManifestRow>,
}

impl Corpus {
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Manifest rows of DICOM files (`dicom/...`).
    pub fn dicom_rows(&self) -> Vec<&ManifestRow> {
        self.manifest
            .iter()
            .filter(|r| r.path.starts_with("dicom/"))
            .collect()
    }

    pub fn row(&self, relative: &str) -> Option<&ManifestRow> {
        self.manifest.iter().find(|r| r.path == relative)
    }
}

/// The corpus, or `None` (after a loud skip notice naming `test`) when it is absent.
pub fn corpus(test: &str) -> Option<Corpus> {
    let root = std::env::var_os("RADLAB_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/data"));
    let manifest_path = root.join("manifest.csv");
    if !manifest_path.is_file() {
        skip(
            test,
            &format!(
                "the shared corpus is absent ({} not found; set RADLAB_CORPUS)",
                manifest_path.display()
            ),
        );
        return None;
    }
    let mut reader = csv::Reader::from_path(&manifest_path).expect("readable manifest.csv");
    let headers = reader.headers().expect("manifest header").clone();
    let manifest = reader
        .records()
        .map(|r| {
            let r = r.expect("manifest row");
            let fields: BTreeMap<String, String> = headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect();
            let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
            ManifestRow {
                path: get("path"),
                expected: get("expected"),
                decode_pydicom: get("decode_pydicom"),
                transfer_syntax: get("transfer_syntax"),
                photometric: get("photometric"),
                license: get("license"),
                fields,
            }
        })
        .collect();
    Some(Corpus { root, manifest })
}

/// The reference Python (with pydicom, pylibjpeg, numpy), or `None` after a skip notice.
pub fn reference_python(test: &str) -> Option<PathBuf> {
    let candidate = std::env::var_os("RADLAB_REF_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    let ok = Command::new(&candidate)
        .args(["-c", "import pydicom, numpy, pylibjpeg"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        skip(
            test,
            &format!(
                "no reference Python with pydicom/pylibjpeg at {} (run scripts/test, or set \
                 RADLAB_REF_PYTHON)",
                candidate.display()
            ),
        );
        return None;
    }
    Some(candidate)
}

/// Whether `tool` (e.g. `dcmj2pnm`) is on PATH; prints a skip notice naming `test` when not.
pub fn has_tool(test: &str, tool: &str) -> bool {
    let found = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            let candidate = dir.join(tool);
            candidate.is_file()
                && std::fs::metadata(&candidate)
                    .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
                    .unwrap_or(false)
        })
    });
    if !found {
        skip(
            test,
            &format!(
                "{tool} is not installed (scripts/setup-system dcmtk dicom3tools installs it)"
            ),
        );
    }
    found
}

/// Reference decode of `files` by `tests/reference/decode_reference.py`: per file, the
/// samples of all frames (or the reference's error) and its description.
pub struct ReferenceDecode {
    pub info: serde_json::Value,
    pub samples: Option<Vec<i64>>,
}

pub fn reference_decode(python: &Path, files: &[PathBuf]) -> Vec<ReferenceDecode> {
    let out = tempfile::tempdir().expect("temp dir");
    let status = Command::new(python)
        .arg(repo_root().join("tests/reference/decode_reference.py"))
        .arg(out.path())
        .args(files)
        .status()
        .expect("run the reference decoder");
    assert!(status.success(), "the reference decoder script failed");
    (0..files.len())
        .map(|i| {
            let info: serde_json::Value = serde_json::from_slice(
                &std::fs::read(out.path().join(format!("{i}.json"))).expect("reference json"),
            )
            .expect("valid json");
            let samples = std::fs::read(out.path().join(format!("{i}.bin")))
                .ok()
                .map(|b| {
                    b.chunks_exact(8)
                        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                        .collect()
                });
            ReferenceDecode { info, samples }
        })
        .collect()
}

/// The reference Python when it also has `modules` (comma-separated, as in an `import`
/// line); otherwise a loud skip naming what is missing.
pub fn reference_python_with(test: &str, modules: &str) -> Option<PathBuf> {
    let python = reference_python(test)?;
    let ok = Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        skip(
            test,
            &format!("the reference Python lacks {modules} (run scripts/test)"),
        );
        return None;
    }
    Some(python)
}

/// Run `tests/reference/<script>` with `query` as JSON on its standard input and return the
/// JSON it prints (the reference implementations of the metric tests).
pub fn run_reference(python: &Path, script: &str, query: &serde_json::Value) -> serde_json::Value {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(python)
        .arg(repo_root().join("tests/reference").join(script))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the reference Python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(query.to_string().as_bytes())
        .expect("write the query");
    let out = child.wait_with_output().expect("reference output");
    assert!(out.status.success(), "tests/reference/{script} failed");
    serde_json::from_slice(&out.stdout).expect("the reference prints JSON")
}

/// A PostgreSQL database made for one test (with `psql`) and dropped when this is dropped.
pub struct PostgresDatabase {
    admin: String,
    name: String,
    /// The URL of the new database.
    pub url: String,
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .arg(&self.admin)
            .arg("-qc")
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

/// A fresh PostgreSQL database for `test` when `RADLAB_TEST_POSTGRES` names a server
/// (scripts/test sets it); else a loud skip and `None`.
pub fn postgres_database(test: &str) -> Option<PostgresDatabase> {
    let admin = match std::env::var("RADLAB_TEST_POSTGRES") {
        Ok(a) if !a.is_empty() => a,
        _ => {
            skip(
                &format!("{test} on PostgreSQL"),
                "RADLAB_TEST_POSTGRES is not set (scripts/test sets it when a server is reachable)",
            );
            return None;
        }
    };
    let name = format!(
        "radlab_test_{}_{}",
        std::process::id(),
        test.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_lowercase()
    );
    let out = Command::new("psql")
        .arg(&admin)
        .arg("-qc")
        .arg(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .arg("-qc")
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .unwrap_or_else(|e| panic!("psql: {e}"));
    assert!(
        out.status.success(),
        "RADLAB_TEST_POSTGRES={admin}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (base, _) = admin
        .rsplit_once('/')
        .expect("RADLAB_TEST_POSTGRES is a postgres:// URL with a database");
    Some(PostgresDatabase {
        url: format!("{base}/{name}"),
        admin,
        name,
    })
}

/// An HTTP/1.1 answer.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// One HTTP/1.1 request to `addr` (`Connection: close`; the answer read to its end), for
/// tests of the server without an HTTP client dependency. Panics when no answer comes.
pub fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    try_http(addr, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path}: no answer from {addr}: {e}"))
}

/// [`http`], or why no answer came (the server is gone, the answer is cut short).
pub fn try_http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<HttpResponse, String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .and_then(|_| stream.write_all(body))
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no HTTP header block")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or("no status line")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
    out
}
