//! Workflows, assignment and tasks.
//!
//! - `PUT /api/v1/projects/{id}/workflows/{split}` `{kind, readers, reviewers}`: owners set
//!   how a split is read (independent, consensus, single); `GET .../workflows`: members.
//! - `POST /api/v1/projects/{id}/assign` `{split}`: owners make the missing reading tasks
//!   (N distinct annotators per image, the least loaded first); run again after adding
//!   images. `GET .../tasks`: owners see every task (annotators never see who else reads).
//! - `GET /api/v1/tasks?project=&state=`: the caller's own tasks.
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
}

pub(crate) async fn my_tasks(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<MyTasks>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let tasks = state
        .catalog
        .tasks_of(
            &caller.user.user_id,
            q.project.as_deref(),
            q.state.as_deref(),
        )
        .await?;
    Ok(Json(serde_json::json!({"tasks": tasks})))
}

/// The caller's own task; anyone else's is "not found" (its id tells nothing).
async fn own_task(state: &AppState, caller: &Caller, task_id: &str) -> Result<Task, ApiError> {
    match state.catalog.task(task_id).await? {
        Some(t) if t.user_id == caller.user.user_id => Ok(t),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("you have no task {task_id}"),
        )),
    }
}

pub(crate) async fn start(
    State(state): State<AppState>,
    caller: Caller,
    Path(task_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    own_task(&state, &caller, &task_id).await?;
    let t = state
        .catalog
        .advance_task(&task_id, "NEW", "IN_PROGRESS")
        .await
        .map_err(client_error)?;
    Ok(Json(serde_json::json!({"task": t})))
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    Path(task_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    own_task(&state, &caller, &task_id).await?;
    let t = state
        .catalog
        .advance_task(&task_id, "IN_PROGRESS", "SUBMITTED")
        .await
        .map_err(client_error)?;
    Ok(Json(serde_json::json!({"task": t})))
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
