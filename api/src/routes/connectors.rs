//! `POST /api/v1/connectors`, `GET /api/v1/connectors`,
//! `GET /api/v1/connectors/{id}`, `POST /api/v1/connectors/{id}/sync`,
//! `DELETE /api/v1/connectors/{id}`: an admin connects their tenant's
//! platform accounts. Credentials go in once and never come back out;
//! another tenant's connector is "not found".

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, NaiveDate, Utc};
use gyrus_engine::Role;
use gyrus_ingest::connectors::registry::{ConnectorStatus, NewConnector, Run};
use gyrus_ingest::connectors::state::StreamState;
use gyrus_ingest::connectors::{ConnectorConfig, Credentials, SyncOptions};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::problem::{Problem, ProblemBody};
use crate::routes::{PathParam, json_body};
use crate::state::AppState;

/// A connector to add. (No `Debug`: it holds the credentials.)
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConnector {
    /// The platform's name: google_ads, youtube_ads, meta_ads, linkedin_ads,
    /// tiktok_ads, ga4, shopify, stripe, hubspot, salesforce, gohighlevel (an
    /// unknown name is answered with the list this build has).
    #[schema(example = "google_ads")]
    platform: String,
    /// The platform account: customer id, ad account, property, shop, ...
    #[schema(example = "1234567890")]
    account: String,
    /// The platform's credential fields (e.g. client_id, client_secret,
    /// refresh_token, developer_token); stored encrypted, never returned.
    #[schema(value_type = Object)]
    credentials: BTreeMap<String, String>,
    /// Another API base URL (only where the server allows it).
    base_url: Option<String>,
    /// Another OAuth2 token service (only where the server allows it).
    auth_url: Option<String>,
    /// The first day to read (default: a year ago).
    start_date: Option<NaiveDate>,
    /// Days re-read before the cursor on each sync (default 30).
    lookback_days: Option<u32>,
    /// Minutes between scheduled syncs (default 360; 0: only when asked).
    schedule_minutes: Option<u32>,
    #[serde(default)]
    #[schema(value_type = Object)]
    settings: BTreeMap<String, String>,
}

/// A connector as shown: never its credentials.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectorInfo {
    id: String,
    platform: String,
    account: String,
    /// The canonical table it lands in.
    table: String,
    base_url: Option<String>,
    auth_url: Option<String>,
    start_date: NaiveDate,
    lookback_days: u32,
    schedule_minutes: u32,
    #[schema(value_type = Object)]
    settings: BTreeMap<String, String>,
}

impl From<ConnectorConfig> for ConnectorInfo {
    fn from(c: ConnectorConfig) -> Self {
        ConnectorInfo {
            table: c.platform.table().name().to_string(),
            platform: c.platform.name().to_string(),
            id: c.id,
            account: c.account,
            base_url: c.base_url,
            auth_url: c.auth_url,
            start_date: c.start_date,
            lookback_days: c.lookback_days,
            schedule_minutes: c.schedule_minutes,
            settings: c.settings,
        }
    }
}

/// A connector with its last run, cursor and next scheduled run.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectorDetail {
    #[serde(flatten)]
    connector: ConnectorInfo,
    /// The newest run: status (running, succeeded, failed, interrupted),
    /// rows, error, times.
    #[schema(value_type = Option<Object>)]
    last_run: Option<Run>,
    /// Windowed connectors: `synced_through`, `resume_from`; CRM:
    /// `modified_since`.
    #[schema(value_type = Object)]
    cursor: StreamState,
    next_run: Option<DateTime<Utc>>,
}

impl From<ConnectorStatus> for ConnectorDetail {
    fn from(s: ConnectorStatus) -> Self {
        ConnectorDetail {
            connector: s.config.into(),
            last_run: s.last_run,
            cursor: s.cursor,
            next_run: s.next_run,
        }
    }
}

/// A sync that has started.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncStarted {
    run_id: String,
    connector_id: String,
    status: String,
    started_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncQuery {
    /// Read everything from the start date again.
    #[serde(default)]
    full: bool,
}

/// Adds a connector to the caller's tenant.
#[utoipa::path(post, path = "/connectors", operation_id = "create_connector", tag = "connectors", security(("bearer" = [])),
    request_body = CreateConnector,
    responses(
        (status = 201, description = "The connector (without credentials)", body = ConnectorInfo),
        (status = "4XX", description = "A problem", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Connectors are not enabled on this server: it has no key to seal credentials with (GYRUS_SECRET_KEY)", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ConnectorInfo>), Problem> {
    caller.require(Role::Admin)?;
    let request: CreateConnector = json_body(&headers, body)?;
    if (request.base_url.is_some() || request.auth_url.is_some())
        && !state.config.allow_connector_urls
    {
        return Err(Problem::forbidden(
            "this server does not let connectors choose their base_url or auth_url \
             (gyrus serve --allow-connector-urls); leave them out to use the platform's own",
        ));
    }
    let new = NewConnector {
        platform: request.platform.parse()?,
        account: request.account,
        credentials: Credentials(request.credentials),
        base_url: request.base_url,
        auth_url: request.auth_url,
        start_date: request.start_date,
        lookback_days: request.lookback_days,
        schedule_minutes: request.schedule_minutes,
        settings: request.settings,
    };
    let config = state.connectors.add(&caller.tenant, new).await?;
    tracing::info!(by = %caller.key_id, connector = %config.id, "connector added over HTTP");
    Ok((StatusCode::CREATED, Json(config.into())))
}

/// The connectors of the caller's tenant.
#[utoipa::path(get, path = "/connectors", operation_id = "list_connectors", tag = "connectors", security(("bearer" = [])),
    responses(
        (status = 200, description = "The connectors (without credentials)", body = Vec<ConnectorInfo>),
        (status = "4XX", description = "A problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ConnectorInfo>>, Problem> {
    caller.require(Role::Admin)?;
    let connectors = state.connectors.list(Some(&caller.tenant)).await?;
    Ok(Json(
        connectors.into_iter().map(ConnectorInfo::from).collect(),
    ))
}

/// One connector: its configuration, last run (rows, error), cursor and next run.
#[utoipa::path(get, path = "/connectors/{id}", operation_id = "get_connector", tag = "connectors", security(("bearer" = [])),
    params(("id" = String, Path, description = "The connector's id")),
    responses(
        (status = 200, description = "The connector and its last run", body = ConnectorDetail),
        (status = "4XX", description = "A problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> Result<Json<ConnectorDetail>, Problem> {
    caller.require(Role::Admin)?;
    Ok(Json(
        state
            .connectors
            .status(Some(&caller.tenant), &id)
            .await?
            .into(),
    ))
}

/// Removes a connector and its credentials; the data it landed stays.
#[utoipa::path(delete, path = "/connectors/{id}", operation_id = "remove_connector", tag = "connectors", security(("bearer" = [])),
    params(("id" = String, Path, description = "The connector's id")),
    responses(
        (status = 200, description = "The removed connector", body = ConnectorInfo),
        (status = "4XX", description = "A problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> Result<Json<ConnectorInfo>, Problem> {
    caller.require(Role::Admin)?;
    let config = state.connectors.remove(Some(&caller.tenant), &id).await?;
    tracing::info!(by = %caller.key_id, connector = %id, "connector removed over HTTP");
    Ok(Json(config.into()))
}

/// Starts a sync now; `GET /connectors/{id}` follows it. 409 while one runs.
#[utoipa::path(post, path = "/connectors/{id}/sync", operation_id = "sync_connector", tag = "connectors", security(("bearer" = [])),
    params(("id" = String, Path, description = "The connector's id"),
        ("full" = Option<bool>, Query, description = "Read everything from the start date again")),
    responses(
        (status = 202, description = "The sync has started", body = SyncStarted),
        (status = "4XX", description = "A problem", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Connectors are not enabled on this server: it has no key to open credentials with (GYRUS_SECRET_KEY)", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn sync(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
    query: Result<Query<SyncQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(StatusCode, Json<SyncStarted>), Problem> {
    caller.require(Role::Admin)?;
    let Query(query) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
    let begun = state
        .connectors
        .begin(Some(&caller.tenant), &id, "manual")
        .await?;
    let started = SyncStarted {
        run_id: begun.run.run_id.clone(),
        connector_id: id.clone(),
        status: "running".into(),
        started_at: begun.run.started_at,
    };
    let connectors = state.connectors.clone();
    let options = SyncOptions {
        full: query.full,
        ..Default::default()
    };
    tracing::info!(by = %caller.key_id, connector = %id, "sync started over HTTP");
    // The sync outlives the request: its end is recorded in the run journal.
    tokio::spawn(async move {
        if let Err(error) = connectors.finish(begun, &options).await {
            tracing::error!(connector = %id, %error, "could not record the end of a sync");
        }
    });
    Ok((StatusCode::ACCEPTED, Json(started)))
}
