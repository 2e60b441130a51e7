//! # radlab-server
//!
//! `radlab serve`: the HTTP API of the labeling platform, under `/api/v1`: accounts and
//! access (local accounts with argon2id passwords, session cookies with CSRF
//! protection, a sign-in rate limit, API tokens for scripts, site roles admin / user) and
//! the error format every endpoint answers with (`{"error": {"code", "message"}}`).
//! Projects with label schemas (built-in templates, edit rules) and members in project roles
//! (`projects`), workflows per split, assignment of blinded readers and task states
//! (`tasks`), annotations with blinding on every read path and review with a fused proposal
//! (`annotations`), uploads (`uploads`), DICOMweb per project (`dicomweb`: QIDO-RS, WADO-RS,
//! STOW-RS) and long jobs in a queue in the database (`jobs`).
//!
//! Endpoints:
//! - `GET /api/v1/health`: `{"status": "ok"}`, no authentication.
//! - `POST /api/v1/auth/login` `{username, password}`: sets the session cookie, returns
//!   `{user, csrf_token}`; 401 on a wrong name or password (the same answer for both), 429
//!   after repeated failures.
//! - `POST /api/v1/auth/logout`: ends the session.
//! - `GET /api/v1/me`: the caller (and, signed in with a session, its CSRF token).
//! - `POST /api/v1/tokens` `{name}`: a new API token for the caller, shown once.
//! - `GET /api/v1/users`, `POST /api/v1/users` `{username, password, site_role}`: site
//!   administrators only.
//! - Projects, schemas, members, images: see `projects.rs`; workflows, assignment and
//!   tasks: see `tasks.rs`; annotations through tasks and the blinding rules: see
//!   `annotations.rs`; long jobs (imports, label exports, fusion) in a queue in the
//!   database, run by workers of every server: see `jobs.rs`.

mod annotations;
pub mod auth;
pub mod demo;
pub mod dicomweb;
pub mod error;
pub mod jobs;
pub mod openapi;
mod projects;
mod tasks;
pub mod uploads;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use radlab_store::{Catalog, SiteRole};
use serde::Deserialize;

use crate::auth::{
    Caller, LoginLimiter, SESSION_COOKIE, Via, check_password, hash_password, random_token,
    token_hash, unix_now, verify_password,
};
use crate::error::ApiError;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Mark the session cookie Secure (the server is reached over TLS, directly or through a
    /// proxy).
    pub secure_cookies: bool,
    /// How long a session lasts.
    pub session_hours: i64,
    /// Web origins (`https://viewer.example.org`) allowed to call DICOMweb from a browser
    /// page of theirs (an OHIF served elsewhere), with an API token: CORS for the
    /// `/dicomweb` paths only. Empty: same origin only.
    pub cors_origins: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            secure_cookies: false,
            session_hours: 12,
            cors_origins: Vec::new(),
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub catalog: Catalog,
    pub config: Arc<ServerConfig>,
    pub limiter: Arc<LoginLimiter>,
    /// Where uploads go (and where DICOMweb reads objects from); `None`: the server takes
    /// none.
    pub uploads: Option<Arc<uploads::Uploads>>,
    /// Decoded frames, rendered images and metadata answered recently.
    pub frame_cache: Arc<dicomweb::ByteCache>,
    /// This server's side of the job queue (how many workers, their wake-up).
    pub jobs: Arc<jobs::JobQueue>,
}

impl AppState {
    pub fn new(catalog: Catalog, config: ServerConfig) -> Self {
        AppState {
            catalog,
            config: Arc::new(config),
            limiter: Arc::new(LoginLimiter::default()),
            uploads: None,
            frame_cache: Arc::new(dicomweb::ByteCache::new(256 * 1024 * 1024)),
            jobs: Arc::new(jobs::JobQueue::new(jobs::JobConfig::default())),
        }
    }

    /// Run jobs as `config` says (by default a server runs none; `radlab serve` runs one
    /// at a time). The workers start with [`serve`], and only with a blob store.
    pub fn with_jobs(mut self, config: jobs::JobConfig) -> Self {
        self.jobs = Arc::new(jobs::JobQueue::new(config));
        self
    }

    /// Take uploads into `blobs`, staging files in `staging`, up to `max_bytes` each.
    pub fn with_uploads(
        mut self,
        blobs: radlab_store::BlobStore,
        staging: std::path::PathBuf,
        max_bytes: usize,
    ) -> Self {
        self.uploads = Some(Arc::new(uploads::Uploads {
            blobs,
            staging,
            max_bytes,
        }));
        self
    }
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    let upload_limit = state.uploads.as_ref().map_or(1, |u| u.max_bytes);
    Router::new()
        .route(
            "/api/v1/projects/{project}/upload",
            post(uploads::upload).layer(axum::extract::DefaultBodyLimit::max(upload_limit)),
        )
        .route(
            "/api/v1/projects/{project}/dicomweb/studies",
            get(dicomweb::qido_studies)
                .post(dicomweb::stow)
                .layer(axum::extract::DefaultBodyLimit::max(upload_limit)),
        )
        .route(
            "/api/v1/projects/{project}/dicomweb/studies/{study}",
            get(dicomweb::retrieve_study)
                .post(dicomweb::stow_study)
                .layer(axum::extract::DefaultBodyLimit::max(upload_limit)),
        )
        .nest("/api/v1/projects/{project}/dicomweb", dicomweb_routes())
        .route("/api/v1/health", get(health))
        .route("/api/v1/openapi.json", get(openapi::openapi_json))
        .route("/api/v1/docs", get(openapi::docs_page))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/me", get(me))
        .route("/api/v1/tokens", post(create_token))
        .route("/api/v1/users", get(list_users).post(create_user))
        .route(
            "/api/v1/projects",
            get(projects::list).post(projects::create),
        )
        .route("/api/v1/projects/{project}", get(projects::get))
        .route(
            "/api/v1/projects/{project}/schema",
            put(projects::put_schema),
        )
        .route(
            "/api/v1/projects/{project}/members",
            get(projects::members).post(projects::add_member),
        )
        .route(
            "/api/v1/projects/{project}/images",
            get(projects::list_images).post(projects::add_images),
        )
        .route(
            "/api/v1/projects/{project}/images/split",
            post(projects::set_split),
        )
        .route("/api/v1/projects/{project}/triage", get(projects::triage))
        .route(
            "/api/v1/projects/{project}/triage/{image}",
            put(projects::overrule_triage),
        )
        .route(
            "/api/v1/projects/{project}/triage/{image}/upright.png",
            get(projects::triage_upright),
        )
        .route(
            "/api/v1/projects/{project}/workflows",
            get(tasks::workflows),
        )
        .route(
            "/api/v1/projects/{project}/workflows/{split}",
            put(tasks::set_workflow),
        )
        .route("/api/v1/projects/{project}/assign", post(tasks::assign))
        .route(
            "/api/v1/projects/{project}/tasks",
            get(tasks::project_tasks),
        )
        .route("/api/v1/tasks", get(tasks::my_tasks))
        .route("/api/v1/tasks/summary", get(tasks::my_summary))
        .route(
            "/api/v1/tasks/{task}",
            axum::routing::delete(tasks::unassign),
        )
        .route("/api/v1/tasks/{task}/start", post(tasks::start))
        .route("/api/v1/tasks/{task}/submit", post(tasks::submit))
        .route("/api/v1/tasks/{task}/reassign", post(tasks::reassign))
        .route("/api/v1/tasks/{task}/reopen", post(tasks::reopen))
        .route("/api/v1/projects/{project}/progress", get(tasks::progress))
        .route(
            "/api/v1/tasks/{task}/annotations",
            get(annotations::get_task_annotations).put(annotations::put_task_annotations),
        )
        .route(
            "/api/v1/projects/{project}/annotations",
            get(annotations::project_annotations),
        )
        .route("/api/v1/jobs", get(jobs::list).post(jobs::create))
        .route("/api/v1/jobs/{job}", get(jobs::get))
        .route("/api/v1/jobs/{job}/result", get(jobs::result))
        .route("/api/v1/jobs/{job}/cancel", post(jobs::cancel))
        .route("/", get(web::asset))
        .route("/index.html", get(web::asset))
        .route("/assets/{*file}", get(web::asset))
        .route("/favicon.ico", get(web::asset))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            dicomweb::cors,
        ))
        .with_state(state)
}

/// DICOMweb under `/api/v1/projects/{project}/dicomweb` (see `dicomweb.rs`), beyond the
/// `/studies` routes that also take STOW-RS bodies.
fn dicomweb_routes() -> Router<AppState> {
    use dicomweb as d;
    let series = "/studies/{study}/series/{series}";
    let instance = "/studies/{study}/series/{series}/instances/{instance}";
    Router::new()
        .route("/series", get(d::qido_all_series))
        .route("/instances", get(d::qido_all_instances))
        .route("/studies/{study}/series", get(d::qido_study_series))
        .route("/studies/{study}/instances", get(d::qido_study_instances))
        .route("/studies/{study}/metadata", get(d::study_metadata))
        .route("/studies/{study}/thumbnail", get(d::study_thumbnail))
        .route(series, get(d::retrieve_series))
        .route(
            &format!("{series}/instances"),
            get(d::qido_series_instances),
        )
        .route(&format!("{series}/metadata"), get(d::series_metadata))
        .route(&format!("{series}/thumbnail"), get(d::series_thumbnail))
        .route(instance, get(d::retrieve_instance))
        .route(&format!("{instance}/metadata"), get(d::instance_metadata))
        .route(&format!("{instance}/rendered"), get(d::instance_rendered))
        .route(&format!("{instance}/thumbnail"), get(d::instance_thumbnail))
        .route(&format!("{instance}/frames/{{frames}}"), get(d::frames))
        .route(
            &format!("{instance}/frames/{{frames}}/rendered"),
            get(d::frame_rendered),
        )
        .route(&format!("{instance}/bulkdata/{{tag}}"), get(d::bulkdata))
}

/// Serve the API on `listener` until the process ends; the job workers of `state` run
/// beside it.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    let _workers = jobs::spawn_workers(&state);
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}

/// A JSON body, or a 400 that says what is wrong with it.
pub(crate) fn body<T>(payload: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    payload.map(|Json(v)| v).map_err(|e| {
        ApiError::bad_request(format!(
            "the request body is not the JSON this endpoint takes: {}",
            e.body_text()
        ))
    })
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; the API lives under /api/v1",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method; see /api/v1 in docs/server.md",
    )
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

#[derive(Deserialize)]
struct Login {
    username: String,
    password: String,
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    payload: Result<Json<Login>, JsonRejection>,
) -> Result<Response, ApiError> {
    let login = body(payload)?;
    let ip = Some(addr.ip());
    if let Some(wait) = state.limiter.blocked(&login.username, ip) {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many failed sign-ins; try again in {wait} s"),
        );
        e.retry_after = Some(wait);
        return Err(e);
    }
    let found = state.catalog.user_for_login(&login.username).await?;
    // Verify against a hash even for an unknown name, so both take the same time.
    let (user, ok) = match found {
        Some((user, hash)) => {
            let ok = verify_password(&login.password, &hash) && !user.disabled;
            (Some(user), ok)
        }
        None => {
            let _ = verify_password(&login.password, dummy_hash());
            (None, false)
        }
    };
    let Some(user) = user.filter(|_| ok) else {
        state.limiter.failed(&login.username, ip);
        tracing::info!("failed sign-in for a user name from {}", addr.ip());
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
            "wrong user name or password",
        ));
    };
    state.limiter.succeeded(&login.username);
    let token = random_token("")?;
    let csrf = random_token("")?;
    let expires = unix_now() + state.config.session_hours * 3600;
    state
        .catalog
        .create_session(&token_hash(&token), &user.user_id, &csrf, expires)
        .await?;
    tracing::info!("user {} signed in", user.username);
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        state.config.session_hours * 3600,
        if state.config.secure_cookies {
            "; Secure"
        } else {
            ""
        }
    );
    let mut response = Json(serde_json::json!({"user": user, "csrf_token": csrf})).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|_| ApiError::internal())?,
    );
    Ok(response)
}

/// The hash of a random password, made once, verified against when the user name is
/// unknown so that the answer takes as long as for a known name.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        random_token("")
            .and_then(|p| hash_password(&p))
            .unwrap_or_default()
    })
}

async fn logout(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    if let Via::Session { token_hash, .. } = &caller.via {
        state.catalog.delete_session(token_hash).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("radlab_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(response)
}

/// The caller; with a session cookie, also the session's CSRF token, so that a page opened
/// in a new tab of a signed-in browser can write (only a same-origin page can read it: the
/// API sends no CORS headers outside DICOMweb).
async fn me(caller: Caller) -> Json<serde_json::Value> {
    match &caller.via {
        Via::Session { csrf, .. } => {
            Json(serde_json::json!({"user": caller.user, "csrf_token": csrf}))
        }
        Via::ApiToken => Json(serde_json::json!({"user": caller.user})),
    }
}

#[derive(Deserialize)]
struct NewToken {
    name: String,
}

async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    payload: Result<Json<NewToken>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let new = body(payload)?;
    let name = new.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::bad_request(
            "name the token (1 to 100 characters), e.g. the script that uses it",
        ));
    }
    let token = random_token("rl_")?;
    state
        .catalog
        .create_api_token(&token_hash(&token), &caller.user.user_id, name)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "name": name,
            "token": token,
            "note": "shown once: the server keeps only its hash",
        })),
    ))
}

async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require_admin()?;
    Ok(Json(
        serde_json::json!({"users": state.catalog.list_users().await?}),
    ))
}

#[derive(Deserialize)]
struct NewUser {
    username: String,
    password: String,
    #[serde(default)]
    site_role: Option<String>,
}

async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    payload: Result<Json<NewUser>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    caller.require_admin()?;
    let new = body(payload)?;
    let user = add_user(
        &state.catalog,
        &new.username,
        &new.password,
        new.site_role.as_deref().unwrap_or("user"),
    )
    .await?;
    tracing::info!("user {} created by {}", user.username, caller.user.username);
    Ok((StatusCode::CREATED, Json(serde_json::json!({"user": user}))))
}

/// Add an account (for the API and `radlab user add`): the name and password checked, the
/// password hashed with argon2id.
pub async fn add_user(
    catalog: &Catalog,
    username: &str,
    password: &str,
    site_role: &str,
) -> Result<radlab_store::User, ApiError> {
    radlab_store::check_username(username).map_err(|e| ApiError::bad_request(e.to_string()))?;
    check_password(password)?;
    let role = SiteRole::parse(site_role).ok_or_else(|| {
        ApiError::bad_request(format!("site_role {site_role:?}: use admin or user"))
    })?;
    let hash = hash_password(password)?;
    let id = random_token("u_")?;
    Ok(catalog
        .create_user(&id[..18], username, &hash, role)
        .await?)
}
