//! Errors as RFC 7807 `application/problem+json`, in one place.
//!
//! Every error a client sees has a stable `type` (`urn:gyrus:problem:<kind>`),
//! a `title`, the HTTP `status`, a `detail` that says what to change, and the
//! request id. Storage failures are logged in full and answered without
//! internals.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gyrus_engine::EngineError;
use gyrus_engine::validate::ValidationError;
use gyrus_ingest::IngestError;
use gyrus_ingest::connectors::SyncError;
use gyrus_ingest::secrets::SecretError;
use gyrus_models::ModelError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::request_id;

/// A problem, ready to be answered.
#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    /// Stable machine-readable kind: the last part of `type`.
    pub kind: &'static str,
    pub detail: String,
    /// What was wrong with which rows and columns, for refused data.
    pub errors: Vec<RowsError>,
    /// Seconds after which a retry may succeed (429, 503): `Retry-After`.
    pub retry_after: Option<u64>,
}

/// An RFC 7807 problem document, as every error of the API is answered.
#[derive(Serialize, ToSchema)]
pub struct ProblemBody {
    /// `urn:gyrus:problem:<kind>`; stable, for programs to branch on.
    #[schema(example = "urn:gyrus:problem:invalid-rows")]
    r#type: String,
    /// The HTTP status's reason phrase.
    title: String,
    status: u16,
    /// What went wrong and what to change, for a person.
    detail: String,
    /// The request's id, also in the `x-request-id` header and the server log.
    request_id: Option<String>,
    /// For refused data: the columns and rows at fault.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<RowsError>,
}

/// One thing wrong with the rows of a write.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RowsError {
    /// The column at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    pub problem: String,
    /// How many rows have the problem (0 when it is about the columns).
    pub count: usize,
    /// The first offending rows (1-based, in the order sent) and the value found.
    pub rows: Vec<OffendingRow>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OffendingRow {
    pub row: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Whatever `detail` says, the kind a response carries for metrics.
#[derive(Debug, Clone, Copy)]
pub struct ProblemKind(pub &'static str);

impl Problem {
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
        Problem {
            status,
            kind,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// Adds `Retry-After`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// 503: the server cannot take the request now.
    /// 429 (over a rate) or 503 (slots full), with `Retry-After`.
    pub fn refused(refusal: gyrus_engine::admission::Refusal) -> Self {
        let (status, kind) = if refusal.is_rate_limit() {
            (StatusCode::TOO_MANY_REQUESTS, "rate-limited")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        };
        Self::new(status, kind, refusal.to_string()).retry_after(refusal.retry_after())
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail).retry_after(1)
    }

    /// 413, for every way a body can be too large.
    pub fn too_large(limit_bytes: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            format!(
                "the request body exceeds the limit of {} MiB; send it in parts",
                limit_bytes >> 20
            ),
        )
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

    /// A well-formed request whose values cannot be served (422).
    pub fn invalid_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-request", detail)
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
            EngineError::Query(_) => Problem::new(StatusCode::BAD_REQUEST, "invalid-query", detail),
            EngineError::TooLarge { .. } => {
                Problem::new(StatusCode::BAD_REQUEST, "bound-exceeded", detail)
            }
            EngineError::InvalidSlice(_) => {
                Problem::new(StatusCode::BAD_REQUEST, "invalid-slice", detail)
            }
            EngineError::InvalidRole(_) => {
                Problem::new(StatusCode::BAD_REQUEST, "invalid-role", detail)
            }
            EngineError::InvalidTenant { .. } => Problem::bad_request(detail),
            EngineError::Validation(err) => err.into(),
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
            EngineError::IdempotencyMismatch { .. } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                detail,
            ),
            EngineError::Conflict { .. } | EngineError::LeaseLost { .. } => {
                Problem::new(StatusCode::CONFLICT, "conflict", detail)
            }
            EngineError::Busy(_) => Problem::new(StatusCode::CONFLICT, "busy", detail),
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

impl From<SyncError> for Problem {
    fn from(err: SyncError) -> Self {
        let detail = err.to_string();
        match err {
            SyncError::Engine(e) => e.into(),
            SyncError::NotFound(_) => Problem::not_found(detail),
            SyncError::Invalid(_) => Problem::invalid_request(detail),
            SyncError::Busy(_) => Problem::new(StatusCode::CONFLICT, "sync-running", detail),
            SyncError::Secret(SecretError::NoKey) => Problem::unavailable(format!(
                "connectors are not enabled on this server: {detail}"
            )),
            SyncError::Secret(_) => {
                tracing::error!(error = %detail, "connector credentials");
                Problem::internal()
            }
            SyncError::Http(_) | SyncError::Data { .. } => {
                Problem::new(StatusCode::BAD_GATEWAY, "platform-error", detail)
            }
        }
    }
}

impl From<ModelError> for Problem {
    fn from(err: ModelError) -> Self {
        match err {
            ModelError::Engine(e) => e.into(),
            ModelError::Invalid(detail) => Problem::invalid_request(detail),
            err @ ModelError::NoModel { .. } => {
                Problem::new(StatusCode::NOT_FOUND, "no-model", err.to_string())
            }
            ModelError::Registry(detail) => {
                tracing::error!(error = %detail, "model registry error");
                Problem::internal()
            }
        }
    }
}

impl From<ValidationError> for Problem {
    fn from(err: ValidationError) -> Self {
        let mut problem = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-rows",
            err.to_string(),
        );
        problem.errors.push(RowsError {
            column: err.column,
            problem: err.problem,
            count: err.count,
            rows: err
                .first_rows
                .into_iter()
                .map(|(row, value)| OffendingRow {
                    row,
                    value: Some(value),
                })
                .collect(),
        });
        problem
    }
}

impl From<IngestError> for Problem {
    fn from(err: IngestError) -> Self {
        let detail = err.to_string();
        let mut problem = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "unreadable-rows", detail);
        match err {
            IngestError::Parse { row, message, .. } => problem.errors.push(RowsError {
                column: None,
                problem: message,
                count: usize::from(row.is_some()),
                rows: row
                    .map(|row| OffendingRow { row, value: None })
                    .into_iter()
                    .collect(),
            }),
            IngestError::UnknownColumn { column, .. } => problem.errors.push(RowsError {
                column: Some(column),
                problem: "not a column of the table".into(),
                count: 0,
                rows: Vec::new(),
            }),
            IngestError::Open { .. } | IngestError::UnknownFormat { .. } => {}
        }
        problem
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = ProblemBody {
            r#type: format!("urn:gyrus:problem:{}", self.kind),
            title: self.status.canonical_reason().unwrap_or("Error").into(),
            status: self.status.as_u16(),
            detail: self.detail,
            request_id: request_id::current(),
            errors: self.errors,
        };
        let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (self.status, json).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(ProblemKind(self.kind));
        response
    }
}
