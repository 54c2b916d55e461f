//! MEMORY over HTTP: a customer's scores, scoring a summary or purchase
//! history with the tenant's fitted parameters, the RFM segments, and open
//! deals by P(win).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, NaiveDate, Utc};
use datafusion::prelude::{col, lit};
use gyrus_engine::Role;
use gyrus_models::Family;
use gyrus_models::memory::rfm::SEGMENTS;
use gyrus_models::memory::{DAYS_PER_UNIT, Memory, MemoryModel, Summary};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::pagination::{ListParams, ListQuery, ListSpec, Page};
use crate::problem::{Problem, ProblemBody};
use crate::routes::{PathParam, from_row, json_body, table_rows as rows};
use crate::state::AppState;

/// Most purchases a history sent for scoring may hold.
const MAX_PURCHASES: usize = 100_000;
/// Longest history or summary, in days (fifty years).
const MAX_DAYS: f64 = 18_262.0;
/// Largest purchase value or monetary value accepted.
const MAX_VALUE: f64 = 1e12;

/// A customer's row of `customer_scores`. Money is exact decimal text, as
/// `/sql` writes it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CustomerScores {
    #[schema(example = "cust-0000042")]
    customer_id: String,
    /// Repeat purchases (days with a purchase after the first).
    frequency: i64,
    /// Days from the first purchase to the last.
    recency_days: f64,
    /// Days from the first purchase to the end of the data.
    tenure_days: f64,
    /// Mean value of the repeat purchases.
    #[schema(example = "42.500000")]
    monetary: String,
    p_alive: f64,
    expected_purchases_90d: f64,
    clv_365d: String,
    rfm_segment: String,
    /// R, F and M quintile scores, 1 to 5 each.
    #[schema(example = "534")]
    rfm_score: String,
    /// P(no purchase in the next 90 days).
    churn_risk: f64,
    /// low, medium, high or very_high.
    churn_band: String,
    revenue: String,
    expected_order_value: String,
    model_version: String,
    scored_at: String,
}

/// One customer's scores, from the last training run.
#[utoipa::path(get, path = "/memory/customers/{id}", operation_id = "memory_customer", tag = "memory", security(("bearer" = [])),
    params(("id" = String, Path, description = "The customer_id")),
    responses(
        (status = 200, description = "The customer's scores", body = CustomerScores),
        (status = 404, description = "No scores for this customer", body = ProblemBody, content_type = "application/problem+json"),
        (status = "4XX", description = "A problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn customer(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> Result<Json<CustomerScores>, Problem> {
    caller.require(Role::Reader)?;
    let customer = id.clone();
    let found = rows(
        &state,
        &caller,
        "SELECT * FROM customer_scores",
        move |frame| {
            frame
                .filter(col("customer_id").eq(lit(customer)))?
                .limit(0, Some(1))
        },
    )
    .await?;
    match found.into_iter().next() {
        Some(row) => Ok(Json(from_row(row)?)),
        None => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "no-customer",
            format!(
                "customer `{id}` has no scores: no paid order names it, or it arrived after the \
                 last `gyrus train --family memory`"
            ),
        )),
    }
}

/// A customer to score: a BTYD summary, or a purchase history.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreRequest {
    summary: Option<SummaryIn>,
    /// Purchases (orders); several on one day count as one purchase.
    purchases: Option<Vec<PurchaseIn>>,
    /// The end of observation for `purchases` (default: today, UTC).
    as_of: Option<NaiveDate>,
}

/// A summary in the BTYD conventions, times in days.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SummaryIn {
    /// Repeat purchases (days with a purchase after the first).
    frequency: u32,
    /// Days from the first purchase to the last (0 without repeats).
    recency_days: f64,
    /// Days from the first purchase to now.
    tenure_days: f64,
    /// Mean value of the repeat purchases (0 or absent without repeats).
    monetary: Option<f64>,
}

/// One purchase.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseIn {
    #[schema(example = "2026-03-14")]
    date: NaiveDate,
    #[schema(example = 59.9)]
    amount: f64,
}

/// Scores of a customer sent in.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScoreResponse {
    #[schema(example = "memory-v3")]
    model_version: String,
    trained_at: DateTime<Utc>,
    /// The summary scored (days).
    frequency: u32,
    recency_days: f64,
    tenure_days: f64,
    monetary: f64,
    p_alive: f64,
    expected_purchases_90d: f64,
    expected_order_value: f64,
    clv_365d: f64,
    churn_risk: f64,
    churn_band: &'static str,
}

/// Scores a summary or a purchase history with the tenant's fitted
/// BG/NBD and Gamma-Gamma parameters.
#[utoipa::path(post, path = "/memory/score", operation_id = "memory_score", tag = "memory", security(("bearer" = [])),
    request_body = ScoreRequest,
    responses(
        (status = 200, description = "The scores", body = ScoreResponse),
        (status = 404, description = "No MEMORY model trained, or none with customer scores", body = ProblemBody, content_type = "application/problem+json"),
        (status = "4XX", description = "A problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn score(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ScoreResponse>, Problem> {
    caller.require(Role::Reader)?;
    let request: ScoreRequest = json_body(&headers, body)?;
    let summary = match (request.summary, request.purchases) {
        (Some(s), None) if request.as_of.is_none() => {
            let monetary = s.monetary.unwrap_or(0.0);
            let in_range = |v: f64, max: f64| v.is_finite() && (0.0..=max).contains(&v);
            if !in_range(s.recency_days, MAX_DAYS)
                || !in_range(s.tenure_days, MAX_DAYS)
                || !in_range(monetary, MAX_VALUE)
                || f64::from(s.frequency) > MAX_DAYS
            {
                return Err(Problem::invalid_request(format!(
                    "recency_days and tenure_days must be 0 to {MAX_DAYS}, frequency at most \
                     {MAX_DAYS}, monetary 0 to {MAX_VALUE:e}"
                )));
            }
            let summary = Summary {
                frequency: s.frequency,
                recency: s.recency_days / DAYS_PER_UNIT,
                tenure: s.tenure_days / DAYS_PER_UNIT,
                monetary,
            };
            summary.check()?;
            summary
        }
        (None, Some(purchases)) => {
            if purchases.len() > MAX_PURCHASES {
                return Err(Problem::invalid_request(format!(
                    "at most {MAX_PURCHASES} purchases per request"
                )));
            }
            if let Some(p) = purchases
                .iter()
                .find(|p| !p.amount.is_finite() || !(0.0..=MAX_VALUE).contains(&p.amount))
            {
                return Err(Problem::invalid_request(format!(
                    "the purchase on {} has amount {}: amounts must be 0 to {MAX_VALUE:e}",
                    p.date, p.amount
                )));
            }
            let as_of = request.as_of.unwrap_or_else(|| Utc::now().date_naive());
            let day = |d: NaiveDate| (d - NaiveDate::default()).num_days();
            let history: Vec<(i64, f64)> =
                purchases.iter().map(|p| (day(p.date), p.amount)).collect();
            if let Some(first) = history.iter().map(|h| h.0).min()
                && (day(as_of) - first) as f64 > MAX_DAYS
            {
                return Err(Problem::invalid_request(format!(
                    "a history may span at most {MAX_DAYS} days"
                )));
            }
            Summary::from_history(&history, day(as_of))?
        }
        _ => {
            return Err(Problem::invalid_request(
                "send either `summary` or `purchases` (with an optional `as_of`)",
            ));
        }
    };
    let served = state.memory.get(&caller.tenant).await?;
    let model: &MemoryModel = &served.model;
    if model.customers.is_none() {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "no-customer-model",
            format!(
                "the serving MEMORY model ({}) has no customer part: {}",
                served.entry.version_label(),
                model.notes.join("; ")
            ),
        ));
    }
    let scores = Memory::predict(model, &summary)?;
    Ok(Json(ScoreResponse {
        model_version: served.entry.version_label(),
        trained_at: served.entry.trained_at,
        frequency: summary.frequency,
        recency_days: summary.recency * DAYS_PER_UNIT,
        tenure_days: summary.tenure * DAYS_PER_UNIT,
        monetary: summary.monetary,
        p_alive: scores.p_alive,
        expected_purchases_90d: scores.expected_purchases,
        expected_order_value: scores.expected_order_value,
        clv_365d: scores.clv,
        churn_risk: scores.churn_risk,
        churn_band: model.config.churn_band(scores.churn_risk),
    }))
}

/// One RFM segment's customers and value.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Segment {
    #[schema(example = "champions")]
    segment: String,
    customers: i64,
    /// Share of all scored customers.
    share: f64,
    /// Total paid by the segment's customers (exact decimal text).
    revenue: String,
    mean_clv_365d: f64,
    mean_p_alive: f64,
    mean_churn_risk: f64,
}

/// The segments, best first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Segments {
    /// The model version that scored the customers (absent before training).
    model_version: Option<String>,
    customers: i64,
    segments: Vec<Segment>,
}

/// Customers, revenue and mean CLV per RFM segment.
#[utoipa::path(get, path = "/memory/segments", operation_id = "memory_segments", tag = "memory", security(("bearer" = [])),
    responses(
        (status = 200, description = "Every segment with customers, best first", body = Segments),
        (status = "4XX", description = "A problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn segments(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Segments>, Problem> {
    caller.require(Role::Reader)?;
    let found = rows(
        &state,
        &caller,
        "SELECT rfm_segment AS segment, COUNT(*) AS customers, \
           CAST(COUNT(*) AS DOUBLE) / SUM(COUNT(*)) OVER () AS share, \
           SUM(revenue) AS revenue, \
           AVG(CAST(clv_365d AS DOUBLE)) AS mean_clv_365d, AVG(p_alive) AS mean_p_alive, \
           AVG(churn_risk) AS mean_churn_risk, MIN(model_version) AS model_version \
         FROM customer_scores GROUP BY rfm_segment",
        Ok,
    )
    .await?;
    let mut model_version = None;
    let mut segments: Vec<Segment> = Vec::new();
    for mut row in found {
        if let Some(Value::String(v)) = row.get_mut("model_version").map(Value::take) {
            model_version = Some(v);
        }
        if let Value::Object(map) = &mut row {
            map.remove("model_version");
        }
        segments.push(from_row(row)?);
    }
    let rank = |s: &Segment| {
        SEGMENTS
            .iter()
            .position(|n| *n == s.segment)
            .unwrap_or(SEGMENTS.len())
    };
    segments.sort_by_key(rank);
    Ok(Json(Segments {
        model_version,
        customers: segments.iter().map(|s| s.customers).sum(),
        segments,
    }))
}

/// An open deal with its P(win).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Lead {
    #[schema(example = "deal-0001234")]
    deal_id: String,
    p_win: f64,
    pipeline: Option<String>,
    stage: Option<String>,
    /// Exact decimal text.
    amount: Option<String>,
    currency: Option<String>,
    created_at: Option<String>,
    customer_id: Option<String>,
    source_campaign: Option<String>,
    model_version: String,
    scored_at: String,
}

const LEADS: ListSpec = ListSpec {
    id: "deal_id",
    sortable: &["p_win", "deal_id", "created_at"],
    filterable: &["pipeline", "stage", "source_campaign"],
    default_sort: "-p_win",
};

/// Open deals by P(win), highest first.
///
/// Sorts by `p_win` (default `-p_win`), `deal_id`, `created_at`; filters
/// `pipeline`, `stage`, `source_campaign`.
#[utoipa::path(get, path = "/memory/leads", operation_id = "memory_leads", tag = "memory", security(("bearer" = [])),
    params(ListParams,
        ("pipeline" = Option<String>, Query, description = "Only deals in this pipeline"),
        ("stage" = Option<String>, Query, description = "Only deals at this stage"),
        ("source_campaign" = Option<String>, Query, description = "Only deals from this campaign"),
    ),
    responses(
        (status = 200, description = "One page of open deals", body = Page<Lead>),
        (status = "4XX", description = "A problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn leads(
    State(state): State<AppState>,
    caller: Caller,
    query: ListQuery,
) -> Result<Json<Page<Lead>>, Problem> {
    caller.require(Role::Reader)?;
    // Filters, the cursor, the sort and the page's limit go into the query.
    let scan = query.scan(&LEADS)?;
    let found = rows(
        &state,
        &caller,
        "SELECT l.deal_id, l.p_win, d.pipeline, d.stage, d.amount, d.currency, d.created_at, \
           d.customer_id, d.source_campaign, l.model_version, l.scored_at \
         FROM lead_scores l LEFT JOIN crm_deals d ON l.deal_id = d.deal_id",
        move |frame| scan.apply(frame),
    )
    .await?;
    let leads = found
        .into_iter()
        .map(from_row)
        .collect::<Result<Vec<Lead>, _>>()?;
    Ok(Json(query.page(leads, &LEADS)?))
}
