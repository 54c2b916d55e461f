//! What every model family shares: its name ([`FamilyId`]), the shape of a
//! trained model the registry stores ([`TrainedModel`]), and the one shape
//! of a family ([`Family`]) that the pipeline runs.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use gyrus_engine::datafusion::arrow::array::RecordBatch;
use gyrus_engine::schema::CanonicalTable;
use gyrus_engine::{Slice, Store, TenantId};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ModelError, Result};

/// The four model families, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FamilyId {
    /// Forecasts.
    Oracle,
    /// Anomalies, change points, drivers.
    Curiosity,
    /// Customer and lead scores.
    Memory,
    /// Budget allocation.
    Reflexes,
}

impl FamilyId {
    pub const ALL: [FamilyId; 4] = [
        FamilyId::Oracle,
        FamilyId::Curiosity,
        FamilyId::Memory,
        FamilyId::Reflexes,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FamilyId::Oracle => "oracle",
            FamilyId::Curiosity => "curiosity",
            FamilyId::Memory => "memory",
            FamilyId::Reflexes => "reflexes",
        }
    }

    /// Families whose pipeline exists in this build (all of them).
    pub fn is_trainable(self) -> bool {
        true
    }
}

impl fmt::Display for FamilyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that widths in tables (`{:<9}`) apply.
        f.pad(self.as_str())
    }
}

impl Serialize for FamilyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl FromStr for FamilyId {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FamilyId::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                ModelError::Invalid(format!(
                    "unknown model family `{s}`: use oracle, curiosity, memory or reflexes"
                ))
            })
    }
}

/// A trained model, as the registry stores it: it serialises (serde), names
/// its family, and reports the evaluation it was judged on.
pub trait TrainedModel: Serialize + DeserializeOwned + Send + Sync + 'static {
    const FAMILY: FamilyId;
    /// The key of [`TrainedModel::score`] in [`TrainedModel::metrics`].
    const SCORE_METRIC: &'static str;
    /// The score as people read it ("holdout MASE").
    const SCORE_NAME: &'static str;

    /// The figure a new version must not make worse (lower is better), e.g.
    /// ORACLE's mean backtest MASE. `None` when nothing could be measured.
    fn score(&self) -> Option<f64>;

    /// Evaluation metrics, stored in the registry beside the model.
    fn metrics(&self) -> serde_json::Value;
}

/// One model family, in the shape every family has (linfa's `Fit` and
/// `Predict`, with the config checked in one place): check a config, load a
/// tenant's data, fit it (CPU work, on Rayon's pool), finish what needs the
/// store again, give the output tables of a model, and predict for serving.
///
/// [`crate::pipeline::train`] runs every family through one loop: leases,
/// loading, parallel fits, judging against the serving version and
/// publishing are written once, there.
#[async_trait]
pub trait Family: Send + Sync + 'static {
    /// Its name.
    const ID: FamilyId;
    /// How it trains; checked by [`Family::check`].
    type Config: Clone + Serialize + Send + Sync + 'static;
    /// What it reads of one tenant.
    type Data: Send + 'static;
    /// What a fit makes, before [`Family::finish`].
    type Fitted: Send + 'static;
    /// The trained model the registry stores.
    type Model: TrainedModel;
    /// What the output rows are made from, beside the model.
    type Output: Send + Sync + 'static;
    /// What serving asks of a model, and what it answers.
    type Query: Send + Sync;
    type Answer: Send;

    /// Checks a config: the one place its bounds are. Every caller (the
    /// CLI, the API, the pipeline) goes through it.
    fn check(config: &Self::Config) -> Result<()>;

    /// Reads a tenant's data, and the versions of the tables it read.
    async fn load(
        store: &Store,
        tenant: &TenantId,
        config: &Self::Config,
    ) -> Result<Loaded<Self::Data>>;

    /// Units of work in a tenant's data (series, entities, ...): progress
    /// advances once per unit.
    fn units(data: &Self::Data) -> usize;

    /// Fits a tenant's data (CPU work: called on Rayon's pool, off the async
    /// runtime); `progress` is called once per unit done.
    fn fit(config: &Self::Config, data: Self::Data, progress: &(dyn Fn() + Sync)) -> Self::Fitted;

    /// What follows the fit and needs the store again (CURIOSITY reads
    /// movers, segments and benchmarks); most families have nothing to add.
    async fn finish(
        config: &Self::Config,
        fitted: Self::Fitted,
    ) -> Result<Fit<Self::Model, Self::Output>>;

    /// The output tables of a model about to serve, each written in one
    /// commit; `label` is its version label, `at` when it was trained.
    fn outputs(
        model: &Self::Model,
        output: &Self::Output,
        label: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<Output>>;

    /// Answers a query from a serving model.
    fn predict(model: &Self::Model, query: &Self::Query) -> Result<Self::Answer>;
}

/// A tenant's data as [`Family::load`] read it.
pub struct Loaded<D> {
    /// Table → the Delta version read (`None`: the table is empty).
    pub input_versions: BTreeMap<String, Option<u64>>,
    pub data: D,
}

/// A tenant's fitted model and what its output rows are made from.
pub struct Fit<M, X> {
    pub model: M,
    /// Units fitted (series, customers and deals, curves, ...).
    pub units: usize,
    /// Why nothing was fitted, if nothing was: the run is recorded failed.
    pub empty: Option<String>,
    pub output: X,
}

/// One output table's rows, written in one commit.
pub struct Output {
    pub table: CanonicalTable,
    pub batch: RecordBatch,
    pub replace: Replace,
}

/// What an output's commit replaces.
pub enum Replace {
    /// The whole table (the run's rows are the table).
    All,
    /// One slice (the run owns part of the table).
    Slice(Slice),
}

impl Output {
    /// Rows that replace the whole table.
    pub fn all(table: CanonicalTable, batch: RecordBatch) -> Self {
        Output {
            table,
            batch,
            replace: Replace::All,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_honours_the_width_it_is_printed_at() {
        assert_eq!(format!("{:<9}|", FamilyId::Oracle), "oracle   |");
        assert_eq!(format!("{:>9}|", FamilyId::Memory), "   memory|");
    }
}
