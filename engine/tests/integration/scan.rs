//! The engine reads its Delta tables with its own scan of the snapshot's
//! files ([`gyrus_engine::scan`]): it must answer exactly what deltalake's
//! provider answers over the same table (same schema, same rows), and skip
//! the files a filter rules out.

use std::sync::Arc;

use chrono::Days;
use gyrus_engine::datafusion::arrow::util::pretty::pretty_format_batches;
use gyrus_engine::datafusion::catalog::TableProvider;
use gyrus_engine::datafusion::prelude::SessionContext;
use gyrus_engine::schema::CanonicalTable;

use crate::common::{day, temp_store, tenant};
use crate::rollups::{Rng, ads, append};

/// A context over one table, `ad_performance`, read by `provider`.
fn context(provider: Arc<dyn TableProvider>) -> SessionContext {
    let ctx = SessionContext::new();
    ctx.register_table("ad_performance", provider).unwrap();
    ctx
}

async fn answer(ctx: &SessionContext, sql: &str) -> String {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let schema = batches.first().map(|b| {
        b.schema()
            .fields()
            .iter()
            .map(|f| format!("{}:{}:{}", f.name(), f.data_type(), f.is_nullable()))
            .collect::<Vec<_>>()
            .join(",")
    });
    format!("{schema:?}\n{}", pretty_format_batches(&batches).unwrap())
}

/// The data files the physical plan of `sql` reads.
async fn files_read(ctx: &SessionContext, sql: &str) -> usize {
    let plan = ctx
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let text = gyrus_engine::datafusion::physical_plan::displayable(plan.as_ref())
        .indent(true)
        .to_string();
    text.lines()
        .filter(|l| l.contains("DataSourceExec"))
        .map(|l| l.matches(".parquet").count())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_scan_answers_as_deltalake_does_and_skips_files() {
    let (_dir, store) = temp_store().await;
    let acme = tenant("acme");
    let start = day(2026, 3, 1);
    let mut rng = Rng(7);
    // Three appends of ten days each: three data files with disjoint dates.
    for part in 0..3u64 {
        append(
            &store,
            &acme,
            ads(&mut rng, start + Days::new(10 * part), 10, 0..3, None),
        )
        .await;
    }
    let delta = store
        .table(&acme, CanonicalTable::AdPerformance)
        .await
        .unwrap()
        .unwrap();
    let ours = gyrus_engine::scan::provider(&delta).await.unwrap();
    let theirs = delta.table_provider().await.unwrap();
    assert_eq!(ours.schema(), theirs.schema(), "the table's schema as read");
    let (ours, theirs) = (context(ours), context(theirs));

    let d = |n: u64| (start + Days::new(n)).format("DATE '%Y-%m-%d'").to_string();
    let queries = [
        "SELECT count(*) FROM ad_performance".to_string(),
        "SELECT * FROM ad_performance ORDER BY date, ad_id".to_string(),
        format!(
            "SELECT count(*), sum(spend), sum(clicks) FROM ad_performance WHERE date = {}",
            d(4)
        ),
        format!(
            "SELECT date, platform, sum(spend) AS spend, sum(conversions) AS conv, count(*) AS n \
             FROM ad_performance WHERE date BETWEEN {} AND {} GROUP BY 1, 2 ORDER BY 1, 2",
            d(8),
            d(12)
        ),
        format!(
            "SELECT campaign_id, min(date), max(date), sum(video_views) FROM ad_performance \
             WHERE date >= {} AND campaign_id = 'meta_ads-1-c2' GROUP BY 1 ORDER BY 1",
            d(25)
        ),
        format!(
            "SELECT count(*) FROM ad_performance WHERE date IN ({}, {}, {})",
            d(1),
            d(15),
            d(40)
        ),
        "SELECT count(*) FROM ad_performance WHERE date > DATE '2030-01-01'".to_string(),
        "SELECT ad_id FROM ad_performance WHERE date > DATE '2030-01-01'".to_string(),
        "SELECT count(*), count(video_views) FROM ad_performance WHERE video_views IS NULL"
            .to_string(),
        "SELECT count(*) FROM ad_performance WHERE campaign_id > 'meta' AND campaign_id < 'tiktok'"
            .to_string(),
        "SELECT count(*) FROM ad_performance WHERE spend > 4.5 AND currency = 'EUR'".to_string(),
        "SELECT platform, ad_id FROM ad_performance ORDER BY spend DESC, ad_id, date LIMIT 7"
            .to_string(),
        "SELECT count(*) FROM (SELECT * FROM ad_performance LIMIT 5)".to_string(),
        format!(
            "SELECT date, sum(sum(clicks)) OVER (ORDER BY date ROWS 6 PRECEDING) \
             FROM ad_performance WHERE date < {} GROUP BY date ORDER BY date",
            d(20)
        ),
    ];
    for sql in &queries {
        assert_eq!(
            answer(&ours, sql).await,
            answer(&theirs, sql).await,
            "{sql}"
        );
    }

    let all = "SELECT sum(clicks) FROM ad_performance";
    assert_eq!(files_read(&ours, all).await, 3, "{all}");
    let one_day = format!(
        "SELECT sum(clicks) FROM ad_performance WHERE date = {}",
        d(14)
    );
    assert_eq!(files_read(&ours, &one_day).await, 1, "{one_day}");
    let two = format!(
        "SELECT sum(clicks) FROM ad_performance WHERE date BETWEEN {} AND {}",
        d(5),
        d(15)
    );
    assert_eq!(files_read(&ours, &two).await, 2, "{two}");
    let none = "SELECT sum(clicks) FROM ad_performance WHERE date < DATE '2020-01-01'";
    assert_eq!(files_read(&ours, none).await, 0, "{none}");
}
