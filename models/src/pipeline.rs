//! The batch pipeline: reads every tenant's data, fits a family over all
//! series of all tenants in parallel, judges each tenant's new model against
//! the serving one, and writes output table and registry entry per tenant.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use gyrus_engine::lease::{self, LeaseState, Taken};
use gyrus_engine::{Store, TenantId, WriteRequest};
use rayon::prelude::*;
use serde::Serialize;

use crate::curiosity::{Curiosity, model::CuriosityConfig};
use crate::error::{ModelError, Result};
use crate::family::{Family, FamilyId, Output, Replace, TrainedModel};
use crate::memory::{Memory, model::MemoryConfig};
use crate::oracle::{Oracle, model::OracleConfig};
use crate::reflexes::{Reflexes, model::ReflexesConfig};
use crate::registry::{Entry, Registry, Status};

pub use crate::reflexes::AUTOMATIC_PLAN_ID;

/// What to train.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Tenants to train; every tenant when `None`.
    pub tenants: Option<Vec<TenantId>>,
    pub families: Vec<FamilyId>,
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
            families: FamilyId::ALL
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

impl TrainOptions {
    /// Checks the config of `family` (its [`Family::check`]).
    pub fn check(&self, family: FamilyId) -> Result<()> {
        match family {
            FamilyId::Oracle => Oracle::check(&self.oracle),
            FamilyId::Curiosity => Curiosity::check(&self.curiosity),
            FamilyId::Memory => Memory::check(&self.memory),
            FamilyId::Reflexes => Reflexes::check(&self.reflexes),
        }
    }
}

/// Progress of a run, for a progress bar.
pub trait Progress: Send + Sync {
    /// A family starts.
    fn start(&self, family: FamilyId);
    /// `units` more units of work (series, entities, tenants) were read.
    fn add(&self, units: usize);
    /// One unit is done.
    fn advance(&self);
}

/// No progress reporting.
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _: FamilyId) {}
    fn add(&self, _: usize) {}
    fn advance(&self) {}
}

/// What one tenant's run of one family did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub tenant: String,
    pub family: FamilyId,
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
        let context = Context {
            store,
            registry: &registry,
            options,
            progress: progress.clone(),
        };
        let run = match family {
            FamilyId::Oracle => run::<Oracle>(&context, &held, &options.oracle).await,
            FamilyId::Curiosity => run::<Curiosity>(&context, &held, &options.curiosity).await,
            FamilyId::Memory => run::<Memory>(&context, &held, &options.memory).await,
            FamilyId::Reflexes => run::<Reflexes>(&context, &held, &options.reflexes).await,
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
fn skipped(tenant: &TenantId, family: FamilyId, other: &LeaseState) -> RunReport {
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

/// What every family's run is given.
struct Context<'a> {
    store: &'a Store,
    registry: &'a Registry,
    options: &'a TrainOptions,
    progress: Arc<dyn Progress>,
}

/// Tenants read and fitted together: enough that the cores stay busy when
/// each has little data, few enough that one batch's data is what is held.
const TENANTS_PER_BATCH: usize = 16;

/// Trains one family for `tenants`, the same way for every family: check the
/// config; read a batch of tenants (one whose data cannot be read fails
/// alone); fit the batch on Rayon's pool, off the async runtime, so a tenant
/// with many series and one with few share the cores; finish, judge against
/// the serving version and publish each tenant.
async fn run<F: Family>(
    context: &Context<'_>,
    tenants: &[TenantId],
    config: &F::Config,
) -> Result<Vec<RunReport>> {
    F::check(config)?;
    let Context {
        store,
        registry,
        options,
        progress,
    } = context;
    let parameters = serde_json::to_value(config).unwrap_or_default();
    progress.start(F::ID);
    let mut reports = Vec::new();
    for batch in tenants.chunks(TENANTS_PER_BATCH) {
        let mut read = Vec::new();
        let mut data = Vec::new();
        for tenant in batch {
            let started = Instant::now();
            match F::load(store, tenant, config).await {
                Ok(loaded) => {
                    read.push((tenant, started, loaded.input_versions));
                    data.push(loaded.data);
                }
                Err(e) => reports.push(
                    record_failure::<F::Model>(registry, tenant, parameters.clone(), &e, started)
                        .await?,
                ),
            }
        }
        progress.add(data.iter().map(F::units).sum());
        let (config_, progress_) = (config.clone(), progress.clone());
        let fitted: Vec<F::Fitted> = tokio::task::spawn_blocking(move || {
            data.into_par_iter()
                .map(|data| F::fit(&config_, data, &|| progress_.advance()))
                .collect()
        })
        .await
        .map_err(|e| ModelError::Registry(format!("the training task failed: {e}")))?;
        for ((tenant, started, input_versions), fitted) in read.into_iter().zip(fitted) {
            let fit = match F::finish(config, fitted).await {
                Ok(fit) => fit,
                // A tenant whose finishing reads fail fails alone.
                Err(e) => {
                    reports.push(
                        record_failure::<F::Model>(
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
                units: fit.units,
                input_versions,
                parameters: parameters.clone(),
                empty: fit.empty,
                model: fit.model,
            };
            let output = fit.output;
            let rows = |model: &F::Model, label: &str, at| F::outputs(model, &output, label, at);
            reports.push(publish(store, registry, candidate, options, started, rows).await?);
        }
    }
    Ok(reports)
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

/// Judges a tenant's new model against the serving one and, if it is not
/// worse, writes its output tables (one commit each) and records it as good.
async fn publish<M: TrainedModel>(
    store: &Store,
    registry: &Registry,
    candidate: Candidate<'_, M>,
    options: &TrainOptions,
    started: Instant,
    rows: impl FnOnce(&M, &str, chrono::DateTime<Utc>) -> Result<Vec<Output>>,
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
