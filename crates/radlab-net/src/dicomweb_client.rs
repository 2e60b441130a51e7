//! A DICOMweb client (PS3.18): QIDO-RS search for studies ([`Client::search_studies`]) and
//! WADO-RS retrieve of a whole study as Part 10 files ([`Client::retrieve_study`]), with
//! bearer or HTTP basic authentication, for `radlab pacs web-find` and `web-retrieve`.
//!
//! HTTP is reqwest (rustls, the TLS stack the workspace already builds for object_store);
//! the `multipart/related` answer of WADO-RS is parsed here, as it streams, by
//! [`MultipartParser`], each part written to a file of the caller's staging folder and never
//! held whole in memory.
//!
//! Secrets never reach an error message: a URL with a user or password in it is refused,
//! reqwest's errors are shown without their URL, and errors name the server by its root URL
//! (scheme, host, port, path) only.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde_json::Value;

/// How we prove who we are to the server.
#[derive(Clone, Default)]
pub enum Auth {
    #[default]
    None,
    /// `Authorization: Bearer TOKEN` (OAuth access tokens of Google, Azure, Keycloak).
    Bearer(String),
    /// HTTP basic authentication (Orthanc, dcm4chee behind a proxy).
    Basic { user: String, password: String },
}

impl std::fmt::Debug for Auth {
    // The secret never shows, not even in a debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Bearer(_) => f.write_str("Bearer(..)"),
            Auth::Basic { user, .. } => write!(f, "Basic {{ user: {user:?}, .. }}"),
        }
    }
}

/// Why a DICOMweb request did not succeed. Each names the server by its root URL.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The base URL is not usable.
    #[error("{0}")]
    Url(String),
    /// No connection, TLS failure, timeout, or the answer broke off.
    #[error("DICOMweb server {server}: {what} failed: {why}")]
    Transport {
        server: String,
        what: String,
        why: String,
    },
    /// 401 or 403: the credentials were refused (or are missing).
    #[error(
        "DICOMweb server {server} refused the credentials: HTTP {status} (check --user and RADLAB_DICOMWEB_PASSWORD, or the bearer token)"
    )]
    Auth { server: String, status: String },
    /// Any other unsuccessful status.
    #[error("DICOMweb server {server}: {what} answered HTTP {status}")]
    Status {
        server: String,
        what: String,
        status: String,
        code: u16,
    },
    /// The answer is not what PS3.18 says it should be.
    #[error("DICOMweb server {server}: {what}: {why}")]
    Answer {
        server: String,
        what: String,
        why: String,
    },
    /// A staging file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl WebError {
    /// Whether retrying with the same credentials is pointless.
    pub fn is_auth(&self) -> bool {
        matches!(self, WebError::Auth { .. })
    }

    /// The HTTP status of an unsuccessful answer, if that is what this is.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            WebError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Matching keys of a study-level search (as `radlab pacs find`).
#[derive(Debug, Clone, Default)]
pub struct StudyQuery {
    /// Study Date: `YYYYMMDD`, or a range `YYYYMMDD-YYYYMMDD`, `-YYYYMMDD`, `YYYYMMDD-`.
    pub date: Option<String>,
    /// Modalities in Study.
    pub modality: Option<String>,
    /// Body Part Examined: a series attribute, searched at series level first.
    pub body_part: Option<String>,
    pub accession: Option<String>,
    pub patient_id: Option<String>,
    /// Only these studies (empty: any).
    pub study_uids: Vec<String>,
    /// Ask for Patient ID and Patient Name too.
    pub include_patient: bool,
}

/// A study found by QIDO-RS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Study {
    pub study_instance_uid: String,
    pub study_date: String,
    pub modalities: Vec<String>,
    pub description: String,
    pub accession_number: String,
    /// Number of Study Related Series, when the server says.
    pub series: Option<u32>,
    /// Number of Study Related Instances, when the server says.
    pub instances: Option<u32>,
    pub patient_id: Option<String>,
    pub patient_name: Option<String>,
}

/// One object of a WADO-RS answer, as written to the staging folder.
#[derive(Debug, Clone)]
pub struct RetrievedPart {
    pub path: PathBuf,
    /// The part's Content-Type as sent.
    pub content_type: String,
    pub bytes: u64,
}

/// Results asked for per QIDO-RS request; pages follow with `offset` until one is empty.
const PAGE: usize = 1000;
/// At most this many Study Instance UIDs go into one QIDO-RS request as a list.
const UID_LIST_MAX: usize = 100;
/// The Accept header of a WADO-RS study retrieve: Part 10 objects as stored.
pub const ACCEPT_DICOM: &str = "multipart/related; type=\"application/dicom\"; transfer-syntax=*";

mod tag {
    pub const STUDY_DATE: &str = "00080020";
    pub const ACCESSION_NUMBER: &str = "00080050";
    pub const MODALITIES_IN_STUDY: &str = "00080061";
    pub const STUDY_DESCRIPTION: &str = "00081030";
    pub const PATIENT_NAME: &str = "00100010";
    pub const PATIENT_ID: &str = "00100020";
    pub const STUDY_INSTANCE_UID: &str = "0020000D";
    pub const STUDY_SERIES: &str = "00201206";
    pub const STUDY_INSTANCES: &str = "00201208";
}

/// A DICOMweb server: its root URL (the `.../dicom-web/` of Orthanc, `.../dcm4chee-arc/aets/
/// DCM4CHEE/rs/` of dcm4chee, `.../dicomStores/STORE/dicomWeb/` of Google) and credentials.
pub struct Client {
    http: reqwest::Client,
    root: Url,
    auth: Auth,
    server: String,
}

impl Client {
    /// A client of the server at `url`; `timeout` bounds connecting and each silence while
    /// reading (not a whole transfer). A URL carrying a user or password is refused (they
    /// would show in `ps` and in logs): use [`Auth`].
    pub fn new(url: &str, auth: Auth, timeout: Duration) -> Result<Client, WebError> {
        let mut root = Url::parse(url.trim()).map_err(|e| {
            WebError::Url(format!(
                "not a DICOMweb URL ({e}): give http(s)://HOST[:PORT]/PATH"
            ))
        })?;
        if root.scheme() != "http" && root.scheme() != "https" {
            return Err(WebError::Url(format!(
                "a DICOMweb URL is http:// or https://, not {}://",
                root.scheme()
            )));
        }
        if !root.username().is_empty() || root.password().is_some() {
            return Err(WebError::Url(
                "put no user or password in the DICOMweb URL: use --user NAME with \
                 RADLAB_DICOMWEB_PASSWORD, or a bearer token"
                    .into(),
            ));
        }
        if root.host_str().is_none() {
            return Err(WebError::Url("the DICOMweb URL has no host".into()));
        }
        root.set_query(None);
        root.set_fragment(None);
        if !root.path().ends_with('/') {
            let path = format!("{}/", root.path());
            root.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .read_timeout(timeout)
            .user_agent(concat!("radlab/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WebError::Url(format!("cannot set up HTTP: {}", chain(&e))))?;
        let server = root.as_str().to_string();
        Ok(Client {
            http,
            root,
            auth,
            server,
        })
    }

    /// The root URL, as errors name it.
    pub fn server(&self) -> &str {
        &self.server
    }

    fn url(&self, path: &str) -> Url {
        // Paths are relative to the root; each UID segment is percent-encoded by push.
        let mut url = self.root.clone();
        {
            let mut segments = url.path_segments_mut().expect("http URLs have paths");
            segments.pop_if_empty();
            for s in path.split('/') {
                segments.push(s);
            }
        }
        url
    }

    async fn get(&self, url: Url, accept: &str, what: &str) -> Result<reqwest::Response, WebError> {
        let mut request = self.http.get(url).header(reqwest::header::ACCEPT, accept);
        request = match &self.auth {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Basic { user, password } => request.basic_auth(user, Some(password)),
        };
        let response = request.send().await.map_err(|e| self.transport(what, e))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(WebError::Auth {
                server: self.server.clone(),
                status: status_text(status),
            });
        }
        if !status.is_success() {
            return Err(WebError::Status {
                server: self.server.clone(),
                what: what.into(),
                status: status_text(status),
                code: status.as_u16(),
            });
        }
        Ok(response)
    }

    fn transport(&self, what: &str, e: reqwest::Error) -> WebError {
        WebError::Transport {
            server: self.server.clone(),
            what: what.into(),
            why: chain(&e.without_url()),
        }
    }

    fn answer(&self, what: &str, why: impl Into<String>) -> WebError {
        WebError::Answer {
            server: self.server.clone(),
            what: what.into(),
            why: why.into(),
        }
    }

    /// One QIDO-RS search, every page: `resource` (`studies`, `series`) with `params`.
    async fn qido(
        &self,
        resource: &str,
        params: &[(&str, String)],
    ) -> Result<Vec<Value>, WebError> {
        let what = format!("QIDO-RS search of {resource}");
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut offset = 0usize;
        loop {
            let mut url = self.url(resource);
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
                q.append_pair("limit", &PAGE.to_string());
                if offset > 0 {
                    q.append_pair("offset", &offset.to_string());
                }
            }
            let response = self.get(url, "application/dicom+json", &what).await?;
            // 204 No Content: no (more) match.
            if response.status() == StatusCode::NO_CONTENT {
                break;
            }
            let body = response
                .bytes()
                .await
                .map_err(|e| self.transport(&what, e))?;
            if body.iter().all(|b| b.is_ascii_whitespace()) {
                break;
            }
            let page: Vec<Value> = serde_json::from_slice(&body)
                .map_err(|e| self.answer(&what, format!("not a DICOM JSON list: {e}")))?;
            offset += page.len();
            let before = out.len();
            // A server that ignores `offset` repeats its first page: nothing new ends it, as
            // does an empty page (servers may cap a page below `limit`, so a short page
            // does not).
            out.extend(page.into_iter().filter(|v| seen.insert(v.to_string())));
            if out.len() == before {
                break;
            }
        }
        Ok(out)
    }

    /// Studies matching `q`, sorted by date then UID. Body Part Examined is a series
    /// attribute: a series-level search finds the studies with such a series first.
    pub async fn search_studies(&self, q: &StudyQuery) -> Result<Vec<Study>, WebError> {
        let mut only: Option<std::collections::BTreeSet<String>> = if q.study_uids.is_empty() {
            None
        } else {
            Some(q.study_uids.iter().cloned().collect())
        };
        if let Some(body_part) = &q.body_part {
            let mut params = vec![
                ("BodyPartExamined", body_part.clone()),
                ("includefield", tag::STUDY_INSTANCE_UID.to_string()),
            ];
            if let Some(m) = &q.modality {
                params.push(("Modality", m.clone()));
            }
            let series = self.qido("series", &params).await?;
            let found: std::collections::BTreeSet<String> = series
                .iter()
                .map(|s| string(s, tag::STUDY_INSTANCE_UID))
                .filter(|u| !u.is_empty())
                .collect();
            only = Some(match only {
                Some(given) => given.intersection(&found).cloned().collect(),
                None => found,
            });
        }
        if only.as_ref().is_some_and(|o| o.is_empty()) {
            return Ok(Vec::new());
        }
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(d) = &q.date {
            params.push(("StudyDate", d.clone()));
        }
        if let Some(m) = &q.modality {
            params.push(("ModalitiesInStudy", m.clone()));
        }
        if let Some(a) = &q.accession {
            params.push(("AccessionNumber", a.clone()));
        }
        if let Some(p) = &q.patient_id {
            params.push(("PatientID", p.clone()));
        }
        if let Some(o) = only.as_ref().filter(|o| o.len() <= UID_LIST_MAX) {
            params.push((
                "StudyInstanceUID",
                o.iter().cloned().collect::<Vec<_>>().join(","),
            ));
        }
        let mut fields = vec![
            tag::STUDY_DATE,
            tag::ACCESSION_NUMBER,
            tag::MODALITIES_IN_STUDY,
            tag::STUDY_DESCRIPTION,
            tag::STUDY_SERIES,
            tag::STUDY_INSTANCES,
        ];
        if q.include_patient {
            fields.extend([tag::PATIENT_ID, tag::PATIENT_NAME]);
        }
        for f in fields {
            params.push(("includefield", f.to_string()));
        }
        let found = self.qido("studies", &params).await?;
        let mut seen = std::collections::BTreeSet::new();
        let mut studies: Vec<Study> = found
            .iter()
            .map(|v| Study {
                study_instance_uid: string(v, tag::STUDY_INSTANCE_UID),
                study_date: string(v, tag::STUDY_DATE),
                modalities: strings(v, tag::MODALITIES_IN_STUDY),
                description: string(v, tag::STUDY_DESCRIPTION),
                accession_number: string(v, tag::ACCESSION_NUMBER),
                series: number(v, tag::STUDY_SERIES),
                instances: number(v, tag::STUDY_INSTANCES),
                patient_id: q.include_patient.then(|| string(v, tag::PATIENT_ID)),
                patient_name: q.include_patient.then(|| person_name(v, tag::PATIENT_NAME)),
            })
            // A server that ignores a key (or a UID list too long to send) is filtered here.
            .filter(|s| !s.study_instance_uid.is_empty())
            .filter(|s| {
                only.as_ref()
                    .is_none_or(|o| o.contains(&s.study_instance_uid))
            })
            .filter(|s| seen.insert(s.study_instance_uid.clone()))
            .collect();
        studies.sort_by(|a, b| {
            (&a.study_date, &a.study_instance_uid).cmp(&(&b.study_date, &b.study_instance_uid))
        });
        Ok(studies)
    }

    /// The number of instances the server says `study` has (QIDO-RS), `None` when it does
    /// not know the study or does not say.
    pub async fn study_instances(&self, study: &str) -> Result<Option<u32>, WebError> {
        let q = StudyQuery {
            study_uids: vec![study.to_string()],
            ..StudyQuery::default()
        };
        Ok(self
            .search_studies(&q)
            .await?
            .first()
            .and_then(|s| s.instances))
    }

    /// WADO-RS retrieve of a whole study (`GET {root}/studies/{uid}`, Accept
    /// [`ACCEPT_DICOM`]): each part of the `multipart/related` answer written, as it
    /// streams, to `dir/part-N.dcm` (Part 10, in the transfer syntax the server stores).
    /// On an error the files written so far stay for the caller to remove.
    pub async fn retrieve_study(
        &self,
        study: &str,
        dir: &Path,
    ) -> Result<Vec<RetrievedPart>, WebError> {
        let what = "WADO-RS retrieve of a study".to_string();
        let url = self.url(&format!("studies/{study}"));
        let mut response = self.get(url, ACCEPT_DICOM, &what).await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(Vec::new());
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let boundary = multipart_boundary(&content_type).map_err(|why| self.answer(&what, why))?;
        crate::scp::make_staging_dir(dir).map_err(|source| WebError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut sink = PartFiles {
            dir: dir.to_path_buf(),
            parts: Vec::new(),
            file: None,
        };
        let mut parser = MultipartParser::new(&boundary);
        loop {
            let chunk = response
                .chunk()
                .await
                .map_err(|e| self.transport(&what, e))?;
            let Some(chunk) = chunk else { break };
            parser
                .feed(&chunk, &mut |event| sink.event(event))
                .map_err(|e| match e {
                    SinkError::Parse(why) => self.answer(&what, why),
                    SinkError::Io(path, source) => WebError::Io { path, source },
                })?;
        }
        if !parser.is_done() {
            return Err(self.answer(
                &what,
                "the multipart answer ended before its closing boundary",
            ));
        }
        Ok(sink.parts)
    }
}

fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(r) => format!("{} {r}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// An error and its causes, one after the other.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn values<'a>(v: &'a Value, tag: &str) -> &'a [Value] {
    // Keys are upper-case hex by the standard; some servers write them in lower case.
    v.get(tag)
        .or_else(|| v.get(tag.to_ascii_lowercase()))
        .and_then(|e| e.get("Value"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn string(v: &Value, tag: &str) -> String {
    values(v, tag).first().and_then(scalar).unwrap_or_default()
}

fn strings(v: &Value, tag: &str) -> Vec<String> {
    values(v, tag)
        .iter()
        .filter_map(scalar)
        .flat_map(|s| {
            s.split('\\')
                .map(|m| m.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// IS and US values come as JSON numbers or, from some servers, as strings.
fn number(v: &Value, tag: &str) -> Option<u32> {
    values(v, tag)
        .first()
        .and_then(|n| {
            n.as_u64()
                .or_else(|| n.as_str().and_then(|s| s.trim().parse().ok()))
        })
        .and_then(|n| u32::try_from(n).ok())
}

fn person_name(v: &Value, tag: &str) -> String {
    values(v, tag)
        .first()
        .map(|n| match n {
            Value::Object(o) => o
                .get("Alphabetic")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            other => scalar(other).unwrap_or_default(),
        })
        .unwrap_or_default()
}

/// The boundary of a `multipart/related` Content-Type (RFC 2046, RFC 2387).
pub fn multipart_boundary(content_type: &str) -> Result<String, String> {
    let mut params = split_params(content_type);
    let media = if params.is_empty() {
        String::new()
    } else {
        params.remove(0).1
    };
    if !media.eq_ignore_ascii_case("multipart/related") {
        return Err(format!(
            "the answer is {}, not multipart/related",
            if media.is_empty() {
                "without a Content-Type"
            } else {
                media.as_str()
            }
        ));
    }
    params
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v)
        .filter(|b| !b.is_empty() && b.len() <= 200)
        .ok_or_else(|| "multipart/related without a usable boundary".to_string())
}

/// `type/subtype; a=b; c="d;e"` as ("", media type) then (name, value) pairs, quotes
/// removed.
fn split_params(header: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut escaped = false;
    let mut pieces = Vec::new();
    for c in header.chars() {
        if escaped {
            current.push(c);
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == ';' && !quoted {
            pieces.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    pieces.push(current);
    for (i, p) in pieces.into_iter().enumerate() {
        if i == 0 {
            out.push((String::new(), p.trim().to_string()));
        } else if let Some((k, v)) = p.split_once('=') {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// What the multipart parser finds, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum PartEvent<'a> {
    /// A part begins; its headers (names in lower case).
    Start(&'a [(String, String)]),
    /// Some of its body.
    Data(&'a [u8]),
    /// It ended.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Preamble,
    AfterBoundary,
    Headers,
    Body,
    Done,
}

/// The largest header block of one part.
const MAX_HEADERS: usize = 64 * 1024;

/// A streaming `multipart/related` parser: fed chunks as they arrive, it hands each part's
/// headers and body to a callback, holding back only as many bytes as a boundary is long.
pub struct MultipartParser {
    /// `\r\n--BOUNDARY`
    delimiter: Vec<u8>,
    buf: Vec<u8>,
    state: State,
    headers: Vec<(String, String)>,
}

impl MultipartParser {
    pub fn new(boundary: &str) -> MultipartParser {
        MultipartParser {
            delimiter: format!("\r\n--{boundary}").into_bytes(),
            // A body may start with the delimiter without the CRLF before it.
            buf: b"\r\n".to_vec(),
            state: State::Preamble,
            headers: Vec::new(),
        }
    }

    /// Whether the closing boundary was seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Parse `chunk`, calling `on` for what it completes.
    pub fn feed<E: From<String>>(
        &mut self,
        chunk: &[u8],
        on: &mut dyn FnMut(PartEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.state == State::Done {
            return Ok(()); // the epilogue
        }
        self.buf.extend_from_slice(chunk);
        let mut start = 0usize;
        let result = loop {
            let rest = &self.buf[start..];
            match self.state {
                State::Done => break Ok(()),
                State::Preamble => match memchr::memmem::find(rest, &self.delimiter) {
                    Some(at) => {
                        start += at + self.delimiter.len();
                        self.state = State::AfterBoundary;
                    }
                    None => {
                        start += rest.len().saturating_sub(self.delimiter.len() - 1);
                        break Ok(());
                    }
                },
                State::AfterBoundary => {
                    if rest.len() < 2 {
                        break Ok(());
                    }
                    if rest.starts_with(b"--") {
                        self.state = State::Done;
                        start = self.buf.len();
                        break Ok(());
                    }
                    // Transport padding (spaces, tabs) may follow the boundary.
                    match memchr::memmem::find(rest, b"\r\n") {
                        Some(at) if rest[..at].iter().all(|b| *b == b' ' || *b == b'\t') => {
                            start += at + 2;
                            self.state = State::Headers;
                        }
                        Some(_) => {
                            break Err(E::from("a multipart boundary followed by text".into()));
                        }
                        None if rest.len() > 1024 => {
                            break Err(E::from("a multipart boundary line without its end".into()));
                        }
                        None => break Ok(()),
                    }
                }
                State::Headers => {
                    let end = if rest.starts_with(b"\r\n") {
                        Some(0)
                    } else {
                        memchr::memmem::find(rest, b"\r\n\r\n").map(|at| at + 2)
                    };
                    let Some(end) = end else {
                        if rest.len() > MAX_HEADERS {
                            break Err(E::from("the headers of a part are too long".into()));
                        }
                        break Ok(());
                    };
                    self.headers = String::from_utf8_lossy(&rest[..end])
                        .split("\r\n")
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                        .collect();
                    start += end + 2;
                    self.state = State::Body;
                    if let Err(e) = on(PartEvent::Start(&self.headers)) {
                        break Err(e);
                    }
                }
                State::Body => match memchr::memmem::find(rest, &self.delimiter) {
                    Some(at) => {
                        if at > 0
                            && let Err(e) = on(PartEvent::Data(&rest[..at]))
                        {
                            break Err(e);
                        }
                        if let Err(e) = on(PartEvent::End) {
                            break Err(e);
                        }
                        start += at + self.delimiter.len();
                        self.state = State::AfterBoundary;
                    }
                    None => {
                        // Hold back what could be the start of a delimiter.
                        let safe = rest.len().saturating_sub(self.delimiter.len() - 1);
                        if safe > 0
                            && let Err(e) = on(PartEvent::Data(&rest[..safe]))
                        {
                            break Err(e);
                        }
                        start += safe;
                        break Ok(());
                    }
                },
            }
        };
        self.buf.drain(..start.min(self.buf.len()));
        result
    }
}

/// Why writing the parts stopped.
enum SinkError {
    Parse(String),
    Io(PathBuf, std::io::Error),
}

impl From<String> for SinkError {
    fn from(why: String) -> SinkError {
        SinkError::Parse(why)
    }
}

/// Writes each part to `dir/part-N.dcm`.
struct PartFiles {
    dir: PathBuf,
    parts: Vec<RetrievedPart>,
    file: Option<std::io::BufWriter<std::fs::File>>,
}

impl PartFiles {
    fn event(&mut self, event: PartEvent<'_>) -> Result<(), SinkError> {
        match event {
            PartEvent::Start(headers) => {
                let content_type = headers
                    .iter()
                    .find(|(k, _)| k == "content-type")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                let media = split_params(&content_type)
                    .first()
                    .map(|(_, m)| m.to_ascii_lowercase())
                    .unwrap_or_default();
                if !media.is_empty() && media != "application/dicom" {
                    return Err(SinkError::Parse(format!(
                        "part {} is {media}, not application/dicom",
                        self.parts.len() + 1
                    )));
                }
                let path = self.dir.join(format!("part-{}.dcm", self.parts.len() + 1));
                let file =
                    std::fs::File::create(&path).map_err(|e| SinkError::Io(path.clone(), e))?;
                self.file = Some(std::io::BufWriter::with_capacity(1 << 20, file));
                self.parts.push(RetrievedPart {
                    path,
                    content_type,
                    bytes: 0,
                });
            }
            PartEvent::Data(data) => {
                let (Some(file), Some(part)) = (self.file.as_mut(), self.parts.last_mut()) else {
                    return Err(SinkError::Parse("part data outside a part".into()));
                };
                file.write_all(data)
                    .map_err(|e| SinkError::Io(part.path.clone(), e))?;
                part.bytes += data.len() as u64;
            }
            PartEvent::End => {
                if let (Some(file), Some(part)) = (self.file.take(), self.parts.last()) {
                    let file = file
                        .into_inner()
                        .map_err(|e| SinkError::Io(part.path.clone(), e.into_error()))?;
                    file.sync_all()
                        .map_err(|e| SinkError::Io(part.path.clone(), e))?;
                }
            }
        }
        Ok(())
    }
}

/// The SOP Instance UID of a Part 10 file's meta group (Media Storage SOP Instance UID),
/// read from its first bytes; `None` for anything else.
pub fn part10_sop_instance_uid(path: &Path) -> Option<String> {
    use std::io::Read as _;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(64 * 1024)
        .read_to_end(&mut head)
        .ok()?;
    if head.len() < 132 || &head[128..132] != b"DICM" {
        return None;
    }
    let mut at = 132usize;
    while at + 8 <= head.len() {
        let group = u16::from_le_bytes([head[at], head[at + 1]]);
        let element = u16::from_le_bytes([head[at + 2], head[at + 3]]);
        if group != 0x0002 {
            return None;
        }
        let vr = &head[at + 4..at + 6];
        let long = matches!(
            vr,
            b"OB"
                | b"OD"
                | b"OF"
                | b"OL"
                | b"OV"
                | b"OW"
                | b"SQ"
                | b"SV"
                | b"UC"
                | b"UN"
                | b"UR"
                | b"UT"
                | b"UV"
        );
        let (len, value_at) = if long {
            if at + 12 > head.len() {
                return None;
            }
            let len =
                u32::from_le_bytes([head[at + 8], head[at + 9], head[at + 10], head[at + 11]]);
            (len as usize, at + 12)
        } else {
            (
                u16::from_le_bytes([head[at + 6], head[at + 7]]) as usize,
                at + 8,
            )
        };
        let end = value_at.checked_add(len)?;
        if end > head.len() {
            return None;
        }
        if element == 0x0003 {
            let uid = String::from_utf8_lossy(&head[value_at..end])
                .trim_end_matches(['\0', ' '])
                .to_string();
            return (!uid.is_empty()).then_some(uid);
        }
        at = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &[u8], boundary: &str, chunk: usize) -> (Vec<(String, Vec<u8>)>, bool) {
        let mut parser = MultipartParser::new(boundary);
        let mut parts: Vec<(String, Vec<u8>)> = Vec::new();
        for piece in body.chunks(chunk.max(1)) {
            parser
                .feed::<String>(piece, &mut |e| {
                    match e {
                        PartEvent::Start(h) => parts.push((
                            h.iter()
                                .find(|(k, _)| k == "content-type")
                                .map(|(_, v)| v.clone())
                                .unwrap_or_default(),
                            Vec::new(),
                        )),
                        PartEvent::Data(d) => parts.last_mut().unwrap().1.extend_from_slice(d),
                        PartEvent::End => {}
                    }
                    Ok(())
                })
                .unwrap();
        }
        (parts, parser.is_done())
    }

    #[test]
    fn multipart_parts_come_out_whole_whatever_the_chunking() {
        // Bodies holding CRLF, dashes and a near-boundary, the first delimiter without a
        // CRLF before it (as Orthanc sends), then one with a preamble and padding.
        let a: &[u8] = b"\x00\x01\r\n--b\r\n--boun\r\nx--bound\r\n";
        let b: &[u8] = b"second\r\n-";
        let mut body = Vec::new();
        body.extend_from_slice(b"--bound\r\nContent-Type: application/dicom\r\n\r\n");
        body.extend_from_slice(a);
        body.extend_from_slice(b"\r\n--bound\r\nContent-Type: application/dicom; transfer-syntax=1.2.840.10008.1.2.1\r\nContent-Length: 9\r\n\r\n");
        body.extend_from_slice(b);
        body.extend_from_slice(b"\r\n--bound--\r\nepilogue");
        for chunk in [1, 2, 3, 7, 16, 1000] {
            let (parts, done) = parse(&body, "bound", chunk);
            assert!(done, "chunk {chunk}");
            assert_eq!(parts.len(), 2, "chunk {chunk}");
            assert_eq!(parts[0].0, "application/dicom");
            assert_eq!(parts[0].1, a, "chunk {chunk}");
            assert_eq!(parts[1].1, b, "chunk {chunk}");
        }
        let mut padded = b"preamble\r\n--bound  \r\n\r\nx\r\n--bound--".to_vec();
        let (parts, done) = parse(&padded, "bound", 4);
        assert!(done);
        assert_eq!(parts, vec![(String::new(), b"x".to_vec())]);
        // Cut before the closing boundary: not done.
        padded.truncate(padded.len() - 2);
        assert!(!parse(&padded, "bound", 5).1);
    }

    #[test]
    fn multipart_garbage_is_an_error_not_a_panic() {
        let mut parser = MultipartParser::new("b");
        let r = parser.feed::<String>(b"--b garbage\r\n", &mut |_| Ok(()));
        assert!(r.is_err());
        let mut parser = MultipartParser::new("b");
        let big = vec![b'x'; MAX_HEADERS + 10];
        let mut body = b"--b\r\n".to_vec();
        body.extend_from_slice(&big);
        assert!(parser.feed::<String>(&body, &mut |_| Ok(())).is_err());
    }

    #[test]
    fn boundary_from_content_type() {
        assert_eq!(
            multipart_boundary(
                "multipart/related; type=\"application/dicom\"; boundary=7335c5d9-6d2d"
            )
            .unwrap(),
            "7335c5d9-6d2d"
        );
        assert_eq!(
            multipart_boundary("Multipart/Related; boundary=\"a;b\"; type=\"application/dicom\"")
                .unwrap(),
            "a;b"
        );
        assert!(multipart_boundary("application/json").is_err());
        assert!(multipart_boundary("multipart/related; type=x").is_err());
    }

    #[test]
    fn dicom_json_values() {
        let v: Value = serde_json::json!({
            "0020000D": {"vr": "UI", "Value": ["1.2.3"]},
            "00080061": {"vr": "CS", "Value": ["CR", "DX"]},
            "00201208": {"vr": "IS", "Value": [3]},
            "00201206": {"vr": "IS", "Value": ["2"]},
            "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]},
            "00080050": {"vr": "SH"},
        });
        assert_eq!(string(&v, tag::STUDY_INSTANCE_UID), "1.2.3");
        assert_eq!(strings(&v, tag::MODALITIES_IN_STUDY), ["CR", "DX"]);
        assert_eq!(number(&v, tag::STUDY_INSTANCES), Some(3));
        assert_eq!(number(&v, tag::STUDY_SERIES), Some(2));
        assert_eq!(person_name(&v, tag::PATIENT_NAME), "Doe^Jane");
        assert_eq!(string(&v, tag::ACCESSION_NUMBER), "");
    }

    #[test]
    fn urls_with_credentials_are_refused_and_never_echoed() {
        let e = Client::new(
            "https://alice:s3cret@pacs.example.org/dicom-web",
            Auth::None,
            Duration::from_secs(5),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(!e.contains("s3cret") && !e.contains("alice"), "{e}");
        let c = Client::new(
            "https://pacs.example.org/dicom-web?x=1",
            Auth::None,
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(c.server(), "https://pacs.example.org/dicom-web/");
        assert_eq!(
            c.url("studies/1.2.3").as_str(),
            "https://pacs.example.org/dicom-web/studies/1.2.3"
        );
        let debug = format!(
            "{:?}",
            Auth::Basic {
                user: "u".into(),
                password: "pw-secret".into()
            }
        );
        assert!(!debug.contains("pw-secret"));
        assert!(Client::new("ftp://x/", Auth::None, Duration::from_secs(1)).is_err());
    }
}
