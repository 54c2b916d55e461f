//! CURIOSITY's checks on the synthetic data, whose generator records every
//! anomaly and level shift it injected: precision and recall of anomalies
//! at the default sensitivity, and how close change points are dated.
//!
//! `cargo nextest run -p gyrus-models --test curiosity_checks --no-capture`
//! prints the figures.
//!
//! What counts:
//! - an injected spike or drop (one day, on one campaign) is recalled when
//!   an anomaly is reported on that campaign within a day of it, on any
//!   metric;
//! - a reported campaign anomaly is true when such an event is within a day
//!   of it, false otherwise (also near a launch, a pause or a level shift);
//! - a level shift is dated when a change point on that campaign, on one of
//!   the metrics it moved, is within 3 days of it.
//!
//! Drops divide a day's conversions by 5 to 20. On a campaign with a few
//! conversions a day that is indistinguishable from chance (0 conversions
//! where 5 were expected happens every five months by Poisson noise
//! alone), so recall is also given for the drops an exact Poisson test at
//! the same level could call: those where P(X ≤ actual | expected) <
//! α / 2n, with the expectation taken from the days around it.

use chrono::NaiveDate;
use gyrus_datasets::{AnomalyTruth, GeneratorConfig, Scale, generate};
use gyrus_engine::session::{SessionLimits, TenantSession};
use gyrus_engine::{Store, TenantId};
use gyrus_models::curiosity::data::load_names;
use gyrus_models::curiosity::detect::{Sensitivity, scan};
use gyrus_models::curiosity::insight::{Insight, InsightKind};
use gyrus_models::curiosity::scan::scan_tenant;
use gyrus_models::oracle::data::{Metric, TenantSeries, load_series};
use gyrus_models::special::poisson_lower_tail;

/// Tenants (seeds) of `medium` data: 16 campaigns over a year each.
const SEEDS: std::ops::RangeInclusive<u64> = 1..=12;

#[derive(Default)]
struct Tally {
    spikes: (usize, usize),
    drops: (usize, usize),
    detectable_drops: (usize, usize),
    detections: usize,
    true_detections: usize,
    shifts: (usize, usize),
}

fn near(a: NaiveDate, b: NaiveDate, days: i64) -> bool {
    (a - b).num_days().abs() <= days
}

fn count(pair: &mut (usize, usize), hit: bool) {
    pair.1 += 1;
    if hit {
        pair.0 += 1;
    }
}

fn ratio(pair: (usize, usize)) -> f64 {
    pair.0 as f64 / pair.1.max(1) as f64
}

/// Whether an exact Poisson test at the default level could call a drop
/// of this campaign's conversions on this day.
fn detectable(series: &TenantSeries, event: &AnomalyTruth, s: &Sensitivity) -> bool {
    let Some(conversions) = series.series.iter().find(|x| {
        x.entity_type == "campaign"
            && x.entity_id == event.campaign_id
            && x.metric == Metric::Conversions
    }) else {
        return false;
    };
    let t = (event.date - conversions.start).num_days() as usize;
    let Some(scan) = scan(&conversions.values, Some(1.0), None, s) else {
        return false;
    };
    let n = conversions.values.len() as f64;
    poisson_lower_tail(conversions.values[t], scan.decomposed.expected[t]) < s.alpha / (2.0 * n)
}

fn tally(truth: &[AnomalyTruth], series: &TenantSeries, insights: &[Insight], t: &mut Tally) {
    let s = Sensitivity::default();
    let anomalies: Vec<&Insight> = insights
        .iter()
        .filter(|i| i.entity_type == "campaign" && i.kind == InsightKind::Anomaly)
        .collect();
    let one_day = |a: &&AnomalyTruth| a.kind != "level_shift";
    for event in truth.iter().filter(one_day) {
        let hit = anomalies
            .iter()
            .any(|i| i.entity_id == event.campaign_id && near(i.date, event.date, 1));
        if event.kind == "spike" {
            count(&mut t.spikes, hit);
        } else {
            count(&mut t.drops, hit);
            if detectable(series, event, &s) {
                count(&mut t.detectable_drops, hit);
            }
        }
    }
    for i in &anomalies {
        t.detections += 1;
        let matched = truth
            .iter()
            .filter(one_day)
            .any(|e| e.campaign_id == i.entity_id && near(i.date, e.date, 1));
        if matched {
            t.true_detections += 1;
        } else {
            eprintln!("false positive: {}", i.explanation);
        }
    }
    for shift in truth.iter().filter(|a| a.kind == "level_shift") {
        let dated = insights.iter().any(|i| {
            i.kind == InsightKind::Changepoint
                && i.entity_type == "campaign"
                && i.entity_id == shift.campaign_id
                && shift.metrics.contains(&i.metric)
                && near(i.date, shift.date, 3)
        });
        count(&mut t.shifts, dated);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anomalies_and_change_points_match_the_injected_truth() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
    let mut t = Tally::default();
    for seed in SEEDS {
        let data = generate(&GeneratorConfig::new(seed, Scale::Medium));
        let tenant = TenantId::new(format!("t{seed}")).unwrap();
        data.load(&store, &tenant, |_| {}).await.unwrap();
        let series = load_series(&store, &tenant).await.unwrap();
        let tables = store.tenant_tables(&tenant).await.unwrap();
        let session = TenantSession::new(&tables, &SessionLimits::default()).unwrap();
        let names = load_names(&session).await.unwrap();
        let scan = scan_tenant(&series, &names, &Sensitivity::default(), &|| {});
        tally(&data.truth.anomalies, &series, &scan.insights, &mut t);
    }
    let precision = t.true_detections as f64 / t.detections.max(1) as f64;
    let all = (t.spikes.0 + t.drops.0, t.spikes.1 + t.drops.1);
    let callable = (
        t.spikes.0 + t.detectable_drops.0,
        t.spikes.1 + t.detectable_drops.1,
    );
    println!(
        "synthetic (medium, seeds {SEEDS:?}): anomaly precision {precision:.3} ({}/{}); \
         recall {:.3} ({}/{}): spikes {:.3} ({}/{}), drops {:.3} ({}/{}), drops a Poisson \
         test can call {:.3} ({}/{}); recall of callable events {:.3} ({}/{}); level shifts \
         dated within 3 days {:.3} ({}/{})",
        t.true_detections,
        t.detections,
        ratio(all),
        all.0,
        all.1,
        ratio(t.spikes),
        t.spikes.0,
        t.spikes.1,
        ratio(t.drops),
        t.drops.0,
        t.drops.1,
        ratio(t.detectable_drops),
        t.detectable_drops.0,
        t.detectable_drops.1,
        ratio(callable),
        callable.0,
        callable.1,
        ratio(t.shifts),
        t.shifts.0,
        t.shifts.1,
    );
    assert!(precision >= 0.9, "precision {precision:.3}");
    assert!(
        ratio(callable) >= 0.9,
        "recall of callable events {:.3}",
        ratio(callable)
    );
    assert!(
        ratio(t.shifts) >= 0.9,
        "change points dated {:.3}",
        ratio(t.shifts)
    );
}
