//! The daily series every family reads (ORACLE forecasts them, CURIOSITY
//! scans them, REFLEXES fits response curves on them), built with
//! DataFusion from a tenant's `ad_performance`, `web_sessions` and `orders`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Date32Type};
use gyrus_engine::day::day_to_date;
use gyrus_engine::schema::CanonicalTable;
use gyrus_engine::session::{SessionLimits, TenantSession};
use gyrus_engine::{Store, TenantId};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// The metrics ORACLE knows: counts and money it forecasts, and ratios it
/// derives from the forecasts of their parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Spend,
    Impressions,
    Clicks,
    Conversions,
    ConversionValue,
    Sessions,
    Revenue,
    Ctr,
    Cpc,
    Cpa,
    Roas,
}

impl Metric {
    pub const ALL: [Metric; 11] = [
        Metric::Spend,
        Metric::Impressions,
        Metric::Clicks,
        Metric::Conversions,
        Metric::ConversionValue,
        Metric::Sessions,
        Metric::Revenue,
        Metric::Ctr,
        Metric::Cpc,
        Metric::Cpa,
        Metric::Roas,
    ];

    /// The metrics summed from `ad_performance`.
    pub const ADS: [Metric; 5] = [
        Metric::Spend,
        Metric::Impressions,
        Metric::Clicks,
        Metric::Conversions,
        Metric::ConversionValue,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Metric::Spend => "spend",
            Metric::Impressions => "impressions",
            Metric::Clicks => "clicks",
            Metric::Conversions => "conversions",
            Metric::ConversionValue => "conversion_value",
            Metric::Sessions => "sessions",
            Metric::Revenue => "revenue",
            Metric::Ctr => "ctr",
            Metric::Cpc => "cpc",
            Metric::Cpa => "cpa",
            Metric::Roas => "roas",
        }
    }

    /// A ratio's numerator and denominator; `None` for a forecast metric.
    pub fn parts(self) -> Option<(Metric, Metric)> {
        match self {
            Metric::Ctr => Some((Metric::Clicks, Metric::Impressions)),
            Metric::Cpc => Some((Metric::Spend, Metric::Clicks)),
            Metric::Cpa => Some((Metric::Spend, Metric::Conversions)),
            Metric::Roas => Some((Metric::ConversionValue, Metric::Spend)),
            _ => None,
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Metric {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self> {
        Metric::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = Metric::ALL.iter().map(|m| m.as_str()).collect();
                ModelError::Invalid(format!(
                    "unknown metric `{s}`: use one of {}",
                    known.join(", ")
                ))
            })
    }
}

/// The levels series are built at. `business` is the tenant as a whole (the
/// only level of `sessions` and `revenue`).
pub const ENTITY_TYPES: [&str; 5] = ["business", "account", "platform", "channel", "campaign"];

/// Checks an entity type named by a caller.
pub fn entity_type(s: &str) -> Result<&'static str> {
    ENTITY_TYPES.into_iter().find(|t| *t == s).ok_or_else(|| {
        ModelError::Invalid(format!(
            "unknown entity_type `{s}`: use one of {}",
            ENTITY_TYPES.join(", ")
        ))
    })
}

/// One daily series: zeros on days without rows, from the entity's first
/// day with data to the tenant's last day.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub entity_type: String,
    pub entity_id: String,
    pub metric: Metric,
    pub start: NaiveDate,
    pub values: Vec<f64>,
}

/// All of a tenant's series, ending on one day.
#[derive(Debug, Clone)]
pub struct TenantSeries {
    pub tenant: TenantId,
    /// The last day with data in any input table.
    pub end: NaiveDate,
    pub series: Vec<Series>,
    /// Delta version of every table the series were read from.
    pub input_versions: BTreeMap<String, Option<u64>>,
}

/// The tables ORACLE reads.
pub const INPUT_TABLES: [CanonicalTable; 3] = [
    CanonicalTable::AdPerformance,
    CanonicalTable::WebSessions,
    CanonicalTable::Orders,
];

/// Reads a tenant's series. A tenant with no ad, web or order rows has none.
pub async fn load_series(store: &Store, tenant: &TenantId) -> Result<TenantSeries> {
    let tables = store.tenant_tables(tenant).await?;
    let input_versions = tables.versions_of(&INPUT_TABLES);
    let session = TenantSession::new(&tables, &SessionLimits::default())?;
    // (entity_type, entity_id, metric) -> day -> value
    let mut points: BTreeMap<(String, String, Metric), BTreeMap<i32, f64>> = BTreeMap::new();
    let sums = "CAST(SUM(spend) AS DOUBLE), CAST(SUM(impressions) AS DOUBLE), \
                CAST(SUM(clicks) AS DOUBLE), CAST(SUM(conversions) AS DOUBLE), \
                CAST(SUM(conversion_value) AS DOUBLE)";
    for (entity_type, key) in [
        ("business", "'all'"),
        ("account", "account_id"),
        ("platform", "platform"),
        ("channel", "channel"),
        ("campaign", "campaign_id"),
    ] {
        let sql =
            format!("SELECT {key} AS entity_id, date, {sums} FROM ad_performance GROUP BY 1, 2");
        collect(&session, &sql, entity_type, &Metric::ADS, &mut points).await?;
    }
    collect(
        &session,
        "SELECT 'all', date, CAST(SUM(sessions) AS DOUBLE) FROM web_sessions GROUP BY 1, 2",
        "business",
        &[Metric::Sessions],
        &mut points,
    )
    .await?;
    collect(
        &session,
        "SELECT 'all', CAST(created_at AS DATE), CAST(SUM(amount) AS DOUBLE) FROM orders \
         WHERE status = 'paid' GROUP BY 1, 2",
        "business",
        &[Metric::Revenue],
        &mut points,
    )
    .await?;

    let end_day = points
        .values()
        .filter_map(|days| days.keys().next_back().copied())
        .max();
    let Some(end_day) = end_day else {
        return Ok(TenantSeries {
            tenant: tenant.clone(),
            end: NaiveDate::default(),
            series: Vec::new(),
            input_versions,
        });
    };
    let series = points
        .into_iter()
        .filter_map(|((entity_type, entity_id, metric), days)| {
            let first = *days.keys().next()?;
            let mut values = vec![0.0; (end_day - first + 1) as usize];
            for (day, value) in days {
                values[(day - first) as usize] = value;
            }
            Some(Series {
                entity_type,
                entity_id,
                metric,
                start: day_to_date(first),
                values,
            })
        })
        .collect();
    Ok(TenantSeries {
        tenant: tenant.clone(),
        end: day_to_date(end_day),
        series,
        input_versions,
    })
}

/// Runs one aggregate query (entity id, date, one column per metric) and adds
/// its rows to `points`.
async fn collect(
    session: &TenantSession,
    sql: &str,
    entity_type: &str,
    metrics: &[Metric],
    points: &mut BTreeMap<(String, String, Metric), BTreeMap<i32, f64>>,
) -> Result<()> {
    let batches: Vec<RecordBatch> = session.query(sql).await?;
    for batch in &batches {
        let ids = cast(batch.column(0), &DataType::Utf8)?;
        let ids = ids.as_string::<i32>();
        let days = cast(batch.column(1), &DataType::Date32)?;
        let days = days.as_primitive::<Date32Type>();
        for (i, &metric) in metrics.iter().enumerate() {
            let values = cast(batch.column(2 + i), &DataType::Float64)?;
            let values = values.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
            for row in 0..batch.num_rows() {
                if ids.is_null(row) || days.is_null(row) {
                    continue;
                }
                let value = if values.is_null(row) {
                    0.0
                } else {
                    values.value(row)
                };
                *points
                    .entry((entity_type.to_string(), ids.value(row).to_string(), metric))
                    .or_default()
                    .entry(days.value(row))
                    .or_default() += value;
            }
        }
    }
    Ok(())
}
