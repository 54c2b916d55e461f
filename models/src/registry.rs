//! The model registry, shared by every family: one row per training run in
//! the system table `_system/model_registry`.
//!
//! A row holds the tenant, family, version, when it was trained, the Delta
//! version of every input table it saw, its parameters and evaluation
//! metrics, its status and (for a good run) the model itself as JSON. The
//! newest `good` version serves; failed and rejected runs are kept for the
//! record and never serve; older good versions stay readable by version.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Utc};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::prelude::{col, lit};
use gyrus_engine::schema::timestamp_utc;
use gyrus_engine::system_table::{SystemRecord, SystemTable};
use gyrus_engine::{Store, TenantId};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::family::{FamilyId, TrainedModel};
use gyrus_engine::system::json_text;

const TABLE: &str = "model_registry";

/// Where a tenant's model runs are, for erasing and one-tenant snapshots.
pub const TENANT_ROWS: gyrus_engine::lifecycle::ByTenantColumn =
    gyrus_engine::lifecycle::ByTenantColumn {
        table: TABLE,
        column: "tenant_id",
    };
/// One row of the registry: a run, and the model itself for a good or
/// rejected one (a heavy column, read only by [`Registry::load`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunRecord {
    tenant_id: String,
    family: String,
    version: u64,
    trained_at: DateTime<Utc>,
    status: Status,
    /// JSON text, as are `parameters` and `metrics`.
    input_versions: String,
    parameters: String,
    metrics: String,
    message: Option<String>,
    model: Option<String>,
}

impl SystemRecord for RunRecord {
    fn schema() -> SchemaRef {
        static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
            Arc::new(Schema::new(vec![
                Field::new("tenant_id", DataType::Utf8, false),
                Field::new("family", DataType::Utf8, false),
                Field::new("version", DataType::Int64, false),
                Field::new("trained_at", timestamp_utc(), false),
                Field::new("status", DataType::Utf8, false),
                Field::new("input_versions", DataType::Utf8, false),
                Field::new("parameters", DataType::Utf8, false),
                Field::new("metrics", DataType::Utf8, false),
                Field::new("message", DataType::Utf8, true),
                Field::new("model", DataType::Utf8, true),
            ]))
        });
        SCHEMA.clone()
    }

    const HEAVY: &'static [&'static str] = &["model"];
}

impl RunRecord {
    fn entry(&self) -> Result<Entry> {
        let json = |name: &str, text: &str| -> Result<serde_json::Value> {
            serde_json::from_str(text)
                .map_err(|e| ModelError::Registry(format!("column `{name}`: {e}")))
        };
        Ok(Entry {
            tenant: self.tenant_id.clone(),
            family: self.family.clone(),
            version: self.version,
            trained_at: self.trained_at,
            status: self.status,
            input_versions: serde_json::from_str(&self.input_versions)
                .map_err(|e| ModelError::Registry(format!("input_versions: {e}")))?,
            parameters: json("parameters", &self.parameters)?,
            metrics: json("metrics", &self.metrics)?,
            message: self.message.clone(),
        })
    }
}

/// How a training run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Trained and judged: it serves until a newer good version exists.
    Good,
    /// Training failed; the message says why.
    Failed,
    /// Trained, but it scored worse than the serving version.
    Rejected,
    /// Not run: another process was training this tenant's family (it held
    /// the lease). Only in run reports, never recorded in the registry.
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Good => "good",
            Status::Failed => "failed",
            Status::Rejected => "rejected",
            Status::Skipped => "skipped",
        }
    }
}

/// One training run, without the model itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub tenant: String,
    pub family: String,
    pub version: u64,
    pub trained_at: DateTime<Utc>,
    pub status: Status,
    /// Delta version of each input table (`None`: the table was empty).
    pub input_versions: BTreeMap<String, Option<u64>>,
    pub parameters: serde_json::Value,
    pub metrics: serde_json::Value,
    pub message: Option<String>,
}

impl Entry {
    /// The version as written to output tables' `model_version`.
    pub fn version_label(&self) -> String {
        format!("{}-v{}", self.family, self.version)
    }
}

/// The run that serves among `runs` of one tenant and family (oldest
/// first, as [`Registry::entries`] gives them): the newest good one.
pub fn serving_among(runs: &[Entry]) -> Option<&Entry> {
    runs.iter().rev().find(|e| e.status == Status::Good)
}

/// The registry over a store.
#[derive(Clone)]
pub struct Registry {
    store: Store,
}

impl Registry {
    pub fn new(store: Store) -> Self {
        Registry { store }
    }

    /// Records a run; `model` only for a good or rejected run.
    pub async fn record<M: TrainedModel>(&self, entry: &Entry, model: Option<&M>) -> Result<()> {
        let model_json = model
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| ModelError::Registry(format!("serialising the model: {e}")))?;
        let record = RunRecord {
            tenant_id: entry.tenant.clone(),
            family: entry.family.clone(),
            version: entry.version,
            trained_at: entry.trained_at,
            status: entry.status,
            input_versions: json_text(&entry.input_versions),
            parameters: json_text(&entry.parameters),
            metrics: json_text(&entry.metrics),
            message: entry.message.clone(),
            model: model_json,
        };
        self.table().append(&[record]).await?;
        Ok(())
    }

    /// Every run of a tenant (all tenants when `None`) and family, oldest first.
    pub async fn entries(
        &self,
        tenant: Option<&TenantId>,
        family: Option<FamilyId>,
    ) -> Result<Vec<Entry>> {
        let records = self.table().rows().await?;
        let mut entries = records
            .iter()
            .filter(|r| tenant.is_none_or(|t| r.tenant_id == t.as_str()))
            .filter(|r| family.is_none_or(|f| r.family == f.as_str()))
            .map(RunRecord::entry)
            .collect::<Result<Vec<Entry>>>()?;
        entries.sort_by(|a, b| {
            (&a.tenant, &a.family, a.version).cmp(&(&b.tenant, &b.family, b.version))
        });
        Ok(entries)
    }

    /// The version a new run of `family` for `tenant` gets: the first after
    /// `runs` (the runs recorded so far) that no other run has claimed. Two
    /// runs in different processes never get the same version: each version
    /// is claimed in the store before use, and a claim lost to another run
    /// moves on to the next number.
    pub async fn claim_version(
        &self,
        tenant: &TenantId,
        family: FamilyId,
        runs: &[Entry],
    ) -> Result<u64> {
        let mut version = runs.iter().map(|e| e.version).max().unwrap_or(0) + 1;
        loop {
            let number = version.to_string();
            let parts = ["model_versions", tenant.as_str(), family.as_str(), &number];
            if self
                .store
                .claim(&parts, "claimed by a training run")
                .await?
            {
                return Ok(version);
            }
            version += 1;
        }
    }

    /// Every run of a tenant, oldest first, each with whether it serves now.
    pub async fn runs(&self, tenant: &TenantId) -> Result<Vec<(Entry, bool)>> {
        let entries = self.entries(Some(tenant), None).await?;
        let serving: Vec<String> = FamilyId::ALL
            .into_iter()
            .filter_map(|family| {
                let runs: Vec<Entry> = entries
                    .iter()
                    .filter(|e| e.family == family.as_str())
                    .cloned()
                    .collect();
                serving_among(&runs).map(Entry::version_label)
            })
            .collect();
        Ok(entries
            .into_iter()
            .map(|e| {
                let serves = serving.contains(&e.version_label());
                (e, serves)
            })
            .collect())
    }

    /// The newest good run, without its model.
    pub async fn serving_entry(
        &self,
        tenant: &TenantId,
        family: FamilyId,
    ) -> Result<Option<Entry>> {
        let entries = self.entries(Some(tenant), Some(family)).await?;
        Ok(serving_among(&entries).cloned())
    }

    /// The model of a given version (good or rejected), as it was stored.
    pub async fn load<M: TrainedModel>(
        &self,
        tenant: &TenantId,
        version: u64,
    ) -> Result<Option<(Entry, M)>> {
        let filter = col("tenant_id")
            .eq(lit(tenant.as_str()))
            .and(col("family").eq(lit(M::FAMILY.as_str())))
            .and(col("version").eq(lit(version as i64)));
        for record in self.table().find(filter).await? {
            let Some(model) = &record.model else { continue };
            let model: M = serde_json::from_str(model).map_err(|e| {
                ModelError::Registry(format!(
                    "{} model version {version} of tenant {tenant} does not read back: {e}",
                    M::FAMILY
                ))
            })?;
            return Ok(Some((record.entry()?, model)));
        }
        Ok(None)
    }

    /// The serving model: the newest good version.
    pub async fn serving<M: TrainedModel>(&self, tenant: &TenantId) -> Result<Option<(Entry, M)>> {
        match self.serving_entry(tenant, M::FAMILY).await? {
            Some(entry) => self.load(tenant, entry.version).await,
            None => Ok(None),
        }
    }

    fn table(&self) -> SystemTable<RunRecord> {
        SystemTable::new(&self.store, TABLE)
    }
}

/// `system.model_runs`: every training run of the tenant, without the model.
pub struct ModelRunsView(pub Registry);

#[derive(Serialize)]
struct RunRow {
    run_id: String,
    family: String,
    version: u64,
    status: &'static str,
    serving: bool,
    trained_at: DateTime<Utc>,
    input_versions: String,
    parameters: String,
    metrics: String,
    message: Option<String>,
}

#[async_trait::async_trait]
impl gyrus_engine::system::SystemView for ModelRunsView {
    fn name(&self) -> &'static str {
        "model_runs"
    }

    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("run_id", DataType::Utf8, false),
            Field::new("family", DataType::Utf8, false),
            Field::new("version", DataType::Int64, false),
            Field::new("status", DataType::Utf8, false),
            Field::new("serving", DataType::Boolean, false),
            Field::new("trained_at", timestamp_utc(), false),
            Field::new("input_versions", DataType::Utf8, false),
            Field::new("parameters", DataType::Utf8, false),
            Field::new("metrics", DataType::Utf8, false),
            Field::new("message", DataType::Utf8, true),
        ]))
    }

    async fn rows(&self, tenant: &TenantId) -> gyrus_engine::Result<RecordBatch> {
        use gyrus_engine::system::to_batch;
        let runs = self
            .0
            .runs(tenant)
            .await
            .map_err(|e| gyrus_engine::EngineError::Internal(e.to_string()))?;
        let rows: Vec<RunRow> = runs
            .into_iter()
            .map(|(e, serving)| RunRow {
                run_id: e.version_label(),
                family: e.family,
                version: e.version,
                status: e.status.as_str(),
                serving,
                trained_at: e.trained_at,
                input_versions: json_text(&e.input_versions),
                parameters: json_text(&e.parameters),
                metrics: json_text(&e.metrics),
                message: e.message,
            })
            .collect();
        to_batch(&self.schema(), &rows)
    }
}
