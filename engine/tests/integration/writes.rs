//! Writes: appends, idempotent replay, slice replacement, and every validation rule.

use std::sync::Arc;

use crate::common::*;
use gyrus_engine::datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use gyrus_engine::datafusion::arrow::datatypes::{DataType, Field, Schema};
use gyrus_engine::schema::CanonicalTable;
use gyrus_engine::{EngineError, Slice, WriteRequest};

const ADS: CanonicalTable = CanonicalTable::AdPerformance;

#[tokio::test]
async fn appends_are_queryable_and_sorted_by_date() {
    let (_dir, store) = temp_store().await;
    let acme = tenant("acme");
    // Rows arrive newest first; the table keeps them by date.
    let mut input = rows("a1", "c1", day(2026, 3, 1), 10, 3, 5);
    input.reverse();
    let outcome = store
        .write(&acme, WriteRequest::append(ADS, vec![batch(&input)]))
        .await
        .unwrap();
    assert_eq!((outcome.rows, outcome.already_applied), (30, false));
    assert_eq!(
        scalar(&store, &acme, "SELECT count(*) FROM ad_performance").await,
        "30"
    );
    assert_eq!(
        scalar(&store, &acme, "SELECT sum(spend) FROM ad_performance").await,
        "55.500000"
    );
    let first = scalar(&store, &acme, "SELECT min(date) FROM (SELECT date, row_number() OVER () AS n FROM ad_performance) WHERE n = 1").await;
    assert_eq!(first, "2026-03-01");
}

#[tokio::test]
async fn a_replayed_key_changes_nothing() {
    let (_dir, store) = temp_store().await;
    let acme = tenant("acme");
    let data = batch(&rows("a1", "c1", day(2026, 3, 1), 5, 2, 5));
    let first = store
        .write(
            &acme,
            WriteRequest::append(ADS, vec![data.clone()]).with_idempotency_key("k1"),
        )
        .await
        .unwrap();
    let replay = store
        .write(
            &acme,
            WriteRequest::append(ADS, vec![data.clone()]).with_idempotency_key("k1"),
        )
        .await
        .unwrap();
    assert!(!first.already_applied && replay.already_applied);
    assert_eq!(replay.version, first.version);
    assert_eq!(
        scalar(&store, &acme, "SELECT count(*) FROM ad_performance").await,
        "10"
    );
    // Another key is another write (and its duplicate rows are the caller's business).
    let other = batch(&rows("a1", "c2", day(2026, 3, 1), 5, 2, 5));
    store
        .write(
            &acme,
            WriteRequest::append(ADS, vec![other]).with_idempotency_key("k2"),
        )
        .await
        .unwrap();
    assert_eq!(
        scalar(&store, &acme, "SELECT count(*) FROM ad_performance").await,
        "20"
    );
}

#[tokio::test]
async fn a_replay_answers_what_the_first_write_did_and_refuses_other_data() {
    let (_dir, store) = temp_store().await;
    let acme = tenant("acme");
    let data = batch(&rows("a1", "c1", day(2026, 3, 1), 4, 2, 5));
    let write = |b: RecordBatch| WriteRequest::append(ADS, vec![b]).with_idempotency_key("k1");
    let first = store.write(&acme, write(data.clone())).await.unwrap();
    // Later writes move the table on; the replay still names the first version.
    for campaign in ["c2", "c3"] {
        let more = batch(&rows("a1", campaign, day(2026, 3, 1), 1, 1, 5));
        store
            .write(&acme, WriteRequest::append(ADS, vec![more]))
            .await
            .unwrap();
    }
    // The same rows, in another order and batching, are the same write.
    let (head, tail) = (data.slice(0, 3), data.slice(3, data.num_rows() - 3));
    let replay = store
        .write(
            &acme,
            WriteRequest::append(ADS, vec![tail, head]).with_idempotency_key("k1"),
        )
        .await
        .unwrap();
    assert_eq!(
        (replay.rows, replay.version, replay.already_applied),
        (8, first.version, true)
    );
    let fewer = batch(&rows("a1", "c1", day(2026, 3, 1), 1, 1, 5));
    let err = store.write(&acme, write(fewer)).await.unwrap_err();
    assert!(
        matches!(err, EngineError::IdempotencyMismatch { ref key } if key == "k1"),
        "{err}"
    );
    assert_eq!(
        scalar(&store, &acme, "SELECT count(*) FROM ad_performance").await,
        "10"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_with_one_key_land_once() {
    let (_dir, store) = temp_store().await;
    let acme = tenant("acme");
    store.table_or_create(&acme, ADS).await.unwrap();
    let data = batch(&rows("a1", "c1", day(2026, 3, 1), 3, 2, 5));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (store, acme, data) = (store.clone(), acme.clone(), data.clone());
        tasks.push(tokio::spawn(async move {
            store
                .write(
                    &acme,
                    WriteRequest::append(ADS, vec![data]).with_idempotency_key("same"),
                )
                .await
        }));
    }
    let mut landed = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(outcome) if !outcome.already_applied => landed += 1,
            Ok(_) => {}
            Err(EngineError::Conflict { .. }) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(landed, 1);
    assert_eq!(
        scalar(&store, &acme, "SELECT count(*) FROM ad_performance").await,
        "6"
    );
}

fn january(account: &str) -> Slice {
    Slice {
        equals: vec![
            ("platform".into(), "google_ads".into()),
            ("account_id".into(), account.into()),
        ],
        from: day(2026, 1, 1),
        to: day(2026, 1, 31),
    }
}

#[tokio::test]
async fn slice_replacement_swaps_exactly_the_slice() {
    let (_dir, store) = temp_store().await;
    let acme = tenant("acme");
    let mut all = rows("a1", "c1", day(2026, 1, 1), 59, 2, 5); // January and February
    all.extend(rows("a2", "c9", day(2026, 1, 1), 59, 2, 5));
    store
        .write(&acme, WriteRequest::append(ADS, vec![batch(&all)]))
        .await
        .unwrap();

    // The platform restates a1's January: fewer ads, different clicks.
    let restated = rows("a1", "c1", day(2026, 1, 1), 31, 1, 9);
    store
        .write(
            &acme,
            WriteRequest::append(ADS, vec![batch(&restated)]).replacing(january("a1")),
        )
        .await
        .unwrap();
    let q = |sql: &'static str| scalar(&store, &acme, sql);
    assert_eq!(q("SELECT count(*) FROM ad_performance WHERE account_id = 'a1' AND date < DATE '2026-02-01'").await, "31");
    assert_eq!(q("SELECT sum(clicks) FROM ad_performance WHERE account_id = 'a1' AND date < DATE '2026-02-01'").await, "279");
    assert_eq!(q("SELECT count(*) FROM ad_performance WHERE account_id = 'a1' AND date >= DATE '2026-02-01'").await, "56");
    assert_eq!(
        q("SELECT count(*) FROM ad_performance WHERE account_id = 'a2'").await,
        "118"
    );

    // Rows outside the slice are refused, and nothing changes.
    let version = store.table(&acme, ADS).await.unwrap().unwrap().version();
    let stray = rows("a1", "c1", day(2026, 2, 3), 1, 1, 9);
    let err = store
        .write(
            &acme,
            WriteRequest::append(ADS, vec![batch(&stray)]).replacing(january("a1")),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("outside the slice") && err.contains("2026-02-03"),
        "{err}"
    );
    assert_eq!(
        store.table(&acme, ADS).await.unwrap().unwrap().version(),
        version
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_see_the_old_slice_or_the_new_never_both_or_neither() {
    let (_dir, store) = temp_store().await;
    let acme = tenant("acme");
    store
        .write(
            &acme,
            WriteRequest::append(
                ADS,
                vec![batch(&rows("a1", "c1", day(2026, 1, 1), 31, 2, 1))],
            ),
        )
        .await
        .unwrap();
    let writer = {
        let (store, acme) = (store.clone(), acme.clone());
        tokio::spawn(async move {
            for round in 2..=9 {
                let data = batch(&rows("a1", "c1", day(2026, 1, 1), 31, 2, round));
                store
                    .write(
                        &acme,
                        WriteRequest::append(ADS, vec![data]).replacing(january("a1")),
                    )
                    .await
                    .unwrap();
            }
        })
    };
    let mut observed = 0;
    while !writer.is_finished() || observed == 0 {
        let count = scalar(&store, &acme, "SELECT count(*) FROM ad_performance").await;
        let distinct = scalar(
            &store,
            &acme,
            "SELECT count(DISTINCT clicks) FROM ad_performance",
        )
        .await;
        assert_eq!(
            (count.as_str(), distinct.as_str()),
            ("62", "1"),
            "a reader saw a mixed or missing slice"
        );
        observed += 1;
    }
    writer.await.unwrap();
    assert_eq!(
        scalar(&store, &acme, "SELECT max(clicks) FROM ad_performance").await,
        "9"
    );
}

/// Asserts that a write fails validation naming `column` and `needle`, and that nothing was written.
async fn rejected(batch: RecordBatch, column: Option<&str>, needle: &str) {
    let (_dir, store) = temp_store().await;
    let acme = tenant("acme");
    let err = store
        .write(&acme, WriteRequest::append(ADS, vec![batch]))
        .await
        .unwrap_err();
    let EngineError::Validation(v) = &err else {
        panic!("expected a validation error, got {err}")
    };
    assert_eq!(v.column.as_deref(), column, "{err}");
    let text = err.to_string();
    assert!(text.contains(needle), "`{needle}` not in: {text}");
    assert!(text.contains("nothing was written"), "{text}");
    assert!(
        store.table(&acme, ADS).await.unwrap().is_none(),
        "a table was created by a failed write"
    );
}

fn replace_column(batch: &RecordBatch, name: &str, array: ArrayRef) -> RecordBatch {
    let schema = batch.schema();
    let index = schema.index_of(name).unwrap();
    let mut columns = batch.columns().to_vec();
    columns[index] = array.clone();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[index] = Field::new(name, array.data_type().clone(), true);
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

fn drop_column(batch: &RecordBatch, name: &str) -> RecordBatch {
    let index = batch.schema().index_of(name).unwrap();
    let mut batch = batch.clone();
    batch.remove_column(index);
    batch
}

fn three_rows() -> RecordBatch {
    batch(&rows("a1", "c1", day(2026, 3, 1), 3, 1, 5))
}

#[tokio::test]
async fn missing_unknown_and_mistyped_columns_are_refused() {
    rejected(
        drop_column(&three_rows(), "clicks"),
        Some("clicks"),
        "required column is missing",
    )
    .await;
    let extra = {
        let b = three_rows();
        let mut fields: Vec<Field> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("clickz", DataType::Utf8, true));
        let mut columns = b.columns().to_vec();
        columns.push(Arc::new(StringArray::from(vec!["x"; 3])));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    };
    rejected(extra, Some("clickz"), "unknown column").await;
    let text_clicks = replace_column(
        &three_rows(),
        "clicks",
        Arc::new(StringArray::from(vec!["1", "2", "3"])),
    );
    rejected(text_clicks, Some("clicks"), "has type Utf8; expected Int64").await;
}

#[tokio::test]
async fn nulls_negatives_currencies_enums_and_dates_are_refused_with_rows() {
    use gyrus_engine::datafusion::arrow::array::{
        Date32Array, Decimal128Array, Float64Array, Int64Array,
    };
    let b = three_rows();
    rejected(
        replace_column(
            &b,
            "campaign_id",
            Arc::new(StringArray::from(vec![Some("c"), None, Some("c")])),
        ),
        Some("campaign_id"),
        "required value is null in 1 row; first: row 2",
    )
    .await;
    rejected(
        replace_column(&b, "clicks", Arc::new(Int64Array::from(vec![1, -4, -2]))),
        Some("clicks"),
        "value is negative in 2 rows; first: row 2 (-4), row 3 (-2)",
    )
    .await;
    let spend = Decimal128Array::from(vec![1_000_000, 0, -1_500_000])
        .with_precision_and_scale(18, 6)
        .unwrap();
    rejected(
        replace_column(&b, "spend", Arc::new(spend)),
        Some("spend"),
        "row 3 (-1.500000)",
    )
    .await;
    rejected(
        replace_column(
            &b,
            "currency",
            Arc::new(StringArray::from(vec!["USD", "usd", "XYZ"])),
        ),
        Some("currency"),
        "unknown ISO 4217 currency code in 2 rows",
    )
    .await;
    rejected(
        replace_column(
            &b,
            "platform",
            Arc::new(StringArray::from(vec![
                "google_ads",
                "bing_ads",
                "google_ads",
            ])),
        ),
        Some("platform"),
        "row 2 (\"bing_ads\")",
    )
    .await;
    rejected(
        replace_column(
            &b,
            "conversions",
            Arc::new(Float64Array::from(vec![1.0, f64::NAN, 0.0])),
        ),
        Some("conversions"),
        "not a finite number",
    )
    .await;
    let epoch = day(1970, 1, 1);
    let dates = |d: [chrono::NaiveDate; 3]| {
        Date32Array::from(
            d.iter()
                .map(|d| (*d - epoch).num_days() as i32)
                .collect::<Vec<_>>(),
        )
    };
    rejected(
        replace_column(
            &b,
            "date",
            Arc::new(dates([day(2026, 3, 1), day(1899, 12, 31), day(2026, 3, 1)])),
        ),
        Some("date"),
        "row 2 (1899-12-31)",
    )
    .await;
    let future = chrono::Utc::now().date_naive() + chrono::Days::new(30);
    rejected(
        replace_column(
            &b,
            "date",
            Arc::new(dates([future, day(2026, 3, 1), day(2026, 3, 1)])),
        ),
        Some("date"),
        "row 1",
    )
    .await;
}

#[tokio::test]
async fn repeated_natural_keys_in_one_write_are_refused() {
    let mut input = rows("a1", "c1", day(2026, 3, 1), 3, 1, 5);
    input.push(input[1].clone());
    rejected(batch(&input), None, "rows repeat the natural key").await;
}

#[tokio::test]
async fn bad_slices_are_refused() {
    let (_dir, store) = temp_store().await;
    let acme = tenant("acme");
    let mut slice = january("a1");
    slice.equals.push(("clicks".into(), "3".into()));
    let err = store
        .write(
            &acme,
            WriteRequest::append(ADS, vec![three_rows()]).replacing(slice),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::InvalidSlice(_)), "{err}");
    let backwards = Slice {
        from: day(2026, 2, 1),
        to: day(2026, 1, 1),
        equals: vec![],
    };
    let err = store
        .write(
            &acme,
            WriteRequest::append(ADS, vec![three_rows()]).replacing(backwards),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("starts (2026-02-01) after it ends"),
        "{err}"
    );
}

#[tokio::test]
async fn columns_convert_by_name_losslessly() {
    use gyrus_engine::datafusion::arrow::array::Int32Array;
    // Columns in another order, a narrower integer type, and the nullable video_views absent.
    let b = drop_column(&three_rows(), "video_views");
    let b = replace_column(
        &b,
        "impressions",
        Arc::new(Int32Array::from(vec![10, 20, 30])),
    );
    let reordered = b
        .project(&(0..b.num_columns()).rev().collect::<Vec<_>>())
        .unwrap();
    let (_dir, store) = temp_store().await;
    let acme = tenant("acme");
    store
        .write(&acme, WriteRequest::append(ADS, vec![reordered]))
        .await
        .unwrap();
    assert_eq!(
        scalar(&store, &acme, "SELECT sum(impressions) FROM ad_performance").await,
        "60"
    );
    assert_eq!(
        scalar(
            &store,
            &acme,
            "SELECT count(video_views) FROM ad_performance"
        )
        .await,
        "0"
    );
    let _ = Array::len(&StringArray::from(vec!["x"]));
}

#[tokio::test]
async fn date_filters_skip_files_by_their_statistics() {
    let (_dir, store) = temp_store().await;
    let acme = tenant("acme");
    for month in 1..=4 {
        let data = batch(&rows("a1", "c1", day(2026, month, 1), 28, 2, 5));
        store
            .write(&acme, WriteRequest::append(ADS, vec![data]))
            .await
            .unwrap();
    }
    // The table's own files (the rollups, which would answer these, are off).
    let limits = gyrus_engine::SessionLimits {
        rollups: false,
        ..Default::default()
    };
    let session = store.session(&acme, &limits).await.unwrap();
    let plan = |sql: &'static str| {
        let session = &session;
        async move {
            let batches = session.query(sql).await.unwrap();
            gyrus_engine::datafusion::arrow::util::pretty::pretty_format_batches(&batches)
                .unwrap()
                .to_string()
        }
    };
    let all = plan("EXPLAIN SELECT sum(clicks) FROM ad_performance").await;
    assert_eq!(all.matches(".parquet").count(), 4, "{all}");
    let march =
        plan("EXPLAIN SELECT sum(clicks) FROM ad_performance WHERE date = DATE '2026-03-05'").await;
    assert_eq!(march.matches(".parquet").count(), 1, "{march}");
    assert_eq!(
        scalar(
            &store,
            &acme,
            "SELECT count(*) FROM ad_performance WHERE date = DATE '2026-03-05'"
        )
        .await,
        "2"
    );
}

/// CRM deals as JSON lines: (deal_id, stage, amount).
fn deals(rows: &[(&str, &str, &str)]) -> RecordBatch {
    if rows.is_empty() {
        return RecordBatch::new_empty(CanonicalTable::CrmDeals.schema());
    }
    let text: String = rows
        .iter()
        .map(|(id, stage, amount)| {
            format!(
                r#"{{"deal_id":"{id}","customer_id":null,"pipeline":"default","stage":"{stage}","amount":"{amount}","currency":"USD","created_at":"2026-03-01T10:00:00Z","closed_at":null,"is_won":null,"source_campaign":null}}"#
            ) + "\n"
        })
        .collect();
    gyrus_engine::datafusion::arrow::json::ReaderBuilder::new(CanonicalTable::CrmDeals.schema())
        .build(std::io::Cursor::new(text))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn upserts_replace_rows_by_key_and_add_new_ones() {
    let (_dir, store) = temp_store().await;
    let acme = tenant("acme");
    let table = CanonicalTable::CrmDeals;
    let first = deals(&[
        ("d1", "open", "10"),
        ("d2", "open", "20"),
        ("d3", "open", "30"),
    ]);
    store
        .write(&acme, WriteRequest::append(table, vec![first]))
        .await
        .unwrap();
    let changed = deals(&[("d2", "won", "25"), ("d4", "open", "40")]);
    store
        .write(
            &acme,
            WriteRequest::append(table, vec![changed]).upserting(),
        )
        .await
        .unwrap();
    let q = |sql: &'static str| scalar(&store, &acme, sql);
    assert_eq!(q("SELECT count(*) FROM crm_deals").await, "4");
    assert_eq!(
        q("SELECT stage FROM crm_deals WHERE deal_id = 'd2'").await,
        "won"
    );
    assert_eq!(
        q("SELECT CAST(sum(amount) AS INT) FROM crm_deals").await,
        "105"
    );
    // An empty upsert changes nothing; a table keyed by several columns refuses.
    let version = store.table(&acme, table).await.unwrap().unwrap().version();
    store
        .write(
            &acme,
            WriteRequest::append(table, vec![deals(&[])]).upserting(),
        )
        .await
        .unwrap();
    assert_eq!(
        store.table(&acme, table).await.unwrap().unwrap().version(),
        version
    );
    let err = store
        .write(
            &acme,
            WriteRequest::append(
                ADS,
                vec![batch(&rows("a1", "c1", day(2026, 1, 1), 1, 1, 1))],
            )
            .upserting(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("one-column key"), "{err}");
}

/// One write path: a cache of table snapshots sees every write and
/// compaction made through any clone of the store at once, though its
/// snapshots would otherwise live an hour; other tenants keep theirs.
#[tokio::test]
async fn every_write_through_the_store_refreshes_every_cache() {
    let (_dir, store) = temp_store().await;
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    let cache = gyrus_engine::TableCache::new(store.clone(), std::time::Duration::from_secs(3600));
    let count = |t: gyrus_engine::TenantId| {
        let cache = &cache;
        async move {
            let session = cache
                .session(&t, &gyrus_engine::SessionLimits::default())
                .await
                .unwrap();
            scalar_of(&session, "SELECT count(*) AS n FROM ad_performance").await
        }
    };
    assert_eq!(count(acme.clone()).await, "0");
    let globex_before = cache.get(&globex).await.unwrap();
    // Written through a clone, as a server's routes, connectors and
    // pipelines each hold one.
    let writer = store.clone();
    writer
        .write(
            &acme,
            WriteRequest::append(
                ADS,
                vec![batch(&rows("a1", "c1", day(2026, 3, 1), 5, 2, 5))],
            ),
        )
        .await
        .unwrap();
    assert_eq!(count(acme.clone()).await, "10");
    writer
        .write(
            &acme,
            WriteRequest::append(
                ADS,
                vec![batch(&rows("a1", "c2", day(2026, 3, 1), 5, 2, 5))],
            ),
        )
        .await
        .unwrap();
    let before_optimize = cache.get(&acme).await.unwrap();
    assert_eq!(count(acme.clone()).await, "20");
    writer.optimize(&acme).await.unwrap();
    let after_optimize = cache.get(&acme).await.unwrap();
    assert!(
        !Arc::ptr_eq(&before_optimize, &after_optimize),
        "compaction must refresh the snapshot"
    );
    assert_eq!(count(acme.clone()).await, "20");
    // A write refused before any commit (repeated natural keys) leaves the
    // snapshot cached: a flood of bad writes costs no rereads.
    let mut repeated = rows("a1", "c3", day(2026, 3, 1), 3, 1, 5);
    repeated.push(repeated[1].clone());
    let refused = writer
        .write(&acme, WriteRequest::append(ADS, vec![batch(&repeated)]))
        .await
        .unwrap_err();
    assert!(matches!(refused, EngineError::Validation(_)), "{refused}");
    assert!(Arc::ptr_eq(
        &after_optimize,
        &cache.get(&acme).await.unwrap()
    ));
    // Another tenant's snapshot is untouched.
    assert!(Arc::ptr_eq(
        &globex_before,
        &cache.get(&globex).await.unwrap()
    ));
}

/// A snapshot past its age is kept while no Delta log it read has moved (so
/// a dashboard opened after a pause finds its contexts and footer caches),
/// and read again when another process (another store on the same root)
/// writes a table, writes a table the snapshot found empty, or erases the
/// tenant and writes it again under the same commit numbers.
#[tokio::test]
async fn an_old_snapshot_is_kept_until_another_process_moves_a_log() {
    let (dir, store) = temp_store().await;
    let acme = tenant("acme");
    let ads = |campaign: &str| {
        WriteRequest::append(
            ADS,
            vec![batch(&rows("a1", campaign, day(2026, 3, 1), 5, 2, 5))],
        )
    };
    store.write(&acme, ads("c1")).await.unwrap();
    let age = std::time::Duration::from_millis(30);
    let cache = gyrus_engine::TableCache::new(store.clone(), age);
    let past_age = || tokio::time::sleep(age * 2);
    let count = |table: &'static str| {
        let cache = &cache;
        let acme = acme.clone();
        async move {
            let session = cache
                .session(&acme, &gyrus_engine::SessionLimits::default())
                .await
                .unwrap();
            scalar_of(&session, &format!("SELECT count(*) AS n FROM {table}")).await
        }
    };
    assert_eq!(count("ad_performance").await, "10");
    let first = cache.get(&acme).await.unwrap();
    for _ in 0..3 {
        past_age().await;
        assert!(
            Arc::ptr_eq(&first, &cache.get(&acme).await.unwrap()),
            "nothing moved: the snapshot is kept"
        );
    }

    let other = gyrus_engine::Store::open(dir.path().to_str().unwrap())
        .await
        .unwrap();
    other.write(&acme, ads("c2")).await.unwrap();
    past_age().await;
    let written = cache.get(&acme).await.unwrap();
    assert!(!Arc::ptr_eq(&first, &written), "another process wrote");
    assert_eq!(count("ad_performance").await, "20");

    // A table the snapshot found empty gets its first commit.
    assert_eq!(count("orders").await, "0");
    assert!(
        store
            .table(&acme, CanonicalTable::Orders)
            .await
            .unwrap()
            .is_none()
    );
    let empty = gyrus_engine::datafusion::arrow::array::RecordBatch::new_empty(
        CanonicalTable::Orders.schema(),
    );
    other
        .write(
            &acme,
            WriteRequest::append(CanonicalTable::Orders, vec![empty]),
        )
        .await
        .unwrap();
    // An empty append creates the table.
    assert!(
        other
            .table(&acme, CanonicalTable::Orders)
            .await
            .unwrap()
            .is_some()
    );
    past_age().await;
    assert!(!Arc::ptr_eq(&written, &cache.get(&acme).await.unwrap()));

    // Erased and written again: the same commit numbers, other objects.
    let before = cache.get(&acme).await.unwrap();
    let version = |t: &gyrus_engine::session::TenantTables| {
        t.versions()
            .into_iter()
            .find(|(table, _)| *table == ADS)
            .and_then(|(_, v)| v)
    };
    let owners: [&dyn gyrus_engine::lifecycle::TenantRows; 1] = [&gyrus_engine::keys::TENANT_ROWS];
    other.erase_tenant(&acme, &owners).await.unwrap();
    other.write(&acme, ads("c3")).await.unwrap();
    other.write(&acme, ads("c4")).await.unwrap();
    let rewritten = other.table(&acme, ADS).await.unwrap().unwrap().version();
    past_age().await;
    let after = cache.get(&acme).await.unwrap();
    assert!(!Arc::ptr_eq(&before, &after), "erased and written again");
    // The case this guards: the same commit numbers, which only the commit
    // objects tell apart.
    assert_eq!(rewritten, version(&before));
    assert_eq!(version(&after), version(&before));
    assert_eq!(count("ad_performance").await, "20");
}
