//! The batch pipeline: reads every tenant's data, fits a family over all
//! series of all tenants in parallel, judges each tenant's new model against
//! the serving one, and writes output table and registry entry per tenant.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{NaiveDate, Utc};
use gyrus_engine::lease::{self, LeaseState, Taken};
use gyrus_engine::schema::CanonicalTable;
use gyrus_engine::{Slice, Store, TenantId, WriteRequest};
use serde::Serialize;

use crate::curiosity::model::{CuriosityConfig, CuriosityModel};
use crate::curiosity::{insight::insight_rows, model as curiosity};
use crate::error::{ModelError, Result};
use crate::family::{Family, TrainedModel};
use crate::memory::data::{TenantMemoryData, load as load_memory};
use crate::memory::model::MemoryConfig;
use crate::memory::tenant::fit_tenant;
use crate::oracle::data::{TenantSeries, load_series};
use crate::oracle::model::{OracleConfig, OracleModel, fit_tenants};
use crate::reflexes::model::{self as reflexes, ReflexesConfig};
use crate::registry::{Entry, Registry, Status};

/// What to train.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Tenants to train; every tenant when `None`.
    pub tenants: Option<Vec<TenantId>>,
    pub families: Vec<Family>,
    pub oracle: OracleConfig,
    pub curiosity: CuriosityConfig,
    pub memory: MemoryConfig,
    pub reflexes: ReflexesConfig,
    /// A new model is rejected when its score (lower is better) is worse
    /// than the serving model's by more than this factor.
    pub worse_tolerance: f64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            tenants: None,
            families: Family::ALL
                .into_iter()
                .filter(|f| f.is_trainable())
                .collect(),
            oracle: OracleConfig::default(),
            curiosity: CuriosityConfig::default(),
            memory: MemoryConfig::default(),
            reflexes: ReflexesConfig::default(),
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
    /// The evaluation metrics recorded in the registry.
    pub metrics: serde_json::Value,
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
        // Each tenant × family is trained by one process at a time: the
        // others report it skipped.
        let mut held = Vec::new();
        let mut leases = Vec::new();
        for tenant in &tenants {
            let name = ["train", tenant.as_str(), family.as_str()];
            match store.take_lease(&name, lease::DEFAULT_TTL).await? {
                Taken::Held(lease) => {
                    held.push(tenant.clone());
                    leases.push(lease);
                }
                Taken::Busy(other) => reports.push(skipped(tenant, family, &other)),
            }
        }
        let tenants = &held;
        let run = match family {
            Family::Oracle => {
                train_oracle(store, &registry, tenants, options, progress.clone()).await
            }
            Family::Curiosity => {
                train_curiosity(store, &registry, tenants, options, progress.clone()).await
            }
            Family::Memory => {
                train_memory(store, &registry, tenants, options, progress.clone()).await
            }
            Family::Reflexes => {
                train_reflexes(store, &registry, tenants, options, progress.clone()).await
            }
        };
        for lease in leases {
            if let Err(e) = lease.release().await {
                // It expires on its own within the lease's time to live.
                tracing::warn!(%family, error = %e, "could not release a training lease");
            }
        }
        reports.extend(run?);
    }
    Ok(reports)
}

/// The report of a tenant another process was training.
fn skipped(tenant: &TenantId, family: Family, other: &LeaseState) -> RunReport {
    RunReport {
        tenant: tenant.as_str().to_string(),
        family,
        version: 0,
        status: Status::Skipped,
        units: 0,
        rows_written: 0,
        seconds: 0.0,
        score: None,
        message: Some(format!(
            "another process ({}) is training it; its lease ends by {} unless renewed",
            other.holder,
            other.expires_at.format("%Y-%m-%d %H:%M:%S UTC")
        )),
        metrics: serde_json::Value::Null,
    }
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
                let parameters = serde_json::to_value(&options.oracle).unwrap_or_default();
                reports.push(
                    record_failure::<OracleModel>(registry, tenant, parameters, &e, started)
                        .await?,
                );
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
        let candidate = Candidate {
            tenant: &series.tenant,
            units: model.series.len(),
            input_versions: series.input_versions.clone(),
            parameters: serde_json::to_value(&options.oracle).unwrap_or_default(),
            empty: model.series.is_empty().then(|| {
                if series.series.is_empty() {
                    "no data: ad_performance, web_sessions and orders are empty".to_string()
                } else {
                    "no series could be fitted".to_string()
                }
            }),
            model,
        };
        let rows = |m: &OracleModel, label: &str, at| {
            Ok(vec![Output::all(
                CanonicalTable::Forecasts,
                m.forecast_rows(label, at)?,
            )])
        };
        reports.push(publish(store, registry, candidate, options, started, rows).await?);
    }
    Ok(reports)
}

async fn train_curiosity(
    store: &Store,
    registry: &Registry,
    tenants: &[TenantId],
    options: &TrainOptions,
    progress: Arc<dyn Progress>,
) -> Result<Vec<RunReport>> {
    options.curiosity.check()?;
    let parameters = serde_json::to_value(&options.curiosity).unwrap_or_default();
    let mut reports = Vec::new();
    let mut loaded = Vec::new();
    let started = Instant::now();
    for tenant in tenants {
        match curiosity::load(store, tenant).await {
            Ok(inputs) => loaded.push((tenant, inputs)),
            Err(e) => reports.push(
                record_failure::<CuriosityModel>(registry, tenant, parameters.clone(), &e, started)
                    .await?,
            ),
        }
    }
    // Progress counts entities: the scan judges an entity's series together.
    let total: usize = loaded
        .iter()
        .map(|(_, i)| {
            let entities: std::collections::HashSet<(&str, &str)> = i
                .series
                .series
                .iter()
                .map(|s| (s.entity_type.as_str(), s.entity_id.as_str()))
                .collect();
            entities.len()
        })
        .sum();
    progress.start(Family::Curiosity, total);
    for (tenant, inputs) in loaded {
        let started = Instant::now();
        let config = options.curiosity.clone();
        let progress = progress.clone();
        // The scan is CPU work for Rayon's pool, off the async runtime's threads.
        let (inputs, scanned) = tokio::task::spawn_blocking(move || {
            let scanned = curiosity::scan(&inputs, &config, &|| progress.advance());
            (inputs, scanned)
        })
        .await
        .map_err(|e| ModelError::Registry(format!("the scanning task failed: {e}")))?;
        let found = match curiosity::finish(inputs, scanned, &options.curiosity).await {
            Ok(found) => found,
            Err(e) => {
                // A tenant whose movers, segments or benchmarks cannot be read fails alone.
                reports.push(
                    record_failure::<CuriosityModel>(
                        registry,
                        tenant,
                        parameters.clone(),
                        &e,
                        started,
                    )
                    .await?,
                );
                continue;
            }
        };
        let candidate = Candidate {
            tenant,
            units: found.model.series_scanned,
            input_versions: found.input_versions.clone(),
            parameters: parameters.clone(),
            empty: found
                .model
                .end
                .is_none()
                .then(|| found.model.notes.join("; ")),
            model: found.model.clone(),
        };
        let rows = |_: &CuriosityModel, label: &str, at| {
            Ok(vec![Output::all(
                CanonicalTable::Insights,
                insight_rows(&found.insights, label, at, &found.first_seen)?,
            )])
        };
        reports.push(publish(store, registry, candidate, options, started, rows).await?);
    }
    Ok(reports)
}

async fn train_memory(
    store: &Store,
    registry: &Registry,
    tenants: &[TenantId],
    options: &TrainOptions,
    progress: Arc<dyn Progress>,
) -> Result<Vec<RunReport>> {
    options.memory.check()?;
    let config = options.memory.clone();
    let each = EachTenant {
        store,
        registry,
        options,
        parameters: serde_json::to_value(&options.memory).unwrap_or_default(),
    };
    each.run(
        tenants,
        progress,
        |tenant| {
            let (tenant, holdout_days) = (tenant.clone(), options.memory.holdout_days);
            Box::pin(async move {
                let data: TenantMemoryData = load_memory(store, &tenant, holdout_days).await?;
                Ok((data.input_versions.clone(), data))
            })
        },
        move |data| {
            let scores = fit_tenant(&config, data);
            TenantFit {
                units: scores.model.customers_scored + scores.model.deals_scored,
                empty: scores.is_empty().then(|| scores.model.notes.join("; ")),
                model: scores.model.clone(),
                outputs: scores,
            }
        },
        |scores, label, at| {
            let mut tables = Vec::new();
            if let Some(batch) = scores.customer_rows(label, at)? {
                tables.push(Output::all(CanonicalTable::CustomerScores, batch));
            }
            if let Some(batch) = scores.lead_rows(label, at)? {
                tables.push(Output::all(CanonicalTable::LeadScores, batch));
            }
            Ok(tables)
        },
    )
    .await
}

/// The plan each REFLEXES run writes replaces the previous run's; plans
/// saved through the API stay.
pub const AUTOMATIC_PLAN_ID: &str = "automatic";

async fn train_reflexes(
    store: &Store,
    registry: &Registry,
    tenants: &[TenantId],
    options: &TrainOptions,
    progress: Arc<dyn Progress>,
) -> Result<Vec<RunReport>> {
    options.reflexes.check()?;
    let config = options.reflexes.clone();
    let each = EachTenant {
        store,
        registry,
        options,
        parameters: serde_json::to_value(&options.reflexes).unwrap_or_default(),
    };
    each.run(
        tenants,
        progress,
        |tenant| {
            let tenant = tenant.clone();
            Box::pin(async move {
                let series = load_series(store, &tenant).await?;
                let channels = reflexes::campaign_channels(store, &tenant).await?;
                Ok((series.input_versions.clone(), (series, channels)))
            })
        },
        move |(series, channels)| {
            let mut model = reflexes::fit_tenant(&config, &series, &channels);
            let plan = reflexes::default_plan(&model);
            model.plan = plan.as_ref().map(|p| p.summary.clone());
            TenantFit {
                units: model.curves.len(),
                empty: model.curves.is_empty().then(|| model.notes.join("; ")),
                model,
                outputs: plan,
            }
        },
        |plan, label, at| {
            let Some(plan) = plan else {
                return Ok(Vec::new());
            };
            Ok(vec![Output {
                table: CanonicalTable::BudgetPlans,
                batch: reflexes::plan_rows(plan, AUTOMATIC_PLAN_ID, "campaign", label, at)?,
                // Every earlier automatic plan, whenever it was made.
                replace: Replace::Slice(Slice {
                    equals: vec![("plan_id".into(), AUTOMATIC_PLAN_ID.into())],
                    from: NaiveDate::default(),
                    to: at.date_naive(),
                }),
            }])
        },
    )
    .await
}

/// A tenant's fitted model and what its output rows are made from.
struct TenantFit<M, X> {
    model: M,
    /// Units fitted (customers and deals, curves, …).
    units: usize,
    /// Why nothing was fitted, if nothing was.
    empty: Option<String>,
    outputs: X,
}

/// Trains a family tenant by tenant: read, fit off the async runtime,
/// judge and publish. A tenant whose data cannot be read fails alone.
struct EachTenant<'a> {
    store: &'a Store,
    registry: &'a Registry,
    options: &'a TrainOptions,
    parameters: serde_json::Value,
}

/// Reading one tenant's data: its input versions and the data. A boxed
/// future that owns what it needs, so the training future stays `Send`.
type Load<'a, D> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(BTreeMap<String, Option<u64>>, D)>> + Send + 'a>,
>;

impl<'a> EachTenant<'a> {
    async fn run<M: TrainedModel, D: Send + 'static, X: Send + 'static>(
        &self,
        tenants: &[TenantId],
        progress: Arc<dyn Progress>,
        load: impl Fn(&TenantId) -> Load<'a, D>,
        fit: impl Fn(D) -> TenantFit<M, X> + Clone + Send + 'static,
        rows: impl Fn(&X, &str, chrono::DateTime<Utc>) -> Result<Rows>,
    ) -> Result<Vec<RunReport>> {
        progress.start(M::FAMILY, tenants.len());
        let mut reports = Vec::new();
        for tenant in tenants {
            let started = Instant::now();
            let (input_versions, data) = match load(tenant).await {
                Ok(loaded) => loaded,
                Err(e) => {
                    let parameters = self.parameters.clone();
                    reports.push(
                        record_failure::<M>(self.registry, tenant, parameters, &e, started).await?,
                    );
                    progress.advance();
                    continue;
                }
            };
            let fit = fit.clone();
            // The fits are CPU work for Rayon's pool, off the async runtime's threads.
            let fitted = tokio::task::spawn_blocking(move || fit(data))
                .await
                .map_err(|e| ModelError::Registry(format!("the training task failed: {e}")))?;
            let candidate = Candidate {
                tenant,
                units: fitted.units,
                input_versions,
                parameters: self.parameters.clone(),
                empty: fitted.empty,
                model: fitted.model,
            };
            let outputs = fitted.outputs;
            let rows = |_: &M, label: &str, at| rows(&outputs, label, at);
            reports.push(
                publish(
                    self.store,
                    self.registry,
                    candidate,
                    self.options,
                    started,
                    rows,
                )
                .await?,
            );
            progress.advance();
        }
        Ok(reports)
    }
}

/// A tenant's newly trained model, before it is judged.
struct Candidate<'a, M> {
    tenant: &'a TenantId,
    model: M,
    /// Units fitted (series, customers and deals, …).
    units: usize,
    input_versions: BTreeMap<String, Option<u64>>,
    parameters: serde_json::Value,
    /// Why nothing was fitted, if nothing was.
    empty: Option<String>,
}

/// One output table's rows, written in one commit.
struct Output {
    table: CanonicalTable,
    batch: gyrus_engine::datafusion::arrow::array::RecordBatch,
    replace: Replace,
}

/// What an output's commit replaces.
enum Replace {
    /// The whole table (the run's rows are the table).
    All,
    /// One slice (the run owns part of the table).
    Slice(Slice),
}

impl Output {
    /// Rows that replace the whole table.
    fn all(
        table: CanonicalTable,
        batch: gyrus_engine::datafusion::arrow::array::RecordBatch,
    ) -> Self {
        Output {
            table,
            batch,
            replace: Replace::All,
        }
    }
}

/// The output tables of a model.
type Rows = Vec<Output>;

/// Judges a tenant's new model against the serving one and, if it is not
/// worse, writes its output tables (one commit each) and records it as good.
async fn publish<M: TrainedModel>(
    store: &Store,
    registry: &Registry,
    candidate: Candidate<'_, M>,
    options: &TrainOptions,
    started: Instant,
    rows: impl FnOnce(&M, &str, chrono::DateTime<Utc>) -> Result<Rows>,
) -> Result<RunReport> {
    let tenant = candidate.tenant;
    // One read of the tenant's runs: the next version and the serving one.
    let runs = registry.entries(Some(tenant), Some(M::FAMILY)).await?;
    let version = registry.claim_version(tenant, M::FAMILY, &runs).await?;
    let serving = crate::registry::serving_among(&runs).cloned();
    let trained_at = Utc::now();
    let model = candidate.model;
    let mut entry = Entry {
        tenant: tenant.as_str().to_string(),
        family: M::FAMILY.as_str().to_string(),
        version,
        trained_at,
        status: Status::Good,
        input_versions: candidate.input_versions,
        parameters: candidate.parameters,
        metrics: model.metrics(),
        message: None,
    };
    let (units, score) = (candidate.units, model.score());
    let done = |entry: &Entry, written| report::<M>(entry, units, written, started, score);
    if let Some(why) = candidate.empty {
        entry.status = Status::Failed;
        entry.message = Some(why);
        registry.record::<M>(&entry, None).await?;
        return Ok(done(&entry, 0));
    }
    if let Some(serving) = serving
        && let (Some(new), Some(old)) = (score, serving_score::<M>(&serving))
        && new > old * options.worse_tolerance
    {
        entry.status = Status::Rejected;
        entry.message = Some(format!(
            "{} {new:.3} is worse than the serving version {}'s {old:.3} \
             (tolerance {:.0}%); version {} keeps serving",
            M::SCORE_NAME,
            serving.version,
            (options.worse_tolerance - 1.0) * 100.0,
            serving.version
        ));
        registry.record(&entry, Some(&model)).await?;
        return Ok(done(&entry, 0));
    }
    // Output tables first, registry second: if a write fails nothing serves
    // that was not written; if recording fails, the old version still serves
    // and the next run rewrites the tables.
    let mut written = 0;
    let outcome = match rows(&model, &entry.version_label(), trained_at) {
        Ok(tables) => {
            let mut outcome = Ok(());
            for Output {
                table,
                batch,
                replace,
            } in tables
            {
                let n = batch.num_rows();
                let request = WriteRequest::append(table, vec![batch]);
                let request = match replace {
                    Replace::All => request.replacing_all(),
                    Replace::Slice(slice) => request.replacing(slice),
                };
                if let Err(e) = store.write(tenant, request).await {
                    outcome = Err(format!("writing {} failed: {e}", table.name()));
                    break;
                }
                written += n;
            }
            outcome
        }
        Err(e) => Err(e.to_string()),
    };
    if let Err(message) = outcome {
        entry.status = Status::Failed;
        entry.message = Some(message);
        registry.record::<M>(&entry, None).await?;
        return Ok(done(&entry, written));
    }
    registry.record(&entry, Some(&model)).await?;
    Ok(done(&entry, written))
}

fn serving_score<M: TrainedModel>(entry: &Entry) -> Option<f64> {
    entry.metrics.get(M::SCORE_METRIC).and_then(|v| v.as_f64())
}

/// Records a run that failed before fitting (its data could not be read).
async fn record_failure<M: TrainedModel>(
    registry: &Registry,
    tenant: &TenantId,
    parameters: serde_json::Value,
    error: &ModelError,
    started: Instant,
) -> Result<RunReport> {
    let entry = Entry {
        tenant: tenant.as_str().to_string(),
        family: M::FAMILY.as_str().to_string(),
        version: {
            let runs = registry.entries(Some(tenant), Some(M::FAMILY)).await?;
            registry.claim_version(tenant, M::FAMILY, &runs).await?
        },
        trained_at: Utc::now(),
        status: Status::Failed,
        input_versions: BTreeMap::new(),
        parameters,
        metrics: serde_json::Value::Null,
        message: Some(error.to_string()),
    };
    registry.record::<M>(&entry, None).await?;
    Ok(report::<M>(&entry, 0, 0, started, None))
}

fn report<M: TrainedModel>(
    entry: &Entry,
    units: usize,
    rows: usize,
    started: Instant,
    score: Option<f64>,
) -> RunReport {
    RunReport {
        tenant: entry.tenant.clone(),
        family: M::FAMILY,
        version: entry.version,
        status: entry.status,
        units,
        rows_written: rows,
        seconds: started.elapsed().as_secs_f64(),
        score,
        message: entry.message.clone(),
        metrics: entry.metrics.clone(),
    }
}
