//! MEMORY in the shape of every family ([`Family`]): a tenant's customers
//! and deals fitted and scored into `customer_scores` and `lead_scores`;
//! serving scores a customer's purchase summary.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use gyrus_engine::schema::CanonicalTable;
use gyrus_engine::{Store, TenantId};

use super::data::{TenantMemoryData, load};
use super::model::{CustomerScore, MemoryConfig, MemoryModel};
use super::summary::Summary;
use super::tenant::{TenantScores, fit_tenant};
use crate::error::{ModelError, Result};
use crate::family::{Family, FamilyId, Fit, Loaded, Output};

/// Customer and lead scores.
pub struct Memory;

#[async_trait]
impl Family for Memory {
    const ID: FamilyId = FamilyId::Memory;
    type Config = MemoryConfig;
    type Data = TenantMemoryData;
    type Fitted = Fit<MemoryModel, TenantScores>;
    type Model = MemoryModel;
    type Output = TenantScores;
    type Query = Summary;
    type Answer = CustomerScore;

    fn check(config: &MemoryConfig) -> Result<()> {
        config.check()
    }

    async fn load(
        store: &Store,
        tenant: &TenantId,
        config: &MemoryConfig,
    ) -> Result<Loaded<TenantMemoryData>> {
        let data = load(store, tenant, config.holdout_days).await?;
        Ok(Loaded {
            input_versions: data.input_versions.clone(),
            data,
        })
    }

    fn units(_data: &TenantMemoryData) -> usize {
        1
    }

    fn fit(
        config: &MemoryConfig,
        data: TenantMemoryData,
        progress: &(dyn Fn() + Sync),
    ) -> Self::Fitted {
        let scores = fit_tenant(config, data);
        progress();
        Fit {
            units: scores.model.customers_scored + scores.model.deals_scored,
            empty: scores.is_empty().then(|| scores.model.notes.join("; ")),
            model: scores.model.clone(),
            output: scores,
        }
    }

    async fn finish(_config: &MemoryConfig, fitted: Self::Fitted) -> Result<Self::Fitted> {
        Ok(fitted)
    }

    fn outputs(
        _model: &MemoryModel,
        scores: &TenantScores,
        label: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<Output>> {
        let mut tables = Vec::new();
        if let Some(batch) = scores.customer_rows(label, at)? {
            tables.push(Output::all(CanonicalTable::CustomerScores, batch));
        }
        if let Some(batch) = scores.lead_rows(label, at)? {
            tables.push(Output::all(CanonicalTable::LeadScores, batch));
        }
        Ok(tables)
    }

    fn predict(model: &MemoryModel, summary: &Summary) -> Result<CustomerScore> {
        let customers = model.customers.as_ref().ok_or_else(|| {
            ModelError::Invalid(format!(
                "the model has no customer part: {}",
                model.notes.join("; ")
            ))
        })?;
        Ok(customers.score(&model.config, summary))
    }
}
