//! The handlers, one module per resource, and the body readers they share.

pub mod connectors;
pub mod curiosity;
pub mod health;
pub mod keys;
pub mod memory;
pub mod models;
pub mod oracle;
pub mod reflexes;
pub mod rows;
pub mod sql;
pub mod tables;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};

use datafusion::prelude::DataFrame;
use gyrus_engine::Refine;
use serde_json::Value;

use crate::auth::Caller;
use crate::problem::Problem;
use crate::routes::sql::json_rows;
use crate::state::AppState;

/// Largest JSON request body (SQL and its parameters, a key to create).
pub const JSON_BODY_LIMIT: usize = 1 << 20;

/// A path parameter; a malformed one (bad percent-encoding, say) is a 400 problem.
pub struct PathParam(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PathParam {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Problem> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| PathParam(value))
            .map_err(|e| Problem::bad_request(format!("the path is not valid: {e}")))
    }
}

/// Why a body could not be read: too large, or anything else.
pub enum BodyError {
    TooLarge,
    Unreadable(String),
}

/// From [`axum::body::to_bytes`]'s error.
impl From<axum::Error> for BodyError {
    fn from(err: axum::Error) -> Self {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(e) = source {
            if e.is::<http_body_util::LengthLimitError>() {
                return BodyError::TooLarge;
            }
            source = e.source();
        }
        BodyError::Unreadable(err.to_string())
    }
}

impl From<BytesRejection> for BodyError {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            BodyError::TooLarge
        } else {
            BodyError::Unreadable(rejection.to_string())
        }
    }
}

/// The request body, or the problem with it: 413 past `limit`, 400 when it
/// cannot be read or is empty.
pub fn read_body<E: Into<BodyError>>(
    body: Result<Bytes, E>,
    limit: usize,
) -> Result<Bytes, Problem> {
    let body = body.map_err(|e| match e.into() {
        BodyError::TooLarge => Problem::too_large(limit),
        BodyError::Unreadable(why) => {
            Problem::bad_request(format!("cannot read the request body: {why}"))
        }
    })?;
    if body.is_empty() {
        return Err(Problem::bad_request("the request body is empty"));
    }
    Ok(body)
}

/// Parses a JSON body, answering problems for everything a client can get wrong.
pub fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, Problem> {
    let limit = JSON_BODY_LIMIT;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            format!("send `Content-Type: application/json`, not `{content_type}`"),
        ));
    }
    let body = read_body(body, limit)?;
    serde_json::from_slice(&body).map_err(|e| {
        let (status, kind) = if e.is_data() {
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid-body")
        } else {
            (StatusCode::BAD_REQUEST, "malformed-json")
        };
        Problem::new(status, kind, format!("the JSON body does not fit: {e}"))
    })
}

/// Runs a query of the tenant's tables and returns its rows as JSON objects.
/// It is one of the tenant's queries on the HTTP surface: `system.queries`
/// shows it (its text, and the rows it returned after `refine`).
pub async fn table_rows(
    state: &AppState,
    caller: &Caller,
    sql: &str,
    refine: impl FnOnce(DataFrame) -> datafusion::error::Result<DataFrame> + Send + 'static,
) -> Result<Vec<Value>, Problem> {
    let session = state
        .tables
        .session(&caller.tenant, &state.config.limits)
        .await?
        .with_system(&state.system, caller.asker())?;
    let refine: Refine = Box::new(move |plan, state| {
        Ok(refine(DataFrame::new(state.clone(), plan))?.into_unoptimized_plan())
    });
    let stream = session
        .stream(sql, session.deadline(), Some(refine))
        .await?;
    let schema = stream.schema();
    let batches = stream.collect().await?;
    json_rows(&schema, &batches)
}

pub fn from_row<T: serde::de::DeserializeOwned>(row: Value) -> Result<T, Problem> {
    serde_json::from_value(row)
        .map_err(|e| Problem::bad_request(format!("an unexpected row shape: {e}")))
}
