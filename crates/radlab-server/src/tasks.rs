//! Workflows, assignment and tasks.
//!
//! - `PUT /api/v1/projects/{id}/workflows/{split}` `{kind, readers, reviewers}`: owners set
//!   how a split is read (independent, consensus, single); `GET .../workflows`: members.
//! - `POST /api/v1/projects/{id}/assign` `{split}`: owners make the missing reading tasks
//!   (N distinct annotators per image, the least loaded first); run again after adding
//!   images. `GET .../tasks`: owners see every task (annotators never see who else reads).
//! - `GET /api/v1/tasks?project=&state=&offset=&limit=`: the caller's own tasks, a page at a
//!   time (100 by default, at most 1,000).
//! - `POST /api/v1/tasks/{task}/start`, `.../submit`: the task's own user moves it NEW →
//!   IN_PROGRESS → SUBMITTED (409 from any other state; 404 for anyone else's task, so ids
//!   reveal nothing). The last reader's submit finishes the image or opens its review tasks.
//! - `DELETE /api/v1/tasks/{task}` (a NEW task) and `POST .../reassign` `{username}`:
//!   owners.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use radlab_store::{ProjectRole, SiteRole, Task, Workflow};
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::projects::{access, require_owner};
use crate::{AppState, body};

/// Store configuration errors are the caller's: 400, or 409 for a state conflict.
fn client_error(e: radlab_store::StoreError) -> ApiError {
    match e {
        radlab_store::StoreError::Config(m) if m.contains(", not ") || m.contains("started") => {
            ApiError::new(StatusCode::CONFLICT, "conflict", m)
        }
        radlab_store::StoreError::Config(m) => ApiError::bad_request(m),
        other => other.into(),
    }
}

#[derive(Deserialize)]
pub(crate) struct WorkflowBody {
    kind: String,
    #[serde(default = "one")]
    readers: i64,
    #[serde(default)]
    reviewers: i64,
}

fn one() -> i64 {
    1
}

pub(crate) async fn set_workflow(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, split)): Path<(String, String)>,
    payload: Result<Json<WorkflowBody>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let roles = access(&state, &caller, &project).await?;
    require_owner(&caller, &roles, "setting a workflow")?;
    let b = body(payload)?;
    let w = Workflow {
        split,
        kind: b.kind,
        readers: b.readers,
        reviewers: b.reviewers,
    };
    state
        .catalog
        .set_workflow(&project, &w)
        .await
        .map_err(client_error)?;
    Ok(Json(
        serde_json::json!({"project_id": project, "workflow": w}),
    ))
}

pub(crate) async fn workflows(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    access(&state, &caller, &project).await?;
    Ok(Json(
        serde_json::json!({"workflows": state.catalog.workflows(&project).await?}),
    ))
}

#[derive(Deserialize)]
pub(crate) struct AssignBody {
    split: String,
}

pub(crate) async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
    payload: Result<Json<AssignBody>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let roles = access(&state, &caller, &project).await?;
    require_owner(&caller, &roles, "assigning tasks")?;
    let b = body(payload)?;
    let a = state
        .catalog
        .assign(&project, &b.split)
        .await
        .map_err(client_error)?;
    tracing::info!(
        "project {project}: {} reading tasks assigned by {}",
        a.tasks_created,
        caller.user.username
    );
    Ok(Json(serde_json::json!(a)))
}

pub(crate) async fn project_tasks(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let roles = access(&state, &caller, &project).await?;
    require_owner(&caller, &roles, "listing every task")?;
    Ok(Json(
        serde_json::json!({"tasks": state.catalog.project_tasks(&project, None).await?}),
    ))
}

#[derive(Deserialize)]
pub(crate) struct MyTasks {
    #[serde(default)]
    project: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    offset: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

pub(crate) async fn my_tasks(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<MyTasks>,
) -> Result<Json<serde_json::Value>, ApiError> {
    // A worklist is read a page at a time (100 by default, at most 1,000): a reader of a
    // large project has thousands of tasks.
    let offset = q.offset.unwrap_or(0).max(0);
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let tasks = state
        .catalog
        .tasks_of(
            &caller.user.user_id,
            q.project.as_deref(),
            q.state.as_deref(),
            offset,
            limit,
        )
        .await?;
    // Each task says where its image is in the project's DICOMweb, for the viewer.
    let mut by_project: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for t in &tasks {
        by_project
            .entry(t.project_id.as_str())
            .or_default()
            .push(t.image_id.clone());
    }
    let mut locations = std::collections::HashMap::new();
    for (project, ids) in by_project {
        for (id, uids) in state.catalog.image_locations(project, &ids).await? {
            locations.insert((project.to_string(), id), uids);
        }
    }
    let tasks: Vec<serde_json::Value> = tasks
        .iter()
        .map(|t| {
            let mut v = serde_json::to_value(t).unwrap_or_default();
            if let (Some((study, series, sop)), serde_json::Value::Object(m)) = (
                locations.get(&(t.project_id.clone(), t.image_id.clone())),
                &mut v,
            ) {
                m.insert("study_instance_uid".into(), study.clone().into());
                m.insert("series_instance_uid".into(), series.clone().into());
                m.insert("sop_instance_uid".into(), sop.clone().into());
                m.insert(
                    "dicomweb".into(),
                    format!(
                        "/api/v1/projects/{}/dicomweb/studies/{study}/series/{series}/instances/{sop}",
                        t.project_id
                    )
                    .into(),
                );
            }
            v
        })
        .collect();
    Ok(Json(
        serde_json::json!({"tasks": tasks, "offset": offset, "limit": limit}),
    ))
}

/// `GET /api/v1/tasks/summary`: the caller's queue in each project (tasks by state) and
/// their pace (median seconds per image, submitted in the last day and week).
pub(crate) async fn my_summary(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    let projects = state.catalog.queue_summary(&caller.user.user_id).await?;
    Ok(Json(serde_json::json!({"projects": projects})))
}

/// The caller's own task; anyone else's is "not found" (its id tells nothing).
pub(crate) async fn own_task(
    state: &AppState,
    caller: &Caller,
    task_id: &str,
) -> Result<Task, ApiError> {
    match state.catalog.task(task_id).await? {
        Some(t) if t.user_id == caller.user.user_id => Ok(t),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("you have no task {task_id}"),
        )),
    }
}

/// The caller moves their own task from one state to the next.
async fn advance(
    state: &AppState,
    caller: &Caller,
    task_id: &str,
    from: &str,
    to: &str,
) -> Result<Json<serde_json::Value>, ApiError> {
    own_task(state, caller, task_id).await?;
    let t = state
        .catalog
        .advance_task(task_id, from, to)
        .await
        .map_err(client_error)?;
    Ok(Json(serde_json::json!({"task": t})))
}

pub(crate) async fn start(
    State(state): State<AppState>,
    caller: Caller,
    Path(task_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    advance(&state, &caller, &task_id, "NEW", "IN_PROGRESS").await
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    Path(task_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    advance(&state, &caller, &task_id, "IN_PROGRESS", "SUBMITTED").await
}

/// An owner's hold on a task: the task and the caller's roles in its project.
async fn owned_task(state: &AppState, caller: &Caller, task_id: &str) -> Result<Task, ApiError> {
    let task = state.catalog.task(task_id).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no task {task_id}"),
        )
    })?;
    let roles = state
        .catalog
        .member_roles(&task.project_id, &caller.user.user_id)
        .await?;
    if !roles.contains(&ProjectRole::Owner) && caller.user.site_role != SiteRole::Admin {
        // Not an owner: as for anyone else's task, nothing to see.
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("you have no task {task_id}"),
        ));
    }
    Ok(task)
}

pub(crate) async fn unassign(
    State(state): State<AppState>,
    caller: Caller,
    Path(task_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    owned_task(&state, &caller, &task_id).await?;
    state
        .catalog
        .unassign(&task_id)
        .await
        .map_err(client_error)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub(crate) struct Reassign {
    username: String,
}

pub(crate) async fn reassign(
    State(state): State<AppState>,
    caller: Caller,
    Path(task_id): Path<String>,
    payload: Result<Json<Reassign>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let task = owned_task(&state, &caller, &task_id).await?;
    let b = body(payload)?;
    let (user, _) = state
        .catalog
        .user_for_login(&b.username)
        .await?
        .ok_or_else(|| ApiError::bad_request(format!("no user {}", b.username)))?;
    let needed = if task.kind == "review" {
        ProjectRole::Reviewer
    } else {
        ProjectRole::Annotator
    };
    if !state
        .catalog
        .member_roles(&task.project_id, &user.user_id)
        .await?
        .contains(&needed)
    {
        return Err(ApiError::bad_request(format!(
            "{} is not among the {}s of project {}",
            user.username,
            needed.as_str(),
            task.project_id
        )));
    }
    let t = state
        .catalog
        .reassign(&task_id, &user.user_id)
        .await
        .map_err(client_error)?;
    Ok(Json(serde_json::json!({"task": t})))
}

/// `POST /api/v1/tasks/{task}/reopen`: an owner makes a submitted task editable again
/// (SUBMITTED → IN_PROGRESS; the image goes back to reading or review).
pub(crate) async fn reopen(
    State(state): State<AppState>,
    caller: Caller,
    Path(task_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    owned_task(&state, &caller, &task_id).await?;
    let t = state
        .catalog
        .advance_task(&task_id, "SUBMITTED", "IN_PROGRESS")
        .await
        .map_err(|e| match e {
            radlab_store::StoreError::Config(m) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", m)
            }
            other => other.into(),
        })?;
    tracing::info!("task reopened by {}", caller.user.username);
    Ok(Json(serde_json::json!({"task": t})))
}

/// `GET /api/v1/projects/{id}/progress`: owners see images by split and state, each
/// reader's tasks by state and median time per image, and the agreement of the readers on
/// the images every reader has submitted (per label: pair kappas' mean, Fleiss' kappa,
/// Krippendorff's alpha; per box label: F1 between readers at IoU 0.4).
pub(crate) async fn progress(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let roles = access(&state, &caller, &project).await?;
    require_owner(&caller, &roles, "reading the project's progress")?;
    let images: Vec<serde_json::Value> = state
        .catalog
        .image_states(&project)
        .await?
        .into_iter()
        .map(|(split, st, n)| serde_json::json!({"split": split, "state": st, "images": n}))
        .collect();
    let readers = state.catalog.reader_progress(&project).await?;
    // Agreement over the images whose readers have all submitted: only those images, their
    // annotations and their submitted reading tasks are read (nothing while none is read).
    let read: std::collections::HashSet<String> = state
        .catalog
        .read_images(&project)
        .await?
        .into_iter()
        .collect();
    let mut rows: Vec<radlab_labels::Annotation> = if read.is_empty() {
        Vec::new()
    } else {
        state
            .catalog
            .annotations(&project, &[radlab_store::Layer::Reader])
            .await?
            .into_iter()
            .map(|(_, a)| a)
            .filter(|a| read.contains(&a.image_id))
            .collect()
    };
    let schema = crate::projects::project_schema(&state, &project).await?;
    let names: Vec<&str> = schema.labels.iter().map(|l| l.name.as_str()).collect();
    let boxes: Vec<&str> = schema
        .labels
        .iter()
        .filter(|l| l.scope == radlab_labels::schema::LabelScope::Local)
        .map(|l| l.name.as_str())
        .collect();
    // A reader who submitted an empty layer rated every label absent on that image: a row
    // without a label stands for them, so they count as a rater and as a reader with no box.
    let mut has_rows: std::collections::HashSet<(String, String)> = rows
        .iter()
        .map(|a| (a.image_id.clone(), a.reader.clone().unwrap_or_default()))
        .collect();
    if !read.is_empty() {
        for (image_id, username) in state.catalog.submitted_readings(&project).await? {
            if has_rows.insert((image_id.clone(), username.clone())) {
                rows.push(radlab_labels::Annotation {
                    image_id,
                    reader: Some(username),
                    label: String::new(),
                    bbox: None,
                    score: None,
                });
            }
        }
    }
    let marks = radlab_metrics::readers::marks_of_annotations(&rows);
    let labels: Vec<serde_json::Value> =
        radlab_metrics::readers::image_label_agreement(&marks, &names)
            .into_iter()
            .filter(|l| l.marks > 0)
            .map(|l| {
                serde_json::json!({
                    "label": l.label,
                    "marks": l.marks,
                    "cohen_weighted_mean": l.cohen_weighted_mean,
                    "fleiss": l.fleiss,
                    "krippendorff_alpha": l.krippendorff_alpha,
                })
            })
            .collect();
    let box_f1: Vec<_> = radlab_metrics::readers::box_agreement(&rows, &boxes, 0.4)
        .into_iter()
        .filter(|b| b.boxes > 0)
        .collect();
    Ok(Json(serde_json::json!({
        "project_id": project,
        "images": images,
        "readers": readers,
        "agreement": {
            "images_read": read.len(),
            "image_labels": labels,
            "boxes": box_f1,
        },
    })))
}
