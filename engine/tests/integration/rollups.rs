//! Rollups answer exactly what the base table answers.
//!
//! Random dashboard-shaped queries (random group keys, date windows, filters
//! on dimensions, HAVING, ORDER BY, LIMIT, rolling windows over the
//! aggregates) run twice — through a session that answers from rollups and
//! one that reads only the base table — after appends, slice replacements,
//! compaction, a write whose rollup commit was lost (a kill between the two
//! commits) and a rebuild. Types and nullability must be equal, decimals and
//! integers exact, floats equal to 1e-9 relative.

use std::sync::Arc;

use chrono::NaiveDate;
use gyrus_engine::datafusion::arrow::array::{
    ArrayRef, Date32Array, Decimal128Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use gyrus_engine::datafusion::arrow::datatypes::DataType;
use gyrus_engine::datafusion::arrow::util::display::array_value_to_string;
use gyrus_engine::schema::CanonicalTable;
use gyrus_engine::{SessionLimits, Slice, Store, TenantId, WriteRequest};

use crate::common::{day, temp_store, tenant};

/// A small deterministic generator (xorshift), so failures reproduce.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const PLATFORMS: [&str; 3] = ["google_ads", "meta_ads", "tiktok_ads"];
const CHANNELS: [&str; 3] = ["search", "social", "video"];

fn campaign(platform: &str, account: u64, c: u64) -> String {
    format!("{platform}-{account}-c{c}")
}

/// `ad_performance` rows for `days` days from `from`, for the ads `ads`
/// of every campaign, optionally only of one (platform, account, campaign).
pub(crate) fn ads(
    rng: &mut Rng,
    from: NaiveDate,
    days: u64,
    ads: std::ops::Range<u64>,
    only: Option<(&str, u64, Option<u64>)>,
) -> RecordBatch {
    let epoch = day(1970, 1, 1);
    let mut columns: [Vec<String>; 8] = Default::default();
    let (mut dates, mut impressions, mut clicks, mut spend) = (vec![], vec![], vec![], vec![]);
    let (mut conversions, mut value, mut views) = (vec![], vec![], vec![]);
    for d in 0..days {
        for (p, platform) in PLATFORMS.iter().enumerate() {
            for account in 0..2 {
                for c in 0..3 {
                    if let Some((op, oa, oc)) = only
                        && (op != *platform || oa != account || oc.is_some_and(|oc| oc != c))
                    {
                        continue;
                    }
                    for ad in ads.clone() {
                        let id = campaign(platform, account, c);
                        columns[0].push(platform.to_string());
                        columns[1].push(format!("{platform}-{account}"));
                        columns[2].push(id.clone());
                        columns[3].push(format!("Campaign {c} of {platform} {account}"));
                        columns[4].push(format!("{id}-g{}", ad / 2));
                        columns[5].push(format!("{id}-ad{ad}"));
                        columns[6].push(CHANNELS[(p + c as usize) % 3].to_string());
                        columns[7].push(if account == 0 { "USD" } else { "EUR" }.to_string());
                        dates.push(((from + chrono::Days::new(d)) - epoch).num_days() as i32);
                        let shown = rng.below(2000) as i64;
                        let clicked = rng.below(shown as u64 / 10 + 1) as i64;
                        impressions.push(shown);
                        clicks.push(clicked);
                        spend.push(rng.below(50_000) as i128 * 10_000);
                        conversions.push(clicked as f64 * (rng.below(1000) as f64 / 3000.0));
                        value.push(rng.below(200_000) as i128 * 10_000);
                        views.push(
                            (CHANNELS[(p + c as usize) % 3] == "video" && rng.chance(80))
                                .then(|| rng.below(5000) as i64),
                        );
                    }
                }
            }
        }
    }
    let text = |values: &Vec<String>| -> ArrayRef { Arc::new(StringArray::from(values.clone())) };
    let money = |values: Vec<i128>| -> ArrayRef {
        Arc::new(
            Decimal128Array::from(values)
                .with_precision_and_scale(18, 6)
                .unwrap(),
        )
    };
    RecordBatch::try_new(
        CanonicalTable::AdPerformance.schema(),
        vec![
            text(&columns[0]),
            text(&columns[1]),
            text(&columns[2]),
            text(&columns[3]),
            text(&columns[4]),
            text(&columns[5]),
            text(&columns[6]),
            Arc::new(Date32Array::from(dates)),
            Arc::new(Int64Array::from(impressions)),
            Arc::new(Int64Array::from(clicks)),
            money(spend),
            text(&columns[7]),
            Arc::new(Float64Array::from(conversions)),
            money(value),
            Arc::new(Int64Array::from(views)),
        ],
    )
    .unwrap()
}

const START: (i32, u32, u32) = (2026, 3, 1);
const DAYS: u64 = 40;

/// One random dashboard-shaped query.
fn query(rng: &mut Rng) -> String {
    let start = day(START.0, START.1, START.2);
    let keys = [
        "date",
        "platform",
        "account_id",
        "campaign_id",
        "campaign_name",
        "channel",
        "currency",
        "date_trunc('week', date)",
        "ad_id",
    ];
    let cutoff = start + chrono::Days::new(rng.below(DAYS));
    let measures = [
        "sum(spend)".to_string(),
        "sum(clicks)".into(),
        "sum(impressions)".into(),
        "sum(conversions)".into(),
        "sum(conversion_value)".into(),
        "sum(video_views)".into(),
        "count(*)".into(),
        "count(video_views)".into(),
        "min(spend)".into(),
        "max(clicks)".into(),
        "max(video_views)".into(),
        "min(date)".into(),
        "max(date)".into(),
        "avg(conversions)".into(),
        "avg(clicks)".into(),
        "count(DISTINCT campaign_id)".into(),
        "sum(spend) / nullif(sum(conversions), 0)".into(),
        "sum(conversion_value) / nullif(sum(spend), 0)".into(),
        format!("sum(CASE WHEN date >= DATE '{cutoff}' THEN conversions ELSE 0 END)"),
        format!("sum(CASE WHEN date < DATE '{cutoff}' THEN spend END)"),
        "sum(clicks) FILTER (WHERE platform = 'meta_ads')".into(),
        // Not covered: the base table answers.
        "avg(spend)".into(),
        "count(ad_id)".into(),
    ];
    let mut group = Vec::new();
    for _ in 0..rng.below(4) {
        let key = *rng.pick(&keys);
        if !group.contains(&key) && (key != "ad_id" || rng.chance(30)) {
            group.push(key);
        }
    }
    let mut aggregates = Vec::new();
    for _ in 0..1 + rng.below(4) {
        let m = rng.pick(&measures).clone();
        if !aggregates.contains(&m)
            && (!m.starts_with("avg(spend") && m != "count(ad_id)" || rng.chance(20))
        {
            aggregates.push(m);
        }
    }
    if aggregates.is_empty() {
        aggregates.push("sum(spend)".into());
    }
    let lo = start + chrono::Days::new(rng.below(DAYS));
    let hi = lo + chrono::Days::new(rng.below(DAYS));
    let mut filters = vec![format!("date BETWEEN DATE '{lo}' AND DATE '{hi}'")];
    if rng.chance(30) {
        filters.push(format!("platform = '{}'", rng.pick(&PLATFORMS)));
    }
    if rng.chance(20) {
        filters.push("channel IN ('search', 'video')".into());
    }
    if rng.chance(15) {
        let p = rng.pick(&PLATFORMS);
        filters.push(format!(
            "campaign_id = '{}'",
            campaign(p, rng.below(2), rng.below(3))
        ));
    }
    if rng.chance(10) {
        filters.push("account_id <> 'meta_ads-1'".into());
    }
    let items = group
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{k} AS k{i}"))
        .chain(
            aggregates
                .iter()
                .enumerate()
                .map(|(i, a)| format!("{a} AS a{i}")),
        )
        .collect::<Vec<_>>()
        .join(", ");
    let mut sql = format!(
        "SELECT {items} FROM ad_performance WHERE {}",
        filters.join(" AND ")
    );
    if !group.is_empty() {
        sql += &format!(" GROUP BY {}", group.join(", "));
        if rng.chance(25) {
            sql += &format!(" HAVING count(*) > {}", rng.below(8));
        }
    }
    let order = (0..group.len())
        .map(|i| format!("k{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    // A rolling window over the aggregates, by day.
    if let Some(date) = group.iter().position(|k| *k == "date")
        && (aggregates[0].starts_with("sum(") || aggregates[0].starts_with("count("))
        && rng.chance(50)
    {
        let partition = (0..group.len())
            .filter(|i| *i != date)
            .map(|i| format!("k{i}"))
            .collect::<Vec<_>>();
        let partition = match partition.is_empty() {
            true => String::new(),
            false => format!("PARTITION BY {}", partition.join(", ")),
        };
        sql = format!(
            "SELECT *, sum(a0) OVER ({partition} ORDER BY k{date} ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS rolling FROM ({sql}) t"
        );
    }
    if !order.is_empty() {
        sql += &format!(" ORDER BY {order}");
        if rng.chance(30) {
            sql += &format!(" LIMIT {}", 1 + rng.below(20));
        }
    }
    sql
}

fn rows_of(batches: &[RecordBatch]) -> Vec<Vec<(String, Option<f64>)>> {
    let mut rows = Vec::new();
    for batch in batches {
        for r in 0..batch.num_rows() {
            let row = batch
                .columns()
                .iter()
                .map(|c| {
                    let float = match c.data_type() {
                        DataType::Float64 if !c.is_null(r) => {
                            Some(c.as_any().downcast_ref::<Float64Array>().unwrap().value(r))
                        }
                        _ => None,
                    };
                    (array_value_to_string(c, r).unwrap(), float)
                })
                .collect();
            rows.push(row);
        }
    }
    rows
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0) || (a.is_nan() && b.is_nan())
}

/// Runs `count` random queries both ways and compares; returns how many
/// were answered from a rollup.
async fn compare(
    store: &Store,
    acme: &TenantId,
    rng: &mut Rng,
    count: usize,
    phase: &str,
) -> usize {
    let with = store
        .session(acme, &SessionLimits::default())
        .await
        .unwrap();
    let without = store
        .session(
            acme,
            &SessionLimits {
                rollups: false,
                ..SessionLimits::default()
            },
        )
        .await
        .unwrap();
    let mut rewritten = 0;
    for _ in 0..count {
        let sql = query(rng);
        let plan = with.query(&format!("EXPLAIN {sql}")).await.unwrap();
        let plan = rows_of(&plan)
            .into_iter()
            .flatten()
            .map(|(s, _)| s)
            .collect::<String>();
        let from_rollup = plan.contains("ad_performance_by_");
        if sql.contains("avg(spend)") || sql.contains("count(ad_id)") || sql.contains("ad_id AS") {
            assert!(
                !from_rollup,
                "{phase}: a rollup answered what it cannot: {sql}\n{plan}"
            );
        }
        rewritten += usize::from(from_rollup);
        let (a, b) = match (with.query(&sql).await, without.query(&sql).await) {
            (Ok(a), Ok(b)) => (a, b),
            // DataFusion refuses some of these shapes itself (decimal
            // `nullif` beside a DISTINCT count): the same refusal both ways.
            (Err(ea), Err(eb)) if !from_rollup => {
                assert_eq!(ea.to_string(), eb.to_string(), "{phase}: {sql}");
                continue;
            }
            // DataFusion's DISTINCT rewrite over the table mistypes a decimal
            // `nullif` (Decimal128(38, s) against (28, s)); over the rollup
            // the DISTINCT count needs no rewrite and answers.
            (Ok(_), Err(eb))
                if eb
                    .to_string()
                    .contains("Invalid comparison operation: Decimal128") =>
            {
                continue;
            }
            (a, b) => panic!("{phase}: {sql}\nrollup: {:?}\nbase: {:?}", a.err(), b.err()),
        };
        let (sa, sb) = (a.first().map(|b| b.schema()), b.first().map(|b| b.schema()));
        if let (Some(sa), Some(sb)) = (&sa, &sb) {
            for (fa, fb) in sa.fields().iter().zip(sb.fields()) {
                // DataFusion's DISTINCT rewrite over the table widens a
                // decimal sum to Decimal128(38, s) (a sum of sums); over the
                // rollup the sum keeps SQL's type (28, s). Same values.
                if sql.contains("DISTINCT")
                    && matches!(
                        (fa.data_type(), fb.data_type()),
                        (DataType::Decimal128(28, x), DataType::Decimal128(38, y)) if x == y
                    )
                {
                    continue;
                }
                assert_eq!(
                    (fa.name(), fa.data_type(), fa.is_nullable()),
                    (fb.name(), fb.data_type(), fb.is_nullable()),
                    "{phase}: schemas differ for {sql}"
                );
            }
        }
        let (ra, rb) = (rows_of(&a), rows_of(&b));
        assert_eq!(ra.len(), rb.len(), "{phase}: row counts differ for {sql}");
        for (x, y) in ra.iter().zip(&rb) {
            for ((tx, fx), (ty, fy)) in x.iter().zip(y) {
                let same = match (fx, fy) {
                    (Some(fx), Some(fy)) => close(*fx, *fy),
                    _ => tx == ty,
                };
                assert!(
                    same,
                    "{phase}: {tx} ≠ {ty} in {sql}\nrollup: {x:?}\nbase:   {y:?}"
                );
            }
        }
    }
    rewritten
}

const PER_PHASE: usize = 210;

/// Appends `rows` to `ad_performance`.
pub(crate) async fn append(store: &Store, tenant: &TenantId, rows: RecordBatch) {
    let request = WriteRequest::append(CanonicalTable::AdPerformance, vec![rows]);
    store.write(tenant, request).await.unwrap();
}

/// Replaces the slice `equals` × `days` of `ad_performance` with `rows`.
async fn replace(
    store: &Store,
    tenant: &TenantId,
    rows: RecordBatch,
    equals: &[(&str, &str)],
    (from, to): (NaiveDate, NaiveDate),
) {
    let slice = Slice {
        equals: equals
            .iter()
            .map(|(c, v)| (c.to_string(), v.to_string()))
            .collect(),
        from,
        to,
    };
    let request = WriteRequest::append(CanonicalTable::AdPerformance, vec![rows]).replacing(slice);
    store.write(tenant, request).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_dashboard_queries_answer_the_same_from_rollups_after_every_kind_of_write() {
    let (dir, store) = temp_store().await;
    let acme = tenant("acme");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let start = day(START.0, START.1, START.2);
    let mut rewritten = 0;

    // Appends that overlap in days: a rollup key then has partial rows, in
    // files that the fifth append merges.
    let appends = [
        (0, 25, 0..1),
        (10, 25, 1..2),
        (15, 25, 2..3),
        (5, 25, 3..4),
        (0, 40, 4..5),
    ]
    .map(|(from, days, ads_)| ads(&mut rng, start + chrono::Days::new(from), days, ads_, None));
    for batch in appends {
        append(&store, &acme, batch).await;
    }
    rewritten += compare(&store, &acme, &mut rng, PER_PHASE, "appends").await;

    // Slice replacements: one campaign (a dimension of one rollup, not of
    // the other, which recomputes the account's region), then one account.
    let restated = ads(
        &mut rng,
        start + chrono::Days::new(5),
        10,
        0..3,
        Some(("meta_ads", 1, Some(2))),
    );
    replace(
        &store,
        &acme,
        restated,
        &[
            ("platform", "meta_ads"),
            ("account_id", "meta_ads-1"),
            ("campaign_id", &campaign("meta_ads", 1, 2)),
        ],
        (start + chrono::Days::new(5), start + chrono::Days::new(14)),
    )
    .await;
    let restated = ads(
        &mut rng,
        start + chrono::Days::new(20),
        6,
        0..1,
        Some(("google_ads", 0, None)),
    );
    replace(
        &store,
        &acme,
        restated,
        &[("platform", "google_ads"), ("account_id", "google_ads-0")],
        (start + chrono::Days::new(20), start + chrono::Days::new(25)),
    )
    .await;
    rewritten += compare(&store, &acme, &mut rng, PER_PHASE, "slice replacements").await;

    // Compaction changes no data: the rollups stay usable without a rebuild.
    store.optimize(&acme).await.unwrap();
    let used = compare(&store, &acme, &mut rng, PER_PHASE, "compaction").await;
    assert!(used > 0, "compaction made the rollups unusable");
    rewritten += used;

    // A write whose rollup commits were lost (killed between its base and
    // rollup commits): the rollups disagree with the table and are not used.
    let more = ads(&mut rng, start + chrono::Days::new(DAYS), 3, 0..4, None);
    append(&store, &acme, more).await;
    for name in [
        "ad_performance_by_account_day",
        "ad_performance_by_campaign_day",
    ] {
        let log = dir
            .path()
            .join(format!("tenants/acme/_rollups/{name}/_delta_log"));
        let newest = std::fs::read_dir(&log)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .max()
            .unwrap();
        std::fs::remove_file(newest).unwrap();
    }
    let used = compare(&store, &acme, &mut rng, PER_PHASE / 2, "lost rollup commit").await;
    assert_eq!(used, 0, "a rollup behind its table answered");

    // The next write repairs them (a rebuild), and they answer again.
    let more = ads(&mut rng, start + chrono::Days::new(DAYS + 3), 2, 0..4, None);
    append(&store, &acme, more).await;
    let used = compare(&store, &acme, &mut rng, PER_PHASE / 2, "repaired").await;
    assert!(used > 0, "the next write did not repair the rollups");
    rewritten += used;

    // `gyrus optimize` rebuilds them whole.
    let rebuilt = store.rebuild_rollups(&acme).await.unwrap();
    assert_eq!(rebuilt.len(), 2, "{rebuilt:?}");
    rewritten += compare(&store, &acme, &mut rng, PER_PHASE, "rebuilt").await;

    let total = PER_PHASE * 4 + PER_PHASE;
    assert!(total >= 1000);
    eprintln!("{rewritten} of {total} random queries answered from rollups");
    // Most generated queries are coverable: the rule must take them.
    assert!(
        rewritten * 100 >= total * 50,
        "only {rewritten} of {total} queries were answered from rollups"
    );
}

#[tokio::test]
async fn explain_names_the_rollup_that_answers_and_the_table_otherwise() {
    let (_dir, store) = temp_store().await;
    let acme = tenant("acme");
    let mut rng = Rng(7);
    let start = day(START.0, START.1, START.2);
    let batch = ads(&mut rng, start, 5, 0..2, None);
    append(&store, &acme, batch).await;
    let session = store
        .session(&acme, &SessionLimits::default())
        .await
        .unwrap();
    let explain = |sql: &'static str| {
        let session = &session;
        async move {
            let batches = session.query(&format!("EXPLAIN {sql}")).await.unwrap();
            rows_of(&batches)
                .into_iter()
                .flatten()
                .map(|(s, _)| s)
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    let by_platform =
        explain("SELECT platform, sum(spend) FROM ad_performance GROUP BY platform").await;
    assert!(
        by_platform.contains("ad_performance_by_account_day"),
        "{by_platform}"
    );
    let by_campaign = explain("SELECT campaign_id, count(*) FROM ad_performance GROUP BY 1").await;
    assert!(
        by_campaign.contains("ad_performance_by_campaign_day"),
        "{by_campaign}"
    );
    let by_ad = explain("SELECT ad_id, sum(spend) FROM ad_performance GROUP BY 1").await;
    assert!(!by_ad.contains("_by_"), "{by_ad}");
    // Nothing about where the rollup is stored leaks into the plan.
    assert!(!by_platform.contains("_rollups"), "{by_platform}");
}

#[tokio::test]
async fn the_campaign_rollup_keeps_a_campaign_s_rows_together_each_month_in_small_pages() {
    use gyrus_engine::datafusion::arrow::array::AsArray;
    use gyrus_engine::datafusion::parquet::arrow::arrow_reader::{
        ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
    };
    use gyrus_engine::datafusion::parquet::file::metadata::PageIndexPolicy;

    let (dir, store) = temp_store().await;
    let acme = tenant("acme");
    let mut rng = Rng(11);
    // 90 days (three months) of 18 campaigns: 1,620 rollup rows.
    append(
        &store,
        &acme,
        ads(&mut rng, day(2026, 1, 1), 90, 0..2, None),
    )
    .await;
    let folder = dir
        .path()
        .join("tenants/acme/_rollups/ad_performance_by_campaign_day");
    let files: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
    let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(
        std::fs::File::open(&files[0]).unwrap(),
        options,
    )
    .unwrap();
    let pages: Vec<usize> = {
        let metadata = reader.metadata();
        let offsets = metadata.offset_index().expect("a page index");
        let rows = metadata.row_group(0).num_rows() as usize;
        let starts: Vec<usize> = offsets[0][0]
            .page_locations()
            .iter()
            .map(|p| p.first_row_index as usize)
            .chain([rows])
            .collect();
        starts.windows(2).map(|w| w[1] - w[0]).collect()
    };
    assert!(pages.len() >= 2, "{pages:?}");
    assert!(pages.iter().all(|&n| n <= 1024), "{pages:?}");

    let mut keys = Vec::new();
    for batch in reader.build().unwrap() {
        let batch = batch.unwrap();
        let dates = batch
            .column_by_name("date")
            .unwrap()
            .as_primitive::<gyrus_engine::datafusion::arrow::datatypes::Date32Type>()
            .clone();
        let campaigns = batch.column_by_name("campaign_id").unwrap().clone();
        let campaigns =
            gyrus_engine::datafusion::arrow::compute::cast(&campaigns, &DataType::Utf8).unwrap();
        let campaigns = campaigns.as_string::<i32>();
        for i in 0..batch.num_rows() {
            let date = day(1970, 1, 1) + chrono::Days::new(dates.value(i) as u64);
            let month = (
                chrono::Datelike::year(&date),
                chrono::Datelike::month(&date),
            );
            keys.push((month, campaigns.value(i).to_string(), date));
        }
    }
    assert_eq!(keys.len(), 90 * 18);
    assert!(
        keys.windows(2).all(|w| w[0] <= w[1]),
        "rows in (month, campaign, day) order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_compact_a_rollup_s_small_files_and_it_stays_in_use() {
    let (_dir, store) = temp_store().await;
    let acme = tenant("acme");
    let mut rng = Rng(5);
    let def = gyrus_engine::rollup::ROLLUPS
        .iter()
        .find(|d| d.name == "ad_performance_by_campaign_day")
        .unwrap();
    let url = store.rollup_url(&acme, def);
    let mut most = 0;
    for i in 0..9 {
        let from = day(2026, 1, 1) + chrono::Days::new(i * 3);
        append(&store, &acme, ads(&mut rng, from, 3, 0..2, None)).await;
        let rollup = store.load(&url).await.unwrap().unwrap();
        most = most.max(rollup.snapshot().unwrap().log_data().num_files());
    }
    assert!(most <= 4, "at most 4 small files stay: {most}");
    let rollup = store.load(&url).await.unwrap().unwrap();
    let operations: Vec<String> = futures::StreamExt::collect::<Vec<_>>(rollup.history(None))
        .await
        .into_iter()
        .filter_map(|commit| commit.unwrap().operation)
        .collect();
    assert!(operations.iter().any(|o| o == "OPTIMIZE"), "{operations:?}");
    // Compaction leaves the stamp: the rollup still answers, and the same.
    let rewritten = compare(&store, &acme, &mut rng, 40, "after compaction").await;
    assert!(rewritten >= 10, "{rewritten} of 40 from rollups");
}
