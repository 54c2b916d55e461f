//! `/healthz` (the process answers) and `/readyz` (the store answers too).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::problem::Problem;
use crate::state::AppState;

pub async fn healthz() -> &'static str {
    "ok\n"
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.tenants().await {
        Ok(_) => "ready\n".into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "store not reachable");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not-ready",
                "the data store is not reachable",
            )
            .into_response()
        }
    }
}
