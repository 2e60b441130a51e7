//! Uploading DICOM files into a project: `POST /api/v1/projects/{id}/upload?split=train`
//! with the file as the body (`Content-Type: application/dicom`). Owners only. The file is
//! checked before anything is stored (a DICOM data set whose every frame decodes); then it is
//! imported into the catalog (the same path as `radlab import`: blob first, then rows) and
//! added to the project's split. Non-DICOM bodies get 415 or 422 with the reason, a body over
//! the limit 413; none of them changes anything stored.

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
    let Some(uploads) = state.uploads.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "uploads_off",
            "this server takes no uploads (it has no blob store)",
        ));
    };
    if !radlab_store::SPLITS.contains(&q.split.as_str()) {
        return Err(ApiError::bad_request(format!(
            "split {:?}: use train, test or unassigned",
            q.split
        )));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/dicom") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "send the DICOM file as the body with Content-Type: application/dicom (got {:?})",
                content_type
            ),
        ));
    }
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "the upload is larger than the server's limit of {} MB",
                    uploads.max_bytes / (1024 * 1024)
                ),
            )
        } else {
            ApiError::bad_request(format!("cannot read the upload: {}", e.body_text()))
        }
    })?;
    let uid = check_dicom(&bytes)?;
    // Import through a staging file (the import reads files), then add it to the project.
    let staging = uploads.staging.join(format!(
        "upload-{}.dcm",
        &blake3::hash(&bytes).to_hex()[..16]
    ));
    std::fs::create_dir_all(&uploads.staging).map_err(|e| {
        tracing::error!("cannot create the upload staging folder: {e}");
        ApiError::internal()
    })?;
    std::fs::write(&staging, &bytes).map_err(|e| {
        tracing::error!("cannot stage an upload: {e}");
        ApiError::internal()
    })?;
    let imported = radlab_store::import_paths(
        &state.catalog,
        &uploads.blobs,
        std::slice::from_ref(&staging),
        &ImportOptions::default(),
        Arc::new(NoProgress),
    )
    .await;
    let _ = std::fs::remove_file(&staging);
    let summary = imported?;
    if let Some(p) = summary.problems.first() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_importable",
            format!("the file cannot be used ({}): {}", p.reason_code, p.reason),
        ));
    }
    let added = state
        .catalog
        .add_project_images(
            &project,
            &ImageSelection::Instances(vec![uid.clone()]),
            None,
            &q.split,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "sop_instance_uid": uid,
            "image_id": radlab_labels::export::vindr_image_id(&uid),
            "split": q.split,
            "new_in_catalog": summary.imported == 1,
            "new_in_project": added.added == 1,
        })),
    ))
}

/// A DICOM data set whose frames all decode; its SOP Instance UID. Otherwise a 422 naming
/// what is wrong.
fn check_dicom(bytes: &[u8]) -> Result<String, ApiError> {
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
    Ok(radlab_dicom::InstanceInfo::from_file(&file).sop_instance_uid)
}
