//! `optimize` lays out `ad_performance` for lookups: by week, then campaign,
//! ad group and ad. The data is unchanged (same answers, a commit that
//! changes no data, rollups still in use), one ad group's series decodes far
//! fewer rows, and a second `optimize` leaves the table alone.

use chrono::Days;
use gyrus_engine::schema::CanonicalTable;
use gyrus_engine::{SessionLimits, Store, TenantId};

use crate::common::{day, temp_store, tenant};
use crate::rollups::{Rng, ads, append};

/// The rows a scan decoded for `sql` (rows its filters then kept or
/// dropped), from `EXPLAIN ANALYZE`.
async fn decoded(store: &Store, tenant: &TenantId, sql: &str) -> f64 {
    let session = store
        .session(tenant, &SessionLimits::default())
        .await
        .unwrap();
    let batches = session
        .query(&format!("EXPLAIN ANALYZE {sql}"))
        .await
        .unwrap();
    let text = gyrus_engine::datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    let metric = |name: &str| -> f64 {
        text.match_indices(&format!("{name}="))
            .map(|(at, m)| {
                let rest = &text[at + m.len()..];
                let number: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.')
                    .collect();
                let value: f64 = number.parse().unwrap_or(0.0);
                match rest[number.len()..].trim_start().chars().next() {
                    Some('K') => value * 1e3,
                    Some('M') => value * 1e6,
                    _ => value,
                }
            })
            .sum()
    };
    metric("pushdown_rows_matched") + metric("pushdown_rows_pruned")
}

async fn answers(store: &Store, tenant: &TenantId, sql: &str) -> String {
    let session = store
        .session(tenant, &SessionLimits::default())
        .await
        .unwrap();
    let batches = session.query(sql).await.unwrap();
    gyrus_engine::datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimize_lays_ads_out_for_lookups_without_changing_data() {
    let (_dir, store) = temp_store().await;
    let acme = tenant("acme");
    let mut rng = Rng(21);
    // Six appends of ten days: 18 campaigns × 120 ads (60 ad groups each).
    for i in 0..6 {
        let rows = ads(
            &mut rng,
            day(2026, 1, 5) + Days::new(i * 10),
            10,
            0..120,
            None,
        );
        append(&store, &acme, rows).await;
    }
    let everything = "SELECT platform, account_id, campaign_id, ad_group_id, ad_id, date, impressions, \
        clicks, spend, conversions, conversion_value, video_views FROM ad_performance \
        ORDER BY platform, account_id, campaign_id, ad_group_id, ad_id, date";
    let lookup = "SELECT date, sum(clicks) AS clicks, sum(spend) AS spend FROM ad_performance \
        WHERE ad_group_id = 'meta_ads-1-c2-g37' GROUP BY date ORDER BY date";
    let (before, series) = (
        answers(&store, &acme, everything).await,
        answers(&store, &acme, lookup).await,
    );
    let read_before = decoded(&store, &acme, lookup).await;

    let reports = store.optimize(&acme).await.unwrap();
    let ads_report = reports
        .iter()
        .find(|r| r.table == CanonicalTable::AdPerformance)
        .unwrap();
    assert_eq!(ads_report.files_removed, 6, "{ads_report:?}");
    assert!(ads_report.files_added >= 1, "{ads_report:?}");

    assert_eq!(answers(&store, &acme, everything).await, before);
    assert_eq!(answers(&store, &acme, lookup).await, series);
    assert!(
        series.contains("2026-01-05") && series.contains("2026-03-05"),
        "{series}"
    );
    let read_after = decoded(&store, &acme, lookup).await;
    assert!(
        read_after * 3.0 < read_before,
        "one ad group's series decoded {read_after} rows after, {read_before} before"
    );

    // The rewrite changed no data: the rollups still agree and answer.
    let session = store
        .session(&acme, &SessionLimits::default())
        .await
        .unwrap();
    let plan = session
        .query("EXPLAIN SELECT platform, sum(spend) FROM ad_performance GROUP BY platform")
        .await
        .unwrap();
    let plan = gyrus_engine::datafusion::arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    assert!(plan.contains("ad_performance_by_account_day"), "{plan}");

    // Laid out and not written since: left alone.
    let again = store.optimize(&acme).await.unwrap();
    let ads_again = again
        .iter()
        .find(|r| r.table == CanonicalTable::AdPerformance)
        .unwrap();
    assert_eq!((ads_again.files_removed, ads_again.files_added), (0, 0));

    // A write after it: laid out again, with the new rows.
    let rows = ads(&mut rng, day(2026, 3, 10), 3, 0..120, None);
    append(&store, &acme, rows).await;
    let third = store.optimize(&acme).await.unwrap();
    let ads_third = third
        .iter()
        .find(|r| r.table == CanonicalTable::AdPerformance)
        .unwrap();
    assert!(ads_third.files_removed >= 2, "{ads_third:?}");
    let count = answers(&store, &acme, "SELECT count(*) AS n FROM ad_performance").await;
    assert!(count.contains(&(63 * 18 * 120).to_string()), "{count}");
}
