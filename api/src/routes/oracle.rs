//! `POST /api/v1/oracle/forecast`: forecasts from the tenant's serving
//! ORACLE model (`{metric, entity_type, entity_ids?, horizon, levels?}`), or
//! of a series sent in the body, fitted on the fly (`{series, horizon,
//! levels?}`) for the app layer's own data.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, NaiveDate, Utc};
use gyrus_engine::Role;
use gyrus_models::oracle::data::entity_type;
use gyrus_models::oracle::model::{ForecastPoint, SeriesForecast};
use gyrus_models::oracle::{Calibration, Metric, SeriesConfig, fit_series};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::problem::{Problem, ProblemBody};
use crate::routes::json_body;
use crate::state::AppState;

/// Longest horizon, in days.
const MAX_HORIZON: usize = 365;
/// Most entity ids one request may name.
const MAX_ENTITY_IDS: usize = 1000;
/// Most days a series in the body may span (ten years).
const MAX_SERIES_DAYS: usize = 3660;
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
    /// Instead of a metric: a daily series to fit now. Missing days count as
    /// zero; dates must not repeat.
    series: Option<Vec<SeriesPoint>>,
    /// Days to forecast, 1 to 365.
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
    levels: Vec<f64>,
    forecasts: Vec<ForecastSeries>,
    /// Requested entity ids the model has no series for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    unknown_entity_ids: Vec<String>,
    /// For a series in the body: days between its dates that were missing
    /// and counted as zero.
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

/// One forecast day.
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
    if horizon == 0 || horizon > MAX_HORIZON {
        return Err(invalid(format!(
            "horizon must be between 1 and {MAX_HORIZON} days, not {horizon}"
        )));
    }
    let levels = check_levels(request.levels)?;
    match (request.series, request.metric, request.entity_type) {
        (Some(series), None, None) if request.entity_ids.is_none() => {
            fitted_now(series, horizon, levels).await
        }
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
            let forecasts =
                served
                    .model
                    .forecast(metric, entity_type, ids.as_deref(), horizon, &levels);
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

/// Fits a series from the body and forecasts it.
async fn fitted_now(
    series: Vec<SeriesPoint>,
    horizon: usize,
    levels: Vec<f64>,
) -> Result<Json<ForecastResponse>, Problem> {
    let mut by_date: BTreeMap<NaiveDate, f64> = BTreeMap::new();
    for point in &series {
        if !point.value.is_finite() || point.value.abs() > MAX_VALUE {
            return Err(invalid(format!(
                "the value on {} is beyond ±{MAX_VALUE:e}",
                point.date
            )));
        }
        if by_date.insert(point.date, point.value).is_some() {
            return Err(invalid(format!("the series has {} twice", point.date)));
        }
    }
    let (Some((&first, _)), Some((&last, _))) =
        (by_date.first_key_value(), by_date.last_key_value())
    else {
        return Err(invalid("the series is empty"));
    };
    let days = (last - first).num_days() as usize + 1;
    if days > MAX_SERIES_DAYS {
        return Err(invalid(format!(
            "the series spans {days} days; at most {MAX_SERIES_DAYS} are fitted"
        )));
    }
    let mut values = vec![0.0; days];
    for (date, value) in &by_date {
        values[(*date - first).num_days() as usize] = *value;
    }
    let filled_days = days - by_date.len();
    let mut config = SeriesConfig::daily();
    // The app layer's data may go below zero (a margin, a balance).
    config.non_negative = values.iter().all(|v| *v >= 0.0);
    let fit_levels = levels.clone();
    // A fit is CPU work (tens of milliseconds for years of days): off the
    // async threads.
    let forecast = tokio::task::spawn_blocking(move || {
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
    let points = ForecastPoint::days(last, &f)
        .into_iter()
        .map(ForecastDay::from)
        .collect();
    Ok(Json(ForecastResponse {
        model_version: None,
        trained_at: None,
        horizon,
        levels,
        forecasts: vec![ForecastSeries {
            entity_type: None,
            entity_id: None,
            metric: None,
            model,
            points,
        }],
        unknown_entity_ids: Vec::new(),
        filled_days: Some(filled_days),
    }))
}

fn check_levels(levels: Option<Vec<f64>>) -> Result<Vec<f64>, Problem> {
    let levels = levels.unwrap_or_else(|| vec![0.8, 0.95]);
    if levels.len() > MAX_LEVELS {
        return Err(invalid(format!("at most {MAX_LEVELS} interval levels")));
    }
    if let Some(bad) = levels.iter().find(|l| !(**l > 0.0 && **l < 1.0)) {
        return Err(invalid(format!(
            "interval level {bad} is not between 0 and 1 (use 0.8 for 80%)"
        )));
    }
    Ok(levels)
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
