//! Projects, their label schemas and members.
//!
//! - `POST /api/v1/projects` `{project_id, template}` or `{project_id, schema}`: any signed-in
//!   user; the creator becomes its owner.
//! - `GET /api/v1/projects`: the caller's projects (an administrator sees all).
//! - `GET /api/v1/projects/{id}`: the project, its schema and the caller's roles; members
//!   and administrators only (403 for anyone else, 404 when there is no such project).
//! - `PUT /api/v1/projects/{id}/schema` `{schema}`: owners and administrators; once the
//!   project has annotations, only an extension (labels added, none removed or changed in
//!   scope, parent or export id).
//! - `GET /api/v1/projects/{id}/members`, `POST` `{username, role}`: owners and
//!   administrators add members as owner, annotator or reviewer.
//! - `POST /api/v1/projects/{id}/images` `{all | import_id | studies | instances, modality?,
//!   split}`: owners add catalogued images to a split (train, test, unassigned);
//!   `GET .../images?split=&offset=&limit=` pages them for members;
//!   `POST .../images/split` `{image_ids, split}` moves them, all or none.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use radlab_labels::schema::{LabelSchema, TEMPLATES};
use radlab_store::{ImageSelection, ProjectRole, SiteRole};
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::{AppState, body};

/// A stored schema: a schema document, or (from `radlab labels import --create`) the name
/// of a template.
pub(crate) fn parse_schema(stored: &str) -> Result<LabelSchema, ApiError> {
    if let Some(t) = LabelSchema::template(stored.trim()) {
        return Ok(t);
    }
    serde_json::from_str(stored).map_err(|e| {
        tracing::error!("a stored label schema does not parse: {e}");
        ApiError::internal()
    })
}

/// A store error in answer to a caller's request: a configuration error is theirs (400).
pub(crate) fn bad_input(e: radlab_store::StoreError) -> ApiError {
    match e {
        radlab_store::StoreError::Config(m) => ApiError::bad_request(m),
        other => other.into(),
    }
}

/// A project's label schema.
pub(crate) async fn project_schema(
    state: &AppState,
    project: &str,
) -> Result<LabelSchema, ApiError> {
    let stored = state
        .catalog
        .project_schema(project)
        .await?
        .unwrap_or_default();
    parse_schema(&stored)
}

/// The caller's roles in a project; 404 when it does not exist, 403 when the caller is
/// neither a member nor an administrator.
pub(crate) async fn access(
    state: &AppState,
    caller: &Caller,
    project: &str,
) -> Result<Vec<ProjectRole>, ApiError> {
    if !state.catalog.project_exists(project).await? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no project {project}"),
        ));
    }
    let roles = state
        .catalog
        .member_roles(project, &caller.user.user_id)
        .await?;
    if roles.is_empty() && caller.user.site_role != SiteRole::Admin {
        return Err(ApiError::forbidden(format!(
            "you are not a member of project {project}"
        )));
    }
    Ok(roles)
}

pub(crate) fn require_owner(
    caller: &Caller,
    roles: &[ProjectRole],
    what: &str,
) -> Result<(), ApiError> {
    if roles.contains(&ProjectRole::Owner) || caller.user.site_role == SiteRole::Admin {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "{what} needs an owner of the project or a site administrator"
        )))
    }
}

#[derive(Deserialize)]
pub(crate) struct NewProject {
    project_id: String,
    #[serde(default)]
    template: Option<String>,
    #[serde(default)]
    schema: Option<LabelSchema>,
}

pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    payload: Result<Json<NewProject>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let new = body(payload)?;
    let schema = match (new.template.as_deref(), new.schema) {
        (Some(t), None) => LabelSchema::template(t).ok_or_else(|| {
            ApiError::bad_request(format!(
                "template {t:?} is not one of: {}",
                TEMPLATES.join(", ")
            ))
        })?,
        (None, Some(s)) => s,
        _ => {
            return Err(ApiError::bad_request(
                "give either a template (e.g. \"vindr-cxr\") or a schema",
            ));
        }
    };
    schema
        .check()
        .map_err(|e| ApiError::bad_request(format!("label schema: {e}")))?;
    let text = serde_json::to_string(&schema).map_err(|_| ApiError::internal())?;
    state
        .catalog
        .create_project(&new.project_id, &text)
        .await
        .map_err(|e| match e {
            radlab_store::StoreError::Config(m) if m.contains("exists") => {
                ApiError::new(StatusCode::CONFLICT, "conflict", m)
            }
            radlab_store::StoreError::Config(m) => ApiError::bad_request(m),
            other => other.into(),
        })?;
    state
        .catalog
        .add_member(&new.project_id, &caller.user.user_id, ProjectRole::Owner)
        .await?;
    tracing::info!(
        "project {} created by {}",
        new.project_id,
        caller.user.username
    );
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "project_id": new.project_id,
            "schema": schema,
            "roles": [ProjectRole::Owner],
        })),
    ))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    let all = state.catalog.list_projects().await?;
    let mine = state.catalog.projects_of(&caller.user.user_id).await?;
    let visible: Vec<_> = all
        .into_iter()
        .filter(|p| caller.user.site_role == SiteRole::Admin || mine.contains(&p.project_id))
        .map(|p| {
            serde_json::json!({
                "project_id": p.project_id,
                "created_at": p.created_at,
            })
        })
        .collect();
    Ok(Json(serde_json::json!({"projects": visible})))
}

pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let roles = access(&state, &caller, &project).await?;
    let stored = state
        .catalog
        .project_schema(&project)
        .await?
        .unwrap_or_default();
    let schema = parse_schema(&stored)?;
    Ok(Json(serde_json::json!({
        "project_id": project,
        "schema": schema,
        "roles": roles,
        "schema_in_use": state.catalog.annotation_log_len(&project).await? > 0,
    })))
}

#[derive(Deserialize)]
pub(crate) struct SchemaBody {
    schema: LabelSchema,
}

pub(crate) async fn put_schema(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
    payload: Result<Json<SchemaBody>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let roles = access(&state, &caller, &project).await?;
    require_owner(&caller, &roles, "changing the label schema")?;
    let new = body(payload)?.schema;
    new.check()
        .map_err(|e| ApiError::bad_request(format!("label schema: {e}")))?;
    if state.catalog.annotation_log_len(&project).await? > 0 {
        let stored = state
            .catalog
            .project_schema(&project)
            .await?
            .unwrap_or_default();
        parse_schema(&stored)?.check_extension(&new).map_err(|e| {
            ApiError::new(
                StatusCode::CONFLICT,
                "schema_in_use",
                format!("the project has annotations: {e}"),
            )
        })?;
    }
    let text = serde_json::to_string(&new).map_err(|_| ApiError::internal())?;
    state.catalog.set_project_schema(&project, &text).await?;
    Ok(Json(
        serde_json::json!({"project_id": project, "schema": new}),
    ))
}

pub(crate) async fn members(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let roles = access(&state, &caller, &project).await?;
    require_owner(&caller, &roles, "listing the members")?;
    Ok(Json(
        serde_json::json!({"members": state.catalog.members(&project).await?}),
    ))
}

#[derive(Deserialize)]
pub(crate) struct NewMember {
    username: String,
    role: String,
}

pub(crate) async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
    payload: Result<Json<NewMember>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let roles = access(&state, &caller, &project).await?;
    require_owner(&caller, &roles, "adding members")?;
    let new = body(payload)?;
    let role = ProjectRole::parse(&new.role).ok_or_else(|| {
        ApiError::bad_request(format!(
            "role {:?}: use owner, annotator or reviewer",
            new.role
        ))
    })?;
    let (user, _) = state
        .catalog
        .user_for_login(&new.username)
        .await?
        .ok_or_else(|| ApiError::bad_request(format!("no user {}", new.username)))?;
    state
        .catalog
        .add_member(&project, &user.user_id, role)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"project_id": project, "username": user.username, "role": role})),
    ))
}

#[derive(Deserialize)]
pub(crate) struct AddImages {
    #[serde(default)]
    all: bool,
    #[serde(default)]
    import_id: Option<String>,
    #[serde(default)]
    studies: Option<Vec<String>>,
    #[serde(default)]
    instances: Option<Vec<String>>,
    #[serde(default)]
    modality: Option<String>,
    /// QIDO-RS matching keys over the whole catalog, e.g. {"ModalitiesInStudy": "CR",
    /// "BodyPartExamined": "CHEST", "StudyDate": "20200101-"}.
    #[serde(default)]
    query: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default = "unassigned")]
    split: String,
}

fn unassigned() -> String {
    "unassigned".into()
}

/// `POST /api/v1/projects/{id}/images`: add catalogued images (all, one import, listed
/// studies or instances; optionally one modality) to a split. Owners and administrators.
pub(crate) async fn add_images(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
    payload: Result<Json<AddImages>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let roles = access(&state, &caller, &project).await?;
    require_owner(&caller, &roles, "adding images")?;
    let a = body(payload)?;
    let selection = match (a.all, a.import_id, a.studies, a.instances, a.query) {
        (true, None, None, None, None) => ImageSelection::All,
        (false, Some(id), None, None, None) => ImageSelection::Import(id),
        (false, None, Some(s), None, None) => ImageSelection::Studies(s),
        (false, None, None, Some(i), None) => ImageSelection::Instances(i),
        (false, None, None, None, Some(q)) => {
            ImageSelection::Query(Box::new(crate::dicomweb::selection_query(&q)?))
        }
        _ => {
            return Err(ApiError::bad_request(
                "select the images with exactly one of: all (true), import_id, studies, instances, \
                 query (QIDO-RS keys such as ModalitiesInStudy, BodyPartExamined, StudyDate)",
            ));
        }
    };
    let added = state
        .catalog
        .add_project_images(&project, &selection, a.modality.as_deref(), &a.split)
        .await
        .map_err(bad_input)?;
    Ok(Json(serde_json::json!({
        "project_id": project,
        "split": a.split,
        "added": added.added,
        "already_in_project": added.already,
    })))
}

#[derive(Deserialize)]
pub(crate) struct ImagePage {
    #[serde(default)]
    split: Option<String>,
    #[serde(default)]
    offset: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

/// `GET /api/v1/projects/{id}/images?split=&offset=&limit=`: members; pages of at most
/// 1,000 images by image id.
pub(crate) async fn list_images(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
    Query(page): Query<ImagePage>,
) -> Result<Json<serde_json::Value>, ApiError> {
    access(&state, &caller, &project).await?;
    let offset = page.offset.unwrap_or(0).max(0);
    let limit = page.limit.unwrap_or(100).clamp(1, 1000);
    let (images, total) = state
        .catalog
        .project_images(&project, page.split.as_deref(), offset, limit)
        .await
        .map_err(bad_input)?;
    Ok(Json(serde_json::json!({
        "images": images,
        "total": total,
        "offset": offset,
        "limit": limit,
    })))
}

#[derive(Deserialize)]
pub(crate) struct MoveImages {
    image_ids: Vec<String>,
    split: String,
}

/// `POST /api/v1/projects/{id}/images/split` `{image_ids, split}`: owners and
/// administrators move images between splits, all or none.
pub(crate) async fn set_split(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
    payload: Result<Json<MoveImages>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let roles = access(&state, &caller, &project).await?;
    require_owner(&caller, &roles, "changing splits")?;
    let m = body(payload)?;
    let moved = state
        .catalog
        .set_split(&project, &m.image_ids, &m.split)
        .await
        .map_err(bad_input)?;
    Ok(Json(serde_json::json!({"moved": moved, "split": m.split})))
}

/// `GET /api/v1/projects/{id}/triage`: owners and administrators; every triage verdict of
/// the project by image id (`radlab triage --project`), with the counts that stand (an
/// overrule wins over the verdict).
pub(crate) async fn triage(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let roles = access(&state, &caller, &project).await?;
    require_owner(&caller, &roles, "reading the triage verdicts")?;
    let verdicts = state.catalog.triage_verdicts(&project).await?;
    let valid = verdicts.iter().filter(|v| v.effective_valid()).count();
    Ok(Json(serde_json::json!({
        "verdicts": verdicts,
        "valid": valid,
        "rejected": verdicts.len() - valid,
    })))
}

/// `GET /api/v1/projects/{id}/triage/{image}/upright.png`: owners and administrators; the
/// upright rendering `radlab triage --project P --fix-orientation` stored for an image the
/// network saw in another orientation (the original DICOM is never changed); 404 when there
/// is none.
pub(crate) async fn triage_upright(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, image)): Path<(String, String)>,
) -> Result<axum::response::Response, ApiError> {
    let roles = access(&state, &caller, &project).await?;
    require_owner(&caller, &roles, "reading the triage renderings")?;
    let verdicts = state.catalog.triage_verdicts(&project).await?;
    let Some(hash) = verdicts
        .iter()
        .find(|v| v.verdict.image_id == image && !v.verdict.upright_blob.is_empty())
        .map(|v| v.verdict.upright_blob.clone())
    else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "image {image} of {project} has no upright rendering (radlab triage --project {project} --fix-orientation stores one for frontal radiographs seen in another orientation)"
            ),
        ));
    };
    let png = crate::dicomweb::load(&state, &hash).await?;
    axum::response::Response::builder()
        .header(axum::http::header::CONTENT_TYPE, "image/png")
        .header(axum::http::header::CACHE_CONTROL, "private, max-age=3600")
        .body(axum::body::Body::from(png))
        .map_err(|_| ApiError::internal())
}

#[derive(Deserialize)]
pub(crate) struct Overrule {
    /// true or false; null takes an earlier overrule back.
    valid: Option<bool>,
}

/// `PUT /api/v1/projects/{id}/triage/{image}` `{"valid": true | false | null}`: owners and
/// administrators overrule a verdict (null takes the overrule back); 404 when the image has
/// no verdict.
pub(crate) async fn overrule_triage(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, image)): Path<(String, String)>,
    payload: Result<Json<Overrule>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let roles = access(&state, &caller, &project).await?;
    require_owner(&caller, &roles, "overruling a triage verdict")?;
    let o = body(payload)?;
    if !state
        .catalog
        .overrule_triage(&project, &image, o.valid, &caller.user.username)
        .await?
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "image {image} of {project} has no triage verdict (run radlab triage --project {project})"
            ),
        ));
    }
    Ok(Json(
        serde_json::json!({"image_id": image, "overruled": o.valid}),
    ))
}
