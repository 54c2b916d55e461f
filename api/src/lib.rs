//! Gyrus over HTTP, for the application layer.
//!
//! - [`auth`]: the [`auth::Caller`] extractor (`Authorization: Bearer <key>`; 401 / 403).
//! - [`problem`]: every error as RFC 7807 `application/problem+json`.
//! - [`request_id`]: request ids in logs, headers and problems; panics become 500s.
//! - [`routes`]: `/healthz`, `/readyz`, `/api/v1/sql`, `/api/v1/tables`.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use gyrus_api::{ApiConfig, AppState, serve_on};
//!
//! let store = gyrus_engine::Store::open("./gyrus-data").await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! serve_on(listener, AppState::new(store, ApiConfig::default()), async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod problem;
pub mod request_id;
pub mod routes;
pub mod state;

use std::future::Future;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::net::TcpListener;

pub use problem::Problem;
pub use state::{ApiConfig, AppState};

/// Every route of the API.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.max_body_bytes;
    let api = Router::new()
        .route("/sql", post(routes::sql::run))
        .route("/tables", get(routes::tables::list))
        .route("/tables/{table}", get(routes::tables::get));
    Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .nest("/api/v1", api)
        .fallback(|| async { Problem::not_found("no such route; the API lives under /api/v1/") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "this route does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(request_id::middleware))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes; requests in
/// flight finish first.
pub async fn serve_on(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(addr = ?listener.local_addr().ok(), "HTTP API listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
