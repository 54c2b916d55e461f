//! `POST /api/v1/oracle/forecast`: forecasts from the tenant's serving
//! ORACLE model (`{metric, entity_type, entity_ids?, horizon, levels?}`), or
//! of a series sent in the body, fitted on the fly (`{series, frequency?,
//! horizon, levels?}`) for the app layer's own data, at any regular
//! frequency (day, week, month, quarter, year), forecast as the library
//! forecasts that frequency.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, NaiveDate, Utc};
use gyrus_engine::Role;
use gyrus_engine::exec::Lane;
use gyrus_engine::store::TenantId;
use gyrus_models::Family;
use gyrus_models::oracle::model::{ForecastPoint, SeriesForecast};
use gyrus_models::oracle::{
    Calibration, ForecastQuery, Frequency, Metric, Oracle, check_forecast, fit_series,
};
use gyrus_models::series::entity_type;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::problem::{Problem, ProblemBody};
use crate::routes::json_body;
use crate::state::AppState;

/// Most entity ids one request may name.
const MAX_ENTITY_IDS: usize = 1000;
/// Most points a series in the body may have, missing days of a daily
/// series included (ten years of days).
const MAX_SERIES_POINTS: usize = 3660;
/// Largest magnitude of a value in a series sent in (far beyond any money
/// or count; past it, sums of squares overflow).
const MAX_VALUE: f64 = 1e15;
/// Most interval levels per request.
const MAX_LEVELS: usize = 5;

/// A forecast request: either a metric of the tenant's entities, from the
/// trained model, or a series of your own, fitted on the fly.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForecastRequest {
    /// From the trained model: spend, impressions, clicks, conversions,
    /// conversion_value, sessions, revenue, or a ratio derived from its
    /// parts (ctr, cpc, cpa, roas).
    #[schema(example = "spend")]
    metric: Option<String>,
    /// From the trained model: business, account, platform, channel or campaign.
    #[schema(example = "campaign")]
    entity_type: Option<String>,
    /// Only these entities (all of the type when absent).
    entity_ids: Option<Vec<String>>,
    /// Instead of a metric: a series to fit now, daily, weekly, monthly,
    /// quarterly or yearly (inferred from its dates, or given as
    /// `frequency`). Missing days of a daily series count as zero; any other
    /// series must not miss a point; dates must not repeat.
    series: Option<Vec<SeriesPoint>>,
    /// The frequency of `series`: day, week, month, quarter or year
    /// (inferred from the dates when absent).
    #[schema(example = "month")]
    frequency: Option<String>,
    /// Steps to forecast, 1 to 365: days for the model's metrics, steps of
    /// its frequency for a series.
    #[schema(example = 14)]
    horizon: usize,
    /// Interval levels between 0 and 1 (default 0.8 and 0.95).
    levels: Option<Vec<f64>>,
}

/// One day of a series sent for fitting.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeriesPoint {
    date: NaiveDate,
    value: f64,
}

/// The forecasts.
#[derive(Debug, Serialize, ToSchema)]
pub struct ForecastResponse {
    /// The registry version that forecast (`oracle-v3`); absent for a series
    /// fitted on the fly.
    #[serde(skip_serializing_if = "Option::is_none")]
    model_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trained_at: Option<DateTime<Utc>>,
    horizon: usize,
    /// The frequency of the forecast's steps: day (always, for the model's
    /// metrics), week, month, quarter or year.
    #[schema(value_type = String, example = "day")]
    frequency: Frequency,
    levels: Vec<f64>,
    forecasts: Vec<ForecastSeries>,
    /// Requested entity ids the model has no series for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    unknown_entity_ids: Vec<String>,
    /// For a daily series in the body: days between its dates that were
    /// missing and counted as zero.
    #[serde(skip_serializing_if = "Option::is_none")]
    filled_days: Option<usize>,
}

/// One entity's forecast of one metric.
#[derive(Debug, Serialize, ToSchema)]
pub struct ForecastSeries {
    #[serde(skip_serializing_if = "Option::is_none")]
    entity_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entity_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metric: Option<String>,
    /// The method or combination chosen by backtest (`ets+theta+damped`), or
    /// the ratio it was derived as (`ratio(spend/conversions)`).
    model: String,
    points: Vec<ForecastDay>,
}

/// One forecast step (a day, week, month, quarter or year, by its first
/// date).
#[derive(Debug, Serialize, ToSchema)]
pub struct ForecastDay {
    date: NaiveDate,
    yhat: f64,
    intervals: Vec<Interval>,
}

/// A prediction interval; bounds are null where a ratio's cannot be derived.
#[derive(Debug, Serialize, ToSchema)]
pub struct Interval {
    level: f64,
    lower: Option<f64>,
    upper: Option<f64>,
}

/// Forecasts a metric of the tenant's entities from the serving model, or a
/// series sent in the body, fitted now.
#[utoipa::path(post, path = "/oracle/forecast", operation_id = "oracle_forecast", tag = "oracle", security(("bearer" = [])),
    request_body = ForecastRequest,
    responses(
        (status = 200, description = "The forecasts with their intervals", body = ForecastResponse),
        (status = 404, description = "No model trained yet, or no series for the metric and entities", body = ProblemBody, content_type = "application/problem+json"),
        (status = "4XX", description = "A problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn forecast(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ForecastResponse>, Problem> {
    caller.require(Role::Reader)?;
    let request: ForecastRequest = json_body(&headers, body)?;
    let horizon = request.horizon;
    let levels = request.levels.unwrap_or_else(|| vec![0.8, 0.95]);
    if levels.len() > MAX_LEVELS {
        return Err(invalid(format!("at most {MAX_LEVELS} interval levels")));
    }
    check_forecast(horizon, &levels)?;
    match (request.series, request.metric, request.entity_type) {
        (Some(series), None, None) if request.entity_ids.is_none() => {
            fitted_now(&caller.tenant, series, request.frequency, horizon, levels).await
        }
        (None, Some(_), Some(_)) if request.frequency.is_some() => Err(invalid(
            "the model's metrics are daily; `frequency` goes with `series`",
        )),
        (None, Some(metric), Some(entity_type_name)) => {
            let metric: Metric = metric.parse()?;
            let entity_type = entity_type(&entity_type_name)?;
            let ids = request.entity_ids;
            if ids.as_ref().is_some_and(|ids| ids.len() > MAX_ENTITY_IDS) {
                return Err(invalid(format!(
                    "at most {MAX_ENTITY_IDS} entity_ids per request"
                )));
            }
            let served = state.oracle.get(&caller.tenant).await?;
            let query = ForecastQuery {
                metric,
                entity_type: entity_type.to_string(),
                entity_ids: ids,
                horizon,
                levels,
            };
            let forecasts = Oracle::predict(&served.model, &query)?;
            let ForecastQuery {
                entity_ids: ids,
                levels,
                ..
            } = query;
            if forecasts.is_empty() {
                return Err(Problem::new(
                    StatusCode::NOT_FOUND,
                    "no-series",
                    format!(
                        "the model has no {metric} series for {entity_type} entities{}; \
                         sessions and revenue are forecast for entity_type business only",
                        if ids.is_some() { " with those ids" } else { "" }
                    ),
                ));
            }
            let unknown_entity_ids = ids
                .unwrap_or_default()
                .into_iter()
                .filter(|id| !forecasts.iter().any(|f| &f.entity_id == id))
                .collect();
            Ok(Json(ForecastResponse {
                model_version: Some(served.entry.version_label()),
                trained_at: Some(served.entry.trained_at),
                horizon,
                frequency: Frequency::Day,
                levels,
                forecasts: forecasts.into_iter().map(ForecastSeries::from).collect(),
                unknown_entity_ids,
                filled_days: None,
            }))
        }
        _ => Err(invalid(
            "send either `metric` and `entity_type` (with optional `entity_ids`), \
             or `series`, with `horizon`",
        )),
    }
}

/// Fits a series from the body and forecasts it, as the library does for
/// its frequency.
async fn fitted_now(
    tenant: &TenantId,
    series: Vec<SeriesPoint>,
    frequency: Option<String>,
    horizon: usize,
    levels: Vec<f64>,
) -> Result<Json<ForecastResponse>, Problem> {
    for point in &series {
        if !point.value.is_finite() || point.value.abs() > MAX_VALUE {
            return Err(invalid(format!(
                "the value on {} is beyond ±{MAX_VALUE:e}",
                point.date
            )));
        }
    }
    if series.len() > MAX_SERIES_POINTS {
        return Err(invalid(format!(
            "the series has {} points; at most {MAX_SERIES_POINTS} are fitted",
            series.len()
        )));
    }
    let given = frequency
        .map(|f| f.parse::<Frequency>())
        .transpose()
        .map_err(|e| invalid(e.to_string()))?;
    let mut series = series;
    series.sort_by_key(|p| p.date);
    let dates: Vec<NaiveDate> = series.iter().map(|p| p.date).collect();
    let grid = Frequency::grid(&dates, given).map_err(|e| invalid(e.to_string()))?;
    let points = grid.len();
    if points > MAX_SERIES_POINTS {
        return Err(invalid(format!(
            "the series spans {points} days; at most {MAX_SERIES_POINTS} points are fitted"
        )));
    }
    let mut values = vec![0.0; points];
    for (step, point) in grid.steps.iter().zip(&series) {
        values[*step as usize] = point.value;
    }
    let filled_days = points - series.len();
    let mut config = grid.frequency.config(horizon);
    // The app layer's data may go below zero (a margin, a balance).
    config.non_negative = values.iter().all(|v| *v >= 0.0);
    let fit_levels = levels.clone();
    // A fit is CPU work (tens of milliseconds for years of days): on the
    // tenant's query lane, off the async threads.
    let forecast = Lane::of(tenant)
        .offload(async move {
            fit_series(&config, &values)
                .map(|fitted| {
                    let f = fitted
                        .model
                        .forecast(horizon, &fit_levels, &Calibration::default());
                    (fitted.model.label(), f)
                })
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "forecast task failed");
            Problem::internal()
        })?
        .map_err(invalid)?;
    let (model, f) = forecast;
    let finite = f.point.iter().all(|v| v.is_finite())
        && f.intervals
            .iter()
            .all(|(_, lo, hi)| lo.iter().chain(hi).all(|v| v.is_finite()));
    if !finite {
        return Err(invalid(
            "the series could not be forecast: its fit diverged",
        ));
    }
    let last = dates[dates.len() - 1];
    let points = ForecastPoint::dated(&f, |i| grid.date(points + i).unwrap_or(last))
        .into_iter()
        .map(ForecastDay::from)
        .collect();
    Ok(Json(ForecastResponse {
        model_version: None,
        trained_at: None,
        horizon,
        frequency: grid.frequency,
        levels,
        forecasts: vec![ForecastSeries {
            entity_type: None,
            entity_id: None,
            metric: None,
            model,
            points,
        }],
        unknown_entity_ids: Vec::new(),
        filled_days: (grid.frequency == Frequency::Day).then_some(filled_days),
    }))
}

fn invalid(detail: impl Into<String>) -> Problem {
    Problem::invalid_request(detail)
}

impl From<SeriesForecast> for ForecastSeries {
    fn from(f: SeriesForecast) -> Self {
        ForecastSeries {
            entity_type: Some(f.entity_type),
            entity_id: Some(f.entity_id),
            metric: Some(f.metric.as_str().to_string()),
            model: f.model,
            points: f.points.into_iter().map(ForecastDay::from).collect(),
        }
    }
}

impl From<ForecastPoint> for ForecastDay {
    fn from(p: ForecastPoint) -> Self {
        ForecastDay {
            date: p.date,
            yhat: p.yhat,
            intervals: p
                .intervals
                .into_iter()
                .map(|(level, lower, upper)| Interval {
                    level,
                    lower,
                    upper,
                })
                .collect(),
        }
    }
}
