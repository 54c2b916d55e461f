//! Seasonal adjustment: the seasonal part is taken out before a method is
//! fitted and put back on its forecast.
//!
//! Two decompositions, for two kinds of data:
//! - **classical**, for one period (monthly, quarterly data): a centred moving
//!   average, ratios averaged per phase, and only when the autocorrelation at
//!   the period is significant at 90% (the M3/M4 benchmark convention);
//! - **MSTL** (Bandara, Hyndman & Bergmeir), for daily data with weekly and
//!   yearly cycles, additive, robust to outliers; a period is used only when
//!   the history holds two full cycles of it.

use serde::{Deserialize, Serialize};

use crate::decompose::{Decompose, Parts};

/// One seasonal cycle as it continues after the history ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cycle {
    pub period: usize,
    pub multiplicative: bool,
    /// The component over the last `period` days of history; step `h` of the
    /// forecast takes `next[(h - 1) % period]`.
    pub next: Vec<f64>,
}

impl Cycle {
    /// Puts the cycle back on a forecast of the adjusted series.
    pub fn apply(&self, h: usize, adjusted: f64) -> f64 {
        let s = self.next[(h - 1) % self.period];
        if self.multiplicative {
            adjusted * s
        } else {
            adjusted + s
        }
    }
}

/// A series with its seasonal cycles taken out.
#[derive(Debug, Clone)]
pub struct Adjusted {
    pub values: Vec<f64>,
    pub cycles: Vec<Cycle>,
    /// Days whose remainder was an outlier (replaced in `values` by trend plus
    /// nothing: the method sees the level without the spike).
    pub outliers: usize,
}

/// How to take seasonality out of a series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Seasonality {
    /// None: the series is used as it is (yearly data).
    None,
    /// Classical decomposition at one period, if the series is seasonal.
    Classical { period: usize },
    /// MSTL over these periods (those with two full cycles of history).
    Mstl { periods: Vec<usize> },
}

impl Seasonality {
    pub fn adjust(&self, y: &[f64]) -> Adjusted {
        let plain = || Adjusted {
            values: y.to_vec(),
            cycles: Vec::new(),
            outliers: 0,
        };
        match self {
            Seasonality::None => plain(),
            Seasonality::Classical { period } => classical(y, *period).unwrap_or_else(plain),
            Seasonality::Mstl { periods } => mstl(y, periods).unwrap_or_else(plain),
        }
    }

    /// The longest period, for the seasonal naive method and the MASE scale.
    pub fn main_period(&self) -> usize {
        match self {
            Seasonality::None => 1,
            Seasonality::Classical { period } => *period,
            Seasonality::Mstl { periods } => periods.first().copied().unwrap_or(1),
        }
    }
}

/// Autocorrelation at `lag`.
pub fn acf(y: &[f64], lag: usize) -> f64 {
    let n = y.len();
    let mean = y.iter().sum::<f64>() / n as f64;
    let denom: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
    if denom == 0.0 || lag >= n {
        return 0.0;
    }
    let num: f64 = (lag..n).map(|t| (y[t] - mean) * (y[t - lag] - mean)).sum();
    num / denom
}

/// The 90% test of the M4 benchmarks: is the autocorrelation at the period
/// beyond what white noise with the lower lags' correlation would give?
pub fn is_seasonal(y: &[f64], period: usize) -> bool {
    let n = y.len();
    if period < 2 || n < 3 * period {
        return false;
    }
    let lower: f64 = (1..period).map(|k| acf(y, k).powi(2)).sum();
    let limit = 1.645 * ((1.0 + 2.0 * lower) / n as f64).sqrt();
    acf(y, period).abs() > limit
}

fn classical(y: &[f64], period: usize) -> Option<Adjusted> {
    if !is_seasonal(y, period) {
        return None;
    }
    let n = y.len();
    let multiplicative = y.iter().all(|&v| v > 0.0);
    // Centred moving average of order `period` (2×m for even m).
    let half = period / 2;
    let mut sums = vec![0.0; period];
    let mut counts = vec![0usize; period];
    for t in half..n.saturating_sub(half) {
        let trend = if period.is_multiple_of(2) {
            let inner: f64 = y[t + 1 - half..t + half].iter().sum();
            (inner + 0.5 * (y[t - half] + y[t + half])) / period as f64
        } else {
            y[t - half..=t + half].iter().sum::<f64>() / period as f64
        };
        let ratio = if multiplicative {
            y[t] / trend
        } else {
            y[t] - trend
        };
        if ratio.is_finite() {
            sums[t % period] += ratio;
            counts[t % period] += 1;
        }
    }
    let mut index: Vec<f64> = sums
        .iter()
        .zip(&counts)
        .map(|(s, &c)| if c == 0 { f64::NAN } else { s / c as f64 })
        .collect();
    if index.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mean = index.iter().sum::<f64>() / period as f64;
    for v in &mut index {
        if multiplicative {
            *v /= mean;
        } else {
            *v -= mean;
        }
    }
    if multiplicative && index.iter().any(|&v| v <= 0.0) {
        return None;
    }
    let values = y
        .iter()
        .enumerate()
        .map(|(t, &v)| {
            let s = index[t % period];
            if multiplicative { v / s } else { v - s }
        })
        .collect();
    let next = (0..period).map(|k| index[(n + k) % period]).collect();
    Some(Adjusted {
        values,
        cycles: vec![Cycle {
            period,
            multiplicative,
            next,
        }],
        outliers: 0,
    })
}

/// Remainders further than this many robust standard deviations from their
/// median are outliers.
const OUTLIER_Z: f64 = 5.0;

fn mstl(y: &[f64], periods: &[usize]) -> Option<Adjusted> {
    let n = y.len();
    let parts = Decompose::FORECAST.fit(y, periods)?;
    let Parts {
        periods: usable,
        seasonals,
        trend,
        remainder,
    } = parts;
    // Outliers: robust z-score of the remainder (median and MAD).
    let mut sorted = remainder.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[n / 2];
    let mut deviations: Vec<f64> = remainder.iter().map(|r| (r - median).abs()).collect();
    deviations.sort_by(f64::total_cmp);
    // A floor on the spread: a noise-free series has remainders of rounding
    // size, and those are not outliers.
    let typical = y.iter().map(|v| v.abs()).sum::<f64>() / n as f64;
    let spread = (1.4826 * deviations[n / 2]).max(1e-3 * typical);
    let mut outliers = 0;
    let values = (0..n)
        .map(|t| {
            let seasonal: f64 = seasonals.iter().map(|s| s[t]).sum();
            if spread > 0.0 && ((remainder[t] - median) / spread).abs() > OUTLIER_Z {
                outliers += 1;
                trend[t] + median
            } else {
                y[t] - seasonal
            }
        })
        .collect();
    let cycles = usable
        .iter()
        .zip(&seasonals)
        .map(|(&period, s)| Cycle {
            period,
            multiplicative: false,
            next: s[n - period..].to_vec(),
        })
        .collect();
    Some(Adjusted {
        values,
        cycles,
        outliers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weekly(n: usize) -> Vec<f64> {
        let shape = [10.0, 12.0, 14.0, 13.0, 11.0, 4.0, 3.0];
        (0..n).map(|t| 100.0 + shape[t % 7] * 3.0).collect()
    }

    #[test]
    fn a_pure_seasonal_series_is_flat_once_adjusted() {
        let y = weekly(140);
        let adjusted = Seasonality::Mstl { periods: vec![7] }.adjust(&y);
        assert_eq!(adjusted.cycles.len(), 1);
        let (lo, hi) = adjusted
            .values
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        assert!(hi - lo < 1.0, "adjusted range {lo}..{hi}");
        // The cycle continues the history: day 140 is phase 0.
        let cycle = &adjusted.cycles[0];
        let level = adjusted.values[139];
        for h in 1..=14 {
            let want = y[(140 + h - 1) % 7];
            assert!((cycle.apply(h, level) - want).abs() < 1.0, "step {h}");
        }
    }

    #[test]
    fn classical_finds_a_monthly_cycle_and_ignores_noise() {
        let y: Vec<f64> = (0..72)
            .map(|t| 200.0 * (1.0 + 0.3 * ((t % 12) as f64 / 12.0 * std::f64::consts::TAU).sin()))
            .collect();
        assert!(is_seasonal(&y, 12));
        let adjusted = Seasonality::Classical { period: 12 }.adjust(&y);
        assert!(adjusted.cycles[0].multiplicative);
        for v in &adjusted.values {
            assert!((v - 200.0).abs() < 2.0, "{v}");
        }
        let noise: Vec<f64> = (0..72).map(|t| ((t * 7919) % 13) as f64).collect();
        assert!(!is_seasonal(&noise, 12));
    }

    #[test]
    fn a_spike_is_flagged_and_kept_out_of_the_adjusted_series() {
        // Weekly data with noise of ±5, and one day 50 times the noise.
        let mut y: Vec<f64> = weekly(140)
            .iter()
            .enumerate()
            .map(|(t, v)| v + ((t * 7919 % 11) as f64 - 5.0))
            .collect();
        y[100] += 250.0;
        let adjusted = Seasonality::Mstl { periods: vec![7] }.adjust(&y);
        assert_eq!(adjusted.outliers, 1);
        assert!(adjusted.values[100] < 200.0, "{}", adjusted.values[100]);
    }

    #[test]
    fn too_short_a_history_is_not_decomposed() {
        let y = weekly(10);
        let adjusted = Seasonality::Mstl {
            periods: vec![7, 365],
        }
        .adjust(&y);
        assert!(adjusted.cycles.is_empty());
        assert_eq!(adjusted.values, y);
    }
}
