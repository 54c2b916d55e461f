//! ORACLE as a model family: a config fits a tenant's series into an
//! [`OracleModel`] (serialised into the registry), which forecasts any
//! horizon and carries its evaluation on held-back days.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Days, NaiveDate, Utc};
use datafusion::arrow::array::{
    ArrayRef, Date32Array, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use gyrus_engine::schema::CanonicalTable;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use gyrus_engine::day::date_to_day;

use super::methods::Method;
use super::series_model::{
    Calibration, FittedSeries, Forecast, SeriesConfig, SeriesModel, fit_series, mase_scale,
};
use crate::error::{ModelError, Result};
use crate::family::{FamilyId, TrainedModel};
use crate::series::{Metric, Series, TenantSeries};

/// How ORACLE trains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OracleConfig {
    /// Days forecast into the `forecasts` table.
    pub horizon: usize,
    /// Interval levels written (one row per level and day).
    pub levels: Vec<f64>,
    /// Days held back to evaluate each run (accuracy and interval coverage).
    pub holdout_days: usize,
    pub series: SeriesConfig,
}

impl Default for OracleConfig {
    fn default() -> Self {
        OracleConfig {
            horizon: 28,
            levels: vec![0.8, 0.95],
            holdout_days: 28,
            series: SeriesConfig::daily(),
        }
    }
}

/// Interval levels measured in every calibration.
const CALIBRATED_LEVELS: [f64; 5] = [0.5, 0.8, 0.9, 0.95, 0.99];

/// One fitted series of a tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainedSeries {
    pub entity_type: String,
    pub entity_id: String,
    pub metric: Metric,
    pub start: NaiveDate,
    pub model: SeriesModel,
}

/// How a run did on the days it held back.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Evaluation {
    pub series: usize,
    /// Series that could not be fitted (their error is logged).
    pub failed: usize,
    /// Series long enough to hold days back, and scored on them.
    pub evaluated: usize,
    /// Mean absolute scaled error on the held-back days (mean over series).
    pub holdout_mase: Option<f64>,
    /// Share of held-back days inside the interval, per nominal level, over
    /// the series that were not stopped (a stopped series' zero forecast
    /// covers its zeros trivially, and would flatter the figure).
    pub holdout_coverage: BTreeMap<String, f64>,
    /// Held-back days the coverage counts.
    pub holdout_points: usize,
    /// Mean backtest MASE of the chosen forecasts.
    pub backtest_mase: Option<f64>,
    /// Series per chosen method (or combination).
    pub methods: BTreeMap<String, usize>,
    /// Outlier days left out of the fits.
    pub outliers: usize,
}

/// A tenant's trained ORACLE: every series, the interval calibration and the
/// evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OracleModel {
    pub config: OracleConfig,
    /// The last day of history: forecasts start the day after.
    pub end: NaiveDate,
    pub calibration: Calibration,
    pub series: Vec<TrainedSeries>,
    pub evaluation: Evaluation,
}

impl TrainedModel for OracleModel {
    const FAMILY: FamilyId = FamilyId::Oracle;
    const SCORE_METRIC: &'static str = "holdout_mase";
    const SCORE_NAME: &'static str = "holdout MASE";

    fn score(&self) -> Option<f64> {
        self.evaluation.holdout_mase
    }

    fn metrics(&self) -> serde_json::Value {
        serde_json::to_value(&self.evaluation).unwrap_or_default()
    }
}

/// One series' work in a training run: the fit on all of its history, and
/// the fit without its last days with how it did on them.
struct SeriesRun {
    fitted: Result<FittedSeries, String>,
    holdout: Option<Holdout>,
}

struct Holdout {
    fitted: FittedSeries,
    actual: Vec<f64>,
    scale: f64,
}

/// Fits every series of a tenant on Rayon's pool; `progress` is called
/// once per series done. The pipeline fits tenants side by side, so a tenant
/// with many series and one with few share the cores.
pub fn fit_tenant(
    config: &OracleConfig,
    tenant: &TenantSeries,
    progress: &(dyn Fn() + Sync),
) -> OracleModel {
    let runs: Vec<(&Series, SeriesRun)> = tenant
        .series
        .par_iter()
        .map(|series| {
            let run = run_series(config, &series.values);
            progress();
            (series, run)
        })
        .collect();
    assemble(config, tenant, runs)
}

fn run_series(config: &OracleConfig, y: &[f64]) -> SeriesRun {
    let fitted = fit_series(&config.series, y).map_err(|e| e.to_string());
    let h = config.holdout_days;
    // Hold days back only where enough history is left to fit on.
    let holdout = (h > 0 && y.len() >= h + 2 * h.max(14))
        .then(|| {
            let (train, actual) = y.split_at(y.len() - h);
            let fitted = fit_series(&config.series, train).ok()?;
            Some(Holdout {
                fitted,
                actual: actual.to_vec(),
                scale: mase_scale(train, 7),
            })
        })
        .flatten();
    SeriesRun { fitted, holdout }
}

/// Pools backtest errors into a calibration, scores the holdout with it, and
/// builds the tenant's model.
fn assemble(
    config: &OracleConfig,
    ts: &TenantSeries,
    runs: Vec<(&Series, SeriesRun)>,
) -> OracleModel {
    // Holdout: calibrate on the holdout fits' backtests (they saw nothing of
    // the held-back days), then score those days.
    let holdout_errors: Vec<f64> = runs
        .iter()
        .filter_map(|(_, r)| r.holdout.as_ref())
        .flat_map(|h| h.fitted.standardised_errors.iter().copied())
        .collect();
    let holdout_calibration =
        Calibration::measure(holdout_errors, &CALIBRATED_LEVELS).unwrap_or_default();
    let mut evaluation = Evaluation {
        series: runs.len(),
        ..Evaluation::default()
    };
    let mut mase_sum = 0.0;
    let mut covered = vec![0usize; config.levels.len()];
    let mut points = 0usize;
    for (_, run) in &runs {
        let Some(h) = &run.holdout else { continue };
        let stopped = h
            .fitted
            .model
            .components
            .iter()
            .all(|c| c.method == Method::Paused);
        let forecast =
            h.fitted
                .model
                .forecast(h.actual.len(), &config.levels, &holdout_calibration);
        if h.scale > 0.0 {
            let mae = forecast
                .point
                .iter()
                .zip(&h.actual)
                .map(|(f, a)| (f - a).abs())
                .sum::<f64>()
                / h.actual.len() as f64;
            mase_sum += mae / h.scale;
            evaluation.evaluated += 1;
        }
        if stopped {
            continue;
        }
        for (i, (_, lower, upper)) in forecast.intervals.iter().enumerate() {
            covered[i] += h
                .actual
                .iter()
                .zip(lower.iter().zip(upper))
                .filter(|&(&a, (&l, &u))| l <= a && a <= u)
                .count();
        }
        points += h.actual.len();
    }
    if evaluation.evaluated > 0 {
        evaluation.holdout_mase = Some(mase_sum / evaluation.evaluated as f64);
    }
    evaluation.holdout_points = points;
    if points > 0 {
        for (level, hits) in config.levels.iter().zip(covered) {
            evaluation
                .holdout_coverage
                .insert(format!("{level}"), hits as f64 / points as f64);
        }
    }

    // The served model: calibrated on the full fits' backtests.
    let errors: Vec<f64> = runs
        .iter()
        .filter_map(|(_, r)| r.fitted.as_ref().ok())
        .flat_map(|f| f.standardised_errors.iter().copied())
        .collect();
    let calibration = Calibration::measure(errors, &CALIBRATED_LEVELS).unwrap_or_default();
    let mut series = Vec::with_capacity(runs.len());
    let mut backtest = (0.0, 0usize);
    for (s, run) in runs {
        match run.fitted {
            Ok(fitted) => {
                *evaluation.methods.entry(fitted.model.label()).or_default() += 1;
                evaluation.outliers += fitted.model.outliers;
                if let Some(m) = fitted.model.backtest_mase {
                    backtest.0 += m;
                    backtest.1 += 1;
                }
                series.push(TrainedSeries {
                    entity_type: s.entity_type.clone(),
                    entity_id: s.entity_id.clone(),
                    metric: s.metric,
                    start: s.start,
                    model: fitted.model,
                });
            }
            Err(e) => {
                tracing::warn!(tenant = %ts.tenant, entity = %s.entity_id, metric = %s.metric, error = %e, "series not fitted");
                evaluation.failed += 1;
            }
        }
    }
    if backtest.1 > 0 {
        evaluation.backtest_mase = Some(backtest.0 / backtest.1 as f64);
    }
    OracleModel {
        config: config.clone(),
        end: ts.end,
        calibration,
        series,
        evaluation,
    }
}

/// One forecast row of one series, day and level.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForecastPoint {
    pub date: NaiveDate,
    pub yhat: f64,
    /// (level, lower, upper); bounds are `None` where a ratio's interval
    /// cannot be derived (its denominator's interval reaches zero).
    pub intervals: Vec<(f64, Option<f64>, Option<f64>)>,
}

impl ForecastPoint {
    /// A series' forecast as dated points, the first the day after `end`.
    pub fn days(end: NaiveDate, f: &Forecast) -> Vec<ForecastPoint> {
        Self::dated(f, |i| {
            end.checked_add_days(Days::new(i as u64 + 1)).unwrap_or(end)
        })
    }

    /// A series' forecast as points dated by `date` (of the step ahead, 0
    /// the first).
    pub fn dated(f: &Forecast, date: impl Fn(usize) -> NaiveDate) -> Vec<ForecastPoint> {
        f.point
            .iter()
            .enumerate()
            .map(|(i, &yhat)| ForecastPoint {
                date: date(i),
                yhat,
                intervals: f
                    .intervals
                    .iter()
                    .map(|(level, lo, hi)| (*level, Some(lo[i]), Some(hi[i])))
                    .collect(),
            })
            .collect()
    }
}

/// The forecast of one entity and metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesForecast {
    pub entity_type: String,
    pub entity_id: String,
    pub metric: Metric,
    pub model: String,
    pub points: Vec<ForecastPoint>,
}

impl OracleModel {
    /// Forecasts `metric` of the entities of `entity_type` (all of them, or
    /// those in `entity_ids`). Ratios are derived from the forecasts of their
    /// parts: the point is the ratio of the points, the interval the ratio
    /// of the opposite bounds (wide, not calibrated).
    pub fn forecast(
        &self,
        metric: Metric,
        entity_type: &str,
        entity_ids: Option<&[String]>,
        horizon: usize,
        levels: &[f64],
    ) -> Vec<SeriesForecast> {
        let wanted = |s: &TrainedSeries| {
            s.entity_type == entity_type && entity_ids.is_none_or(|ids| ids.contains(&s.entity_id))
        };
        let find = |id: &str, m: Metric| {
            self.series
                .iter()
                .find(|s| s.entity_type == entity_type && s.entity_id == id && s.metric == m)
        };
        let dates: Vec<NaiveDate> = (1..=horizon)
            .filter_map(|h| self.end.checked_add_days(Days::new(h as u64)))
            .collect();
        match metric.parts() {
            None => self
                .series
                .iter()
                .filter(|s| s.metric == metric && wanted(s))
                .map(|s| {
                    let f = s.model.forecast(horizon, levels, &self.calibration);
                    let points = ForecastPoint::days(self.end, &f);
                    SeriesForecast {
                        entity_type: s.entity_type.clone(),
                        entity_id: s.entity_id.clone(),
                        metric,
                        model: s.model.label(),
                        points,
                    }
                })
                .collect(),
            Some((top, bottom)) => self
                .series
                .iter()
                .filter(|s| s.metric == top && wanted(s))
                .filter_map(|num| {
                    let den = find(&num.entity_id, bottom)?;
                    let n = num.model.forecast(horizon, levels, &self.calibration);
                    let d = den.model.forecast(horizon, levels, &self.calibration);
                    let ratio = |a: f64, b: f64| (b > 0.0).then(|| a / b);
                    let points = dates
                        .iter()
                        .enumerate()
                        .filter_map(|(i, &date)| {
                            let yhat = ratio(n.point[i], d.point[i])?;
                            let intervals = n
                                .intervals
                                .iter()
                                .zip(&d.intervals)
                                .map(|((level, nl, nu), (_, dl, du))| {
                                    (*level, ratio(nl[i], du[i]), ratio(nu[i], dl[i]))
                                })
                                .collect();
                            Some(ForecastPoint {
                                date,
                                yhat,
                                intervals,
                            })
                        })
                        .collect();
                    Some(SeriesForecast {
                        entity_type: num.entity_type.clone(),
                        entity_id: num.entity_id.clone(),
                        metric,
                        model: format!("ratio({}/{})", top, bottom),
                        points,
                    })
                })
                .collect(),
        }
    }

    /// Every forecast of the model as rows of the `forecasts` table: each
    /// forecast metric and each ratio, at every entity level, per level.
    pub fn forecast_rows(&self, version: &str, trained_at: DateTime<Utc>) -> Result<RecordBatch> {
        let mut rows = Rows::default();
        let mut entity_types: Vec<&str> =
            self.series.iter().map(|s| s.entity_type.as_str()).collect();
        entity_types.sort_unstable();
        entity_types.dedup();
        for entity_type in entity_types {
            for metric in Metric::ALL {
                for f in self.forecast(
                    metric,
                    entity_type,
                    None,
                    self.config.horizon,
                    &self.config.levels,
                ) {
                    for p in &f.points {
                        for &(level, lower, upper) in &p.intervals {
                            rows.push(&f, p, level, lower, upper);
                        }
                    }
                }
            }
        }
        rows.batch(version, trained_at)
    }
}

/// Columns of `forecasts` being built.
#[derive(Default)]
struct Rows {
    entity_type: Vec<String>,
    entity_id: Vec<String>,
    metric: Vec<&'static str>,
    date: Vec<i32>,
    yhat: Vec<f64>,
    lower: Vec<Option<f64>>,
    upper: Vec<Option<f64>>,
    level: Vec<f64>,
    model: Vec<String>,
}

impl Rows {
    fn push(
        &mut self,
        f: &SeriesForecast,
        p: &ForecastPoint,
        level: f64,
        lower: Option<f64>,
        upper: Option<f64>,
    ) {
        self.entity_type.push(f.entity_type.clone());
        self.entity_id.push(f.entity_id.clone());
        self.metric.push(f.metric.as_str());
        self.date.push(date_to_day(p.date));
        self.yhat.push(p.yhat);
        self.lower.push(lower);
        self.upper.push(upper);
        self.level.push(level);
        self.model.push(f.model.clone());
    }

    fn batch(self, version: &str, trained_at: DateTime<Utc>) -> Result<RecordBatch> {
        let n = self.yhat.len();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(self.entity_type)),
            Arc::new(StringArray::from(self.entity_id)),
            Arc::new(StringArray::from(self.metric)),
            Arc::new(Date32Array::from(self.date)),
            Arc::new(Float64Array::from(self.yhat)),
            Arc::new(Float64Array::from(self.lower)),
            Arc::new(Float64Array::from(self.upper)),
            Arc::new(Float64Array::from(self.level)),
            Arc::new(StringArray::from(self.model)),
            Arc::new(StringArray::from(vec![version; n])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![trained_at.timestamp_micros(); n])
                    .with_timezone("UTC"),
            ),
        ];
        RecordBatch::try_new(CanonicalTable::Forecasts.schema(), columns)
            .map_err(|e| ModelError::Registry(format!("building forecast rows: {e}")))
    }
}
