//! Test data for the engine's integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use chrono::NaiveDate;
use gyrus_engine::datafusion::arrow::array::{
    ArrayRef, Date32Array, Decimal128Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use gyrus_engine::schema::CanonicalTable;
use gyrus_engine::{SessionLimits, Store, TenantId};

/// One `ad_performance` row, with the fields tests vary.
#[derive(Debug, Clone)]
pub struct AdRow {
    pub platform: &'static str,
    pub account: String,
    pub campaign: String,
    pub ad: String,
    pub date: NaiveDate,
    pub clicks: i64,
    pub spend_cents: i64,
}

pub fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

pub fn row(account: &str, campaign: &str, ad: &str, date: NaiveDate, clicks: i64) -> AdRow {
    AdRow {
        platform: "google_ads",
        account: account.into(),
        campaign: campaign.into(),
        ad: ad.into(),
        date,
        clicks,
        spend_cents: clicks * 37,
    }
}

/// Rows for `days` consecutive days from `from`, `ads` ads each.
pub fn rows(
    account: &str,
    campaign: &str,
    from: NaiveDate,
    days: u64,
    ads: usize,
    clicks: i64,
) -> Vec<AdRow> {
    (0..days)
        .flat_map(|d| {
            (0..ads).map(move |a| {
                row(
                    account,
                    campaign,
                    &format!("ad-{a:03}"),
                    from + chrono::Days::new(d),
                    clicks,
                )
            })
        })
        .collect()
}

pub fn batch(rows: &[AdRow]) -> RecordBatch {
    let epoch = day(1970, 1, 1);
    let text = |f: &dyn Fn(&AdRow) -> String| -> ArrayRef {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let money = |cents: Vec<i64>| -> ArrayRef {
        Arc::new(
            Decimal128Array::from(
                cents
                    .into_iter()
                    .map(|c| c as i128 * 10_000)
                    .collect::<Vec<_>>(),
            )
            .with_precision_and_scale(18, 6)
            .unwrap(),
        )
    };
    let n = rows.len();
    RecordBatch::try_new(
        CanonicalTable::AdPerformance.schema(),
        vec![
            text(&|r| r.platform.to_string()),
            text(&|r| r.account.clone()),
            text(&|r| r.campaign.clone()),
            text(&|r| format!("Campaign {}", r.campaign)),
            text(&|r| format!("{}-group", r.campaign)),
            text(&|r| r.ad.clone()),
            text(&|_| "search".to_string()),
            Arc::new(Date32Array::from(
                rows.iter()
                    .map(|r| (r.date - epoch).num_days() as i32)
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.clicks * 20).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.clicks).collect::<Vec<_>>(),
            )),
            money(rows.iter().map(|r| r.spend_cents).collect()),
            text(&|_| "USD".to_string()),
            Arc::new(Float64Array::from(
                rows.iter()
                    .map(|r| r.clicks as f64 * 0.1)
                    .collect::<Vec<_>>(),
            )),
            money(rows.iter().map(|r| r.spend_cents * 3).collect()),
            Arc::new(Int64Array::from(vec![None::<i64>; n])),
        ],
    )
    .unwrap()
}

pub async fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
    (dir, store)
}

pub fn tenant(name: &str) -> TenantId {
    TenantId::new(name).unwrap()
}

/// Runs SQL for a tenant and returns the single integer (or decimal as string) cell.
pub async fn scalar(store: &Store, tenant: &TenantId, sql: &str) -> String {
    let session = store
        .session(tenant, &SessionLimits::default())
        .await
        .unwrap();
    scalar_of(&session, sql).await
}

/// The first value `sql` answers in `session`, as text.
pub async fn scalar_of(session: &gyrus_engine::TenantSession, sql: &str) -> String {
    let batches = session
        .query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let batch = batches.iter().find(|b| b.num_rows() > 0).expect("one row");
    gyrus_engine::datafusion::arrow::util::display::array_value_to_string(batch.column(0), 0)
        .unwrap()
}
