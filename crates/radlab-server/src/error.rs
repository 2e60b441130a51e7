//! API errors: a status and `{"error": {"code", "message"}}`, where the message says what
//! was wrong and what to do, and never carries a password, a token or patient data.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error the API answers with.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds, for 429 answers.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "sign in (POST /api/v1/auth/login) or send an API token as `Authorization: Bearer ...`",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server could not complete the request; its log says why",
        )
    }
}

impl From<radlab_store::StoreError> for ApiError {
    fn from(e: radlab_store::StoreError) -> Self {
        match e {
            // Configuration errors are the caller's (a name taken, a bad name).
            radlab_store::StoreError::Config(m) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", m)
            }
            other => {
                tracing::error!("catalog: {other}");
                ApiError::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(Ok(v)) = self.retry_after.map(|s| s.to_string().parse()) {
            response.headers_mut().insert("retry-after", v);
        }
        response
    }
}
