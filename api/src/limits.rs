//! Limits that keep one caller from taking the server down, as middleware
//! over the process's shared [`gyrus_engine::admission::Admission`]:
//!
//! - rate limits per API key and per tenant, checked by the
//!   [`crate::auth::Caller`] extractor: 429 with `Retry-After`;
//! - slots for requests in progress ([`concurrency`]), in the process and per
//!   tenant, so that one tenant cannot take them all: past them, 503 with
//!   `Retry-After` at once, rather than a queue that grows memory. The slot
//!   is held until the response body has been sent, so streamed results
//!   count;
//! - a time limit on producing the response's headers ([`timeout`]): 504.
//!   Streamed bodies end at the query's own deadline.
//!
//! The body size limit (413) is axum's `DefaultBodyLimit`.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use gyrus_engine::TenantId;

use crate::problem::Problem;
use crate::state::AppState;

/// Whether a request is API work, which the limits apply to; health,
/// readiness, metrics and the docs stay answerable under any load.
fn limited(request: &Request) -> bool {
    request.uri().path().starts_with("/api/")
}

/// The tenant of the request's bearer key, if it has a valid one (the
/// [`crate::auth::Caller`] extractor answers for missing or bad keys).
async fn tenant_of(state: &AppState, authorization: Option<String>) -> Option<TenantId> {
    let header = authorization?;
    let key = state
        .keys
        .authenticate(crate::auth::bearer(&header)?)
        .await
        .ok()??;
    Some(key.tenant)
}

/// 503 when the process's or the caller's tenant's request slots are taken.
pub async fn concurrency(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !limited(&request) {
        return next.run(request).await;
    }
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let tenant = tenant_of(&state, authorization).await;
    let permit = match state.admission.admit(tenant.as_ref()) {
        Ok(permit) => permit,
        Err(refusal) => return Problem::refused(refusal).into_response(),
    };
    let response = next.run(request).await;
    // A body already in memory (its size known) frees the slot now.
    if axum::body::HttpBody::size_hint(response.body())
        .exact()
        .is_some()
    {
        return response;
    }
    // Keep the slot until a streamed body is done: it still holds its
    // query's memory.
    let (parts, body) = response.into_parts();
    let body = body.into_data_stream().map(move |chunk| {
        let _held = &permit;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}

/// 504 when the response's headers are not ready in time.
pub async fn timeout(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !limited(&request) {
        return next.run(request).await;
    }
    let limit = state.config.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Problem::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!(
                "the request took longer than {} s; narrow it (a date range, a LIMIT) or send less at once",
                limit.as_secs()
            ),
        )
        .into_response(),
    }
}
