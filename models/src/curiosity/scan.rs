//! Anomalies and change points over every series of a tenant: each entity's
//! counts and amounts, and the ratios built from them, judged with their
//! denominators. Entities run in parallel with Rayon.

use std::collections::{BTreeMap, HashMap};

use chrono::{Days, NaiveDate};
use rayon::prelude::*;

use super::detect::{self, MIN_DAYS, Sensitivity};
use super::explain::{Names, change, format_value, metric_label, severity};
use super::insight::{Insight, InsightKind};
use crate::series::{Metric, Series, TenantSeries};

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

/// The one ratio that is not a forecastable [`Metric`] of its own.
pub const CONVERSION_RATE: &str = "conversion_rate";

/// The ratios CURIOSITY judges.
pub const RATIOS: [Ratio; 5] = [
    Ratio {
        name: Metric::Ctr.as_str(),
        numerator: Metric::Clicks,
        denominator: Metric::Impressions,
        count_is_numerator: true,
    },
    Ratio {
        name: CONVERSION_RATE,
        numerator: Metric::Conversions,
        denominator: Metric::Clicks,
        count_is_numerator: true,
    },
    Ratio {
        name: Metric::Cpc.as_str(),
        numerator: Metric::Spend,
        denominator: Metric::Clicks,
        count_is_numerator: false,
    },
    Ratio {
        name: Metric::Cpa.as_str(),
        numerator: Metric::Spend,
        denominator: Metric::Conversions,
        count_is_numerator: false,
    },
    Ratio {
        name: Metric::Roas.as_str(),
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
            let dates = (c.days.0 < c.days.1).then(|| (date(c.days.0), date(c.days.1)));
            let explanation = if let Some(until) = c.until {
                format!(
                    "{what} on {label} moved {direction} {} over the {} days from {} to {}: {} a \
                     day before, {} after",
                    change(c.before, c.after),
                    until - c.index,
                    date(c.index),
                    date(until),
                    format_value(name, c.before),
                    format_value(name, c.after)
                )
            } else if let Some((was, now)) = c.slope {
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
                let range = match dates {
                    Some((first, last)) => format!(
                        " (likeliest day; 9 times in 10 it came between {first} and {last})"
                    ),
                    None => String::new(),
                };
                format!(
                    "{what} on {label} shifted {direction} {} from {}{range}: {} a day before, \
                     {} after",
                    change(c.before, c.after),
                    date(c.index),
                    format_value(name, c.before),
                    format_value(name, c.after)
                )
            };
            out.insights.push(Insight {
                severity: severity(c.before, c.after),
                score: c.statistic,
                expected: Some(c.before),
                actual: Some(c.after),
                dates,
                ..Insight::of(
                    InsightKind::Changepoint,
                    entity.entity_type,
                    entity.entity_id,
                    name,
                    date(c.index),
                    explanation,
                )
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
        let unit = if ratio.name == Metric::Roas.as_str() {
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
            if ratio.name == Metric::Roas.as_str()
                && enough.as_ref().is_some_and(|enough| !enough(t))
            {
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
    keep_explained_value_days(entity, s, &mut out.insights);
    out
}

/// Value is conversions times value per conversion. A day whose value (or
/// ROAS) is unusual is news when its conversions were (the count's own
/// anomaly, or its rate's), or when its value per conversion is unusual
/// against that campaign's own, judged on the log scale (order values
/// multiply; a store whose orders range from 20 to 2,000 makes 10× days
/// out of three large orders). Other value days are dropped: the count
/// says nothing, and the order sizes are what they always are.
fn keep_explained_value_days(entity: &Entity, s: &Sensitivity, insights: &mut Vec<Insight>) {
    const VALUE: [&str; 2] = [Metric::ConversionValue.as_str(), Metric::Roas.as_str()];
    const COUNT: [&str; 3] = [
        Metric::Conversions.as_str(),
        CONVERSION_RATE,
        Metric::Cpa.as_str(),
    ];
    let is_value_anomaly =
        |i: &Insight| i.kind == InsightKind::Anomaly && VALUE.contains(&i.metric.as_str());
    if !insights.iter().any(is_value_anomaly) {
        return;
    }
    let (Some(value), Some(conversions)) = (
        entity.series.get(&Metric::ConversionValue),
        entity.series.get(&Metric::Conversions),
    ) else {
        return;
    };
    if value.start != conversions.start || value.values.len() != conversions.values.len() {
        return;
    }
    // Log value per conversion on days with conversions enough to average.
    let per_conversion = |t: usize| {
        let (v, c) = (value.values[t], conversions.values[t]);
        (c >= s.min_count && v > 0.0).then(|| (v / c).ln())
    };
    let logs: Vec<f64> = (0..value.values.len()).filter_map(per_conversion).collect();
    let mut sorted = logs.clone();
    let centre = detect::median(&mut sorted);
    let deviations: Vec<f64> = logs.iter().map(|l| l - centre).collect();
    let scale = detect::tail_scale(&deviations);
    let counted: std::collections::HashSet<NaiveDate> = insights
        .iter()
        .filter(|i| i.kind == InsightKind::Anomaly && COUNT.contains(&i.metric.as_str()))
        .map(|i| i.date)
        .collect();
    insights.retain(|i| {
        if !is_value_anomaly(i) || counted.contains(&i.date) {
            return true;
        }
        let t = (i.date - value.start).num_days();
        let unusual = usize::try_from(t)
            .ok()
            .filter(|&t| t < value.values.len())
            .and_then(per_conversion)
            .is_some_and(|l| (l - centre).abs() >= s.min_statistic * scale);
        // Too few days to know the usual order size: the finding stands.
        logs.len() < MIN_DAYS || unusual
    });
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
        severity: severity(expected, actual),
        score: statistic,
        expected: Some(expected),
        actual: Some(actual),
        ..Insight::of(
            InsightKind::Anomaly,
            entity.entity_type,
            entity.entity_id,
            metric,
            date,
            explanation,
        )
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curiosity::test_noise::normal;
    use gyrus_engine::TenantId;

    fn series(metric: Metric, values: Vec<f64>) -> Series {
        Series {
            entity_type: "campaign".into(),
            entity_id: "c1".into(),
            metric,
            start: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            values,
        }
    }

    /// Days of a campaign's value anomalies (value and ROAS).
    fn value_days(conversions: &[f64], value: &[f64]) -> Vec<usize> {
        let data = TenantSeries {
            tenant: TenantId::new("t").unwrap(),
            end: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + Days::new(364),
            series: vec![
                series(Metric::Spend, vec![100.0; 365]),
                series(Metric::Conversions, conversions.to_vec()),
                series(Metric::ConversionValue, value.to_vec()),
            ],
            input_versions: BTreeMap::new(),
        };
        let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let mut days: Vec<usize> =
            scan_tenant(&data, &Names::default(), &Sensitivity::default(), &|| {})
                .insights
                .iter()
                .filter(|i| i.kind == InsightKind::Anomaly)
                .filter(|i| i.metric == "conversion_value" || i.metric == "roas")
                .map(|i| (i.date - start).num_days() as usize)
                .collect();
        days.sort_unstable();
        days.dedup();
        days
    }

    /// A scan of a tenant with one campaign's spend, a year from
    /// 2026-01-01, at the default sensitivity.
    fn scan_spend(spend: Vec<f64>) -> TenantScan {
        let data = TenantSeries {
            tenant: TenantId::new("t").unwrap(),
            end: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + Days::new(364),
            series: vec![series(Metric::Spend, spend)],
            input_versions: BTreeMap::new(),
        };
        scan_tenant(&data, &Names::default(), &Sensitivity::default(), &|| {})
    }

    #[test]
    fn a_shift_in_noisy_spend_says_between_which_days_it_came() {
        // Spend around 400 a day with ±30% daily noise, doubled from day
        // 200: the change point on spend states the range of days its
        // step may lie in, holding day 200, and its explanation says it.
        let spend: Vec<f64> = (0..365)
            .map(|t| {
                let level = if t >= 200 { 800.0 } else { 400.0 };
                level * (0.3 * normal(t + 7) - 0.045).exp()
            })
            .collect();
        let day = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + Days::new(200);
        let found = scan_spend(spend);
        let shift = found
            .insights
            .iter()
            .find(|i| i.kind == InsightKind::Changepoint && i.metric == "spend")
            .expect("the step is found");
        let (first, last) = shift.dates.expect("a range of days");
        assert!(first <= day && day <= last, "{first}..={last}");
        assert!(first <= shift.date && shift.date <= last);
        assert!(
            shift
                .explanation
                .contains(&format!("came between {first} and {last}")),
            "{}",
            shift.explanation
        );
    }

    #[test]
    fn a_ramp_in_noisy_spend_says_over_which_days_it_came() {
        // Spend around 400 a day with ±30% daily noise, doubled over the
        // six weeks from day 150: too gradual a bend to call at either end
        // in that noise, it is told by the four weeks either side, as a
        // change over days within the ramp (a week's leeway).
        let spend: Vec<f64> = (0..365)
            .map(|t| {
                let level = 400.0 * 2f64.powf(((t as f64 - 150.0) / 42.0).clamp(0.0, 1.0));
                level * (0.3 * normal(t + 7) - 0.045).exp()
            })
            .collect();
        let day = |t: u64| NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + Days::new(t);
        let found = scan_spend(spend);
        let changes: Vec<&Insight> = found
            .insights
            .iter()
            .filter(|i| i.kind == InsightKind::Changepoint && i.metric == "spend")
            .collect();
        assert_eq!(changes.len(), 1, "{changes:?}");
        let ramp = changes[0];
        let (first, last) = ramp.dates.expect("the days it came over");
        assert!(
            day(143) <= first && first < last && last <= day(199),
            "{first}..={last}"
        );
        assert_eq!(ramp.date, first);
        assert!(
            ramp.explanation.contains(&format!(
                "moved up {} over the",
                change(ramp.expected.unwrap(), ramp.actual.unwrap())
            )) && ramp
                .explanation
                .contains(&format!("from {first} to {last}")),
            "{}",
            ramp.explanation
        );
    }

    #[test]
    fn value_days_are_news_when_their_conversions_or_order_sizes_are() {
        // About 10 conversions a day over three ads, each ad's value per
        // conversion log-normal per day with σ 1.2 (orders of very
        // different size); a day of 3.5× the conversions on day 200.
        let mut conversions: Vec<f64> = (0..365)
            .map(|t| (10.0 + 3.2 * normal(t)).round().max(0.0))
            .collect();
        conversions[200] = (conversions[200] * 3.5).round();
        let mut value: Vec<f64> = conversions
            .iter()
            .enumerate()
            .map(|(t, c)| {
                (0..3)
                    .map(|ad| {
                        let sigma = 1.2;
                        c / 3.0
                            * 50.0
                            * (sigma * normal(10_000 + 3 * t + ad) - sigma * sigma / 2.0).exp()
                    })
                    .sum::<f64>()
            })
            .collect();
        let days = value_days(&conversions, &value);
        // Only the conversions' day, if value is told at all: the large
        // order days are what this store's orders always are.
        assert!(days.iter().all(|&t| t == 200), "{days:?}");
        // A day whose orders are a thousand times their median size is
        // news even against that tail.
        value[120] = conversions[120] * 50.0 * 1000.0;
        let days = value_days(&conversions, &value);
        assert!(days.contains(&120), "{days:?}");
    }
}
