//! Benchmarks: each campaign's CTR, CPC, CPA and ROAS as a percentile among
//! its peers (same platform and channel) over the recent window. They are
//! context rather than alarms: their severity is at most 0.5.

use chrono::NaiveDate;

use super::data::CampaignTotals;
use super::explain::{Names, format_value, metric_label, platform_label};
use super::insight::{Insight, InsightKind};

/// Peers a campaign needs (itself included) to be ranked.
pub const MIN_PEERS: usize = 3;

/// The benchmarked metrics: value from totals, and whether higher is better.
type Benchmark = (&'static str, fn(&CampaignTotals) -> Option<f64>, bool);

const BENCHMARKS: [Benchmark; 4] = [
    ("ctr", |c| ratio(c.clicks, c.impressions), true),
    ("cpc", |c| ratio(c.spend, c.clicks), false),
    ("cpa", |c| ratio(c.spend, c.conversions), false),
    ("roas", |c| ratio(c.conversion_value, c.spend), true),
];

fn ratio(n: f64, d: f64) -> Option<f64> {
    (d > 0.0).then(|| n / d).filter(|r| r.is_finite())
}

/// Percentile of `value` among `peers` (itself included): the share of
/// peers it beats, ties counting half, in [0, 100].
pub fn percentile(value: f64, peers: &[f64], higher_is_better: bool) -> f64 {
    let (mut beaten, mut tied) = (0.0, 0.0);
    for &p in peers {
        if p == value {
            tied += 1.0;
        } else if (p < value) == higher_is_better {
            beaten += 1.0;
        }
    }
    // The campaign ties with itself; that tie does not count.
    let others = peers.len() as f64 - 1.0;
    if others <= 0.0 {
        return 50.0;
    }
    100.0 * (beaten + 0.5 * (tied - 1.0)) / others
}

/// One insight per campaign and metric with enough peers.
pub fn benchmarks(
    totals: &[CampaignTotals],
    names: &Names,
    end: NaiveDate,
    days: u64,
) -> Vec<Insight> {
    let mut out = Vec::new();
    for (metric, value_of, higher_is_better) in BENCHMARKS {
        for c in totals {
            let Some(value) = value_of(c) else { continue };
            let peers: Vec<f64> = totals
                .iter()
                .filter(|p| p.platform == c.platform && p.channel == c.channel)
                .filter_map(value_of)
                .collect();
            if peers.len() < MIN_PEERS {
                continue;
            }
            let p = percentile(value, &peers, higher_is_better);
            let mut sorted = peers.clone();
            sorted.sort_by(f64::total_cmp);
            let median = sorted[sorted.len() / 2];
            let (label, _) = metric_label(metric);
            let explanation = format!(
                "{label} of {} is {}, better than {p:.0}% of its {} {} {} peers (median {}) \
                 over the {days} days to {end}",
                names.entity("campaign", &c.campaign_id),
                format_value(metric, value),
                peers.len() - 1,
                platform_label(&c.platform),
                c.channel,
                format_value(metric, median),
            );
            out.push(Insight {
                // Context, not an alarm: at most 0.5, at the extremes.
                severity: (p - 50.0).abs() / 100.0,
                score: p,
                expected: Some(median),
                actual: Some(value),
                ..Insight::of(
                    InsightKind::Benchmark,
                    "campaign",
                    c.campaign_id.as_str(),
                    metric,
                    end,
                    explanation,
                )
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_rank_by_what_is_better() {
        let peers = [10.0, 20.0, 30.0, 40.0, 50.0];
        assert_eq!(percentile(50.0, &peers, true), 100.0);
        assert_eq!(percentile(10.0, &peers, true), 0.0);
        assert_eq!(percentile(10.0, &peers, false), 100.0);
        assert_eq!(percentile(30.0, &peers, true), 50.0);
        assert_eq!(percentile(20.0, &[20.0, 20.0, 30.0], true), 25.0);
    }

    #[test]
    fn campaigns_are_ranked_within_platform_and_channel() {
        let c = |id: &str, platform: &str, spend: f64, value: f64| CampaignTotals {
            campaign_id: id.into(),
            platform: platform.into(),
            channel: "search".into(),
            spend,
            impressions: 1000.0,
            clicks: 100.0,
            conversions: 10.0,
            conversion_value: value,
            spend_before: spend,
        };
        let totals = vec![
            c("a", "google_ads", 100.0, 400.0),
            c("b", "google_ads", 100.0, 200.0),
            c("c", "google_ads", 100.0, 100.0),
            c("d", "meta_ads", 100.0, 900.0),
        ];
        let end = NaiveDate::from_ymd_opt(2026, 3, 14).unwrap();
        let found = benchmarks(&totals, &Names::default(), end, 28);
        // 3 Google campaigns × 4 metrics; the Meta one has no peers.
        assert_eq!(found.len(), 12);
        let roas_a = found
            .iter()
            .find(|i| i.entity_id == "a" && i.metric == "roas")
            .unwrap();
        assert_eq!(roas_a.score, 100.0);
        assert_eq!(roas_a.expected, Some(2.0));
        assert!(
            roas_a
                .explanation
                .contains("better than 100% of its 2 Google Ads search peers")
        );
    }
}
