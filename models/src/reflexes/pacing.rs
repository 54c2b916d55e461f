//! Pacing: month-to-date spend against each campaign's or account's monthly
//! budget, the projected month-end spend (ORACLE's spend forecast for the
//! days left, the last week's run rate where it has none), and the daily
//! budget that lands on target.
//!
//! Monthly budgets come from a budget plan (`budget_plans`, whose spends
//! are daily): the plan named, or the latest plan of campaigns. An
//! account's budget is the sum of its campaigns'.

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, Days, Months, NaiveDate};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Date32Type, Float64Type};
use gyrus_engine::session::TenantSession;
use serde::Serialize;

use crate::error::{ModelError, Result};

/// Within this share of the budget a projection is on track.
pub const ON_TRACK: f64 = 0.05;

#[derive(Debug, Clone, PartialEq)]
pub struct PacingRequest {
    /// Any day of the month; the month of the latest data when `None`.
    pub month: Option<NaiveDate>,
    /// `campaign` or `account`.
    pub entity_type: String,
    /// The plan whose recommended spends are the budgets; the latest when `None`.
    pub plan_id: Option<String>,
}

/// One entity's pacing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PacingRow {
    pub entity_id: String,
    pub month_to_date_spend: f64,
    /// The monthly budget, when the plan has one for this entity.
    pub budget: Option<f64>,
    pub projected_spend: f64,
    /// `forecast` (ORACLE covers every day left), `forecast+run_rate`, or `run_rate`.
    pub projected_from: &'static str,
    /// Projected ÷ budget.
    pub pace: Option<f64>,
    /// Spend per day for the days left that lands on the budget.
    pub required_daily_spend: Option<f64>,
    /// Mean daily spend over the last 7 days of data.
    pub run_rate: f64,
    /// `on_track`, `over`, `under` or `no_budget`.
    pub status: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pacing {
    pub month: NaiveDate,
    /// The last day counted as spent.
    pub as_of: NaiveDate,
    pub days_in_month: u32,
    pub days_left: u32,
    pub plan_id: Option<String>,
    pub entities: Vec<PacingRow>,
}

/// Pacing of every campaign or account with spend in the month.
pub async fn pacing(session: &TenantSession, request: &PacingRequest) -> Result<Pacing> {
    let key = match request.entity_type.as_str() {
        "campaign" => "campaign_id",
        "account" => "account_id",
        other => {
            return Err(ModelError::Invalid(format!(
                "pacing is by campaign or account, not `{other}`"
            )));
        }
    };
    let last = last_day(session).await?;
    let Some(any_day) = request.month.or(last) else {
        return Err(ModelError::Invalid(
            "ad_performance is empty: there is no spend to pace".into(),
        ));
    };
    let month = any_day.with_day(1).unwrap_or(any_day);
    let next = month + Months::new(1);
    let month_end = next - Days::new(1);
    let days_in_month = (next - month).num_days() as u32;
    let as_of = match last {
        Some(l) if l < month => {
            return Err(ModelError::Invalid(format!(
                "{} has no data yet: the latest day of ad_performance is {l}",
                month.format("%Y-%m")
            )));
        }
        Some(l) => l.min(month_end),
        None => month_end,
    };
    let days_left = (month_end - as_of).num_days() as u32;
    let spent = spend_to_date(session, key, month, as_of).await?;
    let forecast = forecast_left(session, &request.entity_type, as_of, month_end).await?;
    let (plan_id, budgets) = budgets(session, key, request.plan_id.as_deref()).await?;
    let mut entities = Vec::new();
    for (entity_id, (to_date, week)) in spent {
        let run_rate = week / 7.0;
        let (projected_left, projected_from) = match forecast.get(&entity_id) {
            Some(&(sum, days)) if days >= days_left => (sum, "forecast"),
            Some(&(sum, days)) => (
                sum + run_rate * (days_left - days) as f64,
                "forecast+run_rate",
            ),
            None => (run_rate * days_left as f64, "run_rate"),
        };
        let projected = to_date + projected_left.max(0.0);
        let budget = budgets
            .get(&entity_id)
            .map(|daily| daily * days_in_month as f64);
        let pace = budget.filter(|&b| b > 0.0).map(|b| projected / b);
        let status = match pace {
            None => "no_budget",
            Some(p) if p > 1.0 + ON_TRACK => "over",
            Some(p) if p < 1.0 - ON_TRACK => "under",
            Some(_) => "on_track",
        };
        entities.push(PacingRow {
            required_daily_spend: budget
                .filter(|_| days_left > 0)
                .map(|b| ((b - to_date) / days_left as f64).max(0.0)),
            entity_id,
            month_to_date_spend: to_date,
            budget,
            projected_spend: projected,
            projected_from,
            pace,
            run_rate,
            status,
        });
    }
    Ok(Pacing {
        month,
        as_of,
        days_in_month,
        days_left,
        plan_id,
        entities,
    })
}

async fn last_day(session: &TenantSession) -> Result<Option<NaiveDate>> {
    let batches = session
        .query("SELECT MAX(date) FROM ad_performance")
        .await?;
    Ok(batches.iter().find_map(|b| {
        let days = b.column(0).as_primitive::<Date32Type>();
        (b.num_rows() > 0 && days.is_valid(0))
            .then(|| NaiveDate::from_epoch_days(days.value(0)))
            .flatten()
    }))
}

/// Entity → (spend from the month's start to `as_of`, spend over the last 7 days).
async fn spend_to_date(
    session: &TenantSession,
    key: &str,
    month: NaiveDate,
    as_of: NaiveDate,
) -> Result<BTreeMap<String, (f64, f64)>> {
    let week_start = as_of - Days::new(6);
    let sql = format!(
        "SELECT {key}, \
                CAST(COALESCE(SUM(spend) FILTER (WHERE date >= DATE '{month}'), 0) AS DOUBLE) AS month_spend, \
                CAST(COALESCE(SUM(spend) FILTER (WHERE date >= DATE '{week_start}'), 0) AS DOUBLE) AS week_spend \
         FROM ad_performance \
         WHERE date >= DATE '{start}' AND date <= DATE '{as_of}' \
         GROUP BY {key} \
         HAVING SUM(spend) FILTER (WHERE date >= DATE '{month}') > 0",
        start = month.min(week_start),
    );
    let mut out = BTreeMap::new();
    for batch in session.query(&sql).await? {
        let (ids, values) = columns(&batch, 2)?;
        for (row, id) in ids.into_iter().enumerate() {
            out.insert(id, (values[0][row], values[1][row]));
        }
    }
    Ok(out)
}

/// Entity → (forecast spend over the days after `as_of` in the month, days covered).
async fn forecast_left(
    session: &TenantSession,
    entity_type: &str,
    as_of: NaiveDate,
    month_end: NaiveDate,
) -> Result<HashMap<String, (f64, u32)>> {
    // One row per interval level repeats yhat: one value per day first.
    let sql = format!(
        "SELECT entity_id, SUM(y), CAST(COUNT(*) AS DOUBLE) FROM ( \
             SELECT entity_id, date, MAX(yhat) AS y FROM forecasts \
             WHERE entity_type = '{entity_type}' AND metric = 'spend' \
               AND date > DATE '{as_of}' AND date <= DATE '{month_end}' \
             GROUP BY entity_id, date) \
         GROUP BY entity_id"
    );
    let mut out = HashMap::new();
    for batch in session.query(&sql).await? {
        let (ids, values) = columns(&batch, 2)?;
        for (row, id) in ids.into_iter().enumerate() {
            out.insert(id, (values[0][row], values[1][row] as u32));
        }
    }
    Ok(out)
}

/// The plan used and each entity's daily budget in it.
async fn budgets(
    session: &TenantSession,
    key: &str,
    plan_id: Option<&str>,
) -> Result<(Option<String>, HashMap<String, f64>)> {
    let plan = match plan_id {
        Some(id) => {
            let sql = format!(
                "SELECT COUNT(*) FROM budget_plans WHERE plan_id = '{}'",
                id.replace('\'', "''")
            );
            let batches = session.query(&sql).await?;
            let n = batches
                .first()
                .map(|b| {
                    b.column(0)
                        .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                })
                .filter(|c| !c.is_empty())
                .map_or(0, |c| c.value(0));
            if n == 0 {
                return Err(ModelError::Invalid(format!(
                    "there is no budget plan `{id}`"
                )));
            }
            Some(id.to_string())
        }
        None => {
            let sql = "SELECT plan_id FROM budget_plans WHERE entity_type = 'campaign' \
                       ORDER BY created_at DESC, plan_id LIMIT 1";
            let batches = session.query(sql).await?;
            batches.iter().find(|b| b.num_rows() > 0).and_then(|b| {
                cast(b.column(0), &DataType::Utf8)
                    .ok()
                    .map(|c| c.as_string::<i32>().value(0).to_string())
            })
        }
    };
    let Some(plan) = plan else {
        return Ok((None, HashMap::new()));
    };
    let quoted = plan.replace('\'', "''");
    let sql = if key == "campaign_id" {
        format!(
            "SELECT entity_id, CAST(SUM(recommended_spend) AS DOUBLE) FROM budget_plans \
             WHERE plan_id = '{quoted}' AND entity_type = 'campaign' GROUP BY entity_id"
        )
    } else {
        // An account's budget: its campaigns' (the account each last spent in).
        format!(
            "WITH owner AS (SELECT campaign_id, last_value(account_id ORDER BY date) AS account_id \
                            FROM ad_performance GROUP BY campaign_id) \
             SELECT owner.account_id, CAST(SUM(p.recommended_spend) AS DOUBLE) \
             FROM budget_plans p JOIN owner ON p.entity_id = owner.campaign_id \
             WHERE p.plan_id = '{quoted}' AND p.entity_type = 'campaign' \
             GROUP BY owner.account_id"
        )
    };
    let mut out = HashMap::new();
    for batch in session.query(&sql).await? {
        let (ids, values) = columns(&batch, 1)?;
        for (row, id) in ids.into_iter().enumerate() {
            out.insert(id, values[0][row]);
        }
    }
    Ok((Some(plan), out))
}

/// The first column as text and the next `n` as numbers (nulls as 0).
fn columns(batch: &RecordBatch, n: usize) -> Result<(Vec<String>, Vec<Vec<f64>>)> {
    let ids = cast(batch.column(0), &DataType::Utf8)?;
    let ids = ids
        .as_string::<i32>()
        .iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect();
    let mut values = Vec::with_capacity(n);
    for i in 1..=n {
        let column = cast(batch.column(i), &DataType::Float64)?;
        let column = column.as_primitive::<Float64Type>();
        values.push(
            (0..column.len())
                .map(|r| {
                    if column.is_valid(r) {
                        column.value(r)
                    } else {
                        0.0
                    }
                })
                .collect(),
        );
    }
    Ok((ids, values))
}
