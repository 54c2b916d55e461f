//! Movers and drivers: a metric's change between two periods, split into
//! the contributions of each value of a dimension (platform, channel,
//! account, campaign, ad group), adding up to the total change.
//!
//! For a sum (spend, conversions) a value's contribution is its own change.
//! For a ratio R = N / D (CPA = spend / conversions) with values i:
//!
//! ```text
//! R_B − R_A = Σ_i (ΔN_i − R_A ΔD_i) / D_B
//!           = Σ_i [ (r_iB − r_iA) D_iB / D_B      rate: the value's own ratio moved
//!                 + (r_iA − R_A) ΔD_i / D_B ]     mix:  its volume moved, and its ratio
//!                                                       differs from the whole's
//! ```
//!
//! so "CPA rose because cheap campaigns lost volume" is a positive mix
//! effect of campaigns with r_iA < R_A and ΔD_i < 0, and "because their
//! conversion rates fell" a positive rate effect. Values without a
//! denominator in period A have no ratio there; their whole contribution is
//! rate. Sums are exact up to floating-point rounding.

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use gyrus_engine::session::TenantSession;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// A metric drivers can split: a column of `ad_performance`, or a ratio of
/// two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverMetric {
    pub name: &'static str,
    pub numerator: &'static str,
    /// `None` for a sum.
    pub denominator: Option<&'static str>,
}

/// The metrics drivers know.
pub const DRIVER_METRICS: [DriverMetric; 10] = [
    sum("spend"),
    sum("impressions"),
    sum("clicks"),
    sum("conversions"),
    sum("conversion_value"),
    ratio("ctr", "clicks", "impressions"),
    ratio("cpc", "spend", "clicks"),
    ratio("cpa", "spend", "conversions"),
    ratio("roas", "conversion_value", "spend"),
    ratio("conversion_rate", "conversions", "clicks"),
];

const fn sum(name: &'static str) -> DriverMetric {
    DriverMetric {
        name,
        numerator: name,
        denominator: None,
    }
}

const fn ratio(
    name: &'static str,
    numerator: &'static str,
    denominator: &'static str,
) -> DriverMetric {
    DriverMetric {
        name,
        numerator,
        denominator: Some(denominator),
    }
}

impl DriverMetric {
    pub fn parse(name: &str) -> Result<Self> {
        DRIVER_METRICS
            .into_iter()
            .find(|m| m.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = DRIVER_METRICS.iter().map(|m| m.name).collect();
                ModelError::Invalid(format!(
                    "unknown metric `{name}`: use one of {}",
                    known.join(", ")
                ))
            })
    }
}

/// The dimensions a change can be split by, and their column.
pub const DIMENSIONS: [(&str, &str); 5] = [
    ("platform", "platform"),
    ("channel", "channel"),
    ("account", "account_id"),
    ("campaign", "campaign_id"),
    ("ad_group", "ad_group_id"),
];

fn dimension_column(name: &str) -> Result<&'static str> {
    DIMENSIONS
        .iter()
        .find(|(d, _)| *d == name)
        .map(|(_, column)| *column)
        .ok_or_else(|| {
            let known: Vec<&str> = DIMENSIONS.iter().map(|(d, _)| *d).collect();
            ModelError::Invalid(format!(
                "unknown dimension `{name}`: use one of {}",
                known.join(", ")
            ))
        })
}

/// Days from `start` to `end`, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl Period {
    fn check(&self, name: &str) -> Result<()> {
        if self.end < self.start {
            return Err(ModelError::Invalid(format!(
                "{name} ends ({}) before it starts ({})",
                self.end, self.start
            )));
        }
        Ok(())
    }
}

/// One dimension value's numerator and denominator in both periods.
#[derive(Debug, Clone, PartialEq)]
pub struct Parts {
    pub key: String,
    pub label: Option<String>,
    pub numerator_a: f64,
    pub denominator_a: f64,
    pub numerator_b: f64,
    pub denominator_b: f64,
}

/// One dimension value's part of the change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contribution {
    pub value: String,
    /// A readable name (the campaign's), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The value's metric in each period (its own ratio for a ratio; `None`
    /// without a denominator).
    pub a: Option<f64>,
    pub b: Option<f64>,
    pub contribution: f64,
    /// Ratios only: the parts of `contribution` due to volume moving
    /// between values (mix) and to the value's own ratio moving (rate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mix: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// `contribution` as a share of the total change.
    pub share_of_change: f64,
}

/// A change split over the values of one dimension.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Split {
    pub total_a: f64,
    pub total_b: f64,
    pub change: f64,
    /// Largest |contribution| first.
    pub contributions: Vec<Contribution>,
}

/// Splits the change of `metric` over the values in `parts`.
pub fn split(metric: DriverMetric, parts: &[Parts]) -> Result<Split> {
    let total = |f: fn(&Parts) -> f64| parts.iter().map(f).sum::<f64>();
    let (na, nb) = (total(|p| p.numerator_a), total(|p| p.numerator_b));
    let mut contributions: Vec<Contribution> = if metric.denominator.is_none() {
        parts
            .iter()
            .map(|p| Contribution {
                value: p.key.clone(),
                label: p.label.clone(),
                a: Some(p.numerator_a),
                b: Some(p.numerator_b),
                contribution: p.numerator_b - p.numerator_a,
                mix: None,
                rate: None,
                share_of_change: 0.0,
            })
            .collect()
    } else {
        let (da, db) = (total(|p| p.denominator_a), total(|p| p.denominator_b));
        if da == 0.0 || db == 0.0 {
            let (period, of) = if da == 0.0 {
                ("period_a", na)
            } else {
                ("period_b", nb)
            };
            return Err(ModelError::Invalid(format!(
                "{} is undefined in {period}: its {} are 0 (its {} are {of})",
                metric.name,
                metric.denominator.unwrap_or_default(),
                metric.numerator
            )));
        }
        let ra = na / da;
        parts
            .iter()
            .map(|p| {
                let own = |n: f64, d: f64| (d != 0.0).then(|| n / d);
                let (own_a, own_b) = (
                    own(p.numerator_a, p.denominator_a),
                    own(p.numerator_b, p.denominator_b),
                );
                let delta_d = p.denominator_b - p.denominator_a;
                let contribution = (p.numerator_b - p.numerator_a - ra * delta_d) / db;
                let mix = own_a.map_or(0.0, |r| (r - ra) * delta_d / db);
                Contribution {
                    value: p.key.clone(),
                    label: p.label.clone(),
                    a: own_a,
                    b: own_b,
                    contribution,
                    mix: Some(mix),
                    rate: Some(contribution - mix),
                    share_of_change: 0.0,
                }
            })
            .collect()
    };
    let (total_a, total_b) = match metric.denominator {
        None => (na, nb),
        Some(_) => (
            na / total(|p| p.denominator_a),
            nb / total(|p| p.denominator_b),
        ),
    };
    let change = total_b - total_a;
    for c in &mut contributions {
        c.share_of_change = if change == 0.0 {
            0.0
        } else {
            c.contribution / change
        };
    }
    contributions.sort_by(|x, y| {
        y.contribution
            .abs()
            .total_cmp(&x.contribution.abs())
            .then_with(|| x.value.cmp(&y.value))
    });
    Ok(Split {
        total_a,
        total_b,
        change,
        contributions,
    })
}

/// Keeps the `limit` largest contributions and folds the rest into one
/// "(n others)" row, so the kept rows still add up to the change.
pub fn keep_largest(split: &mut Split, limit: usize) {
    if split.contributions.len() <= limit {
        return;
    }
    let rest = split.contributions.split_off(limit);
    let add = |f: fn(&Contribution) -> Option<f64>| -> Option<f64> {
        rest.iter().map(f).sum::<Option<f64>>()
    };
    let contribution: f64 = rest.iter().map(|c| c.contribution).sum();
    split.contributions.push(Contribution {
        value: format!("({} others)", rest.len()),
        label: None,
        a: None,
        b: None,
        contribution,
        mix: add(|c| c.mix),
        rate: add(|c| c.rate),
        share_of_change: if split.change == 0.0 {
            0.0
        } else {
            contribution / split.change
        },
    });
}

/// What to split.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct DriversRequest {
    pub metric: String,
    pub period_a: Period,
    pub period_b: Period,
    pub dimensions: Vec<String>,
}

/// The split of one dimension.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DimensionSplit {
    pub dimension: String,
    #[serde(flatten)]
    pub split: Split,
}

/// Reads each dimension's parts from `ad_performance` and splits the change.
pub async fn drivers(
    session: &TenantSession,
    request: &DriversRequest,
    limit: usize,
) -> Result<Vec<DimensionSplit>> {
    let metric = DriverMetric::parse(&request.metric)?;
    request.period_a.check("period_a")?;
    request.period_b.check("period_b")?;
    if request.dimensions.is_empty() {
        return Err(ModelError::Invalid(
            "dimensions is empty: name at least one of platform, channel, account, campaign, ad_group"
                .into(),
        ));
    }
    let mut out = Vec::with_capacity(request.dimensions.len());
    for dimension in &request.dimensions {
        let column = dimension_column(dimension)?;
        let parts = read_parts(
            session,
            metric,
            column,
            &request.period_a,
            &request.period_b,
        )
        .await?;
        let mut split = split(metric, &parts)?;
        keep_largest(&mut split, limit);
        out.push(DimensionSplit {
            dimension: dimension.clone(),
            split,
        });
    }
    Ok(out)
}

async fn read_parts(
    session: &TenantSession,
    metric: DriverMetric,
    column: &str,
    a: &Period,
    b: &Period,
) -> Result<Vec<Parts>> {
    // Dates are formatted from parsed dates and columns come from fixed
    // lists: nothing a caller sent is spliced into the SQL as text.
    let within = |p: &Period| format!("date BETWEEN DATE '{}' AND DATE '{}'", p.start, p.end);
    let part = |column: Option<&str>, p: &Period| match column {
        Some(c) => format!(
            "CAST(COALESCE(SUM({c}) FILTER (WHERE {}), 0) AS DOUBLE)",
            within(p)
        ),
        None => "CAST(0 AS DOUBLE)".to_string(),
    };
    let label = if column == "campaign_id" {
        "last_value(campaign_name ORDER BY date)"
    } else {
        "CAST(NULL AS VARCHAR)"
    };
    let sql = format!(
        "SELECT COALESCE(CAST({column} AS VARCHAR), '(none)'), {label}, {} AS na, {} AS da, \
                {} AS nb, {} AS db \
         FROM ad_performance WHERE {} OR {} GROUP BY 1",
        part(Some(metric.numerator), a),
        part(metric.denominator, a),
        part(Some(metric.numerator), b),
        part(metric.denominator, b),
        within(a),
        within(b)
    );
    let mut parts = Vec::new();
    for batch in session.query(&sql).await? {
        let keys = cast(batch.column(0), &DataType::Utf8)?;
        let labels = cast(batch.column(1), &DataType::Utf8)?;
        let (keys, labels) = (keys.as_string::<i32>(), labels.as_string::<i32>());
        let numbers: Vec<_> = (2..6)
            .map(|i| cast(batch.column(i), &DataType::Float64))
            .collect::<std::result::Result<_, _>>()?;
        let value = |c: usize, row: usize| numbers[c].as_primitive::<Float64Type>().value(row);
        for row in 0..batch.num_rows() {
            parts.push(Parts {
                key: keys.value(row).to_string(),
                label: (!labels.is_null(row)).then(|| labels.value(row).to_string()),
                numerator_a: value(0, row),
                denominator_a: value(1, row),
                numerator_b: value(2, row),
                denominator_b: value(3, row),
            });
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{RngExt as _, SeedableRng};

    use super::*;

    fn parts(rows: &[(f64, f64, f64, f64)]) -> Vec<Parts> {
        rows.iter()
            .enumerate()
            .map(|(i, &(na, da, nb, db))| Parts {
                key: format!("c{i}"),
                label: None,
                numerator_a: na,
                denominator_a: da,
                numerator_b: nb,
                denominator_b: db,
            })
            .collect()
    }

    fn metric(name: &str) -> DriverMetric {
        DriverMetric::parse(name).unwrap()
    }

    #[test]
    fn contributions_add_up_to_the_change_over_random_data() {
        // Property: for any data, sums and ratios, with values present in
        // one period only and values without a denominator, the
        // contributions (and mix + rate) add up to the total change.
        let mut rng = StdRng::seed_from_u64(7);
        for case in 0..2_000 {
            let n = rng.random_range(1..40);
            let mut rows = Vec::with_capacity(n);
            for _ in 0..n {
                let mut draw = |zero_one_in: u32| {
                    if rng.random_range(0..zero_one_in) == 0 {
                        0.0
                    } else {
                        rng.random_range(0.0..1e6) * 10f64.powi(rng.random_range(-3..3))
                    }
                };
                rows.push((draw(6), draw(5), draw(6), draw(5)));
            }
            for name in ["spend", "cpa", "ctr", "roas"] {
                let m = metric(name);
                let Ok(split) = split(m, &parts(&rows)) else {
                    continue; // a ratio without a denominator in a period
                };
                let sum: f64 = split.contributions.iter().map(|c| c.contribution).sum();
                let scale = split.total_a.abs().max(split.total_b.abs()).max(1e-300);
                assert!(
                    (sum - split.change).abs() <= 1e-9 * scale,
                    "case {case} {name}: {sum} vs {}",
                    split.change
                );
                for c in &split.contributions {
                    if let (Some(mix), Some(rate)) = (c.mix, c.rate) {
                        assert!(
                            (mix + rate - c.contribution).abs()
                                <= 1e-9 * scale.max(c.contribution.abs())
                        );
                    }
                }
                let mut kept = split.clone();
                keep_largest(&mut kept, 3);
                let kept_sum: f64 = kept.contributions.iter().map(|c| c.contribution).sum();
                assert!((kept_sum - split.change).abs() <= 1e-9 * scale);
            }
        }
    }

    #[test]
    fn cheap_campaigns_losing_volume_is_a_mix_effect() {
        // Two campaigns with unchanged CPAs (10 and 50); the cheap one loses
        // most of its conversions. Blended CPA rises with no rate effect.
        let rows = parts(&[
            (1_000.0, 100.0, 200.0, 20.0),
            (5_000.0, 100.0, 5_000.0, 100.0),
        ]);
        let s = split(metric("cpa"), &rows).unwrap();
        assert!((s.total_a - 30.0).abs() < 1e-12);
        assert!((s.total_b - 5_200.0 / 120.0).abs() < 1e-12);
        for c in &s.contributions {
            assert!(c.rate.unwrap().abs() < 1e-12, "{c:?}");
        }
        let cheap = s.contributions.iter().find(|c| c.value == "c0").unwrap();
        assert!(cheap.mix.unwrap() > 0.0);
        // A campaign whose conversions halve at the same spend, from the
        // blended CPA: all rate, no mix.
        let rows = parts(&[
            (1_000.0, 100.0, 1_000.0, 50.0),
            (1_000.0, 100.0, 1_000.0, 100.0),
        ]);
        let s = split(metric("cpa"), &rows).unwrap();
        let worse = s.contributions.iter().find(|c| c.value == "c0").unwrap();
        assert!(
            worse.rate.unwrap() > 0.0 && worse.mix.unwrap().abs() < 1e-12,
            "{worse:?}"
        );
        assert_eq!(s.contributions[0].value, "c0");
    }

    #[test]
    fn a_ratio_without_a_denominator_is_a_clear_error() {
        let rows = parts(&[(100.0, 0.0, 50.0, 5.0)]);
        let err = split(metric("cpa"), &rows).unwrap_err().to_string();
        assert!(
            err.contains("period_a") && err.contains("conversions are 0"),
            "{err}"
        );
        assert!(DriverMetric::parse("profit").is_err());
        assert!(dimension_column("country").is_err());
    }
}
