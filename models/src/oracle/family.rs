//! ORACLE in the shape of every family ([`Family`]): a tenant's daily series
//! are read, fitted and written to `forecasts`; serving forecasts any
//! horizon from the model.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use gyrus_engine::schema::CanonicalTable;
use gyrus_engine::{Store, TenantId};

use super::model::{OracleConfig, OracleModel, SeriesForecast, fit_tenant};
use crate::error::{ModelError, Result};
use crate::family::{Family, FamilyId, Fit, Loaded, Output};
use crate::series::{Metric, TenantSeries, load_series};

/// Forecasts.
pub struct Oracle;

/// The longest horizon, in steps of the series.
pub const MAX_HORIZON: usize = 365;

/// Checks a horizon and interval levels, wherever they come from (the
/// training config, a forecast request).
pub fn check_forecast(horizon: usize, levels: &[f64]) -> Result<()> {
    if horizon == 0 || horizon > MAX_HORIZON {
        return Err(ModelError::Invalid(format!(
            "horizon must be between 1 and {MAX_HORIZON} steps, not {horizon}"
        )));
    }
    if let Some(bad) = levels.iter().find(|l| !(**l > 0.0 && **l < 1.0)) {
        return Err(ModelError::Invalid(format!(
            "interval level {bad} is not between 0 and 1 (use 0.8 for 80%)"
        )));
    }
    Ok(())
}

/// What serving asks ORACLE: a metric of some entities, so many days ahead.
#[derive(Debug, Clone)]
pub struct ForecastQuery {
    pub metric: Metric,
    pub entity_type: String,
    /// All entities of the type when `None`.
    pub entity_ids: Option<Vec<String>>,
    pub horizon: usize,
    pub levels: Vec<f64>,
}

#[async_trait]
impl Family for Oracle {
    const ID: FamilyId = FamilyId::Oracle;
    type Config = OracleConfig;
    type Data = TenantSeries;
    type Fitted = Fit<OracleModel, ()>;
    type Model = OracleModel;
    type Output = ();
    type Query = ForecastQuery;
    type Answer = Vec<SeriesForecast>;

    fn check(config: &OracleConfig) -> Result<()> {
        check_forecast(config.horizon, &config.levels)?;
        if config.holdout_days > MAX_HORIZON {
            return Err(ModelError::Invalid(format!(
                "holdout_days must be at most {MAX_HORIZON}, not {}",
                config.holdout_days
            )));
        }
        Ok(())
    }

    async fn load(
        store: &Store,
        tenant: &TenantId,
        _config: &OracleConfig,
    ) -> Result<Loaded<TenantSeries>> {
        let series = load_series(store, tenant).await?;
        Ok(Loaded {
            input_versions: series.input_versions.clone(),
            data: series,
        })
    }

    fn units(data: &TenantSeries) -> usize {
        data.series.len()
    }

    fn fit(
        config: &OracleConfig,
        data: TenantSeries,
        progress: &(dyn Fn() + Sync),
    ) -> Fit<OracleModel, ()> {
        let no_data = data.series.is_empty();
        let model = fit_tenant(config, &data, progress);
        Fit {
            units: model.series.len(),
            empty: model.series.is_empty().then(|| {
                if no_data {
                    "no data: ad_performance, web_sessions and orders are empty".to_string()
                } else {
                    "no series could be fitted".to_string()
                }
            }),
            model,
            output: (),
        }
    }

    async fn finish(
        _config: &OracleConfig,
        fitted: Fit<OracleModel, ()>,
    ) -> Result<Fit<OracleModel, ()>> {
        Ok(fitted)
    }

    fn outputs(
        model: &OracleModel,
        _output: &(),
        label: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<Output>> {
        Ok(vec![Output::all(
            CanonicalTable::Forecasts,
            model.forecast_rows(label, at)?,
        )])
    }

    fn predict(model: &OracleModel, query: &ForecastQuery) -> Result<Vec<SeriesForecast>> {
        check_forecast(query.horizon, &query.levels)?;
        Ok(model.forecast(
            query.metric,
            &query.entity_type,
            query.entity_ids.as_deref(),
            query.horizon,
            &query.levels,
        ))
    }
}
