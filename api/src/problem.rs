//! Errors as RFC 7807 `application/problem+json`, in one place.
//!
//! Every error a client sees has a stable `type` (`urn:gyrus:problem:<kind>`),
//! a `title`, the HTTP `status`, a `detail` that says what to change, and the
//! request id. Storage failures are logged in full and answered without
//! internals.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gyrus_engine::EngineError;
use serde::Serialize;

use crate::request_id;

/// A problem, ready to be answered.
#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    /// Stable machine-readable kind: the last part of `type`.
    pub kind: &'static str,
    pub detail: String,
}

#[derive(Serialize)]
struct Body<'a> {
    r#type: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    request_id: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
        Problem {
            status,
            kind,
            detail: detail.into(),
        }
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed; the log has the details under this request id",
        )
    }
}

impl From<EngineError> for Problem {
    fn from(err: EngineError) -> Self {
        let detail = err.to_string();
        match err {
            EngineError::Query(_) | EngineError::InvalidSlice(_) | EngineError::InvalidRole(_) => {
                Problem::new(StatusCode::BAD_REQUEST, "invalid-query", detail)
            }
            EngineError::InvalidTenant { .. } => Problem::bad_request(detail),
            EngineError::Validation(_) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-rows", detail)
            }
            EngineError::ReadOnly(_) => Problem::new(StatusCode::FORBIDDEN, "read-only", detail),
            EngineError::Forbidden(_) => Problem::forbidden(detail),
            EngineError::UnknownTable { .. } => {
                Problem::new(StatusCode::NOT_FOUND, "unknown-table", detail)
            }
            EngineError::KeyNotFound(_) => Problem::not_found(detail),
            EngineError::MemoryLimit { .. } => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "memory-limit", detail)
            }
            EngineError::Timeout { .. } => {
                Problem::new(StatusCode::GATEWAY_TIMEOUT, "timeout", detail)
            }
            EngineError::Conflict { .. } => Problem::new(StatusCode::CONFLICT, "conflict", detail),
            EngineError::InvalidRoot { .. }
            | EngineError::Delta(_)
            | EngineError::ObjectStore(_)
            | EngineError::Internal(_) => {
                tracing::error!(error = %detail, "storage error");
                Problem::internal()
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = Body {
            r#type: format!("urn:gyrus:problem:{}", self.kind),
            title,
            status: self.status.as_u16(),
            detail: &self.detail,
            request_id: request_id::current(),
        };
        let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (self.status, json).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}
