//! Segments: campaigns clustered on their performance profile (CTR,
//! conversion rate, CPA, ROAS, spend share, trend), k chosen by silhouette,
//! each cluster described by what sets it apart.

use chrono::NaiveDate;
use linfa::DatasetBase;
use linfa::prelude::{Fit as _, Predict as _, SilhouetteScore as _};
use linfa_clustering::KMeans;
use ndarray::Array2;

use super::data::CampaignTotals;
use super::explain::Names;
use super::insight::{Insight, InsightKind};

/// Campaigns needed before segments mean anything.
pub const MIN_CAMPAIGNS: usize = 6;
/// The most segments tried.
pub const MAX_SEGMENTS: usize = 6;

/// The profile's features: name, and whether "high" is good news.
const FEATURES: [(&str, bool); 6] = [
    ("CTR", true),
    ("conversion rate", true),
    ("CPA", false),
    ("ROAS", true),
    ("spend share", true),
    ("spend trend", true),
];

/// A campaign's profile: logs of its ratios (smoothed so that zeros stay
/// finite), of its spend share, and of its spend against the window before.
fn profile(c: &CampaignTotals, total_spend: f64) -> [f64; 6] {
    let ln_ratio = |n: f64, d: f64| ((n + 0.5) / (d + 1.0)).ln();
    [
        ln_ratio(c.clicks, c.impressions),
        ln_ratio(c.conversions, c.clicks),
        ln_ratio(c.spend, c.conversions),
        ln_ratio(c.conversion_value, c.spend),
        (c.spend / total_spend).ln(),
        ((c.spend + 1.0) / (c.spend_before + 1.0))
            .ln()
            .clamp(-3.0, 3.0),
    ]
}

/// The chosen clustering.
#[derive(Debug, Clone, PartialEq)]
pub struct Segmentation {
    pub labels: Vec<usize>,
    pub k: usize,
    pub silhouette: f64,
    /// Per segment, the mean standardised feature values.
    pub centres: Vec<[f64; 6]>,
}

/// Clusters standardised profiles with k-means for k = 2..=6 (at most a
/// third of the campaigns) and keeps the k with the best silhouette.
pub fn segment(totals: &[CampaignTotals]) -> Option<Segmentation> {
    let n = totals.len();
    if n < MIN_CAMPAIGNS {
        return None;
    }
    let total_spend: f64 = totals.iter().map(|c| c.spend).sum();
    let mut x = Array2::<f64>::zeros((n, FEATURES.len()));
    for (i, c) in totals.iter().enumerate() {
        for (j, v) in profile(c, total_spend).into_iter().enumerate() {
            x[[i, j]] = v;
        }
    }
    // Standardise; a feature all campaigns share carries no information.
    for mut column in x.columns_mut() {
        let mean = column.mean().unwrap_or(0.0);
        let sd = column.std(0.0);
        column.mapv_inplace(|v| if sd > 1e-12 { (v - mean) / sd } else { 0.0 });
    }
    let data = DatasetBase::from(x.clone());
    let mut best: Option<Segmentation> = None;
    for k in 2..=MAX_SEGMENTS.min(n / 3) {
        let Ok(model) = KMeans::params(k)
            .n_runs(10)
            .max_n_iterations(300)
            .tolerance(1e-6)
            .fit(&data)
        else {
            continue;
        };
        let labels = model.predict(&x);
        let Ok(silhouette) = DatasetBase::new(x.clone(), labels.clone()).silhouette_score() else {
            continue;
        };
        if best.as_ref().is_none_or(|b| silhouette > b.silhouette) {
            let centres = model
                .centroids()
                .rows()
                .into_iter()
                .map(|row| std::array::from_fn(|j| row[j]))
                .collect();
            best = Some(Segmentation {
                labels: labels.to_vec(),
                k,
                silhouette,
                centres,
            });
        }
    }
    best
}

/// What sets a segment apart: its two features furthest from the average
/// campaign, in words ("high ROAS, low CPA").
pub fn describe(centre: &[f64; 6]) -> String {
    let mut order: Vec<usize> = (0..FEATURES.len()).collect();
    order.sort_by(|&a, &b| centre[b].abs().total_cmp(&centre[a].abs()));
    let words: Vec<String> = order
        .into_iter()
        .take(2)
        .filter(|&j| centre[j].abs() >= 0.5)
        .map(|j| {
            let (name, _) = FEATURES[j];
            let (high, low) = match name {
                "spend trend" => ("growing spend", "shrinking spend"),
                "spend share" => ("large spend share", "small spend share"),
                _ => ("", ""),
            };
            match (centre[j] > 0.0, high.is_empty()) {
                (true, true) => format!("high {name}"),
                (false, true) => format!("low {name}"),
                (true, false) => high.to_string(),
                (false, false) => low.to_string(),
            }
        })
        .collect();
    if words.is_empty() {
        "close to the average campaign".into()
    } else {
        words.join(", ")
    }
}

/// One insight per campaign: its segment and what the segment is like.
pub fn segment_insights(
    totals: &[CampaignTotals],
    names: &Names,
    end: NaiveDate,
    days: u64,
) -> Vec<Insight> {
    let Some(s) = segment(totals) else {
        return Vec::new();
    };
    let sizes: Vec<usize> = (0..s.k)
        .map(|k| s.labels.iter().filter(|&&l| l == k).count())
        .collect();
    // Number segments by size, largest first, so "segment 1" is the main one.
    let mut rank: Vec<usize> = (0..s.k).collect();
    rank.sort_by(|&a, &b| sizes[b].cmp(&sizes[a]).then(a.cmp(&b)));
    let number = |label: usize| rank.iter().position(|&r| r == label).unwrap_or(label) + 1;
    totals
        .iter()
        .zip(&s.labels)
        .map(|(c, &label)| {
            let explanation = format!(
                "{} is in segment {} of {} ({} campaigns: {}) on its last {days} days; \
                 silhouette {:.2}",
                names.entity("campaign", &c.campaign_id),
                number(label),
                s.k,
                sizes[label],
                describe(&s.centres[label]),
                s.silhouette
            );
            Insight {
                score: s.silhouette,
                actual: Some(number(label) as f64),
                ..Insight::of(
                    InsightKind::Segment,
                    "campaign",
                    c.campaign_id.as_str(),
                    "profile",
                    end,
                    explanation,
                )
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign(id: usize, roas: f64, ctr: f64) -> CampaignTotals {
        CampaignTotals {
            campaign_id: format!("c{id}"),
            platform: "google_ads".into(),
            channel: "search".into(),
            spend: 1000.0 + id as f64,
            impressions: 100_000.0,
            clicks: 100_000.0 * ctr,
            conversions: 50.0,
            conversion_value: 1000.0 * roas,
            spend_before: 1000.0,
        }
    }

    #[test]
    fn two_clear_groups_are_found_and_described() {
        // Six campaigns with high ROAS and CTR, six with low.
        let mut totals: Vec<CampaignTotals> = (0..6)
            .map(|i| campaign(i, 6.0 + 0.1 * i as f64, 0.04))
            .collect();
        totals.extend((6..12).map(|i| campaign(i, 1.0 + 0.05 * i as f64, 0.01)));
        let s = segment(&totals).unwrap();
        assert_eq!(s.k, 2, "{s:?}");
        assert!(s.silhouette > 0.7, "{}", s.silhouette);
        assert!(s.labels[..6].iter().all(|&l| l == s.labels[0]));
        assert!(s.labels[6..].iter().all(|&l| l == s.labels[6]));
        assert_ne!(s.labels[0], s.labels[6]);
        let words = describe(&s.centres[s.labels[0]]);
        assert!(
            words.contains("high ROAS") || words.contains("high CTR"),
            "{words}"
        );
        let end = NaiveDate::from_ymd_opt(2026, 3, 14).unwrap();
        let insights = segment_insights(&totals, &Names::default(), end, 28);
        assert_eq!(insights.len(), 12);
        assert!(
            insights[0].explanation.contains("of 2 (6 campaigns"),
            "{}",
            insights[0].explanation
        );
    }

    #[test]
    fn too_few_campaigns_make_no_segments() {
        let totals: Vec<CampaignTotals> = (0..5).map(|i| campaign(i, 2.0, 0.02)).collect();
        assert!(segment(&totals).is_none());
    }
}
