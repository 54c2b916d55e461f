//! The batch pipeline: reads every tenant's data, fits a family over all
//! series of all tenants in parallel, judges each tenant's new model against
//! the serving one, and writes output table and registry entry per tenant.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use gyrus_engine::schema::CanonicalTable;
use gyrus_engine::{Store, TenantId, WriteRequest};
use serde::Serialize;

use crate::error::{ModelError, Result};
use crate::family::{Family, TrainedModel};
use crate::oracle::data::{TenantSeries, load_series};
use crate::oracle::model::{OracleConfig, OracleModel, fit_tenants};
use crate::registry::{Entry, Registry, Status};

/// What to train.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Tenants to train; every tenant when `None`.
    pub tenants: Option<Vec<TenantId>>,
    pub families: Vec<Family>,
    pub oracle: OracleConfig,
    /// A new model is rejected when its score (lower is better) is worse
    /// than the serving model's by more than this factor.
    pub worse_tolerance: f64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            tenants: None,
            families: vec![Family::Oracle],
            oracle: OracleConfig::default(),
            worse_tolerance: 1.10,
        }
    }
}

/// Progress of a run, for a progress bar.
pub trait Progress: Send + Sync {
    /// A family starts on `total` units of work (series, customers, …).
    fn start(&self, family: Family, total: usize);
    /// One unit is done.
    fn advance(&self);
}

/// No progress reporting.
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _: Family, _: usize) {}
    fn advance(&self) {}
}

/// What one tenant's run of one family did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub tenant: String,
    pub family: Family,
    pub version: u64,
    pub status: Status,
    /// Units fitted (series for ORACLE).
    pub units: usize,
    /// Rows written to the family's output table (0 unless the run serves).
    pub rows_written: usize,
    pub seconds: f64,
    pub score: Option<f64>,
    pub message: Option<String>,
}

/// Trains the requested families for the requested tenants.
pub async fn train(
    store: &Store,
    options: &TrainOptions,
    progress: Arc<dyn Progress>,
) -> Result<Vec<RunReport>> {
    let tenants = match &options.tenants {
        Some(tenants) => tenants.clone(),
        None => store.tenants().await?,
    };
    let registry = Registry::new(store.clone());
    let mut reports = Vec::new();
    for &family in &options.families {
        match family {
            Family::Oracle => reports
                .extend(train_oracle(store, &registry, &tenants, options, progress.clone()).await?),
            other => {
                return Err(ModelError::Invalid(format!(
                    "the {other} family has no training pipeline yet; train oracle"
                )));
            }
        }
    }
    Ok(reports)
}

async fn train_oracle(
    store: &Store,
    registry: &Registry,
    tenants: &[TenantId],
    options: &TrainOptions,
    progress: Arc<dyn Progress>,
) -> Result<Vec<RunReport>> {
    let started = Instant::now();
    let mut loaded: Vec<TenantSeries> = Vec::new();
    let mut reports = Vec::new();
    for tenant in tenants {
        match load_series(store, tenant).await {
            Ok(series) => loaded.push(series),
            Err(e) => {
                // A tenant whose data cannot be read fails alone.
                let version = registry.next_version(tenant, Family::Oracle).await?;
                let entry = failed_entry(tenant, version, options, &e.to_string());
                registry.record::<OracleModel>(&entry, None).await?;
                reports.push(report(&entry, 0, 0, started, None));
            }
        }
    }
    let total: usize = loaded.iter().map(|t| t.series.len()).sum();
    progress.start(Family::Oracle, total);
    let config = options.oracle.clone();
    // The fits are CPU work for Rayon's pool, off the async runtime's threads.
    let (loaded, fitted) = tokio::task::spawn_blocking(move || {
        let fitted = fit_tenants(&config, &loaded, &|| progress.advance());
        (loaded, fitted)
    })
    .await
    .map_err(|e| ModelError::Registry(format!("the training task failed: {e}")))?;
    for (series, model) in loaded.iter().zip(fitted) {
        reports.push(publish(store, registry, series, model, options, started).await?);
    }
    Ok(reports)
}

/// Judges a tenant's new model against the serving one and, if it is not
/// worse, writes its forecasts (one commit) and records it as good.
async fn publish(
    store: &Store,
    registry: &Registry,
    series: &TenantSeries,
    model: OracleModel,
    options: &TrainOptions,
    started: Instant,
) -> Result<RunReport> {
    let tenant = &series.tenant;
    // One read of the tenant's runs: the next version and the serving one.
    let runs = registry.entries(Some(tenant), Some(Family::Oracle)).await?;
    let version = runs.iter().map(|e| e.version).max().unwrap_or(0) + 1;
    let serving = runs.into_iter().rev().find(|e| e.status == Status::Good);
    let trained_at = Utc::now();
    let mut entry = Entry {
        tenant: tenant.as_str().to_string(),
        family: Family::Oracle.as_str().to_string(),
        version,
        trained_at,
        status: Status::Good,
        input_versions: series.input_versions.clone(),
        parameters: serde_json::to_value(&options.oracle).unwrap_or_default(),
        metrics: model.metrics(),
        message: None,
    };
    let units = model.series.len();
    let score = model.score();
    if model.series.is_empty() {
        entry.status = Status::Failed;
        entry.message = Some(if series.series.is_empty() {
            "no data: ad_performance, web_sessions and orders are empty".into()
        } else {
            "no series could be fitted".into()
        });
        registry.record::<OracleModel>(&entry, None).await?;
        return Ok(report(&entry, units, 0, started, score));
    }
    if let Some(serving) = serving
        && let (Some(new), Some(old)) = (score, serving_score(&serving))
        && new > old * options.worse_tolerance
    {
        entry.status = Status::Rejected;
        entry.message = Some(format!(
            "holdout MASE {new:.3} is worse than the serving version {}'s {old:.3} \
             (tolerance {:.0}%); version {} keeps serving",
            serving.version,
            (options.worse_tolerance - 1.0) * 100.0,
            serving.version
        ));
        registry.record(&entry, Some(&model)).await?;
        return Ok(report(&entry, units, 0, started, score));
    }
    let rows = model.forecast_rows(&entry.version_label(), trained_at)?;
    let written = rows.num_rows();
    // Forecasts first, registry second: if the write fails nothing serves
    // that was not written; if recording fails, the old version still serves
    // and the next run rewrites the table.
    if let Err(e) = store
        .write(
            tenant,
            WriteRequest::append(CanonicalTable::Forecasts, vec![rows]).replacing_all(),
        )
        .await
    {
        entry.status = Status::Failed;
        entry.message = Some(format!("writing forecasts failed: {e}"));
        registry.record::<OracleModel>(&entry, None).await?;
        return Ok(report(&entry, units, 0, started, score));
    }
    registry.record(&entry, Some(&model)).await?;
    Ok(report(&entry, units, written, started, score))
}

fn serving_score(entry: &Entry) -> Option<f64> {
    entry.metrics.get("holdout_mase").and_then(|v| v.as_f64())
}

fn failed_entry(tenant: &TenantId, version: u64, options: &TrainOptions, message: &str) -> Entry {
    Entry {
        tenant: tenant.as_str().to_string(),
        family: Family::Oracle.as_str().to_string(),
        version,
        trained_at: Utc::now(),
        status: Status::Failed,
        input_versions: BTreeMap::new(),
        parameters: serde_json::to_value(&options.oracle).unwrap_or_default(),
        metrics: serde_json::Value::Null,
        message: Some(message.to_string()),
    }
}

fn report(
    entry: &Entry,
    units: usize,
    rows: usize,
    started: Instant,
    score: Option<f64>,
) -> RunReport {
    RunReport {
        tenant: entry.tenant.clone(),
        family: Family::Oracle,
        version: entry.version,
        status: entry.status,
        units,
        rows_written: rows,
        seconds: started.elapsed().as_secs_f64(),
        score,
        message: entry.message.clone(),
    }
}
