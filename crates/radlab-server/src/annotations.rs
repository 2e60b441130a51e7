//! Annotations through tasks, and the blinding rules.
//!
//! - `GET /api/v1/tasks/{task}/annotations`: the caller's own task only (404 for anyone
//!   else's). A reading task shows the caller's own layer of the image and nothing of the
//!   other readers; a review task (made only once every reader has submitted) shows the
//!   consensus layer being built, every reader's layer, and a fused proposal (WBF at IoU 0.4
//!   of the readers, with a quorum of 2 when there are 3 or more readers).
//! - `PUT /api/v1/tasks/{task}/annotations` `{version, annotations, comment?}`: replaces the
//!   task's layer when the task is IN_PROGRESS and the layer is still at `version` (409
//!   otherwise: a stale write never overwrites); every annotation is checked against the
//!   project's schema and the image (a box label needs a box inside the image, an image
//!   label none, "No finding" stands alone).
//! - `GET /api/v1/projects/{id}/annotations`: every current annotation of the project, for
//!   owners and administrators only.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use radlab_labels::consensus::{ConsensusOptions, Quorum, fuse_readers};
use radlab_labels::schema::LabelScope;
use radlab_store::{LayerAnnotation, LayerKey, LayerWriteError, Task};
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::projects::{access, project_schema, require_owner};
use crate::tasks::own_task;
use crate::{AppState, body};

/// The layer a task writes: the reader's own, or the consensus.
fn key<'a>(task: &'a Task) -> LayerKey<'a> {
    if task.kind == "review" {
        LayerKey {
            project: &task.project_id,
            image_id: &task.image_id,
            layer: "consensus",
            reader: "",
        }
    } else {
        LayerKey {
            project: &task.project_id,
            image_id: &task.image_id,
            layer: "reader",
            reader: &task.username,
        }
    }
}

pub(crate) async fn get_task_annotations(
    State(state): State<AppState>,
    caller: Caller,
    Path(task_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let task = own_task(&state, &caller, &task_id).await?;
    let layer = state.catalog.layer(key(&task)).await?;
    let size = state
        .catalog
        .image_size(&task.project_id, &task.image_id)
        .await?;
    // Where the image is in the project's DICOMweb, for the viewer.
    let location = state
        .catalog
        .image_locations(&task.project_id, std::slice::from_ref(&task.image_id))
        .await?
        .into_iter()
        .next()
        .map(|(_, (study, series, sop))| {
            let dicomweb = format!(
                "/api/v1/projects/{}/dicomweb/studies/{study}/series/{series}/instances/{sop}",
                task.project_id
            );
            (study, series, sop, dicomweb)
        });
    let mut out = serde_json::json!({
        "task": task,
        "image": {
            "image_id": task.image_id,
            "columns": size.map(|s| s.0),
            "rows": size.map(|s| s.1),
            "study_instance_uid": location.as_ref().map(|l| &l.0),
            "series_instance_uid": location.as_ref().map(|l| &l.1),
            "sop_instance_uid": location.as_ref().map(|l| &l.2),
            "dicomweb": location.as_ref().map(|l| &l.3),
        },
        "version": layer.version,
        "annotations": layer.annotations,
        "comment": state.catalog.task_comment(&task_id).await?,
    });
    if task.kind == "review" {
        // Every reader's layer, and the fused proposal built from them.
        let readers: Vec<String> = state
            .catalog
            .project_tasks(&task.project_id, Some(&task.image_id))
            .await?
            .into_iter()
            .filter(|t| t.kind == "reading")
            .map(|t| t.username)
            .collect();
        let mut layers = Vec::new();
        let mut rows = Vec::new();
        for r in &readers {
            let l = state
                .catalog
                .layer(LayerKey {
                    project: &task.project_id,
                    image_id: &task.image_id,
                    layer: "reader",
                    reader: r,
                })
                .await?;
            rows.extend(l.annotations.iter().map(|a| radlab_labels::Annotation {
                image_id: task.image_id.clone(),
                reader: Some(r.clone()),
                label: a.label.clone(),
                bbox: a.bbox,
                score: None,
            }));
            layers.push(serde_json::json!({"reader": r, "annotations": l.annotations}));
        }
        let options = ConsensusOptions {
            quorum: (readers.len() >= 3).then_some(Quorum::Count(2)),
            ..ConsensusOptions::default()
        };
        let proposal: Vec<serde_json::Value> = fuse_readers(&rows, &options)
            .map_err(ApiError::bad_request)?
            .into_iter()
            .map(|f| {
                serde_json::json!({
                    "label": f.label, "bbox": f.bbox, "score": f.score, "readers": f.readers,
                })
            })
            .collect();
        out["readers"] = serde_json::json!(layers);
        out["proposal"] = serde_json::json!(proposal);
    }
    Ok(Json(out))
}

#[derive(Deserialize)]
pub(crate) struct WriteLayer {
    version: i64,
    annotations: Vec<LayerAnnotation>,
    #[serde(default)]
    comment: Option<String>,
}

pub(crate) async fn put_task_annotations(
    State(state): State<AppState>,
    caller: Caller,
    Path(task_id): Path<String>,
    payload: Result<Json<WriteLayer>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let task = own_task(&state, &caller, &task_id).await?;
    let w = body(payload)?;
    match task.state.as_str() {
        "IN_PROGRESS" => {}
        "NEW" => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "task_not_started",
                "start the task (POST .../start) before saving annotations",
            ));
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "task_submitted",
                "the task is submitted and read-only; an owner can reopen it",
            ));
        }
    }
    let schema = project_schema(&state, &task.project_id).await?;
    let size = state
        .catalog
        .image_size(&task.project_id, &task.image_id)
        .await?;
    check_annotations(&w.annotations, &schema, size)?;
    if let Some(c) = &w.comment {
        if c.chars().count() > 4000 {
            return Err(ApiError::bad_request(
                "the comment is longer than 4,000 characters",
            ));
        }
        state.catalog.set_task_comment(&task_id, c).await?;
    }
    let author = caller.user.username.clone();
    let layer = state
        .catalog
        .replace_layer(key(&task), w.version, &w.annotations, &task_id, &author)
        .await
        .map_err(|e| match e {
            LayerWriteError::Stale { expected, current } => ApiError::new(
                StatusCode::CONFLICT,
                "stale",
                format!(
                    "the annotations changed since version {expected} (now {current}): reload \
                     them and apply your change again"
                ),
            ),
            LayerWriteError::Store(radlab_store::StoreError::Database(m))
                if m.to_lowercase().contains("unique") || m.contains("duplicate key") =>
            {
                ApiError::new(
                    StatusCode::CONFLICT,
                    "stale",
                    "another write to this project landed at the same moment: reload and retry",
                )
            }
            LayerWriteError::Store(e) => e.into(),
        })?;
    Ok(Json(serde_json::json!({
        "version": layer.version,
        "annotations": layer.annotations,
    })))
}

/// Annotations checked against the schema and the image: known labels, a box exactly for
/// box labels, boxes finite, ordered and inside the image, exclusive labels alone (breast-level
/// labels aside), notes of reasonable length.
fn check_annotations(
    annotations: &[LayerAnnotation],
    schema: &radlab_labels::schema::LabelSchema,
    size: Option<(i64, i64)>,
) -> Result<(), ApiError> {
    if annotations.len() > 1000 {
        return Err(ApiError::bad_request(
            "more than 1,000 annotations on one image",
        ));
    }
    for (i, a) in annotations.iter().enumerate() {
        let at = |m: String| ApiError::bad_request(format!("annotation {}: {m}", i + 1));
        let Some(label) = schema.label(&a.label) else {
            return Err(at(format!(
                "{:?} is not a label of this project's schema",
                a.label
            )));
        };
        match (label.scope, a.bbox) {
            (LabelScope::Local, None) => {
                return Err(at(format!("{:?} is a box label: give its bbox", a.label)));
            }
            (LabelScope::Image | LabelScope::Study | LabelScope::Breast, Some(_)) => {
                return Err(at(format!(
                    "{:?} is an image-level label: it takes no bbox",
                    a.label
                )));
            }
            _ => {}
        }
        if let Some(b) = a.bbox {
            if b.iter().any(|v| !v.is_finite()) || b[2] <= b[0] || b[3] <= b[1] {
                return Err(at(format!(
                    "bbox {b:?} must be [x_min, y_min, x_max, y_max] with x_max > x_min and \
                     y_max > y_min"
                )));
            }
            if let Some((columns, rows)) = size
                && (b[0] < 0.0 || b[1] < 0.0 || b[2] > columns as f64 || b[3] > rows as f64)
            {
                return Err(at(format!(
                    "bbox {b:?} reaches outside the image ({columns} x {rows} pixels)"
                )));
            }
        }
        if a.note.chars().count() > 2000 {
            return Err(at("the note is longer than 2,000 characters".into()));
        }
        // A breast-level assessment (BI-RADS, density) may sit beside "No finding".
        if label.exclusive
            && annotations
                .iter()
                .filter(|o| {
                    schema
                        .label(&o.label)
                        .is_none_or(|l| l.scope != LabelScope::Breast)
                })
                .count()
                > 1
        {
            return Err(at(format!(
                "{:?} excludes every other label of the image",
                a.label
            )));
        }
    }
    Ok(())
}

pub(crate) async fn project_annotations(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let roles = access(&state, &caller, &project).await?;
    // Readers never see the project's annotations: each sees only their own layer.
    require_owner(&caller, &roles, "reading every reader's annotations")?;
    let rows = state.catalog.annotations(&project, &[]).await?;
    let out: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|(id, a)| {
            serde_json::json!({
                "annotation_id": id,
                "image_id": a.image_id,
                "reader": a.reader,
                "label": a.label,
                "bbox": a.bbox,
            })
        })
        .collect();
    Ok(Json(serde_json::json!({"annotations": out})))
}
