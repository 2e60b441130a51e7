//! DICOMweb (PS3.18) for a project, under `/api/v1/projects/{project}/dicomweb`: the root a
//! viewer (OHIF, the web UI) or any DICOMweb client is given as its QIDO-RS, WADO-RS and
//! STOW-RS root.
//!
//! - QIDO-RS: `GET /studies`, `/series`, `/instances`, `/studies/{study}/series`,
//!   `/studies/{study}/instances`, `/studies/{study}/series/{series}/instances`; matching on
//!   the usual keys (UIDs, PatientID, PatientName with `*`/`?` and without regard to case,
//!   AccessionNumber, StudyDate with ranges, ModalitiesInStudy / Modality, descriptions,
//!   numbers), `limit` and `offset`; `application/dicom+json`.
//! - WADO-RS: instances (`multipart/related; type="application/dicom"`, or a single
//!   `application/dicom` body for one instance), `metadata` at study, series and instance
//!   level, `frames/{list}` as stored (`transfer-syntax=*` or the file's own) or decoded to
//!   Explicit VR Little Endian (the default), `bulkdata/{tag}`, `rendered` (JPEG, PNG or
//!   WebP, with `window`, `viewport`, `quality`) and `thumbnail`.
//! - STOW-RS: `POST /studies` (and `/studies/{study}`) with
//!   `multipart/related; type="application/dicom"`; owners only; into `?split=` (default
//!   unassigned); answers the standard Referenced / Failed SOP Sequences (200, 202 or 409).
//!
//! What a caller sees: owners, reviewers and site administrators the whole project; an
//! annotator only the images they have a task on. Everything retrieved from an instance is
//! immutable (an instance's object never changes once catalogued), so those answers carry a
//! strong ETag, `Cache-Control: private, max-age=31536000, immutable`, answer
//! `If-None-Match` with 304 and a single `Range` with 206. Decoded frames, rendered images and
//! metadata are kept in a memory cache bounded in bytes.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use radlab_dicom::DicomFile;
use radlab_store::{InstanceMatch, ProjectRole, QidoQuery, SiteRole, Visibility};
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::projects::access;

/// Instances answered by one WADO-RS request at most (a study of a few thousand images is
/// fine; a client wanting more pages through QIDO-RS).
const MAX_INSTANCES: i64 = 10_000;

const IMMUTABLE: &str = "private, max-age=31536000, immutable";

// ---------------------------------------------------------------------------------------
// The memory cache
// ---------------------------------------------------------------------------------------

/// Answers kept in memory, least recently used first out, bounded in bytes.
pub struct ByteCache {
    budget: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    entries: HashMap<String, (String, Bytes, u64)>,
    bytes: usize,
    tick: u64,
}

impl ByteCache {
    pub fn new(budget_bytes: usize) -> Self {
        ByteCache {
            budget: budget_bytes,
            inner: Mutex::new(CacheInner::default()),
        }
    }

    fn get(&self, key: &str) -> Option<(String, Bytes)> {
        let mut inner = self.inner.lock().ok()?;
        inner.tick += 1;
        let tick = inner.tick;
        let entry = inner.entries.get_mut(key)?;
        entry.2 = tick;
        Some((entry.0.clone(), entry.1.clone()))
    }

    fn put(&self, key: String, content_type: String, body: Bytes) {
        if body.len() > self.budget / 4 {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.tick += 1;
        let tick = inner.tick;
        let size = body.len() + key.len();
        if let Some(old) = inner
            .entries
            .insert(key.clone(), (content_type, body, tick))
        {
            inner.bytes -= old.1.len() + key.len();
        }
        inner.bytes += size;
        while inner.bytes > self.budget {
            let Some(oldest) = inner
                .entries
                .iter()
                .min_by_key(|(_, v)| v.2)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(v) = inner.entries.remove(&oldest) {
                inner.bytes -= v.1.len() + oldest.len();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Access, lookups, responses
// ---------------------------------------------------------------------------------------

/// What `caller` may see of `project`.
async fn visibility(
    state: &AppState,
    caller: &Caller,
    project: &str,
) -> Result<Visibility, ApiError> {
    let roles = access(state, caller, project).await?;
    if caller.user.site_role == SiteRole::Admin
        || roles.contains(&ProjectRole::Owner)
        || roles.contains(&ProjectRole::Reviewer)
    {
        Ok(Visibility::Project)
    } else {
        Ok(Visibility::TasksOf(caller.user.user_id.clone()))
    }
}

/// The server's blob store; 503 when it has none.
pub(crate) fn blobs(state: &AppState) -> Result<radlab_store::BlobStore, ApiError> {
    state
        .uploads
        .as_ref()
        .map(|u| u.blobs.clone())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_store",
                "this server has no blob store to read objects from",
            )
        })
}

/// The instances a WADO-RS path names, or 404 when there are none the caller may see.
async fn instances_of(
    state: &AppState,
    caller: &Caller,
    project: &str,
    study: &str,
    series: Option<&str>,
    instance: Option<&str>,
) -> Result<Vec<InstanceMatch>, ApiError> {
    let seen = visibility(state, caller, project).await?;
    for uid in std::iter::once(study).chain(series).chain(instance) {
        check_uid(uid)?;
    }
    let q = QidoQuery {
        study_instance_uid: Some(study.to_string()),
        series_instance_uid: series.map(str::to_string),
        sop_instance_uid: instance.map(str::to_string),
        limit: MAX_INSTANCES,
        ..Default::default()
    };
    let found = state.catalog.qido_instances(project, &seen, &q).await?;
    if found.is_empty() {
        let what = match (series, instance) {
            (_, Some(i)) => format!("instance {i}"),
            (Some(s), None) => format!("series {s}"),
            (None, None) => format!("study {study}"),
        };
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("project {project} has no {what} that you can see"),
        ));
    }
    Ok(found)
}

/// A UID as PS3.5 9.1 allows (digits and dots, at most 64), so that wildcards in a path are
/// refused instead of matched.
fn check_uid(uid: &str) -> Result<(), ApiError> {
    if uid.is_empty() || uid.len() > 64 || !uid.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(ApiError::bad_request(format!(
            "{uid:?} is not a UID (digits and dots, at most 64 characters)"
        )));
    }
    Ok(())
}

/// A blob's bytes; a store failure is logged and answered as an internal error.
pub(crate) async fn load(state: &AppState, blob_hash: &str) -> Result<Bytes, ApiError> {
    blobs(state)?.get(blob_hash).await.map_err(|e| {
        tracing::error!("blob {blob_hash}: {e}");
        ApiError::internal()
    })
}

fn parse(bytes: &[u8], what: &str) -> Result<DicomFile, ApiError> {
    DicomFile::from_bytes(bytes).map_err(|e| {
        tracing::error!(
            "a stored object ({what}) does not parse: {}",
            e.reason_code()
        );
        ApiError::internal()
    })
}

/// Run CPU work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!("a DICOMweb worker failed: {e}");
        ApiError::internal()
    })?
}

/// The scheme and host the client used, for absolute URLs in answers (BulkDataURI,
/// RetrieveURL).
fn base_url(state: &AppState, headers: &HeaderMap, project: &str) -> String {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let scheme = get("x-forwarded-proto").unwrap_or(if state.config.secure_cookies {
        "https"
    } else {
        "http"
    });
    let host = get("x-forwarded-host")
        .or_else(|| get("host"))
        .unwrap_or("localhost");
    format!("{scheme}://{host}/api/v1/projects/{project}/dicomweb")
}

fn etag_of(parts: &[&str]) -> String {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update(b"\0");
    }
    format!("\"{}\"", &h.finalize().to_hex()[..32])
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn immutable_headers(etag: &str) -> axum::http::response::Builder {
    Response::builder()
        .header(header::ETAG, etag)
        .header(header::CACHE_CONTROL, IMMUTABLE)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::VARY, "Accept")
}

/// Whether the client's If-None-Match names `etag` (or is `*`): it has the answer already.
/// Handlers ask before loading anything.
fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    let if_none_match = header_str(headers, header::IF_NONE_MATCH).trim();
    if_none_match == "*"
        || if_none_match
            .split(',')
            .any(|t| t.trim().trim_start_matches("W/") == etag)
}

fn not_modified(etag: &str) -> Response {
    immutable_headers(etag)
        .status(StatusCode::NOT_MODIFIED)
        .body(axum::body::Body::empty())
        .unwrap_or_else(|_| StatusCode::NOT_MODIFIED.into_response())
}

/// An immutable answer: ETag, caching, conditional GET and one byte range.
fn immutable_response(
    headers: &HeaderMap,
    etag: &str,
    content_type: &str,
    body: Bytes,
) -> Response {
    if etag_matches(headers, etag) {
        return not_modified(etag);
    }
    let builder = immutable_headers(etag).header(header::CONTENT_TYPE, content_type);
    let range = header_str(headers, header::RANGE);
    let if_range = header_str(headers, header::IF_RANGE);
    if !range.is_empty() && (if_range.is_empty() || if_range == etag) {
        match byte_range(range, body.len()) {
            RangeAnswer::Whole => {}
            RangeAnswer::Part(start, end) => {
                return builder
                    .status(StatusCode::PARTIAL_CONTENT)
                    .header(
                        header::CONTENT_RANGE,
                        format!("bytes {start}-{end}/{}", body.len()),
                    )
                    .body(axum::body::Body::from(body.slice(start..end + 1)))
                    .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
            }
            RangeAnswer::Unsatisfiable => {
                let mut r = ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "range_not_satisfiable",
                    format!("the range {range:?} is outside the {} bytes", body.len()),
                )
                .into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", body.len())) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return r;
            }
        }
    }
    builder
        .status(StatusCode::OK)
        .body(axum::body::Body::from(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[derive(Debug, PartialEq, Eq)]
enum RangeAnswer {
    /// No usable range (a syntax we do not take, several ranges): the whole body, 200.
    Whole,
    /// Inclusive byte positions.
    Part(usize, usize),
    Unsatisfiable,
}

/// One `bytes=` range (RFC 9110 14.1.2). Several ranges are answered with the whole body,
/// which the RFC allows.
fn byte_range(value: &str, len: usize) -> RangeAnswer {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Whole;
    };
    if spec.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAnswer::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // The last b bytes.
        let Ok(n) = b.parse::<usize>() else {
            return RangeAnswer::Whole;
        };
        if n == 0 || len == 0 {
            return RangeAnswer::Unsatisfiable;
        }
        return RangeAnswer::Part(len.saturating_sub(n), len - 1);
    }
    let Ok(start) = a.parse::<usize>() else {
        return RangeAnswer::Whole;
    };
    if start >= len {
        return RangeAnswer::Unsatisfiable;
    }
    let end = if b.is_empty() {
        len - 1
    } else {
        match b.parse::<usize>() {
            Ok(e) if e >= start => e.min(len - 1),
            _ => return RangeAnswer::Whole,
        }
    };
    RangeAnswer::Part(start, end)
}

fn dicom_json_response(value: Value) -> Response {
    let mut r = (StatusCode::OK, value.to_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/dicom+json"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    r
}

/// A multipart/related body of `parts` (content type, bytes), with a boundary made from the
/// ETag so that the same request gives the same bytes (ranges stay meaningful).
fn multipart(etag: &str, parts: &[(String, Bytes)]) -> (String, Bytes) {
    let boundary = format!("radlab-{}", etag.trim_matches('"'));
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.1.len() + 128).sum::<usize>() + 64);
    for (content_type, bytes) in parts {
        out.extend_from_slice(
            format!("--{boundary}\r\nContent-Type: {content_type}\r\n\r\n").as_bytes(),
        );
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (boundary, Bytes::from(out))
}

// ---------------------------------------------------------------------------------------
// Accept headers
// ---------------------------------------------------------------------------------------

/// One media range of an Accept header: `multipart/related; type="..."; transfer-syntax=...`
/// or a plain type.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MediaRange {
    /// e.g. `multipart/related`, `application/dicom`, `*/*`.
    media: String,
    /// The `type` parameter of multipart/related.
    part_type: Option<String>,
    transfer_syntax: Option<String>,
}

fn media_ranges(accept: &str) -> Vec<MediaRange> {
    let mut out = Vec::new();
    for item in split_outside_quotes(accept, ',') {
        let mut pieces = split_outside_quotes(&item, ';').into_iter();
        let media = pieces
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if media.is_empty() {
            continue;
        }
        let mut range = MediaRange {
            media,
            part_type: None,
            transfer_syntax: None,
        };
        for p in pieces {
            if let Some((k, v)) = p.split_once('=') {
                let v = v.trim().trim_matches('"').to_string();
                match k.trim().to_ascii_lowercase().as_str() {
                    "type" => range.part_type = Some(v.to_ascii_lowercase()),
                    "transfer-syntax" => range.transfer_syntax = Some(v),
                    _ => {}
                }
            }
        }
        out.push(range);
    }
    if out.is_empty() {
        out.push(MediaRange {
            media: "*/*".into(),
            part_type: None,
            transfer_syntax: None,
        });
    }
    out
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in s.chars() {
        if c == '"' {
            quoted = !quoted;
        }
        if c == sep && !quoted {
            out.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    out.push(current);
    out
}

fn not_acceptable(what: &str, offered: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_ACCEPTABLE,
        "not_acceptable",
        format!("{what} can be had as {offered}; the Accept header asks for none of these"),
    )
}

/// The media type of a compressed bitstream (PS3.18 Table 8.7.3-2), for frames as stored.
fn bitstream_type(ts: &str) -> Option<&'static str> {
    Some(match ts {
        "1.2.840.10008.1.2.4.50"
        | "1.2.840.10008.1.2.4.51"
        | "1.2.840.10008.1.2.4.57"
        | "1.2.840.10008.1.2.4.70" => "image/jpeg",
        "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81" => "image/jls",
        "1.2.840.10008.1.2.4.90" | "1.2.840.10008.1.2.4.91" => "image/jp2",
        "1.2.840.10008.1.2.5" => "image/x-dicom-rle",
        _ => return None,
    })
}

/// How frames are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FrameForm {
    /// As stored, each part `Content-Type: {0}; transfer-syntax={ts}`.
    Stored(String),
    /// Decoded to Explicit VR Little Endian, `application/octet-stream`.
    Decoded,
}

/// Which form of the frames of an object in transfer syntax `ts` the Accept header takes.
/// `Ok((form, multipart))`.
fn frame_form(accept: &str, ts: &str) -> Result<(FrameForm, bool), ApiError> {
    let native = radlab_dicom::EXPLICIT_VR_LITTLE_ENDIAN;
    let encapsulated = bitstream_type(ts);
    for r in media_ranges(accept) {
        let (multi, part) = match r.media.as_str() {
            "multipart/related" => (
                true,
                r.part_type
                    .clone()
                    .unwrap_or("application/octet-stream".into()),
            ),
            "*/*" | "multipart/*" => (true, "application/octet-stream".into()),
            m => (false, m.to_string()),
        };
        let wanted = r.transfer_syntax.as_deref();
        match part.as_str() {
            "application/octet-stream" | "*/*" => match wanted {
                Some("*") => {
                    return Ok((FrameForm::Stored("application/octet-stream".into()), multi));
                }
                None => return Ok((FrameForm::Decoded, multi)),
                Some(t) if t == native => return Ok((FrameForm::Decoded, multi)),
                Some(t) if t == ts => {
                    return Ok((FrameForm::Stored("application/octet-stream".into()), multi));
                }
                Some(_) => continue,
            },
            other => {
                if encapsulated == Some(other) && wanted.is_none_or(|t| t == "*" || t == ts) {
                    return Ok((FrameForm::Stored(other.to_string()), multi));
                }
            }
        }
    }
    let mut offered = format!(
        "multipart/related; type=\"application/octet-stream\" (decoded, transfer-syntax={native})"
    );
    if let Some(t) = encapsulated {
        offered.push_str(&format!(
            " or as stored (type=\"{t}\" or transfer-syntax=* / {ts})"
        ));
    }
    Err(not_acceptable("these frames", &offered))
}

// ---------------------------------------------------------------------------------------
// CORS, for a viewer served from another origin
// ---------------------------------------------------------------------------------------

/// CORS on the DICOMweb paths for the origins of `--cors-origin`: preflights (OPTIONS)
/// answered here, before authentication; other answers get the allow headers. Requests from
/// other origins, and every other path, pass through untouched (the browser then refuses
/// to hand the answer to the page).
pub(crate) async fn cors(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let allowed = origin.filter(|o| {
        request.uri().path().contains("/dicomweb")
            && state.config.cors_origins.iter().any(|a| a == o)
    });
    let Some(origin) = allowed else {
        return next.run(request).await;
    };
    let preflight = request.method() == axum::http::Method::OPTIONS;
    let mut response = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(request).await
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("etag, content-range, content-length, content-type"),
    );
    if preflight {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(
                "authorization, accept, content-type, range, if-none-match, if-range",
            ),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
    }
    response
}

// ---------------------------------------------------------------------------------------
// QIDO-RS
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Study,
    Series,
    Instance,
}

/// Parse QIDO-RS query parameters; keywords or tags (`PatientID`, `00100020`).
fn qido_query(raw: Option<&str>) -> Result<(QidoQuery, Vec<String>), ApiError> {
    let mut q = QidoQuery {
        limit: 1000,
        ..Default::default()
    };
    let mut include = Vec::new();
    let pairs: Vec<(String, String)> = match raw {
        Some(r) => serde_urlencoded::from_str(r)
            .map_err(|e| ApiError::bad_request(format!("the query string does not parse: {e}")))?,
        None => Vec::new(),
    };
    for (k, v) in pairs {
        let text = || Some(v.clone());
        let number = |what: &str| {
            v.trim().parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!("{what}={v:?}: expected a whole number"))
            })
        };
        match k.as_str() {
            "StudyInstanceUID" | "0020000D" => q.study_instance_uid = text(),
            "SeriesInstanceUID" | "0020000E" => q.series_instance_uid = text(),
            "SOPInstanceUID" | "00080018" => q.sop_instance_uid = text(),
            "SOPClassUID" | "00080016" => q.sop_class_uid = text(),
            "PatientID" | "00100020" => q.patient_id = text(),
            "PatientName" | "00100010" => q.patient_name = text(),
            "AccessionNumber" | "00080050" => q.accession_number = text(),
            "StudyDescription" | "00081030" => q.study_description = text(),
            "SeriesDescription" | "0008103E" => q.series_description = text(),
            "ModalitiesInStudy" | "00080061" | "Modality" | "00080060" => q.modality = text(),
            "BodyPartExamined" | "00180015" => q.body_part_examined = text(),
            "SeriesNumber" | "00200011" => q.series_number = Some(number("SeriesNumber")?),
            "InstanceNumber" | "00200013" => q.instance_number = Some(number("InstanceNumber")?),
            "StudyDate" | "00080020" => q.study_date = Some(date_range(&v)?),
            "limit" => q.limit = number("limit")?.clamp(1, 10_000),
            "offset" => q.offset = number("offset")?.max(0),
            "includefield" => include.extend(v.split(',').map(|s| s.trim().to_string())),
            "fuzzymatching" => {}
            // Unknown keys: PS3.18 lets a server ignore keys it does not support.
            _ => {}
        }
    }
    Ok((q, include))
}

/// The keys of an image selection by query (`POST .../images` with `query`), read as QIDO-RS
/// reads them; paging keys and unknown keys are refused here (a selection is not a search).
pub(crate) fn selection_query(
    keys: &std::collections::BTreeMap<String, String>,
) -> Result<QidoQuery, ApiError> {
    const KNOWN: [&str; 14] = [
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPInstanceUID",
        "SOPClassUID",
        "PatientID",
        "PatientName",
        "AccessionNumber",
        "StudyDescription",
        "SeriesDescription",
        "ModalitiesInStudy",
        "Modality",
        "BodyPartExamined",
        "StudyDate",
        "SeriesNumber",
    ];
    if keys.is_empty() {
        return Err(ApiError::bad_request(
            "query: give at least one key (all: true adds every catalogued image)",
        ));
    }
    if let Some(k) = keys.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "query: unknown key {k:?}; use {}",
            KNOWN.join(", ")
        )));
    }
    let raw = serde_urlencoded::to_string(keys)
        .map_err(|e| ApiError::bad_request(format!("query: {e}")))?;
    let (q, _) = qido_query(Some(&raw))?;
    Ok(q)
}

/// `YYYYMMDD`, `YYYYMMDD-YYYYMMDD`, `-YYYYMMDD`, `YYYYMMDD-`.
fn date_range(v: &str) -> Result<(Option<String>, Option<String>), ApiError> {
    let check = |d: &str| -> Result<Option<String>, ApiError> {
        let d = d.trim().replace('.', "");
        if d.is_empty() {
            return Ok(None);
        }
        if d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Some(d))
        } else {
            Err(ApiError::bad_request(format!(
                "StudyDate {v:?}: use YYYYMMDD or a range YYYYMMDD-YYYYMMDD"
            )))
        }
    };
    match v.split_once('-') {
        Some((a, b)) => Ok((check(a)?, check(b)?)),
        None => {
            let d = check(v)?;
            Ok((d.clone(), d))
        }
    }
}

fn text_attr(vr: &str, v: &str) -> Value {
    if v.is_empty() {
        json!({"vr": vr})
    } else {
        json!({"vr": vr, "Value": [v]})
    }
}

fn pn_attr(v: &str) -> Value {
    if v.is_empty() {
        json!({"vr": "PN"})
    } else {
        json!({"vr": "PN", "Value": [{"Alphabetic": v}]})
    }
}

fn int_attr(vr: &str, v: Option<i64>) -> Value {
    match v {
        Some(n) => json!({"vr": vr, "Value": [n]}),
        None => json!({"vr": vr}),
    }
}

async fn qido(
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    project: String,
    level: Level,
    (study, series): (Option<String>, Option<String>),
    raw: Option<String>,
) -> Result<Response, ApiError> {
    let seen = visibility(&state, &caller, &project).await?;
    let (mut q, _include) = qido_query(raw.as_deref())?;
    if let Some(s) = study {
        check_uid(&s)?;
        q.study_instance_uid = Some(s);
    }
    if let Some(s) = series {
        check_uid(&s)?;
        q.series_instance_uid = Some(s);
    }
    let base = base_url(&state, &headers, &project);
    let out: Vec<Value> = match level {
        Level::Study => state
            .catalog
            .qido_studies(&project, &seen, &q)
            .await?
            .into_iter()
            .map(|s| {
                let mut m = serde_json::Map::new();
                m.insert("00080020".into(), text_attr("DA", &s.study_date));
                m.insert("00080030".into(), text_attr("TM", &s.study_time));
                m.insert("00080050".into(), text_attr("SH", &s.accession_number));
                m.insert(
                    "00080061".into(),
                    if s.modalities.is_empty() {
                        json!({"vr": "CS"})
                    } else {
                        json!({"vr": "CS", "Value": s.modalities})
                    },
                );
                m.insert("00081030".into(), text_attr("LO", &s.study_description));
                m.insert(
                    "00081190".into(),
                    text_attr("UR", &format!("{base}/studies/{}", s.study_instance_uid)),
                );
                m.insert("00100010".into(), pn_attr(&s.patient_name));
                m.insert("00100020".into(), text_attr("LO", &s.patient_id));
                m.insert("00100030".into(), text_attr("DA", &s.patient_birth_date));
                m.insert("00100040".into(), text_attr("CS", &s.patient_sex));
                m.insert("0020000D".into(), text_attr("UI", &s.study_instance_uid));
                m.insert("00201206".into(), int_attr("IS", Some(s.series)));
                m.insert("00201208".into(), int_attr("IS", Some(s.instances)));
                Value::Object(m)
            })
            .collect(),
        Level::Series => state
            .catalog
            .qido_series(&project, &seen, &q)
            .await?
            .into_iter()
            .map(|s| {
                let mut m = serde_json::Map::new();
                m.insert("00080060".into(), text_attr("CS", &s.modality));
                m.insert("0008103E".into(), text_attr("LO", &s.series_description));
                m.insert(
                    "00081190".into(),
                    text_attr(
                        "UR",
                        &format!(
                            "{base}/studies/{}/series/{}",
                            s.study_instance_uid, s.series_instance_uid
                        ),
                    ),
                );
                m.insert("00180015".into(), text_attr("CS", &s.body_part_examined));
                m.insert("0020000D".into(), text_attr("UI", &s.study_instance_uid));
                m.insert("0020000E".into(), text_attr("UI", &s.series_instance_uid));
                m.insert("00200011".into(), int_attr("IS", s.series_number));
                m.insert("00201209".into(), int_attr("IS", Some(s.instances)));
                Value::Object(m)
            })
            .collect(),
        Level::Instance => state
            .catalog
            .qido_instances(&project, &seen, &q)
            .await?
            .into_iter()
            .map(|i| {
                let mut m = serde_json::Map::new();
                m.insert("00080016".into(), text_attr("UI", &i.sop_class_uid));
                m.insert("00080018".into(), text_attr("UI", &i.sop_instance_uid));
                m.insert(
                    "00081190".into(),
                    text_attr(
                        "UR",
                        &format!(
                            "{base}/studies/{}/series/{}/instances/{}",
                            i.study_instance_uid, i.series_instance_uid, i.sop_instance_uid
                        ),
                    ),
                );
                m.insert("0020000D".into(), text_attr("UI", &i.study_instance_uid));
                m.insert("0020000E".into(), text_attr("UI", &i.series_instance_uid));
                m.insert("00200013".into(), int_attr("IS", i.instance_number));
                m.insert("00280008".into(), int_attr("IS", Some(i.frames)));
                m.insert("00280010".into(), int_attr("US", Some(i.rows)));
                m.insert("00280011".into(), int_attr("US", Some(i.columns)));
                m.insert("00280100".into(), int_attr("US", Some(i.bits_allocated)));
                Value::Object(m)
            })
            .collect(),
    };
    Ok(dicom_json_response(Value::Array(out)))
}

pub(crate) async fn qido_studies(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(project): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    qido(
        state,
        caller,
        headers,
        project,
        Level::Study,
        (None, None),
        raw,
    )
    .await
}

pub(crate) async fn qido_all_series(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(project): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    qido(
        state,
        caller,
        headers,
        project,
        Level::Series,
        (None, None),
        raw,
    )
    .await
}

pub(crate) async fn qido_all_instances(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(project): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    qido(
        state,
        caller,
        headers,
        project,
        Level::Instance,
        (None, None),
        raw,
    )
    .await
}

pub(crate) async fn qido_study_series(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((project, study)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    qido(
        state,
        caller,
        headers,
        project,
        Level::Series,
        (Some(study), None),
        raw,
    )
    .await
}

pub(crate) async fn qido_study_instances(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((project, study)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    qido(
        state,
        caller,
        headers,
        project,
        Level::Instance,
        (Some(study), None),
        raw,
    )
    .await
}

pub(crate) async fn qido_series_instances(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((project, study, series)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    qido(
        state,
        caller,
        headers,
        project,
        Level::Instance,
        (Some(study), Some(series)),
        raw,
    )
    .await
}

// ---------------------------------------------------------------------------------------
// WADO-RS: instances, metadata, bulk data
// ---------------------------------------------------------------------------------------

async fn retrieve(
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    project: String,
    study: String,
    series: Option<String>,
    instance: Option<String>,
) -> Result<Response, ApiError> {
    let found = instances_of(
        &state,
        &caller,
        &project,
        &study,
        series.as_deref(),
        instance.as_deref(),
    )
    .await?;
    let accept = header_str(&headers, header::ACCEPT).to_string();
    // Objects are sent as stored. A request for one specific other transfer syntax is
    // refused (406) rather than answered with something else.
    // `Some(single)`: the first range of the Accept header the stored objects satisfy, and
    // whether it asks for one bare application/dicom body (one instance only).
    let single = media_ranges(&accept)
        .into_iter()
        .find_map(|r| {
            let (part, single) = match r.media.as_str() {
                "multipart/related" => (
                    r.part_type.clone().unwrap_or("application/dicom".into()),
                    false,
                ),
                "*/*" | "multipart/*" => ("application/dicom".into(), false),
                "application/dicom" => ("application/dicom".into(), found.len() == 1),
                _ => return None,
            };
            let as_stored = found.iter().all(|i| {
                r.transfer_syntax
                    .as_deref()
                    .is_none_or(|t| t == "*" || t == i.transfer_syntax_uid)
            });
            (part == "application/dicom" && as_stored).then_some(single)
        })
        .ok_or_else(|| {
            not_acceptable(
                "these instances",
                "multipart/related; type=\"application/dicom\" in their stored transfer syntax \
                 (transfer-syntax=* or the stored one), or application/dicom for one instance",
            )
        })?;
    let hashes: Vec<&str> = found.iter().map(|i| i.blob_hash.as_str()).collect();
    let etag = etag_of(&[&hashes.join(","), if single { "single" } else { "multi" }]);
    if etag_matches(&headers, &etag) {
        return Ok(not_modified(&etag));
    }
    let mut parts = Vec::with_capacity(found.len());
    for i in &found {
        let bytes = part10(load(&state, &i.blob_hash).await?, i);
        parts.push((
            format!(
                "application/dicom; transfer-syntax={}",
                i.transfer_syntax_uid
            ),
            bytes,
        ));
    }
    if single {
        let (content_type, bytes) = parts.pop().expect("one instance");
        return Ok(immutable_response(&headers, &etag, &content_type, bytes));
    }
    let (boundary, body) = multipart(&etag, &parts);
    let content_type =
        format!("multipart/related; type=\"application/dicom\"; boundary={boundary}");
    Ok(immutable_response(&headers, &etag, &content_type, body))
}

/// The object as a PS3.10 file, as `application/dicom` requires: stored Part 10 files as they
/// are; a file meta group without the preamble gets the preamble; a bare data set (ACR-NEMA
/// style, catalogued with the transfer syntax it was read in) gets a file meta group saying
/// so. The data set's bytes are never changed.
fn part10(bytes: Bytes, i: &InstanceMatch) -> Bytes {
    if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        return bytes;
    }
    let mut out = Vec::with_capacity(bytes.len() + 400);
    out.extend_from_slice(&[0u8; 128]);
    if bytes.starts_with(b"DICM") {
        out.extend_from_slice(&bytes);
        return Bytes::from(out);
    }
    out.extend_from_slice(b"DICM");
    let mut group = Vec::new();
    let mut element = |el: u16, vr: &[u8; 2], value: &[u8]| {
        let mut v = value.to_vec();
        if v.len() % 2 == 1 {
            v.push(if vr == b"UI" { 0 } else { b' ' });
        }
        group.extend_from_slice(&0x0002u16.to_le_bytes());
        group.extend_from_slice(&el.to_le_bytes());
        group.extend_from_slice(vr);
        if vr == b"OB" {
            group.extend_from_slice(&[0, 0]);
            group.extend_from_slice(&(v.len() as u32).to_le_bytes());
        } else {
            group.extend_from_slice(&(v.len() as u16).to_le_bytes());
        }
        group.extend_from_slice(&v);
    };
    element(0x0001, b"OB", &[0, 1]);
    element(0x0002, b"UI", i.sop_class_uid.as_bytes());
    element(0x0003, b"UI", i.sop_instance_uid.as_bytes());
    element(0x0010, b"UI", i.transfer_syntax_uid.as_bytes());
    element(0x0012, b"UI", IMPLEMENTATION_CLASS_UID.as_bytes());
    element(0x0013, b"SH", b"RADLAB");
    out.extend_from_slice(&0x0002u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(b"UL");
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&(group.len() as u32).to_le_bytes());
    out.extend_from_slice(&group);
    out.extend_from_slice(&bytes);
    Bytes::from(out)
}

/// Our Implementation Class UID (a `2.25.` UID derived from the name), in file meta groups we
/// write.
const IMPLEMENTATION_CLASS_UID: &str = "2.25.231420880129586473413434412906405052283";

pub(crate) async fn retrieve_study(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((project, study)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    retrieve(state, caller, headers, project, study, None, None).await
}

pub(crate) async fn retrieve_series(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((project, study, series)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    retrieve(state, caller, headers, project, study, Some(series), None).await
}

pub(crate) async fn retrieve_instance(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((project, study, series, instance)): Path<(String, String, String, String)>,
) -> Result<Response, ApiError> {
    retrieve(
        state,
        caller,
        headers,
        project,
        study,
        Some(series),
        Some(instance),
    )
    .await
}

async fn metadata(
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    project: String,
    study: String,
    series: Option<String>,
    instance: Option<String>,
) -> Result<Response, ApiError> {
    let found = instances_of(
        &state,
        &caller,
        &project,
        &study,
        series.as_deref(),
        instance.as_deref(),
    )
    .await?;
    let base = base_url(&state, &headers, &project);
    let hashes: Vec<&str> = found.iter().map(|i| i.blob_hash.as_str()).collect();
    let etag = etag_of(&[&hashes.join(","), "metadata", &base]);
    if etag_matches(&headers, &etag) {
        return Ok(not_modified(&etag));
    }
    let mut out = Vec::with_capacity(found.len() * 4096 + 2);
    out.push(b'[');
    for (n, i) in found.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        let key = format!("meta:{}:{base}", i.blob_hash);
        let one = match state.frame_cache.get(&key) {
            Some((_, b)) => b,
            None => {
                let bytes = load(&state, &i.blob_hash).await?;
                let uri = format!(
                    "{base}/studies/{}/series/{}/instances/{}/bulkdata/",
                    i.study_instance_uid, i.series_instance_uid, i.sop_instance_uid
                );
                let ts = i.transfer_syntax_uid.clone();
                let b = blocking(move || {
                    let file = parse(&bytes, "metadata")?;
                    let make_uri = |tag: &str| format!("{uri}{tag}");
                    let options = radlab_dicom::JsonOptions {
                        inline_limit: 1024,
                        bulk_uri: Some(&make_uri),
                    };
                    let mut v = radlab_dicom::dicom_json(file.object(), &options);
                    // The transfer syntax the frames can be had in as stored.
                    if let Value::Object(m) = &mut v {
                        m.insert("00083002".into(), json!({"vr": "UI", "Value": [ts]}));
                    }
                    Ok(Bytes::from(v.to_string()))
                })
                .await?;
                state.frame_cache.put(key, String::new(), b.clone());
                b
            }
        };
        out.extend_from_slice(&one);
    }
    out.push(b']');
    Ok(immutable_response(
        &headers,
        &etag,
        "application/dicom+json",
        Bytes::from(out),
    ))
}

pub(crate) async fn study_metadata(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((project, study)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    metadata(state, caller, headers, project, study, None, None).await
}

pub(crate) async fn series_metadata(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((project, study, series)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    metadata(state, caller, headers, project, study, Some(series), None).await
}

pub(crate) async fn instance_metadata(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((project, study, series, instance)): Path<(String, String, String, String)>,
) -> Result<Response, ApiError> {
    metadata(
        state,
        caller,
        headers,
        project,
        study,
        Some(series),
        Some(instance),
    )
    .await
}

/// A top-level element's value (`bulkdata/7FE00010` and the BulkDataURIs of metadata):
/// a native value as `application/octet-stream`; encapsulated Pixel Data as its frames as
/// stored, multipart.
pub(crate) async fn bulkdata(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((project, study, series, instance, tag)): Path<(String, String, String, String, String)>,
) -> Result<Response, ApiError> {
    let found = instances_of(
        &state,
        &caller,
        &project,
        &study,
        Some(&series),
        Some(&instance),
    )
    .await?;
    let i = &found[0];
    let Some((group, element)) = (tag.len() == 8)
        .then(|| {
            (
                u16::from_str_radix(&tag[..4], 16),
                u16::from_str_radix(&tag[4..], 16),
            )
        })
        .and_then(|(g, e)| Some((g.ok()?, e.ok()?)))
    else {
        return Err(ApiError::bad_request(format!(
            "bulk data tag {tag:?}: expected 8 hex digits such as 7FE00010"
        )));
    };
    let etag = etag_of(&[&i.blob_hash, "bulkdata", &tag]);
    if etag_matches(&headers, &etag) {
        return Ok(not_modified(&etag));
    }
    let bytes = load(&state, &i.blob_hash).await?;
    let frames = i.frames.max(1) as u32;
    let ts = i.transfer_syntax_uid.clone();
    let etag2 = etag.clone();
    let (content_type, body) = blocking(move || {
        let file = parse(&bytes, "bulk data")?;
        let tag = dicom_core::Tag(group, element);
        let Some(el) = file.object().get(tag) else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("the instance has no element {tag}"),
            ));
        };
        match el.value() {
            dicom_core::value::Value::Primitive(p) => Ok((
                "application/octet-stream".to_string(),
                Bytes::from(p.to_bytes().into_owned()),
            )),
            dicom_core::value::Value::PixelSequence(_) => {
                let mut parts = Vec::new();
                for n in 0..frames {
                    let f = radlab_dicom::stored_frame(&file, n).map_err(frame_error)?;
                    parts.push((
                        format!("application/octet-stream; transfer-syntax={ts}"),
                        Bytes::from(f.bytes),
                    ));
                }
                let (boundary, body) = multipart(&etag2, &parts);
                Ok((
                    format!(
                        "multipart/related; type=\"application/octet-stream\"; boundary={boundary}"
                    ),
                    body,
                ))
            }
            dicom_core::value::Value::Sequence(_) => Err(ApiError::bad_request(format!(
                "{tag} is a sequence; its items are in the metadata"
            ))),
        }
    })
    .await?;
    Ok(immutable_response(&headers, &etag, &content_type, body))
}

fn frame_error(e: radlab_dicom::DicomError) -> ApiError {
    match e {
        radlab_dicom::DicomError::FrameOutOfRange { frame, frames } => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "frame {} does not exist: the instance has {frames}",
                frame + 1
            ),
        ),
        other => {
            tracing::error!("a stored frame does not decode: {}", other.reason_code());
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "undecodable",
                "the frame cannot be decoded; ask for it as stored (transfer-syntax=*)",
            )
        }
    }
}

// ---------------------------------------------------------------------------------------
// WADO-RS: frames, rendered, thumbnail
// ---------------------------------------------------------------------------------------

/// `1,3,5` (1-based), each at most `frames`.
fn frame_list(list: &str, frames: i64) -> Result<Vec<u32>, ApiError> {
    let mut out = Vec::new();
    for part in list.split(',') {
        let n: u32 = part.trim().parse().map_err(|_| {
            ApiError::bad_request(format!(
                "frame list {list:?}: expected frame numbers from 1, separated by commas"
            ))
        })?;
        if n == 0 || n as i64 > frames.max(1) {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("frame {n} does not exist: the instance has {frames} (numbered from 1)"),
            ));
        }
        out.push(n);
    }
    if out.is_empty() || out.len() > 10_000 {
        return Err(ApiError::bad_request(
            "give between 1 and 10,000 frame numbers",
        ));
    }
    Ok(out)
}

pub(crate) async fn frames(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((project, study, series, instance, list)): Path<(String, String, String, String, String)>,
) -> Result<Response, ApiError> {
    let found = instances_of(
        &state,
        &caller,
        &project,
        &study,
        Some(&series),
        Some(&instance),
    )
    .await?;
    let i = found.into_iter().next().expect("one instance");
    let numbers = frame_list(&list, i.frames)?;
    let accept = header_str(&headers, header::ACCEPT).to_string();
    let (form, multi) = frame_form(&accept, &i.transfer_syntax_uid)?;
    if !multi && numbers.len() > 1 {
        return Err(not_acceptable(
            "several frames",
            "multipart/related (a single-part answer holds one frame)",
        ));
    }
    let form_key = match &form {
        FrameForm::Stored(t) => format!("stored:{t}"),
        FrameForm::Decoded => "decoded".into(),
    };
    let etag = etag_of(&[
        &i.blob_hash,
        "frames",
        &list,
        &form_key,
        if multi { "m" } else { "s" },
    ]);
    if etag_matches(&headers, &etag) {
        return Ok(not_modified(&etag));
    }
    if let Some((content_type, body)) = state.frame_cache.get(&etag) {
        return Ok(immutable_response(&headers, &etag, &content_type, body));
    }
    let bytes = load(&state, &i.blob_hash).await?;
    let ts = i.transfer_syntax_uid.clone();
    // Compressed frames as stored are cut out of the file without parsing it (the first
    // frame a viewer asks for comes sooner); anything unusual takes the full parse.
    let cut = match &form {
        FrameForm::Stored(t) if bitstream_type(&ts).is_some() => numbers
            .iter()
            .map(|n| {
                let frame =
                    radlab_dicom::stored_frame_ranges(&bytes, i.frames.max(1) as u32, n - 1)?;
                let body = match frame.as_slice() {
                    [one] => bytes.slice(one.clone()),
                    many => Bytes::from(
                        many.iter()
                            .flat_map(|r| bytes[r.clone()].to_vec())
                            .collect::<Vec<u8>>(),
                    ),
                };
                Some((format!("{t}; transfer-syntax={ts}"), body))
            })
            .collect::<Option<Vec<_>>>(),
        _ => None,
    };
    let mut parts = match cut {
        Some(parts) => parts,
        None => {
            blocking(move || {
                let file = parse(&bytes, "frames")?;
                let mut parts = Vec::with_capacity(numbers.len());
                for n in &numbers {
                    let (f, part_type) = match &form {
                        FrameForm::Stored(t) => (
                            radlab_dicom::stored_frame(&file, n - 1).map_err(frame_error)?,
                            t.clone(),
                        ),
                        FrameForm::Decoded => (
                            radlab_dicom::decoded_frame(&file, n - 1).map_err(frame_error)?,
                            "application/octet-stream".to_string(),
                        ),
                    };
                    // A native frame is in Explicit VR Little Endian whatever the file's
                    // syntax; a compressed one in the file's.
                    let content_type =
                        format!("{part_type}; transfer-syntax={}", f.transfer_syntax);
                    parts.push((content_type, Bytes::from(f.bytes)));
                }
                Ok(parts)
            })
            .await?
        }
    };
    let (content_type, body) = if multi {
        let part_type = parts[0].0.split(';').next().unwrap_or("").to_string();
        let (boundary, body) = multipart(&etag, &parts);
        (
            format!("multipart/related; type=\"{part_type}\"; boundary={boundary}"),
            body,
        )
    } else {
        parts.pop().expect("one frame")
    };
    state
        .frame_cache
        .put(etag.clone(), content_type.clone(), body.clone());
    Ok(immutable_response(&headers, &etag, &content_type, body))
}

/// `window=center,width[,linear|linear-exact|sigmoid]`, `viewport=vw,vh`, `quality=1..100`.
#[derive(Debug, Default)]
struct RenderQuery {
    window: Option<radlab_dicom::Window>,
    viewport: Option<(u32, u32)>,
    quality: u8,
}

fn render_query(raw: Option<&str>, thumbnail: bool) -> Result<RenderQuery, ApiError> {
    let mut r = RenderQuery {
        quality: 90,
        viewport: thumbnail.then_some((128, 128)),
        ..Default::default()
    };
    let pairs: Vec<(String, String)> = match raw {
        Some(s) => serde_urlencoded::from_str(s)
            .map_err(|e| ApiError::bad_request(format!("the query string does not parse: {e}")))?,
        None => Vec::new(),
    };
    for (k, v) in pairs {
        match k.as_str() {
            "window" => {
                let p: Vec<&str> = v.split(',').map(str::trim).collect();
                let bad = || {
                    ApiError::bad_request(format!(
                        "window={v:?}: expected center,width[,linear|linear-exact|sigmoid] with width above 0"
                    ))
                };
                if p.len() < 2 || p.len() > 3 {
                    return Err(bad());
                }
                let center: f64 = p[0].parse().map_err(|_| bad())?;
                let width: f64 = p[1].parse().map_err(|_| bad())?;
                if !center.is_finite() || !width.is_finite() || width <= 0.0 {
                    return Err(bad());
                }
                let mut w = radlab_dicom::Window::linear(center, width);
                if let Some(f) = p.get(2) {
                    w.function =
                        radlab_dicom::VoiFunction::parse(&f.replace('-', "_")).ok_or_else(bad)?;
                }
                r.window = Some(w);
            }
            "viewport" => {
                let p: Vec<&str> = v.split(',').map(str::trim).collect();
                let bad = || {
                    ApiError::bad_request(format!(
                        "viewport={v:?}: expected width,height in pixels (1 to 8192)"
                    ))
                };
                if p.len() != 2 && p.len() != 6 {
                    return Err(bad());
                }
                let w: u32 = p[0].parse().map_err(|_| bad())?;
                let h: u32 = p[1].parse().map_err(|_| bad())?;
                if !(1..=8192).contains(&w) || !(1..=8192).contains(&h) {
                    return Err(bad());
                }
                r.viewport = Some((w, h));
            }
            "quality" => {
                r.quality = v
                    .trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|q| (1..=100).contains(q))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!("quality={v:?}: expected 1 to 100"))
                    })?;
            }
            _ => {}
        }
    }
    Ok(r)
}

/// The image format the Accept header takes for rendered answers; JPEG by default.
fn rendered_format(accept: &str) -> Result<&'static str, ApiError> {
    for r in media_ranges(accept) {
        match r.media.as_str() {
            "image/jpeg" | "image/*" | "*/*" => return Ok("image/jpeg"),
            "image/png" => return Ok("image/png"),
            "image/webp" => return Ok("image/webp"),
            _ => {}
        }
    }
    Err(not_acceptable(
        "rendered images",
        "image/jpeg, image/png or image/webp",
    ))
}

async fn rendered(
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    project: String,
    uids: (String, Option<String>, Option<String>),
    (frame, raw): (Option<String>, Option<String>),
    thumbnail: bool,
) -> Result<Response, ApiError> {
    let (study, series, instance) = uids;
    let found = instances_of(
        &state,
        &caller,
        &project,
        &study,
        series.as_deref(),
        instance.as_deref(),
    )
    .await?;
    // A study's or series' thumbnail is its first instance's (the middle one would need
    // every instance's position).
    let i = found.into_iter().next().expect("at least one");
    let frame = match frame {
        Some(list) => {
            let n = frame_list(&list, i.frames)?;
            if n.len() != 1 {
                return Err(ApiError::bad_request("render one frame at a time"));
            }
            n[0]
        }
        None => 1,
    };
    let q = render_query(raw.as_deref(), thumbnail)?;
    let format = rendered_format(header_str(&headers, header::ACCEPT))?;
    let etag = etag_of(&[
        &i.blob_hash,
        "rendered",
        &frame.to_string(),
        &format!("{:?}", q),
        format,
    ]);
    if etag_matches(&headers, &etag) {
        return Ok(not_modified(&etag));
    }
    if let Some((content_type, body)) = state.frame_cache.get(&etag) {
        return Ok(immutable_response(&headers, &etag, &content_type, body));
    }
    let bytes = load(&state, &i.blob_hash).await?;
    let body = blocking(move || {
        let file = parse(&bytes, "rendered")?;
        let options = radlab_dicom::RenderOptions {
            frame: frame - 1,
            voi: match q.window.clone() {
                Some(w) => radlab_dicom::VoiChoice::Window(w),
                None => radlab_dicom::VoiChoice::Default,
            },
            max_side: None,
        };
        let (image, _) = radlab_dicom::render_file(&file, &options).map_err(frame_error)?;
        let image = match q.viewport {
            // Fit inside the viewport, keeping the aspect ratio; never enlarged.
            Some((vw, vh)) if vw < image.width || vh < image.height => {
                let scale = (vw as f64 / image.width as f64).min(vh as f64 / image.height as f64);
                let side = ((image.width.max(image.height) as f64) * scale)
                    .round()
                    .max(1.0);
                radlab_dicom::render::fit_within(&image, side as u32).map_err(frame_error)?
            }
            _ => image,
        };
        let encoded = match format {
            "image/png" => {
                radlab_dicom::render::encode_to_vec(&image, radlab_dicom::render::ImageFormat::Png)
            }
            "image/webp" => {
                radlab_dicom::render::encode_to_vec(&image, radlab_dicom::render::ImageFormat::WebP)
            }
            _ => radlab_dicom::render::encode_jpeg(&image, q.quality),
        }
        .map_err(frame_error)?;
        Ok(Bytes::from(encoded))
    })
    .await?;
    state
        .frame_cache
        .put(etag.clone(), format.to_string(), body.clone());
    Ok(immutable_response(&headers, &etag, format, body))
}

pub(crate) async fn instance_rendered(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((project, study, series, instance)): Path<(String, String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let uids = (study, Some(series), Some(instance));
    rendered(state, caller, headers, project, uids, (None, raw), false).await
}

pub(crate) async fn frame_rendered(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((project, study, series, instance, list)): Path<(String, String, String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let uids = (study, Some(series), Some(instance));
    rendered(
        state,
        caller,
        headers,
        project,
        uids,
        (Some(list), raw),
        false,
    )
    .await
}

pub(crate) async fn instance_thumbnail(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((project, study, series, instance)): Path<(String, String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let uids = (study, Some(series), Some(instance));
    rendered(state, caller, headers, project, uids, (None, raw), true).await
}

pub(crate) async fn series_thumbnail(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((project, study, series)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let uids = (study, Some(series), None);
    rendered(state, caller, headers, project, uids, (None, raw), true).await
}

pub(crate) async fn study_thumbnail(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((project, study)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    rendered(
        state,
        caller,
        headers,
        project,
        (study, None, None),
        (None, raw),
        true,
    )
    .await
}

// ---------------------------------------------------------------------------------------
// STOW-RS
// ---------------------------------------------------------------------------------------

#[derive(serde::Deserialize)]
pub(crate) struct StowQuery {
    #[serde(default = "unassigned")]
    split: String,
}

fn unassigned() -> String {
    "unassigned".into()
}

pub(crate) async fn stow(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(project): Path<String>,
    Query(q): Query<StowQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    stow_into(state, caller, headers, project, None, q, body).await
}

pub(crate) async fn stow_study(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((project, study)): Path<(String, String)>,
    Query(q): Query<StowQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    check_uid(&study)?;
    stow_into(state, caller, headers, project, Some(study), q, body).await
}

async fn stow_into(
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    project: String,
    study: Option<String>,
    q: StowQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let content_type = header_str(&headers, header::CONTENT_TYPE).to_string();
    let ranges = media_ranges(&content_type);
    let ok_type = ranges.first().is_some_and(|r| {
        r.media == "multipart/related"
            && r.part_type.as_deref().unwrap_or("application/dicom") == "application/dicom"
    });
    if !ok_type {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "STOW-RS takes multipart/related; type=\"application/dicom\" (got {content_type:?}); \
                 DICOM JSON with bulk data is not supported"
            ),
        ));
    }
    let parts = crate::uploads::multipart_parts(&content_type, body, &state)?;
    let outcomes = crate::uploads::store_objects(
        &state,
        &caller,
        &project,
        &q.split,
        parts,
        study.as_deref(),
        false,
    )
    .await?;
    let base = base_url(&state, &headers, &project);
    let mut referenced = Vec::new();
    let mut failed = Vec::new();
    for o in &outcomes {
        match &o.result {
            Ok(()) => referenced.push(json!({
                "00081150": text_attr("UI", &o.sop_class_uid),
                "00081155": text_attr("UI", &o.sop_instance_uid),
                "00081190": text_attr("UR", &format!(
                    "{base}/studies/{}/series/{}/instances/{}",
                    o.study_instance_uid, o.series_instance_uid, o.sop_instance_uid
                )),
            })),
            Err((reason, message)) => {
                tracing::info!("STOW-RS: a part was refused ({reason:#06X}): {message}");
                failed.push(json!({
                    "00081150": text_attr("UI", &o.sop_class_uid),
                    "00081155": text_attr("UI", &o.sop_instance_uid),
                    "00081197": {"vr": "US", "Value": [reason]},
                }))
            }
        }
    }
    let mut answer = serde_json::Map::new();
    if let Some(s) = &study {
        answer.insert(
            "00081190".into(),
            text_attr("UR", &format!("{base}/studies/{s}")),
        );
    }
    if !failed.is_empty() {
        answer.insert("00081198".into(), json!({"vr": "SQ", "Value": failed}));
    }
    if !referenced.is_empty() {
        answer.insert("00081199".into(), json!({"vr": "SQ", "Value": referenced}));
    }
    let status = if failed.is_empty() {
        StatusCode::OK
    } else if referenced.is_empty() {
        StatusCode::CONFLICT
    } else {
        StatusCode::ACCEPTED
    };
    let mut r = dicom_json_response(Value::Object(answer));
    *r.status_mut() = status;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(byte_range("bytes=0-9", 100), RangeAnswer::Part(0, 9));
        assert_eq!(byte_range("bytes=90-", 100), RangeAnswer::Part(90, 99));
        assert_eq!(byte_range("bytes=-10", 100), RangeAnswer::Part(90, 99));
        assert_eq!(byte_range("bytes=-200", 100), RangeAnswer::Part(0, 99));
        assert_eq!(byte_range("bytes=50-500", 100), RangeAnswer::Part(50, 99));
        assert_eq!(byte_range("bytes=100-", 100), RangeAnswer::Unsatisfiable);
        assert_eq!(byte_range("bytes=0-1,5-6", 100), RangeAnswer::Whole);
        assert_eq!(byte_range("items=0-1", 100), RangeAnswer::Whole);
        assert_eq!(byte_range("bytes=9-3", 100), RangeAnswer::Whole);
    }

    #[test]
    fn accept_headers_choose_the_frame_form() {
        let j2k = "1.2.840.10008.1.2.4.90";
        let any = "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*";
        assert_eq!(
            frame_form(any, j2k).unwrap(),
            (FrameForm::Stored("application/octet-stream".into()), true)
        );
        assert_eq!(frame_form("", j2k).unwrap(), (FrameForm::Decoded, true));
        assert_eq!(
            frame_form("multipart/related; type=\"application/octet-stream\"", j2k).unwrap(),
            (FrameForm::Decoded, true)
        );
        assert_eq!(
            frame_form("multipart/related; type=\"image/jp2\"", j2k).unwrap(),
            (FrameForm::Stored("image/jp2".into()), true)
        );
        assert!(frame_form("multipart/related; type=\"image/jls\"", j2k).is_err());
        assert_eq!(
            frame_form(
                "multipart/related; type=\"image/jls\", multipart/related; type=\"application/octet-stream\"; transfer-syntax=1.2.840.10008.1.2.1",
                j2k
            )
            .unwrap(),
            (FrameForm::Decoded, true)
        );
        assert!(
            frame_form(
                "multipart/related; type=\"application/octet-stream\"; transfer-syntax=1.2.840.10008.1.2.4.80",
                j2k
            )
            .is_err()
        );
        assert_eq!(
            frame_form("application/octet-stream", j2k).unwrap(),
            (FrameForm::Decoded, false)
        );
    }

    #[test]
    fn qido_dates_and_keys_parse() {
        assert_eq!(
            date_range("20200101-20201231").unwrap(),
            (Some("20200101".into()), Some("20201231".into()))
        );
        assert_eq!(
            date_range("-20201231").unwrap(),
            (None, Some("20201231".into()))
        );
        assert_eq!(
            date_range("20200101").unwrap(),
            (Some("20200101".into()), Some("20200101".into()))
        );
        assert!(date_range("2020").is_err());
        let (q, include) = qido_query(Some(
            "PatientName=DOE%5E*&00080061=DX&limit=5&includefield=all",
        ))
        .unwrap();
        assert_eq!(q.patient_name.as_deref(), Some("DOE^*"));
        assert_eq!(q.modality.as_deref(), Some("DX"));
        assert_eq!(q.limit, 5);
        assert_eq!(include, vec!["all".to_string()]);
        assert!(qido_query(Some("limit=many")).is_err());
    }
}
