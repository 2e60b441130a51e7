//! Uploading DICOM files into a project: `POST /api/v1/projects/{id}/upload?split=train`
//! with the file as the body (`Content-Type: application/dicom`), or several files as
//! `multipart/form-data` (a browser form) or `multipart/related`. Owners only. Every file is
//! checked before anything is stored (a DICOM data set whose every frame decodes); then they
//! are imported into the catalog (the same path as `radlab import`: blob first, then rows)
//! and added to the project's split. Non-DICOM bodies get 415 or 422 with the reason (the
//! part's file name for multipart), a body over the limit 413; none of them changes anything
//! stored. STOW-RS (`dicomweb.rs`) goes through the same `store_objects`, part by part.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use radlab_store::{BlobStore, ImageSelection, ImportOptions, NoProgress};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::projects::{access, require_owner};

/// Where uploads go: the blob store, a staging folder for the file being imported, and the
/// largest body accepted.
#[derive(Debug, Clone)]
pub struct Uploads {
    pub blobs: BlobStore,
    pub staging: std::path::PathBuf,
    pub max_bytes: usize,
}

#[derive(Deserialize)]
pub(crate) struct UploadQuery {
    #[serde(default = "unassigned")]
    split: String,
}

fn unassigned() -> String {
    "unassigned".into()
}

pub(crate) async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let roles = access(&state, &caller, &project).await?;
    require_owner(&caller, &roles, "uploading images")?;
    uploads_of(&state)?;
    check_split(&q.split)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let lower = content_type.to_ascii_lowercase();
    let parts = if lower.starts_with("application/dicom") {
        vec![Part {
            name: "the body".into(),
            bytes: body_bytes(body, &state)?,
        }]
    } else if lower.starts_with("multipart/form-data") || lower.starts_with("multipart/related") {
        multipart_parts(&content_type, body, &state)?
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "send the DICOM file as the body with Content-Type: application/dicom, or files \
                 as multipart/form-data (got {content_type:?})"
            ),
        ));
    };
    if parts.is_empty() {
        return Err(ApiError::bad_request("the upload holds no file"));
    }
    // All or nothing: every file is checked before any is stored.
    let single = parts.len() == 1;
    let outcomes = store_objects(&state, &caller, &project, &q.split, parts, None, true).await?;
    if let Some(o) = outcomes.iter().find(|o| o.result.is_err()) {
        let (reason, message) = o.result.clone().unwrap_err();
        let code = if reason == CANNOT_UNDERSTAND {
            "not_dicom"
        } else {
            "not_importable"
        };
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
            if single {
                message
            } else {
                format!("{}: {message}", o.name)
            },
        ));
    }
    let files: Vec<serde_json::Value> = outcomes
        .iter()
        .map(|o| {
            serde_json::json!({
                "sop_instance_uid": o.sop_instance_uid,
                "image_id": radlab_labels::export::vindr_image_id(&o.sop_instance_uid),
                "split": q.split,
                "new_in_catalog": o.new_in_catalog,
                "new_in_project": o.new_in_project,
            })
        })
        .collect();
    let answer = if files.len() == 1 && lower.starts_with("application/dicom") {
        files.into_iter().next().expect("one file")
    } else {
        serde_json::json!({"files": files})
    };
    Ok((StatusCode::CREATED, Json(answer)))
}

fn uploads_of(state: &AppState) -> Result<Arc<Uploads>, ApiError> {
    state.uploads.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "uploads_off",
            "this server takes no uploads (it has no blob store)",
        )
    })
}

fn check_split(split: &str) -> Result<(), ApiError> {
    if radlab_store::SPLITS.contains(&split) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "split {split:?}: use train, test or unassigned"
        )))
    }
}

fn body_bytes(body: Result<Bytes, BytesRejection>, state: &AppState) -> Result<Bytes, ApiError> {
    let max = state.uploads.as_ref().map_or(0, |u| u.max_bytes);
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "the upload is larger than the server's limit of {} MB",
                    max / (1024 * 1024)
                ),
            )
        } else {
            ApiError::bad_request(format!("cannot read the upload: {}", e.body_text()))
        }
    })
}

/// One file of an upload: a name for messages (the form's file name, else its position)
/// and its bytes.
pub(crate) struct Part {
    pub name: String,
    pub bytes: Bytes,
}

/// The parts of a multipart body (RFC 2046 5.1: `multipart/related` and
/// `multipart/form-data` alike), by the boundary of its Content-Type.
pub(crate) fn multipart_parts(
    content_type: &str,
    body: Result<Bytes, BytesRejection>,
    state: &AppState,
) -> Result<Vec<Part>, ApiError> {
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .filter(|b| !b.is_empty() && b.len() <= 70)
        .ok_or_else(|| {
            ApiError::bad_request(
                "the multipart Content-Type has no boundary parameter (RFC 2046: 1 to 70 characters)",
            )
        })?;
    let bytes = body_bytes(body, state)?;
    split_multipart(&bytes, &boundary).map_err(ApiError::bad_request)
}

/// Split a multipart body into parts; a part's name comes from its Content-Disposition
/// filename when it has one.
fn split_multipart(body: &Bytes, boundary: &str) -> Result<Vec<Part>, String> {
    let delimiter = format!("--{boundary}");
    let finder = memchr::memmem::Finder::new(delimiter.as_bytes());
    let next_delimiter = format!("\r\n--{boundary}");
    let next_finder = memchr::memmem::Finder::new(next_delimiter.as_bytes());
    let Some(first) = finder.find(body) else {
        return Err(format!(
            "the body holds no multipart delimiter --{boundary} (is the boundary right?)"
        ));
    };
    let mut at = first + delimiter.len();
    let mut parts = Vec::new();
    loop {
        if body[at..].starts_with(b"--") {
            return Ok(parts);
        }
        // Transport padding, then CRLF.
        while at < body.len() && (body[at] == b' ' || body[at] == b'\t') {
            at += 1;
        }
        if !body[at..].starts_with(b"\r\n") {
            return Err(format!(
                "part {}: no line break after the delimiter",
                parts.len() + 1
            ));
        }
        at += 2;
        let Some(head_len) = memchr::memmem::find(&body[at..], b"\r\n\r\n")
            .map(|n| n + 4)
            .or_else(|| body[at..].starts_with(b"\r\n").then_some(2))
        else {
            return Err(format!("part {}: headers never end", parts.len() + 1));
        };
        let head = String::from_utf8_lossy(&body[at..at + head_len]).to_string();
        let start = at + head_len;
        let Some(len) = next_finder.find(&body[start..]) else {
            return Err(format!(
                "part {}: the body ends before the closing delimiter --{boundary}--",
                parts.len() + 1
            ));
        };
        let name = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))
            .and_then(|l| {
                l.split(';')
                    .filter_map(|p| p.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("filename"))
                    .map(|(_, v)| v.trim().trim_matches('"').to_string())
            })
            .unwrap_or_else(|| format!("part {}", parts.len() + 1));
        parts.push(Part {
            name,
            bytes: body.slice(start..start + len),
        });
        at = start + len + next_delimiter.len();
    }
}

/// What became of one object of an upload or a STOW-RS request.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub name: String,
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    /// Stored, or the failure reason (PS3.18 Table I.2-2 / PS3.4 status codes) and why.
    pub result: Result<(), (u16, String)>,
    pub new_in_catalog: bool,
    pub new_in_project: bool,
}

/// Failure reasons of STOW-RS (PS3.4 C.4.2.1.4 / PS3.18 I.2).
const CANNOT_UNDERSTAND: u16 = 0xC000;
const PROCESSING_FAILURE: u16 = 0x0110;
const STUDY_MISMATCH: u16 = 0xA900;

/// Check, import and add to `project`'s `split` the objects of `parts`, each on its own:
/// a part that is not usable DICOM (or, with `study`, of another study) fails alone, or,
/// with `all_or_nothing`, makes the whole request store nothing. Parts that pass are
/// imported in one run and added to the project in one transaction.
pub(crate) async fn store_objects(
    state: &AppState,
    caller: &Caller,
    project: &str,
    split: &str,
    parts: Vec<Part>,
    study: Option<&str>,
    all_or_nothing: bool,
) -> Result<Vec<Outcome>, ApiError> {
    let roles = access(state, caller, project).await?;
    require_owner(caller, &roles, "storing images")?;
    let uploads = uploads_of(state)?;
    check_split(split)?;
    // Every frame of every part is decoded: CPU work, off the async threads.
    let bodies: Vec<Bytes> = parts.iter().map(|p| p.bytes.clone()).collect();
    let checks = tokio::task::spawn_blocking(move || {
        bodies
            .iter()
            .map(|b| check_dicom_info(b))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| {
        tracing::error!("an upload check failed: {e}");
        ApiError::internal()
    })?;
    let mut outcomes: Vec<Outcome> = parts
        .iter()
        .zip(checks)
        .map(|(part, check)| {
            let mut outcome = Outcome {
                name: part.name.clone(),
                sop_instance_uid: String::new(),
                sop_class_uid: String::new(),
                study_instance_uid: String::new(),
                series_instance_uid: String::new(),
                result: Ok(()),
                new_in_catalog: false,
                new_in_project: false,
            };
            match check {
                Err(e) => outcome.result = Err((CANNOT_UNDERSTAND, e.message)),
                Ok(info) => {
                    outcome.sop_instance_uid = info.sop_instance_uid;
                    outcome.sop_class_uid = info.sop_class_uid;
                    outcome.study_instance_uid = info.study_instance_uid;
                    outcome.series_instance_uid = info.series_instance_uid;
                    if let Some(s) = study.filter(|s| *s != outcome.study_instance_uid) {
                        outcome.result = Err((
                            STUDY_MISMATCH,
                            format!("the object belongs to another study than {s}"),
                        ));
                    }
                }
            }
            outcome
        })
        .collect();
    if all_or_nothing && outcomes.iter().any(|o| o.result.is_err()) {
        return Ok(outcomes);
    }
    let mut staged = Vec::new();
    // A folder of this request's own, so concurrent uploads never meet.
    let folder = uploads.staging.join(crate::auth::random_token("upload-")?);
    std::fs::create_dir_all(&folder).map_err(|e| {
        tracing::error!("cannot create the upload staging folder: {e}");
        ApiError::internal()
    })?;
    let result = async {
        for (n, part) in parts.iter().enumerate() {
            if outcomes[n].result.is_err() {
                continue;
            }
            let path = folder.join(format!("{n:06}.dcm"));
            std::fs::write(&path, &part.bytes).map_err(|e| {
                tracing::error!("cannot stage an upload: {e}");
                ApiError::internal()
            })?;
            staged.push((path, n));
        }
        if staged.is_empty() {
            return Ok(());
        }
        let uids: Vec<String> = staged
            .iter()
            .map(|(_, i)| outcomes[*i].sop_instance_uid.clone())
            .collect();
        let catalogued = state.catalog.catalogued_among(&uids).await?;
        let paths: Vec<std::path::PathBuf> = staged.iter().map(|(p, _)| p.clone()).collect();
        let summary = radlab_store::import_paths(
            &state.catalog,
            &uploads.blobs,
            &paths,
            &ImportOptions::default(),
            Arc::new(NoProgress),
        )
        .await?;
        let mut stored = Vec::new();
        for (path, index) in &staged {
            let shown = path.display().to_string();
            let o = &mut outcomes[*index];
            if let Some(p) = summary
                .problems
                .iter()
                .find(|p| shown.ends_with(&p.source_path) || p.source_path.ends_with(&shown))
            {
                o.result = Err((
                    PROCESSING_FAILURE,
                    format!("the file cannot be used ({}): {}", p.reason_code, p.reason),
                ));
            } else {
                stored.push(o.sop_instance_uid.clone());
            }
        }
        stored.sort();
        stored.dedup();
        if !stored.is_empty() {
            let before = state.catalog.project_images_among(project, &stored).await?;
            state
                .catalog
                .add_project_images(
                    project,
                    &ImageSelection::Instances(stored.clone()),
                    None,
                    split,
                )
                .await?;
            for o in outcomes.iter_mut().filter(|o| o.result.is_ok()) {
                o.new_in_project = !before.contains(&o.sop_instance_uid);
                o.new_in_catalog = !catalogued.contains(&o.sop_instance_uid);
            }
        }
        Ok::<(), ApiError>(())
    }
    .await;
    let _ = std::fs::remove_dir_all(&folder);
    result?;
    Ok(outcomes)
}

/// A DICOM data set whose frames all decode, and what it is. Otherwise a 422 naming what is
/// wrong.
fn check_dicom_info(bytes: &[u8]) -> Result<radlab_dicom::InstanceInfo, ApiError> {
    let unusable = |code: &str, why: String| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_dicom",
            format!("the upload is not a usable DICOM file ({code}): {why}"),
        )
    };
    let file = radlab_dicom::DicomFile::from_bytes(bytes)
        .map_err(|e| unusable(e.reason_code(), e.to_string()))?;
    radlab_store::import::check_decodable(&file)
        .map_err(|e| unusable(e.reason_code(), e.to_string()))?;
    Ok(radlab_dicom::InstanceInfo::from_file(&file))
}
