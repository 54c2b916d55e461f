//! Anomalies and change points over every series of a tenant: each entity's
//! counts and amounts, and the ratios built from them, judged with their
//! denominators. Entities run in parallel with Rayon.

use std::collections::{BTreeMap, HashMap};

use chrono::{Days, NaiveDate};
use rayon::prelude::*;

use super::detect::{self, MIN_DAYS, Sensitivity};
use super::explain::{Names, change, format_value, metric_label, severity};
use super::insight::{Insight, InsightKind};
use crate::oracle::data::{Metric, Series, TenantSeries};

/// A ratio and the count it is judged on.
#[derive(Debug, Clone, Copy)]
pub struct Ratio {
    pub name: &'static str,
    pub numerator: Metric,
    pub denominator: Metric,
    /// Whether the judged count is the numerator (CTR: clicks) or the
    /// denominator (CPA: conversions); the other part is the exposure.
    pub count_is_numerator: bool,
}

/// The ratios CURIOSITY judges.
pub const RATIOS: [Ratio; 5] = [
    Ratio {
        name: "ctr",
        numerator: Metric::Clicks,
        denominator: Metric::Impressions,
        count_is_numerator: true,
    },
    Ratio {
        name: "conversion_rate",
        numerator: Metric::Conversions,
        denominator: Metric::Clicks,
        count_is_numerator: true,
    },
    Ratio {
        name: "cpc",
        numerator: Metric::Spend,
        denominator: Metric::Clicks,
        count_is_numerator: false,
    },
    Ratio {
        name: "cpa",
        numerator: Metric::Spend,
        denominator: Metric::Conversions,
        count_is_numerator: false,
    },
    Ratio {
        name: "roas",
        numerator: Metric::ConversionValue,
        denominator: Metric::Spend,
        count_is_numerator: true,
    },
];

/// What a tenant's scan found.
#[derive(Debug, Clone, Default)]
pub struct TenantScan {
    pub insights: Vec<Insight>,
    /// Series judged (counts, amounts and ratios).
    pub series_scanned: usize,
    /// Series too short to judge (under two weeks).
    pub series_too_short: usize,
    /// How well the run hears on this data ([`super::quality`]).
    pub quality: Option<super::quality::RunQuality>,
}

/// The size of one event of `metric` on `entity`, if it counts events: 1
/// for counts, the mean value of a conversion for conversion value.
fn unit_of(metric: Metric, entity: &Entity) -> Option<f64> {
    match metric {
        Metric::Impressions | Metric::Clicks | Metric::Conversions | Metric::Sessions => Some(1.0),
        Metric::ConversionValue => value_per_conversion(entity),
        _ => None,
    }
}

fn value_per_conversion(entity: &Entity) -> Option<f64> {
    let value = entity.series.get(&Metric::ConversionValue)?;
    let conversions = entity.series.get(&Metric::Conversions)?;
    let unit = value.values.iter().sum::<f64>() / conversions.values.iter().sum::<f64>();
    (unit.is_finite() && unit > 0.0).then_some(unit)
}

/// One entity's series by metric.
struct Entity<'a> {
    entity_type: &'a str,
    entity_id: &'a str,
    series: BTreeMap<Metric, &'a Series>,
}

/// Scans every series of a tenant.
pub fn scan_tenant(
    data: &TenantSeries,
    names: &Names,
    s: &Sensitivity,
    progress: &(dyn Fn() + Sync),
) -> TenantScan {
    let mut entities: BTreeMap<(&str, &str), Entity> = BTreeMap::new();
    for series in &data.series {
        if series.metric.parts().is_some() {
            continue;
        }
        entities
            .entry((&series.entity_type, &series.entity_id))
            .or_insert_with(|| Entity {
                entity_type: &series.entity_type,
                entity_id: &series.entity_id,
                series: BTreeMap::new(),
            })
            .series
            .insert(series.metric, series);
    }
    let parts: Vec<TenantScan> = entities
        .values()
        .collect::<Vec<_>>()
        .par_iter()
        .map(|entity| {
            let scan = scan_entity(entity, names, s);
            progress();
            scan
        })
        .collect();
    let mut out = TenantScan::default();
    for part in parts {
        out.insights.extend(part.insights);
        out.series_scanned += part.series_scanned;
        out.series_too_short += part.series_too_short;
    }
    add_context(&mut out.insights, names);
    out
}

fn scan_entity(entity: &Entity, names: &Names, s: &Sensitivity) -> TenantScan {
    let mut out = TenantScan::default();
    let label = names.entity(entity.entity_type, entity.entity_id);
    let mut expected: BTreeMap<Metric, Vec<f64>> = BTreeMap::new();
    // An entity that spends is active while it spends: all its series stop
    // and restart with its spend.
    let spend = entity.series.get(&Metric::Spend);
    let spend_spans = spend.map(|spend| detect::active_spans(&spend.values, f64::MIN_POSITIVE));
    for (&metric, series) in &entity.series {
        let spans = spend
            .filter(|spend| {
                spend.start == series.start && spend.values.len() == series.values.len()
            })
            .and(spend_spans.as_deref());
        let Some(mut scan) = detect::scan(&series.values, unit_of(metric, entity), spans, s) else {
            out.series_too_short += 1;
            continue;
        };
        // A stop or restart of the entity's spend is told once, on spend.
        if metric != Metric::Spend && spans.is_some() {
            scan.change_points
                .retain(|c| c.before != 0.0 && c.after != 0.0);
        }
        // Value comes in orders of very different size: a day's value is
        // news only on a day with conversions enough to average over.
        if metric == Metric::ConversionValue
            && let Some(conversions) = entity.series.get(&Metric::Conversions)
        {
            let enough = enough_events(&conversions.values, s.min_count);
            scan.anomalies.retain(|a| enough(a.index));
        }
        out.series_scanned += 1;
        let date = |t: usize| series.start + Days::new(t as u64);
        let name = metric.as_str();
        for a in &scan.anomalies {
            out.insights.push(anomaly(
                entity,
                &label,
                name,
                date(a.index),
                a.expected,
                a.actual,
                a.statistic,
            ));
        }
        for c in &scan.change_points {
            let (what, _) = metric_label(name);
            let direction = if c.after > c.before { "up" } else { "down" };
            let explanation = if let Some((was, now)) = c.slope {
                let pct = |v: f64| format!("{:+.1}%", 100.0 * v);
                format!(
                    "{what} on {label} changed trend on {}: {} a day before, {} a day after \
                     ({} a day four weeks on where the old trend led to {})",
                    date(c.index),
                    pct(was),
                    pct(now),
                    format_value(name, c.after),
                    format_value(name, c.before)
                )
            } else if c.after == 0.0 {
                format!(
                    "{what} on {label} stopped on {}: {} a day before, none since",
                    date(c.index),
                    format_value(name, c.before)
                )
            } else if c.before == 0.0 {
                format!(
                    "{what} on {label} restarted on {} at {} a day, after {} days without",
                    date(c.index),
                    format_value(name, c.after),
                    c.statistic
                )
            } else {
                format!(
                    "{what} on {label} shifted {direction} {} from {}: {} a day before, {} after",
                    change(c.before, c.after),
                    date(c.index),
                    format_value(name, c.before),
                    format_value(name, c.after)
                )
            };
            out.insights.push(Insight {
                kind: InsightKind::Changepoint,
                entity_type: entity.entity_type.to_string(),
                entity_id: entity.entity_id.to_string(),
                metric: name.to_string(),
                date: date(c.index),
                severity: severity(c.before, c.after),
                score: c.statistic,
                expected: Some(c.before),
                actual: Some(c.after),
                explanation,
            });
        }
        expected.insert(metric, scan.decomposed.expected);
    }
    for ratio in RATIOS {
        let (Some(n), Some(d)) = (
            entity.series.get(&ratio.numerator),
            entity.series.get(&ratio.denominator),
        ) else {
            continue;
        };
        let (Some(en), Some(ed)) = (
            expected.get(&ratio.numerator),
            expected.get(&ratio.denominator),
        ) else {
            continue;
        };
        if n.start != d.start || n.values.len() != d.values.len() || n.values.len() < MIN_DAYS {
            continue;
        }
        let (count, exposure, ec, ee) = if ratio.count_is_numerator {
            (&n.values, &d.values, en, ed)
        } else {
            (&d.values, &n.values, ed, en)
        };
        // One event of conversion value is a conversion's worth of it.
        let unit = if ratio.name == "roas" {
            value_per_conversion(entity)
        } else {
            Some(1.0)
        };
        let Some(unit) = unit else { continue };
        out.series_scanned += 1;
        let spans = detect::active_spans(exposure, f64::MIN_POSITIVE);
        let excluded = |t: usize| detect::outside_or_ramp(&spans, t);
        let conversions = entity.series.get(&Metric::Conversions);
        let enough = conversions.map(|c| enough_events(&c.values, s.min_count));
        for (t, statistic) in detect::ratio_anomalies(&excluded, count, exposure, ec, ee, unit, s) {
            if ratio.name == "roas" && enough.as_ref().is_some_and(|enough| !enough(t)) {
                continue;
            }
            let actual = n.values[t] / d.values[t];
            let expected_ratio = en[t] / ed[t];
            if !(actual.is_finite() && expected_ratio.is_finite()) {
                continue;
            }
            let day = n.start + Days::new(t as u64);
            out.insights.push(anomaly(
                entity,
                &label,
                ratio.name,
                day,
                expected_ratio,
                actual,
                statistic,
            ));
        }
    }
    out
}

/// Whether day t had, or usually has (the median of the four weeks
/// around it), at least `least` events.
fn enough_events(events: &[f64], least: f64) -> impl Fn(usize) -> bool + '_ {
    move |t| {
        let around = &events[t.saturating_sub(14)..(t + 15).min(events.len())];
        let mut around = around.to_vec();
        events[t] >= least || detect::median(&mut around) >= least
    }
}

fn anomaly(
    entity: &Entity,
    label: &str,
    metric: &str,
    date: NaiveDate,
    expected: f64,
    actual: f64,
    statistic: f64,
) -> Insight {
    let (what, _) = metric_label(metric);
    let explanation = if actual > expected {
        format!(
            "{what} on {label} rose to {} on {date}, {} above the expected {}",
            format_value(metric, actual),
            change(expected, actual),
            format_value(metric, expected)
        )
    } else {
        format!(
            "{what} on {label} fell {} on {date} against an expected {} (actual {})",
            change(expected, actual),
            format_value(metric, expected),
            format_value(metric, actual)
        )
    };
    Insight {
        kind: InsightKind::Anomaly,
        entity_type: entity.entity_type.to_string(),
        entity_id: entity.entity_id.to_string(),
        metric: metric.to_string(),
        date,
        severity: severity(expected, actual),
        score: statistic,
        expected: Some(expected),
        actual: Some(actual),
        explanation,
    }
}

/// Adds to each finding on an account, platform, channel or the business how
/// many of its campaigns show the same finding (same kind, metric, day and
/// direction; change points within three days).
fn add_context(insights: &mut [Insight], names: &Names) {
    let mut children: HashMap<(&str, String), usize> = HashMap::new();
    for c in names.campaigns.values() {
        for key in [
            ("business", "all".to_string()),
            ("account", c.account_id.clone()),
            ("platform", c.platform.clone()),
            ("channel", c.channel.clone()),
        ] {
            *children.entry(key).or_default() += 1;
        }
    }
    let campaign_findings: Vec<(InsightKind, String, NaiveDate, bool, String)> = insights
        .iter()
        .filter(|i| i.entity_type == "campaign")
        .map(|i| {
            let up = i.actual.unwrap_or(0.0) > i.expected.unwrap_or(0.0);
            (i.kind, i.metric.clone(), i.date, up, i.entity_id.clone())
        })
        .collect();
    for insight in insights.iter_mut().filter(|i| i.entity_type != "campaign") {
        let Some(&total) = children.get(&(insight.entity_type.as_str(), insight.entity_id.clone()))
        else {
            continue;
        };
        let up = insight.actual.unwrap_or(0.0) > insight.expected.unwrap_or(0.0);
        let slack = if insight.kind == InsightKind::Changepoint {
            3
        } else {
            0
        };
        let same = campaign_findings
            .iter()
            .filter(|(kind, metric, date, dir, id)| {
                *kind == insight.kind
                    && *metric == insight.metric
                    && *dir == up
                    && (*date - insight.date).num_days().abs() <= slack
                    && names
                        .campaigns
                        .get(id)
                        .is_some_and(|c| match insight.entity_type.as_str() {
                            "account" => c.account_id == insight.entity_id,
                            "platform" => c.platform == insight.entity_id,
                            "channel" => c.channel == insight.entity_id,
                            _ => true,
                        })
            })
            .count();
        insight.explanation.push_str(&format!(
            "; {same} of {total} campaign{} {} the same way",
            if total == 1 { "" } else { "s" },
            if insight.kind == InsightKind::Changepoint {
                "shifted"
            } else {
                "moved"
            }
        ));
    }
}
