//! `ad_performance`: campaigns that launch and pause, seasonality, trend,
//! spend driving conversions through geometric adstock and a Hill curve,
//! noise, and injected anomalies on known dates.

use std::f64::consts::TAU;
use std::sync::Arc;

use chrono::{Datelike, Days, NaiveDate};
use gyrus_engine::datafusion::arrow::array::{
    ArrayRef, Date32Builder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
};
use gyrus_engine::schema::CanonicalTable;
use rand::rngs::StdRng;
use rand::{Rng, RngExt as _};
use rand_distr::{Distribution, LogNormal, Poisson};
use rayon::prelude::*;

use crate::noise::{CampaignNoise, NoiseShape, campaign_noise, day_factor, uneven_budget};
use crate::truth::{AnomalyTruth, CampaignTruth};
use crate::{GeneratorConfig, Shape, canonical_batch, money, money_builder};

/// Platforms in the order rows are written (alphabetical, as the sort key wants).
const PLATFORMS: [(&str, &str, &str); 5] = [
    ("google_ads", "gads", "Google"),
    ("linkedin_ads", "li", "LinkedIn"),
    ("meta_ads", "meta", "Meta"),
    ("tiktok_ads", "tt", "TikTok"),
    ("youtube_ads", "yt", "YouTube"),
];
const THEMES: [&str; 10] = [
    "Brand",
    "Generic",
    "Competitor",
    "Retargeting",
    "Prospecting",
    "Lookalike",
    "Holiday",
    "Spring Sale",
    "Product Launch",
    "Always On",
];
/// Rows per written chunk, at most.
const CHUNK_ROWS: usize = 1_000_000;

fn channels(platform: &str) -> &'static [&'static str] {
    match platform {
        "google_ads" => &["search", "shopping", "display"],
        "tiktok_ads" => &["video", "social"],
        "youtube_ads" => &["video"],
        _ => &["social"],
    }
}

/// (cost per mille, click-through rate, weekly profile Monday..Sunday) per channel.
fn channel_economics(channel: &str) -> (f64, f64, [f64; 7]) {
    match channel {
        "search" => (28.0, 0.045, [1.08, 1.08, 1.06, 1.04, 0.98, 0.86, 0.90]),
        "shopping" => (14.0, 0.018, [1.00, 0.98, 0.98, 1.00, 1.02, 1.00, 1.02]),
        "display" => (4.0, 0.004, [1.02, 1.02, 1.00, 1.00, 0.98, 0.98, 1.00]),
        "video" => (11.0, 0.006, [0.94, 0.94, 0.96, 0.98, 1.04, 1.08, 1.06]),
        _ => (8.5, 0.012, [0.96, 0.96, 0.98, 1.00, 1.02, 1.04, 1.04]),
    }
}

/// A campaign to simulate: its truth and the ids below it.
struct Plan {
    truth: CampaignTruth,
    ads: Vec<(String, String)>,
    video: bool,
    fractional: bool,
    anomaly: Option<AnomalyTruth>,
    /// Noise beyond the standard shape, and the events it made.
    noise: CampaignNoise,
    events: Vec<AnomalyTruth>,
}

/// The rows of one campaign, day by day (`day_start[d]..day_start[d + 1]` are day d's).
#[derive(Default)]
struct CampaignRows {
    day_start: Vec<usize>,
    ad: Vec<u32>,
    impressions: Vec<i64>,
    clicks: Vec<i64>,
    spend: Vec<i128>,
    conversions: Vec<f64>,
    value: Vec<i128>,
    video_views: Vec<Option<i64>>,
    /// Active days that delivered nothing (a noise shape's missing days).
    missing: Vec<usize>,
}

fn uniform(rng: &mut StdRng, lo: f64, hi: f64) -> f64 {
    rng.random_range(lo..hi)
}

fn log_normal(rng: &mut StdRng, median: f64, sigma: f64) -> f64 {
    LogNormal::new(median.ln(), sigma).map_or(median, |d| d.sample(rng))
}

/// A Poisson draw that tolerates a zero or non-finite mean.
fn poisson(rng: &mut impl Rng, mean: f64) -> f64 {
    if mean.is_finite() && mean > 0.0 {
        Poisson::new(mean).map_or(0.0, |d| d.sample(rng))
    } else {
        0.0
    }
}

fn plan_campaigns(config: &GeneratorConfig, shape: &Shape) -> Vec<Plan> {
    let mut rng = config.rng(1);
    // Draws of the noise shapes come from their own streams, so the
    // standard shape's data does not depend on them.
    let mut budgets = config.rng(7);
    let start = config.start_date();
    let days = shape.days as u64;
    let mut plans = Vec::new();
    for (platform, prefix, label) in PLATFORMS {
        for a in 1..=shape.accounts {
            let account_id = format!("{prefix}-{a:04}");
            for c in 1..=shape.campaigns {
                let campaign_id = format!("{account_id}-c{c:03}");
                let channel = channels(platform)[rng.random_range(0..channels(platform).len())];
                let theme = THEMES[rng.random_range(0..THEMES.len())];
                let (base_cpm, base_ctr, base_weekly) = channel_economics(channel);
                let launch_offset = if rng.random_bool(0.7) {
                    0
                } else {
                    rng.random_range(0..(days * 6 / 10).max(1))
                };
                let launch_date = start + Days::new(launch_offset);
                let paused_from = (rng.random_bool(0.25) && days > launch_offset + 40)
                    .then(|| start + Days::new(rng.random_range(launch_offset + 30..days)));
                let mut daily_budget = log_normal(&mut rng, 250.0, 0.7);
                if config.noise == NoiseShape::Uneven {
                    daily_budget = uneven_budget(&mut budgets, daily_budget);
                }
                let adstock_decay = uniform(&mut rng, 0.15, 0.7);
                let steady_adstock = daily_budget / (1.0 - adstock_decay);
                let target_cpa = uniform(&mut rng, 20.0, 90.0);
                let weekly_noise: Vec<f64> =
                    (0..7).map(|_| uniform(&mut rng, 0.97, 1.03)).collect();
                let mut weekly = [0.0; 7];
                for (w, (b, n)) in weekly.iter_mut().zip(base_weekly.iter().zip(&weekly_noise)) {
                    *w = b * n;
                }
                let mean: f64 = weekly.iter().sum::<f64>() / 7.0;
                weekly.iter_mut().for_each(|w| *w /= mean);
                let n_ads = shape.ad_groups * shape.ads;
                let raw: Vec<f64> = (0..n_ads).map(|_| uniform(&mut rng, 0.3, 1.7)).collect();
                let total: f64 = raw.iter().sum();
                let ad_weights: Vec<f64> = raw.iter().map(|w| w / total).collect();
                let ads = (1..=shape.ad_groups)
                    .flat_map(|g| {
                        let campaign_id = &campaign_id;
                        (1..=shape.ads).map(move |d| {
                            let group = format!("{campaign_id}-g{g:02}");
                            let ad = format!("{group}-a{d:02}");
                            (group, ad)
                        })
                    })
                    .collect();
                let truth = CampaignTruth {
                    platform: platform.into(),
                    account_id: account_id.clone(),
                    campaign_id: campaign_id.clone(),
                    campaign_name: format!("{label} {channel} | {theme} {a:02}-{c:02}"),
                    channel: channel.into(),
                    launch_date,
                    paused_from,
                    daily_budget,
                    trend_per_year: uniform(&mut rng, -0.15, 0.35),
                    weekly,
                    yearly_amplitude: uniform(&mut rng, 0.05, 0.3),
                    yearly_phase: uniform(&mut rng, 0.0, TAU),
                    adstock_decay,
                    hill_half_saturation: steady_adstock * uniform(&mut rng, 0.6, 1.8),
                    hill_shape: uniform(&mut rng, 1.0, 2.5),
                    max_conversions: daily_budget / target_cpa * uniform(&mut rng, 1.6, 3.0),
                    cpm: base_cpm * uniform(&mut rng, 0.7, 1.3),
                    ctr: base_ctr * uniform(&mut rng, 0.7, 1.3),
                    value_per_conversion: uniform(&mut rng, 40.0, 220.0),
                    ad_weights,
                };
                plans.push(Plan {
                    video: channel == "video",
                    fractional: matches!(platform, "google_ads" | "meta_ads"),
                    truth,
                    ads,
                    anomaly: None,
                    noise: CampaignNoise::default(),
                    events: Vec::new(),
                });
            }
        }
    }
    inject_anomalies(config, &mut plans, &mut rng);
    add_noise(config, shape, &mut plans);
    plans
}

/// An event of a noise shape on a campaign; it moves every metric.
fn event(t: &CampaignTruth, date: NaiveDate, kind: &str, factor: f64) -> AnomalyTruth {
    AnomalyTruth {
        platform: t.platform.clone(),
        account_id: t.account_id.clone(),
        campaign_id: t.campaign_id.clone(),
        date,
        kind: kind.into(),
        metrics: [
            "spend",
            "impressions",
            "clicks",
            "conversions",
            "conversion_value",
        ]
        .map(String::from)
        .to_vec(),
        factor,
    }
}

/// Draws each campaign's noise for the config's shape and records the
/// budget changes and slope changes it makes.
fn add_noise(config: &GeneratorConfig, shape: &Shape, plans: &mut [Plan]) {
    let start = config.start_date();
    let day = |d: usize| start + Days::new(d as u64);
    for (i, plan) in plans.iter_mut().enumerate() {
        let t = &plan.truth;
        let index =
            |date: NaiveDate| (date - start).num_days().clamp(0, shape.days as i64) as usize;
        let active = index(t.launch_date)..t.paused_from.map_or(shape.days, index);
        let mut rng = config.rng(60_000 + i as u64);
        plan.noise = campaign_noise(config.noise, &mut rng, active, plan.anomaly.is_some());
        let mut level = 1.0;
        for &(d, m) in &plan.noise.budget_steps {
            plan.events
                .push(event(t, day(d), "budget_change", m / level));
            level = m;
        }
        if let Some((from, days, factor)) = plan.noise.ramp {
            plan.events
                .push(event(t, day(from), "slope_change", factor));
            plan.events
                .push(event(t, day(from + days), "slope_change", factor));
        }
    }
}

/// One anomaly of each kind on the first campaigns long enough to hold one,
/// then one on about one campaign in eight.
fn inject_anomalies(config: &GeneratorConfig, plans: &mut [Plan], rng: &mut StdRng) {
    let end = config.end_date + Days::new(1);
    let kinds = ["spike", "drop", "level_shift"];
    let mut forced = 0;
    for plan in plans.iter_mut() {
        let t = &plan.truth;
        let first = t.launch_date + Days::new(21);
        let last = t.paused_from.unwrap_or(end) - Days::new(10);
        if last <= first {
            continue;
        }
        let kind = if forced < kinds.len() {
            forced += 1;
            kinds[forced - 1]
        } else if rng.random_bool(0.125) {
            kinds[rng.random_range(0..kinds.len())]
        } else {
            continue;
        };
        let span = (last - first).num_days() as u64;
        let date = first + Days::new(rng.random_range(0..span.max(1)));
        let (metrics, factor): (&[&str], f64) = match kind {
            "spike" => (
                &["clicks", "conversions", "conversion_value"],
                uniform(rng, 2.5, 4.0),
            ),
            "drop" => (
                &["conversions", "conversion_value"],
                uniform(rng, 0.05, 0.2),
            ),
            _ => (
                &["spend", "impressions", "clicks"],
                *[0.5, 1.7].get(rng.random_range(0..2)).unwrap_or(&1.7),
            ),
        };
        plan.anomaly = Some(AnomalyTruth {
            platform: t.platform.clone(),
            account_id: t.account_id.clone(),
            campaign_id: t.campaign_id.clone(),
            date,
            kind: kind.into(),
            metrics: metrics.iter().map(|m| m.to_string()).collect(),
            factor,
        });
    }
}

fn simulate(config: &GeneratorConfig, days: usize, index: usize, plan: &Plan) -> CampaignRows {
    let mut rng = config.rng(1_000 + index as u64);
    let mut extra = config.rng(70_000 + index as u64);
    let noise = &plan.noise;
    let t = &plan.truth;
    let start = config.start_date();
    let mut rows = CampaignRows {
        day_start: Vec::with_capacity(days + 1),
        ..Default::default()
    };
    let mut adstock = 0.0;
    for d in 0..days {
        rows.day_start.push(rows.ad.len());
        let date = start + Days::new(d as u64);
        let active = date >= t.launch_date && t.paused_from.is_none_or(|p| date < p);
        let years = d as f64 / 365.25;
        let cycle = (TAU * date.ordinal() as f64 / 365.25 + t.yearly_phase).sin();
        let wave = 1.0 + t.yearly_amplitude * cycle;
        let spend_wave = 1.0 + t.yearly_amplitude * noise.spend_wave * cycle;
        let anomaly = plan.anomaly.as_ref();
        let factor_on = |metric: &str| {
            anomaly
                .filter(|a| a.metrics.iter().any(|m| m == metric))
                .filter(|a| {
                    if a.kind == "level_shift" {
                        date >= a.date
                    } else {
                        date == a.date
                    }
                })
                .map_or(1.0, |a| a.factor)
        };
        let missing = active
            && noise.missing_day > 0.0
            && extra.random_bool(noise.missing_day)
            && anomaly.is_none_or(|a| a.date != date);
        let spend = if active && !missing {
            let mut jitter = log_normal(&mut rng, 1.0, 0.12);
            if let Some(sigma) = noise.spend_sigma {
                // The same draw, rescaled: log-σ 0.12 becomes σ.
                jitter = jitter.powf(sigma / 0.12);
            }
            t.daily_budget
                * (1.0 + t.trend_per_year).powf(years)
                * t.weekly[date.weekday().num_days_from_monday() as usize]
                * spend_wave
                * jitter
                * noise.spend_factor(d)
                * factor_on("spend")
        } else {
            0.0
        };
        if missing {
            rows.missing.push(d);
        }
        adstock = spend + t.adstock_decay * adstock;
        if !active || missing {
            continue;
        }
        let saturation = adstock.powf(t.hill_shape)
            / (adstock.powf(t.hill_shape) + t.hill_half_saturation.powf(t.hill_shape));
        let expected_conversions =
            t.max_conversions * wave * saturation * day_factor(&mut extra, noise.conversion_sigma);
        let ctr_today = t.ctr * day_factor(&mut extra, noise.ctr_sigma);
        let (impression_f, click_f, conversion_f, value_f) = (
            factor_on("impressions") / factor_on("spend"),
            factor_on("clicks") / factor_on("spend"),
            factor_on("conversions"),
            factor_on("conversion_value") / factor_on("conversions"),
        );
        for (ad, weight) in t.ad_weights.iter().enumerate() {
            let ad_spend = spend * weight;
            let impressions = poisson(&mut rng, ad_spend / t.cpm * 1000.0 * impression_f);
            let clicks = poisson(&mut rng, impressions * ctr_today * click_f);
            let mut conversions = poisson(&mut rng, expected_conversions * weight * conversion_f);
            if plan.fractional && conversions > 0.0 {
                conversions = (conversions * uniform(&mut rng, 0.9, 1.1) * 100.0).round() / 100.0;
            }
            let value = if conversions > 0.0 {
                conversions
                    * t.value_per_conversion
                    * log_normal(&mut rng, 1.0, 0.25)
                    * value_f
                    * day_factor(&mut extra, noise.value_sigma)
            } else {
                0.0
            };
            rows.ad.push(ad as u32);
            rows.impressions.push(impressions as i64);
            rows.clicks.push(clicks as i64);
            rows.spend.push(money(ad_spend));
            rows.conversions.push(conversions);
            rows.value.push(money(value));
            rows.video_views.push(
                plan.video
                    .then(|| (impressions * uniform(&mut rng, 0.2, 0.35)).round() as i64),
            );
        }
    }
    rows.day_start.push(rows.ad.len());
    rows
}

/// Generates the campaigns, their rows in date-ordered chunks, and the truth.
pub(crate) fn generate(
    config: &GeneratorConfig,
    shape: &Shape,
) -> (Vec<RecordBatch>, Vec<CampaignTruth>, Vec<AnomalyTruth>) {
    let plans = plan_campaigns(config, shape);
    let simulated: Vec<CampaignRows> = plans
        .par_iter()
        .enumerate()
        .map(|(i, plan)| simulate(config, shape.days, i, plan))
        .collect();
    let total: usize = simulated.iter().map(|r| r.ad.len()).sum();
    let per_day = total.div_ceil(shape.days.max(1)).max(1);
    let chunk_days = (CHUNK_ROWS / per_day).clamp(1, shape.days.max(1));
    let chunks: Vec<(usize, usize)> = (0..shape.days)
        .step_by(chunk_days)
        .map(|d0| (d0, (d0 + chunk_days).min(shape.days)))
        .collect();
    let batches = chunks
        .par_iter()
        .map(|&(d0, d1)| build_chunk(config, &plans, &simulated, d0, d1))
        .filter(|b| b.num_rows() > 0)
        .collect();
    let start = config.start_date();
    let mut anomalies: Vec<AnomalyTruth> = plans
        .iter()
        .zip(&simulated)
        .flat_map(|(p, rows)| {
            let missing = rows
                .missing
                .iter()
                .map(|&d| event(&p.truth, start + Days::new(d as u64), "missing_day", 0.0));
            p.anomaly
                .iter()
                .cloned()
                .chain(p.events.iter().cloned())
                .chain(missing)
        })
        .collect();
    anomalies.sort_by(|a, b| (&a.campaign_id, a.date).cmp(&(&b.campaign_id, b.date)));
    let campaigns = plans.into_iter().map(|p| p.truth).collect();
    (batches, campaigns, anomalies)
}

fn build_chunk(
    config: &GeneratorConfig,
    plans: &[Plan],
    rows: &[CampaignRows],
    d0: usize,
    d1: usize,
) -> RecordBatch {
    let n: usize = rows.iter().map(|r| r.day_start[d1] - r.day_start[d0]).sum();
    let mut platform = StringBuilder::with_capacity(n, n * 10);
    let mut account = StringBuilder::with_capacity(n, n * 9);
    let mut campaign = StringBuilder::with_capacity(n, n * 14);
    let mut name = StringBuilder::with_capacity(n, n * 30);
    let mut group = StringBuilder::with_capacity(n, n * 18);
    let mut ad = StringBuilder::with_capacity(n, n * 22);
    let mut channel = StringBuilder::with_capacity(n, n * 7);
    let mut date = Date32Builder::with_capacity(n);
    let mut impressions = Int64Builder::with_capacity(n);
    let mut clicks = Int64Builder::with_capacity(n);
    let decimal = || money_builder(n);
    let (mut spend, mut value) = (decimal(), decimal());
    let mut currency = StringBuilder::with_capacity(n, n * 3);
    let mut conversions = Float64Builder::with_capacity(n);
    let mut video_views = Int64Builder::with_capacity(n);
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let start = (config.start_date() - epoch).num_days() as i32;
    for d in d0..d1 {
        for (plan, r) in plans.iter().zip(rows) {
            let t = &plan.truth;
            for i in r.day_start[d]..r.day_start[d + 1] {
                let (group_id, ad_id) = &plan.ads[r.ad[i] as usize];
                platform.append_value(&t.platform);
                account.append_value(&t.account_id);
                campaign.append_value(&t.campaign_id);
                name.append_value(&t.campaign_name);
                group.append_value(group_id);
                ad.append_value(ad_id);
                channel.append_value(&t.channel);
                date.append_value(start + d as i32);
                impressions.append_value(r.impressions[i]);
                clicks.append_value(r.clicks[i]);
                spend.append_value(r.spend[i]);
                currency.append_value(&config.currency);
                conversions.append_value(r.conversions[i]);
                value.append_value(r.value[i]);
                video_views.append_option(r.video_views[i]);
            }
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(platform.finish()),
        Arc::new(account.finish()),
        Arc::new(campaign.finish()),
        Arc::new(name.finish()),
        Arc::new(group.finish()),
        Arc::new(ad.finish()),
        Arc::new(channel.finish()),
        Arc::new(date.finish()),
        Arc::new(impressions.finish()),
        Arc::new(clicks.finish()),
        Arc::new(spend.finish()),
        Arc::new(currency.finish()),
        Arc::new(conversions.finish()),
        Arc::new(value.finish()),
        Arc::new(video_views.finish()),
    ];
    canonical_batch(CanonicalTable::AdPerformance, columns)
}
