//! `system.connectors` and `system.connector_runs`: a tenant's connectors
//! (never their credentials) and their syncs, as SQL.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use gyrus_engine::datafusion::arrow::array::RecordBatch;
use gyrus_engine::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use gyrus_engine::schema::timestamp_utc;
use gyrus_engine::system::{SystemView, json_text, to_batch};
use gyrus_engine::{EngineError, Store, TenantId};
use serde::Serialize;

use super::registry::{Connectors, RunStatus, next_run};

/// A connector failure inside an engine operation (a `system` scan, an
/// erase): the engine's own errors keep their meaning.
pub(super) fn engine_error(e: super::SyncError) -> EngineError {
    match e {
        super::SyncError::Engine(e) => e,
        other => EngineError::Internal(other.to_string()),
    }
}

/// `system.connectors`.
pub struct ConnectorsView(Connectors);

impl ConnectorsView {
    pub fn new(store: Store) -> Arc<Self> {
        // Listing needs no credential key.
        Arc::new(ConnectorsView(Connectors::new(store, None)))
    }
}

#[derive(Serialize)]
struct ConnectorRow {
    connector_id: String,
    platform: &'static str,
    account: String,
    table_name: &'static str,
    start_date: NaiveDate,
    lookback_days: u32,
    schedule_minutes: u32,
    settings: String,
    last_run_status: Option<RunStatus>,
    last_run_at: Option<DateTime<Utc>>,
    next_run: Option<DateTime<Utc>>,
}

#[async_trait::async_trait]
impl SystemView for ConnectorsView {
    fn name(&self) -> &'static str {
        "connectors"
    }

    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("connector_id", DataType::Utf8, false),
            Field::new("platform", DataType::Utf8, false),
            Field::new("account", DataType::Utf8, false),
            Field::new("table_name", DataType::Utf8, false),
            Field::new("start_date", DataType::Date32, false),
            Field::new("lookback_days", DataType::Int64, false),
            Field::new("schedule_minutes", DataType::Int64, false),
            Field::new("settings", DataType::Utf8, false),
            Field::new("last_run_status", DataType::Utf8, true),
            Field::new("last_run_at", timestamp_utc(), true),
            Field::new("next_run", timestamp_utc(), true),
        ]))
    }

    async fn rows(&self, tenant: &TenantId) -> gyrus_engine::Result<RecordBatch> {
        // One read of the configurations and one of the run journal for
        // all connectors (not a status read per connector).
        let configs = self.0.list(Some(tenant)).await.map_err(engine_error)?;
        let runs = self.0.runs_of(&configs).await.map_err(engine_error)?;
        let mut rows = Vec::new();
        for config in configs {
            // Runs come oldest first.
            let last_run = runs.iter().rev().find(|r| r.connector_id == config.id);
            let next_run = next_run(&config, last_run);
            rows.push(ConnectorRow {
                platform: config.platform.name(),
                table_name: config.platform.table().name(),
                account: config.account,
                start_date: config.start_date,
                lookback_days: config.lookback_days,
                schedule_minutes: config.schedule_minutes,
                settings: json_text(&config.settings),
                last_run_status: last_run.map(|r| r.status),
                last_run_at: last_run.map(|r| r.started_at),
                next_run,
                connector_id: config.id,
            });
        }
        to_batch(&self.schema(), &rows)
    }
}

/// `system.connector_runs`.
pub struct ConnectorRunsView(Connectors);

impl ConnectorRunsView {
    pub fn new(store: Store) -> Arc<Self> {
        Arc::new(ConnectorRunsView(Connectors::new(store, None)))
    }
}

#[derive(Serialize)]
struct RunRow {
    run_id: String,
    connector_id: String,
    trigger: String,
    status: RunStatus,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    rows: u64,
    error: Option<String>,
}

#[async_trait::async_trait]
impl SystemView for ConnectorRunsView {
    fn name(&self) -> &'static str {
        "connector_runs"
    }

    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("run_id", DataType::Utf8, false),
            Field::new("connector_id", DataType::Utf8, false),
            Field::new("trigger", DataType::Utf8, false),
            Field::new("status", DataType::Utf8, false),
            Field::new("started_at", timestamp_utc(), false),
            Field::new("finished_at", timestamp_utc(), true),
            Field::new("rows", DataType::Int64, false),
            Field::new("error", DataType::Utf8, true),
        ]))
    }

    async fn rows(&self, tenant: &TenantId) -> gyrus_engine::Result<RecordBatch> {
        let rows: Vec<RunRow> = self
            .0
            .runs(tenant)
            .await
            .map_err(engine_error)?
            .into_iter()
            .map(|r| RunRow {
                run_id: r.run_id,
                connector_id: r.connector_id,
                trigger: r.trigger,
                status: r.status,
                started_at: r.started_at,
                finished_at: r.finished_at,
                rows: r.rows as u64,
                error: r.error,
            })
            .collect();
        to_batch(&self.schema(), &rows)
    }
}
