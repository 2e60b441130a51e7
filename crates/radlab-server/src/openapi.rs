//! The API's OpenAPI 3.1 document (`GET /api/v1/openapi.json`) and a page that renders it
//! (`GET /api/v1/docs`), made from one table of endpoints; a test calls every endpoint of
//! the table to check the router serves it.

use axum::Json;
use axum::http::header;
use axum::response::{Html, IntoResponse};

/// One endpoint: method, path, who may call it, a summary, and its request body (a JSON
/// example) when it takes one.
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub access: &'static str,
    pub summary: &'static str,
    pub body: Option<&'static str>,
}

const fn e(
    method: &'static str,
    path: &'static str,
    access: &'static str,
    summary: &'static str,
    body: Option<&'static str>,
) -> Endpoint {
    Endpoint {
        method,
        path,
        access,
        summary,
        body,
    }
}

/// Every endpoint of the API.
pub const ENDPOINTS: &[Endpoint] = &[
    e("get", "/api/v1/health", "anyone", "The server is up.", None),
    e(
        "get",
        "/api/v1/openapi.json",
        "anyone",
        "This document.",
        None,
    ),
    e(
        "get",
        "/api/v1/docs",
        "anyone",
        "This document as a page.",
        None,
    ),
    e(
        "post",
        "/api/v1/auth/login",
        "anyone",
        "Sign in: sets the session cookie, returns the user and the CSRF token. 401 for a wrong name or password, 429 after repeated failures.",
        Some(r#"{"username": "reader1", "password": "a long password"}"#),
    ),
    e(
        "post",
        "/api/v1/auth/logout",
        "signed in",
        "End the session.",
        None,
    ),
    e("get", "/api/v1/me", "signed in", "The caller.", None),
    e(
        "post",
        "/api/v1/tokens",
        "signed in",
        "A new API token (Bearer), shown once.",
        Some(r#"{"name": "nightly import"}"#),
    ),
    e(
        "get",
        "/api/v1/users",
        "site administrator",
        "Every account.",
        None,
    ),
    e(
        "post",
        "/api/v1/users",
        "site administrator",
        "Add an account (password: 12 characters or more).",
        Some(r#"{"username": "reader1", "password": "a long password", "site_role": "user"}"#),
    ),
    e(
        "get",
        "/api/v1/projects",
        "signed in",
        "The caller's projects (administrators: all).",
        None,
    ),
    e(
        "post",
        "/api/v1/projects",
        "signed in",
        "Create a project from a template or a schema; the caller becomes its owner.",
        Some(r#"{"project_id": "vindr-cxr", "template": "vindr-cxr"}"#),
    ),
    e(
        "get",
        "/api/v1/projects/{project}",
        "member",
        "The project, its label schema and the caller's roles.",
        None,
    ),
    e(
        "put",
        "/api/v1/projects/{project}/schema",
        "owner",
        "Replace the label schema (only an extension once annotated).",
        Some(
            r##"{"schema": {"labels": [{"name": "Nodule/Mass", "scope": "local", "color": "#ff8040"}]}}"##,
        ),
    ),
    e(
        "get",
        "/api/v1/projects/{project}/members",
        "owner",
        "The members and their roles.",
        None,
    ),
    e(
        "post",
        "/api/v1/projects/{project}/members",
        "owner",
        "Give a user a role: owner, annotator, reviewer.",
        Some(r#"{"username": "reader1", "role": "annotator"}"#),
    ),
    e(
        "get",
        "/api/v1/projects/{project}/images",
        "member",
        "The project's images, paged (?split=&offset=&limit=).",
        None,
    ),
    e(
        "post",
        "/api/v1/projects/{project}/images",
        "owner",
        "Add catalogued images (all, an import, studies or instances; a modality) to a split.",
        Some(r#"{"all": true, "modality": "DX", "split": "train"}"#),
    ),
    e(
        "post",
        "/api/v1/projects/{project}/upload",
        "owner",
        "Upload DICOM into a split (?split=): one file as the body (Content-Type application/dicom), or several as multipart/form-data or multipart/related, all or nothing; 413 over the limit, 415 for another type, 422 naming a file that is not usable DICOM.",
        None,
    ),
    e(
        "post",
        "/api/v1/projects/{project}/images/split",
        "owner",
        "Move images to another split, all or none.",
        Some(r#"{"image_ids": ["0a1b..."], "split": "test"}"#),
    ),
    e(
        "get",
        "/api/v1/projects/{project}/triage",
        "owner",
        "Every triage verdict of the project by image id (radlab triage --project), with the counts that stand: an overrule wins over the verdict.",
        None,
    ),
    e(
        "put",
        "/api/v1/projects/{project}/triage/{image}",
        "owner",
        "Overrule an image's triage verdict (null takes the overrule back); 404 when it has none.",
        Some(r#"{"valid": true}"#),
    ),
    e(
        "get",
        "/api/v1/projects/{project}/triage/{image}/upright.png",
        "owner",
        "The upright rendering (PNG) stored by radlab triage --project P --fix-orientation for an image the network saw in another orientation; 404 when there is none. The original is never changed.",
        None,
    ),
    e(
        "get",
        "/api/v1/projects/{project}/workflows",
        "member",
        "The workflow of each split.",
        None,
    ),
    e(
        "put",
        "/api/v1/projects/{project}/workflows/{split}",
        "owner",
        "Set a split's workflow: independent, consensus or single.",
        Some(r#"{"kind": "consensus", "readers": 3, "reviewers": 2}"#),
    ),
    e(
        "post",
        "/api/v1/projects/{project}/assign",
        "owner",
        "Make the missing reading tasks of a split.",
        Some(r#"{"split": "train"}"#),
    ),
    e(
        "get",
        "/api/v1/projects/{project}/tasks",
        "owner",
        "Every task of the project.",
        None,
    ),
    e(
        "get",
        "/api/v1/projects/{project}/progress",
        "owner",
        "Images by state, readers' throughput, readers' agreement.",
        None,
    ),
    e(
        "get",
        "/api/v1/projects/{project}/annotations",
        "owner",
        "Every current annotation (each reader's layer and the consensus).",
        None,
    ),
    e(
        "get",
        "/api/v1/tasks",
        "signed in",
        "The caller's tasks, a page at a time (?project=&state=&offset=&limit=).",
        None,
    ),
    e(
        "get",
        "/api/v1/tasks/summary",
        "signed in",
        "The caller's queue per project (tasks by state) and pace (median seconds per image, submitted in the last day and week).",
        None,
    ),
    e(
        "delete",
        "/api/v1/tasks/{task}",
        "owner",
        "Un-assign a task nobody has started.",
        None,
    ),
    e(
        "post",
        "/api/v1/tasks/{task}/start",
        "the task's user",
        "NEW to IN_PROGRESS.",
        None,
    ),
    e(
        "post",
        "/api/v1/tasks/{task}/submit",
        "the task's user",
        "IN_PROGRESS to SUBMITTED; the last reader's submit finishes the image or opens its review.",
        None,
    ),
    e(
        "post",
        "/api/v1/tasks/{task}/reassign",
        "owner",
        "Give an unsubmitted task to another user.",
        Some(r#"{"username": "reader2"}"#),
    ),
    e(
        "post",
        "/api/v1/tasks/{task}/reopen",
        "owner",
        "Make a submitted task editable again.",
        None,
    ),
    e(
        "get",
        "/api/v1/tasks/{task}/annotations",
        "the task's user",
        "The task's layer; a review task also every reader's layer and a fused proposal.",
        None,
    ),
    e(
        "put",
        "/api/v1/tasks/{task}/annotations",
        "the task's user",
        "Replace the task's layer at the version read (409 when stale).",
        Some(
            r#"{"version": 0, "annotations": [{"label": "Cardiomegaly", "bbox": [700, 1400, 1700, 1900], "note": ""}], "comment": ""}"#,
        ),
    ),
    e(
        "get",
        "/api/v1/projects/{project}/dicomweb/studies",
        "member (annotators: the images of their tasks)",
        "QIDO-RS: the project's studies. Keys: StudyInstanceUID, PatientID, PatientName (wildcards * and ?, any case), AccessionNumber, StudyDate (ranges), ModalitiesInStudy, StudyDescription; limit, offset.",
        None,
    ),
    e(
        "post",
        "/api/v1/projects/{project}/dicomweb/studies",
        "owner",
        "STOW-RS (owners): multipart/related; type=\"application/dicom\" into ?split=; answers the Referenced and Failed SOP Sequences, 200 / 202 / 409.",
        None,
    ),
    e(
        "get",
        "/api/v1/projects/{project}/dicomweb/series",
        "member (annotators: the images of their tasks)",
        "QIDO-RS: the project's series (Modality, SeriesInstanceUID, SeriesNumber, BodyPartExamined...).",
        None,
    ),
    e(
        "get",
        "/api/v1/projects/{project}/dicomweb/instances",
        "member (annotators: the images of their tasks)",
        "QIDO-RS: the project's instances (SOPInstanceUID, SOPClassUID, InstanceNumber...).",
        None,
    ),
    e(
        "get",
        "/api/v1/projects/{project}/dicomweb/studies/{study}",
        "member (annotators: the images of their tasks)",
        "WADO-RS: the study's instances, multipart/related; type=\"application/dicom\", as stored.",
        None,
    ),
    e(
        "post",
        "/api/v1/projects/{project}/dicomweb/studies/{study}",
        "owner",
        "STOW-RS into one study: objects of another study fail (A900).",
        None,
    ),
    e(
        "get",
        "/api/v1/projects/{project}/dicomweb/studies/{study}/series",
        "member (annotators: the images of their tasks)",
        "QIDO-RS: a study's series.",
        None,
    ),
    e(
        "get",
        "/api/v1/projects/{project}/dicomweb/studies/{study}/instances",
        "member (annotators: the images of their tasks)",
        "QIDO-RS: a study's instances.",
        None,
    ),
    e(
        "get",
        "/api/v1/projects/{project}/dicomweb/studies/{study}/metadata",
        "member (annotators: the images of their tasks)",
        "WADO-RS: DICOM JSON of every instance of the study (Pixel Data as a BulkDataURI).",
        None,
    ),
    e(
        "get",
        "/api/v1/projects/{project}/dicomweb/studies/{study}/thumbnail",
        "member (annotators: the images of their tasks)",
        "WADO-RS: a small rendered image of the study's first instance.",
        None,
    ),
    e(
        "get",
        "/api/v1/projects/{project}/dicomweb/studies/{study}/series/{series}",
        "member (annotators: the images of their tasks)",
        "WADO-RS: the series' instances.",
        None,
    ),
    e(
        "get",
        "/api/v1/projects/{project}/dicomweb/studies/{study}/series/{series}/instances",
        "member (annotators: the images of their tasks)",
        "QIDO-RS: a series' instances.",
        None,
    ),
    e(
        "get",
        "/api/v1/projects/{project}/dicomweb/studies/{study}/series/{series}/metadata",
        "member (annotators: the images of their tasks)",
        "WADO-RS: DICOM JSON of every instance of the series.",
        None,
    ),
    e(
        "get",
        "/api/v1/projects/{project}/dicomweb/studies/{study}/series/{series}/thumbnail",
        "member (annotators: the images of their tasks)",
        "WADO-RS: a small rendered image of the series' first instance.",
        None,
    ),
    e(
        "get",
        "/api/v1/projects/{project}/dicomweb/studies/{study}/series/{series}/instances/{instance}",
        "member (annotators: the images of their tasks)",
        "WADO-RS: the instance, multipart or (Accept: application/dicom) single part with byte ranges.",
        None,
    ),
    e(
        "get",
        "/api/v1/projects/{project}/dicomweb/studies/{study}/series/{series}/instances/{instance}/metadata",
        "member (annotators: the images of their tasks)",
        "WADO-RS: the instance's DICOM JSON.",
        None,
    ),
    e(
        "get",
        "/api/v1/projects/{project}/dicomweb/studies/{study}/series/{series}/instances/{instance}/frames/{frames}",
        "member (annotators: the images of their tasks)",
        "WADO-RS: frames (1-based, comma-separated): decoded to Explicit VR Little Endian by default, as stored with transfer-syntax=* or the bitstream's media type (image/jp2, image/jpeg, image/jls); 406 for another transfer syntax.",
        None,
    ),
    e(
        "get",
        "/api/v1/projects/{project}/dicomweb/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered",
        "member (annotators: the images of their tasks)",
        "WADO-RS: one frame rendered (JPEG by default, PNG, WebP) with window=center,width[,function], viewport=w,h, quality.",
        None,
    ),
    e(
        "get",
        "/api/v1/projects/{project}/dicomweb/studies/{study}/series/{series}/instances/{instance}/rendered",
        "member (annotators: the images of their tasks)",
        "WADO-RS: the first frame rendered.",
        None,
    ),
    e(
        "get",
        "/api/v1/projects/{project}/dicomweb/studies/{study}/series/{series}/instances/{instance}/thumbnail",
        "member (annotators: the images of their tasks)",
        "WADO-RS: the first frame rendered to fit 128 x 128 (or viewport=).",
        None,
    ),
    e(
        "get",
        "/api/v1/projects/{project}/dicomweb/studies/{study}/series/{series}/instances/{instance}/bulkdata/{tag}",
        "member (annotators: the images of their tasks)",
        "WADO-RS: a top-level element's value (the BulkDataURIs of metadata); encapsulated Pixel Data as its frames.",
        None,
    ),
    e(
        "post",
        "/api/v1/jobs",
        "signed in (import: site administrator; export_labels, fuse: project owner)",
        "Queue a job (202): import {paths, project?, split?} of server-side folders; export_labels {format: kaggle|vindr|submission, layer?} of a project's annotations; fuse {iou_thr, quorum?, skip_box_thr?, conf_type?} of its readers (WBF). Run by a worker of any server on the database.",
        Some(
            r#"{"kind": "import", "project": "vindr-cxr", "params": {"paths": ["/data/incoming/cxr"], "split": "train"}}"#,
        ),
    ),
    e(
        "get",
        "/api/v1/jobs",
        "signed in",
        "The caller's jobs, newest first (administrators: every job); offset, limit.",
        None,
    ),
    e(
        "get",
        "/api/v1/jobs/{job}",
        "its maker, owners of its project, site administrator",
        "A job: state (queued, running, done, failed, cancelled), progress (done of total, message), result.",
        None,
    ),
    e(
        "get",
        "/api/v1/jobs/{job}/result",
        "its maker, owners of its project, site administrator",
        "The result file of a done export_labels or fuse job (text/csv); 409 before it is done.",
        None,
    ),
    e(
        "post",
        "/api/v1/jobs/{job}/cancel",
        "its maker, owners of its project, site administrator",
        "Cancel a queued job, or ask a running one to stop at its next progress report; 409 once finished.",
        None,
    ),
];

/// The OpenAPI 3.1 document.
pub fn document() -> serde_json::Value {
    let mut paths = serde_json::Map::new();
    for ep in ENDPOINTS {
        let params: Vec<serde_json::Value> = ep
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|p| serde_json::json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = serde_json::json!({
            "summary": ep.summary,
            "description": format!("Who: {}.", ep.access),
            "parameters": params,
            "responses": {
                "200": {"description": "done"},
                "default": {"description": "an error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        });
        if ep.access == "anyone" {
            op["security"] = serde_json::json!([]);
        }
        if let Some(example) = ep.body {
            let example: serde_json::Value =
                serde_json::from_str(example).unwrap_or(serde_json::Value::Null);
            op["requestBody"] = serde_json::json!({
                "required": true,
                "content": {"application/json": {"schema": {"type": "object"}, "example": example}},
            });
        }
        paths
            .entry(ep.path)
            .or_insert_with(|| serde_json::json!({}))
            .as_object_mut()
            .map(|m| m.insert(ep.method.to_string(), op));
    }
    serde_json::json!({
        "openapi": "3.1.0",
        "info": {
            "title": "radlab",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The labeling platform's API. Sign in with POST /api/v1/auth/login (session cookie; writes need the X-CSRF-Token header with the csrf_token it returned) or send an API token as Authorization: Bearer. Errors are {\"error\": {\"code\", \"message\"}}.",
        },
        "paths": paths,
        "security": [{"session": []}, {"token": []}],
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "radlab_session"},
                "token": {"type": "http", "scheme": "bearer"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
                        "code": {"type": "string"}, "message": {"type": "string"}}}},
                },
            },
        },
    })
}

pub(crate) async fn openapi_json() -> Json<serde_json::Value> {
    Json(document())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The document as one page: no scripts, nothing loaded from elsewhere.
pub(crate) async fn docs_page() -> impl IntoResponse {
    let mut rows = String::new();
    for ep in ENDPOINTS {
        rows.push_str(&format!(
            "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}{}</td></tr>\n",
            ep.method.to_uppercase(),
            escape(ep.path),
            escape(ep.access),
            escape(ep.summary),
            ep.body
                .map(|b| format!("<pre>{}</pre>", escape(b)))
                .unwrap_or_default()
        ));
    }
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>radlab API</title><style>\
         body{{font-family:sans-serif;margin:2em}}td{{vertical-align:top;padding:4px 8px;\
         border-bottom:1px solid #ddd}}pre{{margin:4px 0;background:#f4f4f4;padding:4px}}\
         </style></head><body><h1>radlab API {}</h1><p>Sign in with <code>POST \
         /api/v1/auth/login</code> (a session cookie; writes need the <code>X-CSRF-Token</code> \
         header) or send an API token as <code>Authorization: Bearer</code>. Errors are \
         <code>{{\"error\": {{\"code\", \"message\"}}}}</code>. Machine-readable: \
         <a href=\"/api/v1/openapi.json\">openapi.json</a>.</p><table><tr><th>method</th>\
         <th>path</th><th>who</th><th>what</th></tr>\n{rows}</table></body></html>",
        env!("CARGO_PKG_VERSION")
    );
    ([(header::CACHE_CONTROL, "no-cache")], Html(page))
}
