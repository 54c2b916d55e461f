//! Criterion benchmarks of the store: append and slice-replace throughput, and a dashboard query.
//!
//! `cargo bench --workspace --bench store` (`--workspace` keeps the feature set, and so the build, of `cargo build --release --workspace`)

use std::time::Instant;

use chrono::NaiveDate;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gyrus_benches::ad_rows;
use gyrus_engine::datafusion::arrow::array::{AsArray, BooleanArray, RecordBatch};
use gyrus_engine::datafusion::arrow::compute::filter_record_batch;
use gyrus_engine::datafusion::arrow::datatypes::Date32Type;
use gyrus_engine::schema::CanonicalTable;
use gyrus_engine::{SessionLimits, Slice, Store, TenantId, WriteRequest};

const APPEND_ROWS: usize = 1_000_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// The rows of one account-month of `batch`.
fn account_month(
    batch: &RecordBatch,
    platform: &str,
    account: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> RecordBatch {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let (lo, hi) = (
        (from - epoch).num_days() as i32,
        (to - epoch).num_days() as i32,
    );
    let col = |name: &str| {
        batch
            .column(batch.schema().index_of(name).expect("canonical column"))
            .clone()
    };
    let (platforms, accounts, dates) = (col("platform"), col("account_id"), col("date"));
    let (platforms, accounts, dates) = (
        platforms.as_string::<i32>(),
        accounts.as_string::<i32>(),
        dates.as_primitive::<Date32Type>(),
    );
    let keep: BooleanArray = (0..batch.num_rows())
        .map(|i| {
            Some(
                platforms.value(i) == platform
                    && accounts.value(i) == account
                    && (lo..=hi).contains(&dates.value(i)),
            )
        })
        .collect();
    filter_record_batch(batch, &keep).expect("same length")
}

fn benches(c: &mut Criterion) {
    let rt = runtime();
    let batch = ad_rows(APPEND_ROWS);
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = rt
        .block_on(Store::open(dir.path().to_str().expect("utf-8 path")))
        .expect("a store");
    let tenant = TenantId::new("bench").expect("valid id");

    let mut group = c.benchmark_group("store");
    group.sample_size(10);
    group.throughput(Throughput::Elements(batch.num_rows() as u64));
    group.bench_function("append_1m_ad_rows", |b| {
        b.iter(|| {
            rt.block_on(store.write(
                &tenant,
                WriteRequest::append(CanonicalTable::AdPerformance, vec![batch.clone()]),
            ))
            .expect("append")
        })
    });

    // Slice replacement of one account-month in a table holding a year of data.
    let slice_tenant = TenantId::new("slice").expect("valid id");
    rt.block_on(store.write(
        &slice_tenant,
        WriteRequest::append(CanonicalTable::AdPerformance, vec![batch.clone()]),
    ))
    .expect("load");
    let (from, to) = (
        NaiveDate::from_ymd_opt(2026, 6, 1).unwrap_or_default(),
        NaiveDate::from_ymd_opt(2026, 6, 30).unwrap_or_default(),
    );
    let month = account_month(&batch, "google_ads", "gads-0001-r0", from, to);
    let slice = Slice {
        equals: vec![
            ("platform".into(), "google_ads".into()),
            ("account_id".into(), "gads-0001-r0".into()),
        ],
        from,
        to,
    };
    group.throughput(Throughput::Elements(month.num_rows() as u64));
    group.bench_function("replace_account_month", |b| {
        b.iter(|| {
            let request = WriteRequest::append(CanonicalTable::AdPerformance, vec![month.clone()])
                .replacing(slice.clone());
            rt.block_on(store.write(&slice_tenant, request))
                .expect("replace")
        })
    });

    group.throughput(Throughput::Elements(batch.num_rows() as u64));
    let sql = "SELECT platform, channel, sum(spend) AS spend, sum(clicks) AS clicks, sum(conversions) AS conversions, \
               sum(spend) / nullif(sum(conversions), 0) AS cpa, sum(conversion_value) / nullif(sum(spend), 0) AS roas \
               FROM ad_performance GROUP BY platform, channel";
    group.bench_function("dashboard_query_1m_rows", |b| {
        b.iter(|| {
            rt.block_on(async {
                let session = store
                    .session(&slice_tenant, &SessionLimits::default())
                    .await
                    .expect("session");
                session.query(sql).await.expect("query")
            })
        })
    });
    group.finish();

    // One plain measurement for the record, outside criterion's statistics.
    let started = Instant::now();
    rt.block_on(store.write(
        &tenant,
        WriteRequest::append(CanonicalTable::AdPerformance, vec![batch.clone()]),
    ))
    .expect("append");
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "single append: {} rows in {:.3} s = {:.0} rows/s; account-month slice: {} rows",
        batch.num_rows(),
        seconds,
        batch.num_rows() as f64 / seconds,
        month.num_rows()
    );
}

criterion_group!(store_benches, benches);
criterion_main!(store_benches);
