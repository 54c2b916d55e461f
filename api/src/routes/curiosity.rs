//! CURIOSITY over HTTP: the tenant's insights (anomalies, change points,
//! movers, segments, benchmarks) as a filtered, paged list, and drivers: a
//! metric's change between two periods split over dimension values.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use chrono::NaiveDate;
use datafusion::prelude::{col, lit};
use datafusion::scalar::ScalarValue;
use gyrus_engine::Role;
use gyrus_engine::day::date_to_day;
use gyrus_models::curiosity::drivers::{DimensionSplit, DriversRequest, Period, drivers};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::pagination::{ListParams, ListQuery, ListSpec, Page};
use crate::problem::{Problem, ProblemBody};
use crate::routes::{from_row, json_body, table_rows};
use crate::state::AppState;

/// A row of `insights`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Insight {
    /// The same finding keeps its id across runs.
    #[schema(example = "9f1c2e4b7a3d5f60")]
    insight_id: String,
    /// anomaly, changepoint, mover, segment or benchmark.
    #[schema(example = "anomaly")]
    kind: String,
    #[schema(example = "campaign")]
    entity_type: String,
    entity_id: String,
    #[schema(example = "cpa")]
    metric: String,
    date: String,
    /// 0 to 1: 1 − smaller/larger of actual and expected for anomalies,
    /// change points and movers; benchmarks at most 0.5; segments 0.
    severity: f64,
    /// The kind's own strength: a test statistic, a contribution, a
    /// percentile, a silhouette.
    score: f64,
    expected: Option<f64>,
    actual: Option<f64>,
    /// One sentence with the numbers.
    explanation: String,
    model_version: String,
    /// When the finding was first detected.
    detected_at: String,
}

const INSIGHTS: ListSpec = ListSpec {
    id: "insight_id",
    sortable: &["date", "severity", "score", "detected_at", "insight_id"],
    filterable: &["kind", "entity_type", "entity_id", "metric"],
    default_sort: "-date",
};

/// The range filters the list takes beside the equality filters.
struct Range {
    min_severity: f64,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
}

/// Takes `severity`, `from`, `to` and `entity` (an alias of `entity_id`)
/// out of the query's filters.
fn range(query: &mut ListQuery) -> Result<Range, Problem> {
    let mut range = Range {
        min_severity: 0.0,
        from: None,
        to: None,
    };
    let date = |name: &str, value: &str| {
        value.parse::<NaiveDate>().map_err(|_| {
            Problem::bad_request(format!("{name} must be a date (YYYY-MM-DD), not `{value}`"))
        })
    };
    let mut rest = Vec::with_capacity(query.filters.len());
    for (name, value) in std::mem::take(&mut query.filters) {
        match name.as_str() {
            "severity" => {
                range.min_severity = match value.as_str() {
                    "low" => 0.0,
                    "medium" => 1.0 / 3.0,
                    "high" => 2.0 / 3.0,
                    number => number
                        .parse::<f64>()
                        .ok()
                        .filter(|v| (0.0..=1.0).contains(v))
                        .ok_or_else(|| {
                            Problem::bad_request(format!(
                                "severity must be low, medium, high or a minimum from 0 to 1, \
                                 not `{value}`"
                            ))
                        })?,
                }
            }
            "from" => range.from = Some(date("from", &value)?),
            "to" => range.to = Some(date("to", &value)?),
            "entity" => rest.push(("entity_id".to_string(), value)),
            _ => rest.push((name, value)),
        }
    }
    if let (Some(from), Some(to)) = (range.from, range.to)
        && to < from
    {
        return Err(Problem::bad_request(format!(
            "to ({to}) is before from ({from})"
        )));
    }
    query.filters = rest;
    Ok(range)
}

/// The tenant's insights, newest first.
///
/// Filters: `kind`, `entity_type`, `entity_id` (or `entity`), `metric`
/// (equal); `severity` (low, medium, high: at least 0, 1/3, 2/3; or a
/// number: at least that); `from` and `to` (dates, inclusive). Sorts by
/// `date` (default `-date`), `severity`, `score`, `detected_at`.
#[utoipa::path(get, path = "/curiosity/insights", operation_id = "curiosity_insights", tag = "curiosity", security(("bearer" = [])),
    params(ListParams,
        ("kind" = Option<String>, Query, description = "anomaly, changepoint, mover, segment or benchmark"),
        ("severity" = Option<String>, Query, description = "low, medium, high, or a minimum from 0 to 1"),
        ("entity_type" = Option<String>, Query, description = "business, account, platform, channel or campaign"),
        ("entity_id" = Option<String>, Query, description = "Only this entity"),
        ("entity" = Option<String>, Query, description = "Same as entity_id"),
        ("metric" = Option<String>, Query, description = "Only this metric"),
        ("from" = Option<NaiveDate>, Query, description = "Insights dated on or after this day"),
        ("to" = Option<NaiveDate>, Query, description = "Insights dated on or before this day"),
    ),
    responses(
        (status = 200, description = "One page of insights", body = Page<Insight>),
        (status = "4XX", description = "A problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn insights(
    State(state): State<AppState>,
    caller: Caller,
    mut query: ListQuery,
) -> Result<Json<Page<Insight>>, Problem> {
    caller.require(Role::Reader)?;
    let range = range(&mut query)?;
    // Ranges, filters, the cursor, the sort and the page's limit are all
    // pushed into the scan: one page is read, however many insights there are.
    let scan = query.scan(&INSIGHTS)?;
    let found = table_rows(
        &state,
        &caller,
        "SELECT * FROM insights",
        move |mut frame| {
            frame = frame.filter(col("severity").gt_eq(lit(range.min_severity)))?;
            let day = |d: NaiveDate| lit(ScalarValue::Date32(Some(date_to_day(d))));
            if let Some(from) = range.from {
                frame = frame.filter(col("date").gt_eq(day(from)))?;
            }
            if let Some(to) = range.to {
                frame = frame.filter(col("date").lt_eq(day(to)))?;
            }
            scan.apply(frame)
        },
    )
    .await?;
    let insights = found
        .into_iter()
        .map(from_row)
        .collect::<Result<Vec<Insight>, _>>()?;
    Ok(Json(query.page(insights, &INSIGHTS)?))
}

/// Most dimension values listed per dimension; the rest are one row.
const MAX_DRIVER_LIMIT: usize = 1000;
const DEFAULT_DRIVER_LIMIT: usize = 20;
/// Longest period, in days (five years).
const MAX_PERIOD_DAYS: i64 = 1830;

/// What change to split: a metric, two periods (days inclusive), and the
/// dimensions to split it by.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DriversBody {
    /// spend, impressions, clicks, conversions, conversion_value, or a
    /// ratio: ctr, cpc, cpa, roas, conversion_rate.
    #[schema(example = "cpa")]
    metric: String,
    /// The period compared against ("last week").
    period_a: PeriodBody,
    /// The period of interest ("this week").
    period_b: PeriodBody,
    /// platform, channel, account, campaign, ad_group.
    #[schema(example = json!(["channel", "campaign"]))]
    dimensions: Vec<String>,
    /// Values listed per dimension, largest contribution first (default
    /// 20, at most 1000); the rest are folded into one "(n others)" row so
    /// the rows still add up.
    limit: Option<usize>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PeriodBody {
    #[schema(example = "2026-03-01")]
    start: NaiveDate,
    #[schema(example = "2026-03-07")]
    end: NaiveDate,
}

/// A change split over dimension values.
#[derive(Debug, Serialize, ToSchema)]
pub struct DriversAnswer {
    metric: String,
    period_a: PeriodAnswer,
    period_b: PeriodAnswer,
    /// Per dimension: the metric in each period, the change, and the
    /// contributions (each value's part of the change; for ratios split
    /// into mix and rate), which add up to the change.
    #[schema(value_type = Vec<Object>)]
    dimensions: Vec<DimensionSplit>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PeriodAnswer {
    start: NaiveDate,
    end: NaiveDate,
}

/// Splits a metric's change between two periods over dimension values.
///
/// Sums (spend, conversions, …): each value's contribution is its own
/// change. Ratios (cpa, roas, ctr, cpc, conversion_rate): each value's
/// contribution is split into mix (its share of the denominator moved, and
/// its ratio differs from the whole's) and rate (its own ratio moved). The
/// contributions add up to the total change.
#[utoipa::path(post, path = "/curiosity/drivers", operation_id = "curiosity_drivers", tag = "curiosity", security(("bearer" = [])),
    request_body(content = DriversBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The change, split", body = DriversAnswer),
        (status = 422, description = "A metric, dimension or period that cannot be split", body = ProblemBody, content_type = "application/problem+json"),
        (status = "4XX", description = "A problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn drivers_route(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<DriversAnswer>, Problem> {
    caller.require(Role::Reader)?;
    let body: DriversBody = json_body(&headers, body)?;
    let limit = body.limit.unwrap_or(DEFAULT_DRIVER_LIMIT);
    if !(1..=MAX_DRIVER_LIMIT).contains(&limit) {
        return Err(Problem::invalid_request(format!(
            "limit must be from 1 to {MAX_DRIVER_LIMIT}, not {limit}"
        )));
    }
    for (name, p) in [("period_a", &body.period_a), ("period_b", &body.period_b)] {
        if (p.end - p.start).num_days() >= MAX_PERIOD_DAYS {
            return Err(Problem::invalid_request(format!(
                "{name} spans more than {MAX_PERIOD_DAYS} days"
            )));
        }
    }
    if body.dimensions.len() > 5 {
        return Err(Problem::invalid_request(
            "name each dimension once: platform, channel, account, campaign, ad_group".to_string(),
        ));
    }
    let request = DriversRequest {
        metric: body.metric.clone(),
        period_a: Period {
            start: body.period_a.start,
            end: body.period_a.end,
        },
        period_b: Period {
            start: body.period_b.start,
            end: body.period_b.end,
        },
        dimensions: body.dimensions.clone(),
    };
    let session = state
        .tables
        .session(&caller.tenant, &state.config.limits)
        .await?;
    let split = session
        .deadline()
        .bound(drivers(&session, &request, limit))
        .await??;
    Ok(Json(DriversAnswer {
        metric: body.metric,
        period_a: PeriodAnswer {
            start: request.period_a.start,
            end: request.period_a.end,
        },
        period_b: PeriodAnswer {
            start: request.period_b.start,
            end: request.period_b.end,
        },
        dimensions: split,
    }))
}
