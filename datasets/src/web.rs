//! `web_sessions` (GA4): paid traffic follows the ad platforms' clicks,
//! organic, direct and email traffic follow the same weekly and yearly waves.

use std::f64::consts::TAU;
use std::sync::Arc;

use chrono::{Datelike, Days, NaiveDate};
use gyrus_engine::datafusion::arrow::array::{
    ArrayRef, Date32Builder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
};
use gyrus_engine::schema::CanonicalTable;
use rand::RngExt as _;

use crate::truth::CampaignTruth;
use crate::{GeneratorConfig, canonical_batch, money, money_builder};

/// GA4 source / medium of each ad platform's traffic.
pub(crate) fn paid_source(platform: &str) -> (&'static str, &'static str) {
    match platform {
        "google_ads" => ("google", "cpc"),
        "meta_ads" => ("facebook", "paid_social"),
        "linkedin_ads" => ("linkedin", "paid_social"),
        "tiktok_ads" => ("tiktok", "paid_social"),
        _ => ("youtube", "video"),
    }
}

pub(crate) fn generate(config: &GeneratorConfig, campaigns: &[CampaignTruth]) -> RecordBatch {
    let mut rng = config.rng(2);
    let start = config.start_date();
    let days = (config.end_date - start).num_days() as u64 + 1;
    let property = format!("properties/{}", 300_000_000 + config.seed % 100_000_000);
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let organic_base = 40.0 * campaigns.len() as f64;
    let conversion_rate = 0.025;
    let order_value = 85.0;

    let mut date = Date32Builder::new();
    let mut property_id = StringBuilder::new();
    let (mut source, mut medium, mut campaign) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let (mut sessions, mut users, mut new_users, mut engaged) = (
        Int64Builder::new(),
        Int64Builder::new(),
        Int64Builder::new(),
        Int64Builder::new(),
    );
    let mut conversions = Float64Builder::new();
    let mut revenue = money_builder(0);
    let mut currency = StringBuilder::new();

    for d in 0..days {
        let day = start + Days::new(d);
        let wave = 1.0 + 0.15 * (TAU * day.ordinal() as f64 / 365.25).sin();
        let weekend = day.weekday().num_days_from_monday() >= 5;
        let mut streams: Vec<(String, String, String, f64)> = Vec::new();
        // Paid: campaigns active that day, by platform, near their daily budget / CPC.
        for t in campaigns {
            let active = day >= t.launch_date && t.paused_from.is_none_or(|p| day < p);
            if !active {
                continue;
            }
            let (src, med) = paid_source(&t.platform);
            let clicks = t.daily_budget / t.cpm * 1000.0 * t.ctr;
            streams.push((
                src.into(),
                med.into(),
                t.campaign_name.clone(),
                clicks * 0.85 * wave,
            ));
        }
        let organic_weekday = if weekend { 0.8 } else { 1.05 };
        streams.push((
            "google".into(),
            "organic".into(),
            "(organic)".into(),
            organic_base * wave * organic_weekday,
        ));
        streams.push((
            "(direct)".into(),
            "(none)".into(),
            "(not set)".into(),
            organic_base * 0.6 * wave,
        ));
        streams.push((
            "newsletter".into(),
            "email".into(),
            "weekly".into(),
            organic_base
                * 0.15
                * if day.weekday().num_days_from_monday() == 1 {
                    4.0
                } else {
                    0.5
                },
        ));
        for (src, med, camp, mean) in streams {
            let s = (mean * rng.random_range(0.85..1.15)).round().max(0.0);
            let u = (s * rng.random_range(0.75..0.9)).round();
            let conv = (s * conversion_rate * rng.random_range(0.7..1.3)).round();
            date.append_value((day - epoch).num_days() as i32);
            property_id.append_value(&property);
            source.append_value(src);
            medium.append_value(med);
            campaign.append_value(camp);
            sessions.append_value(s as i64);
            users.append_value(u as i64);
            new_users.append_value((u * rng.random_range(0.4..0.7)).round() as i64);
            engaged.append_value((s * rng.random_range(0.45..0.65)).round() as i64);
            conversions.append_value(conv);
            revenue.append_value(money(conv * order_value * rng.random_range(0.8..1.2)));
            currency.append_value(&config.currency);
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(date.finish()),
        Arc::new(property_id.finish()),
        Arc::new(source.finish()),
        Arc::new(medium.finish()),
        Arc::new(campaign.finish()),
        Arc::new(sessions.finish()),
        Arc::new(users.finish()),
        Arc::new(new_users.finish()),
        Arc::new(engaged.finish()),
        Arc::new(conversions.finish()),
        Arc::new(revenue.finish()),
        Arc::new(currency.finish()),
    ];
    canonical_batch(CanonicalTable::WebSessions, columns)
}
