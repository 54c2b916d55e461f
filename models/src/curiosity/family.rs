//! CURIOSITY in the shape of every family ([`Family`]): a tenant's series
//! scanned for anomalies and changes, then movers, segments and benchmarks
//! read, all written to `insights`; serving scans series sent in with the
//! serving model's sensitivity.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use gyrus_engine::schema::CanonicalTable;
use gyrus_engine::{Store, TenantId};

use super::explain::Names;
use super::insight::{Insight, insight_rows};
use super::model::{
    CuriosityConfig, CuriosityModel, TenantInputs, TenantInsights, finish, load, scan,
};
use super::scan::{TenantScan, scan_tenant};
use crate::error::Result;
use crate::family::{Family, FamilyId, Fit, Loaded, Output};
use crate::series::TenantSeries;

/// Anomalies, change points, movers, segments and benchmarks.
pub struct Curiosity;

#[async_trait]
impl Family for Curiosity {
    const ID: FamilyId = FamilyId::Curiosity;
    type Config = CuriosityConfig;
    type Data = TenantInputs;
    /// The scan, with what the finishing reads need.
    type Fitted = (TenantInputs, TenantScan);
    type Model = CuriosityModel;
    /// The run's insights, and when each was first detected.
    type Output = TenantInsights;
    /// Series to scan (of any tenant's entities, or of the app's own).
    type Query = TenantSeries;
    type Answer = Vec<Insight>;

    fn check(config: &CuriosityConfig) -> Result<()> {
        config.check()
    }

    async fn load(
        store: &Store,
        tenant: &TenantId,
        _config: &CuriosityConfig,
    ) -> Result<Loaded<TenantInputs>> {
        let inputs = load(store, tenant).await?;
        Ok(Loaded {
            input_versions: inputs.series.input_versions.clone(),
            data: inputs,
        })
    }

    /// Entities: the scan judges an entity's series together.
    fn units(data: &TenantInputs) -> usize {
        let entities: HashSet<(&str, &str)> = data
            .series
            .series
            .iter()
            .map(|s| (s.entity_type.as_str(), s.entity_id.as_str()))
            .collect();
        entities.len()
    }

    fn fit(
        config: &CuriosityConfig,
        data: TenantInputs,
        progress: &(dyn Fn() + Sync),
    ) -> Self::Fitted {
        let scanned = scan(&data, config, progress);
        (data, scanned)
    }

    async fn finish(
        config: &CuriosityConfig,
        (inputs, scanned): Self::Fitted,
    ) -> Result<Fit<CuriosityModel, TenantInsights>> {
        let found = finish(inputs, scanned, config).await?;
        Ok(Fit {
            units: found.model.series_scanned,
            empty: found
                .model
                .end
                .is_none()
                .then(|| found.model.notes.join("; ")),
            model: found.model.clone(),
            output: found,
        })
    }

    fn outputs(
        _model: &CuriosityModel,
        found: &TenantInsights,
        label: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<Output>> {
        Ok(vec![Output::all(
            CanonicalTable::Insights,
            insight_rows(&found.insights, label, at, &found.first_seen)?,
        )])
    }

    fn predict(model: &CuriosityModel, series: &TenantSeries) -> Result<Vec<Insight>> {
        let scanned = scan_tenant(series, &Names::default(), &model.config.sensitivity, &|| {});
        Ok(scanned.insights)
    }
}
