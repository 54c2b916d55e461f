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
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod pagination;
pub mod problem;
pub mod request_id;
pub mod routes;
pub mod state;

use std::future::Future;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::{Extension, Router, middleware};
use tokio::net::TcpListener;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use problem::Problem;
pub use state::{ApiConfig, AppState};

/// The routes and the OpenAPI document that describes them, built together.
pub fn routes_and_document() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    // JSON requests are small: a tighter body limit than ingest's.
    let json = OpenApiRouter::new()
        .routes(routes!(routes::sql::run))
        .routes(routes!(routes::keys::create, routes::keys::list))
        .routes(routes!(
            routes::connectors::create,
            routes::connectors::list
        ))
        .routes(routes!(routes::oracle::forecast))
        .routes(routes!(routes::memory::score))
        .routes(routes!(routes::curiosity::drivers_route))
        .routes(routes!(routes::reflexes::budget))
        .routes(routes!(routes::reflexes::bandit_route))
        .layer(DefaultBodyLimit::max(routes::JSON_BODY_LIMIT));
    let v1 = OpenApiRouter::new()
        .merge(json)
        .routes(routes!(routes::tables::list))
        .routes(routes!(routes::tables::get))
        .routes(routes!(routes::rows::ingest))
        .routes(routes!(routes::keys::revoke))
        .routes(routes!(routes::connectors::get, routes::connectors::remove))
        .routes(routes!(routes::connectors::sync))
        .routes(routes!(routes::memory::customer))
        .routes(routes!(routes::memory::segments))
        .routes(routes!(routes::memory::leads))
        .routes(routes!(routes::curiosity::insights))
        .routes(routes!(routes::reflexes::pacing))
        .routes(routes!(routes::models::runs))
        .routes(routes!(openapi::openapi_json));
    let ops = OpenApiRouter::new()
        .routes(routes!(routes::health::healthz))
        .routes(routes!(routes::health::readyz))
        .routes(routes!(metrics::export))
        .routes(routes!(openapi::docs_page));
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest("/api/v1", v1)
        .merge(ops)
        .split_for_parts()
}

/// Every route of the API, with its limits, metrics and request ids.
pub fn router(state: AppState) -> Router {
    let (routes, document) = routes_and_document();
    let body_limit = state.config.max_body_bytes;
    routes
        .fallback(|| async {
            Problem::not_found("no such route; the API lives under /api/v1/ (see /docs)")
        })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "this route does not take that method (see /docs)",
            )
        })
        .layer(Extension(openapi::Docs::new(&document)))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::timeout,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::concurrency,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::middleware,
        ))
        .layer(middleware::from_fn(request_id::middleware))
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
