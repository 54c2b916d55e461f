//! MEMORY's inputs, read with DataFusion: per-customer summaries of paid
//! `orders` (with the calibration/holdout split), and `crm_deals` with their
//! source campaign's channel from `ad_performance`.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::{cast, concat};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float64Type, Int64Type, TimestampMicrosecondType,
};
use gyrus_engine::schema::{CanonicalTable, MONEY};
use gyrus_engine::session::{SessionLimits, TenantSession};
use gyrus_engine::{Store, TenantId};

use crate::error::{ModelError, Result};
use crate::memory::leads::Deal;
use crate::memory::model::HoldoutData;
use crate::memory::summary::DAYS_PER_UNIT;
use gyrus_engine::day::{date_to_day, day_to_date};

/// The tables MEMORY reads.
pub const INPUT_TABLES: [CanonicalTable; 3] = [
    CanonicalTable::Orders,
    CanonicalTable::CrmDeals,
    CanonicalTable::AdPerformance,
];

/// Holdout periods are a third of the history, at most this many days.
const MAX_HOLDOUT_DAYS: i32 = 182;
/// Histories shorter than this get no holdout validation.
const MIN_HISTORY_DAYS: i32 = 42;

const MICROS_PER_DAY: f64 = 86_400_000_000.0;

/// Every paying customer of a tenant, summarised (columns in one order).
#[derive(Debug, Clone)]
pub struct Customers {
    /// The last day with a paid order: tenure runs to it.
    pub end: NaiveDate,
    /// `customer_id` (Utf8).
    pub ids: ArrayRef,
    pub frequency: Vec<u32>,
    pub first_day: Vec<i32>,
    pub last_day: Vec<i32>,
    /// Mean value of the repeat purchases (0 without any).
    pub monetary: Vec<f64>,
    /// Total paid, exact, at the money scale.
    pub revenue: Vec<i128>,
    /// Mean value of a purchase (one customer's orders of one day).
    pub mean_purchase_value: f64,
    pub holdout: Option<HoldoutData>,
}

impl Customers {
    pub fn len(&self) -> usize {
        self.frequency.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frequency.is_empty()
    }

    /// t_x in the fitting unit.
    pub fn recency(&self) -> Vec<f64> {
        self.first_day
            .iter()
            .zip(&self.last_day)
            .map(|(f, l)| f64::from(l - f) / DAYS_PER_UNIT)
            .collect()
    }

    /// T in the fitting unit.
    pub fn tenure(&self) -> Vec<f64> {
        let end = date_to_day(self.end);
        self.first_day
            .iter()
            .map(|f| f64::from(end - f) / DAYS_PER_UNIT)
            .collect()
    }
}

/// Everything MEMORY reads for one tenant.
#[derive(Debug, Clone)]
pub struct TenantMemoryData {
    pub tenant: TenantId,
    /// `None` when the tenant has no paid orders with a customer.
    pub customers: Option<Customers>,
    pub deals: Vec<Deal>,
    pub input_versions: BTreeMap<String, Option<u64>>,
}

/// Reads a tenant's customers and deals; `holdout_days` overrides the
/// automatic holdout length.
pub async fn load(
    store: &Store,
    tenant: &TenantId,
    holdout_days: Option<u32>,
) -> Result<TenantMemoryData> {
    let tables = store.tenant_tables(tenant).await?;
    let input_versions = tables.versions_of(&INPUT_TABLES);
    let session = TenantSession::new(&tables, &SessionLimits::default())?;
    Ok(TenantMemoryData {
        tenant: tenant.clone(),
        customers: load_customers(&session, holdout_days).await?,
        deals: load_deals(&session).await?,
        input_versions,
    })
}

/// One purchase per customer and day: the BTYD convention.
const PURCHASE_DAYS: &str = "SELECT customer_id, CAST(created_at AS DATE) AS day, \
     CAST(SUM(amount) AS DOUBLE) AS value, SUM(amount) AS exact \
     FROM orders WHERE status = 'paid' AND customer_id IS NOT NULL GROUP BY 1, 2";

async fn load_customers(
    session: &TenantSession,
    holdout_days: Option<u32>,
) -> Result<Option<Customers>> {
    let span = session
        .query(&format!(
            "SELECT MIN(day), MAX(day), AVG(value) FROM ({PURCHASE_DAYS}) AS purchases"
        ))
        .await?;
    let Some(batch) = span.first().filter(|b| b.num_rows() > 0) else {
        return Ok(None);
    };
    let days = |i: usize| -> Result<Option<i32>> {
        let column = cast(batch.column(i), &DataType::Date32)?;
        let column = column.as_primitive::<Date32Type>();
        Ok((!column.is_null(0)).then(|| column.value(0)))
    };
    let (Some(first), Some(end)) = (days(0)?, days(1)?) else {
        return Ok(None);
    };
    let mean_purchase_value = batch
        .column(2)
        .as_primitive_opt::<Float64Type>()
        .filter(|c| !c.is_null(0))
        .map_or(0.0, |c| c.value(0));
    let history = end - first;
    let holdout = match holdout_days {
        Some(days) => i32::try_from(days)
            .ok()
            .filter(|d| *d > 0 && *d < history)
            .ok_or_else(|| {
                ModelError::Invalid(format!(
                    "a holdout of {days} days does not fit in an order history of {history} days"
                ))
            })
            .map(Some)?,
        None => (history >= MIN_HISTORY_DAYS).then(|| (history / 3).min(MAX_HOLDOUT_DAYS)),
    };
    // Calibration ends on `cutoff` (inclusive); with no holdout it is the end.
    let cutoff = end - holdout.unwrap_or(0);
    let cutoff_date = day_to_date(cutoff);
    let batches = session
        .query(&format!(
            "SELECT customer_id, CAST(COUNT(*) AS BIGINT), MIN(day), MAX(day), SUM(value), \
             first_value(value ORDER BY day), CAST(SUM(exact) AS DECIMAL(18, 6)), \
             CAST(COUNT(*) FILTER (WHERE day <= DATE '{cutoff_date}') AS BIGINT), \
             MAX(day) FILTER (WHERE day <= DATE '{cutoff_date}') \
             FROM ({PURCHASE_DAYS}) AS purchases GROUP BY customer_id ORDER BY customer_id"
        ))
        .await?;
    let mut ids: Vec<ArrayRef> = Vec::new();
    let mut customers = Customers {
        end: day_to_date(end),
        ids: Arc::new(datafusion::arrow::array::StringArray::from(
            Vec::<String>::new(),
        )),
        frequency: Vec::new(),
        first_day: Vec::new(),
        last_day: Vec::new(),
        monetary: Vec::new(),
        revenue: Vec::new(),
        mean_purchase_value,
        holdout: None,
    };
    let mut calibration = HoldoutData {
        calibration_end: cutoff_date,
        holdout_days: holdout.unwrap_or(0) as u32,
        ..HoldoutData::default()
    };
    for batch in &batches {
        ids.push(cast(batch.column(0), &DataType::Utf8)?);
        let count = batch.column(1).as_primitive::<Int64Type>();
        let first_day = cast(batch.column(2), &DataType::Date32)?;
        let first_day = first_day.as_primitive::<Date32Type>();
        let last_day = cast(batch.column(3), &DataType::Date32)?;
        let last_day = last_day.as_primitive::<Date32Type>();
        let total = batch.column(4).as_primitive::<Float64Type>();
        let first_value = batch.column(5).as_primitive::<Float64Type>();
        let revenue = cast(batch.column(6), &MONEY)?;
        let revenue = revenue.as_primitive::<Decimal128Type>();
        let cal_count = batch.column(7).as_primitive::<Int64Type>();
        let cal_last = cast(batch.column(8), &DataType::Date32)?;
        let cal_last = cal_last.as_primitive::<Date32Type>();
        for row in 0..batch.num_rows() {
            let x = (count.value(row) - 1).max(0) as u32;
            customers.frequency.push(x);
            customers.first_day.push(first_day.value(row));
            customers.last_day.push(last_day.value(row));
            customers.monetary.push(if x == 0 {
                0.0
            } else {
                (total.value(row) - first_value.value(row)) / f64::from(x)
            });
            customers.revenue.push(revenue.value(row));
            // In the calibration period: customers whose first purchase is in it.
            if holdout.is_some() && !cal_last.is_null(row) {
                let cal_x = (cal_count.value(row) - 1).max(0) as u32;
                let first = first_day.value(row);
                calibration.frequency.push(cal_x);
                calibration
                    .recency
                    .push(f64::from(cal_last.value(row) - first) / DAYS_PER_UNIT);
                calibration
                    .tenure
                    .push(f64::from(cutoff - first) / DAYS_PER_UNIT);
                calibration
                    .holdout_purchases
                    .push((count.value(row) - cal_count.value(row)) as u32);
            }
        }
    }
    let refs: Vec<&dyn Array> = ids.iter().map(|a| a.as_ref()).collect();
    if !refs.is_empty() {
        customers.ids = concat(&refs)?;
    }
    if holdout.is_some() {
        customers.holdout = Some(calibration);
    }
    Ok(Some(customers))
}

async fn load_deals(session: &TenantSession) -> Result<Vec<Deal>> {
    let batches = session
        .query(
            "WITH campaigns AS ( \
               SELECT key, MIN(channel) AS channel FROM ( \
                 SELECT DISTINCT campaign_id AS key, channel FROM ad_performance \
                 UNION ALL \
                 SELECT DISTINCT campaign_name AS key, channel FROM ad_performance) AS keys \
               GROUP BY key) \
             SELECT d.deal_id, d.pipeline, CAST(d.amount AS DOUBLE), d.created_at, d.closed_at, \
               d.is_won, d.source_campaign, c.channel \
             FROM crm_deals d LEFT JOIN campaigns c ON d.source_campaign = c.key \
             ORDER BY d.deal_id",
        )
        .await?;
    // (deal, created_at, closed_at): ages need the end of the data first.
    let mut rows: Vec<(Deal, i64, Option<i64>)> = Vec::new();
    for batch in &batches {
        let text = |i: usize| cast(batch.column(i), &DataType::Utf8);
        let (ids, pipelines, campaigns, channels) = (text(0)?, text(1)?, text(6)?, text(7)?);
        let (ids, pipelines) = (ids.as_string::<i32>(), pipelines.as_string::<i32>());
        let (campaigns, channels) = (campaigns.as_string::<i32>(), channels.as_string::<i32>());
        let amounts = batch.column(2).as_primitive::<Float64Type>();
        let created = batch.column(3).as_primitive::<TimestampMicrosecondType>();
        let closed = batch.column(4).as_primitive::<TimestampMicrosecondType>();
        let won = batch.column(5).as_boolean();
        for row in 0..batch.num_rows() {
            let channel = if campaigns.is_null(row) {
                "none"
            } else if channels.is_null(row) {
                "unknown"
            } else {
                channels.value(row)
            };
            let deal = Deal {
                deal_id: ids.value(row).to_string(),
                pipeline: pipelines.value(row).to_string(),
                channel: channel.to_string(),
                amount: if amounts.is_null(row) {
                    0.0
                } else {
                    amounts.value(row)
                },
                age_days: 0.0,
                won: (!won.is_null(row)).then(|| won.value(row)),
            };
            let closed_at = (!closed.is_null(row)).then(|| closed.value(row));
            rows.push((deal, created.value(row), closed_at));
        }
    }
    let latest = rows
        .iter()
        .map(|(_, created, closed)| closed.unwrap_or(*created).max(*created))
        .max()
        .unwrap_or(0);
    // A closed deal's age is its time to close; an open one's, its time so far.
    let deals = rows
        .into_iter()
        .map(|(mut deal, created, closed)| {
            let until = match (deal.won, closed) {
                (Some(_), Some(closed)) => closed,
                _ => latest,
            };
            deal.age_days = ((until - created) as f64 / MICROS_PER_DAY).max(0.0);
            deal
        })
        .collect();
    Ok(deals)
}
