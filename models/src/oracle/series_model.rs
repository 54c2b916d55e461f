//! One series: its methods backtested from rolling origins, the best (or a
//! combination of the best) fitted to the whole history, and the interval
//! spread that the backtest measured.

use serde::{Deserialize, Serialize};

use super::methods::{self, EtsForm, Method, Trend};
use super::season::{Cycle, Seasonality};

/// How one series is forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesConfig {
    /// How seasonality is taken out before a method is fitted.
    pub seasonality: Seasonality,
    /// Steps each backtest origin forecasts.
    pub backtest_horizon: usize,
    /// Rolling origins of the backtest.
    pub origins: usize,
    /// Steps between origins.
    pub origin_step: usize,
    /// Counts and money cannot go below zero.
    pub non_negative: bool,
    /// A run of this many trailing zeros after activity means the series
    /// stopped (a paused campaign): it is forecast as zero. 0 turns it off.
    pub paused_after: usize,
    /// Intermittent: at least this share of zeros in the recent history.
    pub intermittent_share: f64,
    /// A single method replaces the default combination only when its
    /// backtest error is below this share of the combination's.
    pub switch_margin: f64,
    /// The methods see at most this many of the latest (seasonally adjusted)
    /// values; the decomposition sees the whole history. Exponential
    /// smoothing forgets old data anyway, and its cost grows with length.
    pub fit_window: usize,
    /// ETS searches additive-error forms only (see [`methods::ets`]).
    pub additive_errors: bool,
}

impl SeriesConfig {
    /// Daily marketing series: weekly and yearly cycles, four weekly origins
    /// forecasting four weeks each, paused after two weeks of zeros.
    pub fn daily() -> Self {
        SeriesConfig {
            seasonality: Seasonality::Mstl {
                periods: vec![7, 365],
            },
            backtest_horizon: 28,
            origins: 4,
            origin_step: 7,
            non_negative: true,
            paused_after: 14,
            intermittent_share: 0.5,
            switch_margin: 0.6,
            fit_window: 365,
            additive_errors: true,
        }
    }

    /// Competition data (M3): one period, classical decomposition, three
    /// origins over the forecast horizon.
    pub fn periodic(period: usize, horizon: usize) -> Self {
        SeriesConfig {
            seasonality: if period > 1 {
                Seasonality::Classical { period }
            } else {
                Seasonality::None
            },
            backtest_horizon: horizon,
            origins: 3,
            origin_step: horizon.div_ceil(3),
            non_negative: false,
            paused_after: 0,
            intermittent_share: 1.1,
            switch_margin: 0.6,
            fit_window: usize::MAX,
            additive_errors: false,
        }
    }
}

/// Why a series could not be fitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SeriesError {
    #[error("the series is empty")]
    Empty,
    #[error("the series has a value that is not a finite number at position {0}")]
    NotFinite(usize),
}

/// What a method forecasts before seasonality is put back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Path {
    /// A damped linear path on the seasonally adjusted series.
    Trend(Trend),
    /// The last season of the raw series, repeated (seasonal naive).
    Repeat(Vec<f64>),
}

/// One method of a (possibly combined) forecast and its weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Component {
    pub method: Method,
    pub weight: f64,
    pub path: Path,
}

/// A fitted series: serialises into the model registry and forecasts any
/// horizon without refitting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesModel {
    pub components: Vec<Component>,
    pub cycles: Vec<Cycle>,
    pub non_negative: bool,
    /// Root mean squared backtest error per step ahead (index 0 = one step),
    /// the spread the intervals are built from.
    pub spread: Vec<f64>,
    /// Mean absolute scaled error of the chosen forecast over the backtest.
    pub backtest_mase: Option<f64>,
    /// History length, and outliers left out of the fit.
    pub observations: usize,
    pub outliers: usize,
}

/// A forecast with its intervals.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    pub point: Vec<f64>,
    /// (level, lower, upper) per requested level.
    pub intervals: Vec<(f64, Vec<f64>, Vec<f64>)>,
}

impl SeriesModel {
    /// The name written to `forecasts.model`: the method, or the methods
    /// of a combination joined by `+`.
    pub fn label(&self) -> String {
        self.components
            .iter()
            .map(|c| c.method.name())
            .collect::<Vec<_>>()
            .join("+")
    }

    /// The point forecast at step `h ≥ 1`.
    pub fn point(&self, h: usize) -> f64 {
        let value: f64 = self
            .components
            .iter()
            .map(|c| c.weight * path_at(&c.path, &self.cycles, h))
            .sum();
        if self.non_negative {
            value.max(0.0)
        } else {
            value
        }
    }

    /// The spread at step `h`: measured where the backtest reached, grown
    /// like a random walk's (with the square root of the step) beyond it.
    pub fn spread_at(&self, h: usize) -> f64 {
        match self.spread.len() {
            0 => 0.0,
            len if h <= len => self.spread[h - 1],
            len => self.spread[len - 1] * (h as f64 / len as f64).sqrt(),
        }
    }

    /// Point forecasts and intervals. `calibration` maps a nominal level to
    /// the multiple of the spread that covered that share of the backtest.
    pub fn forecast(&self, horizon: usize, levels: &[f64], calibration: &Calibration) -> Forecast {
        let point: Vec<f64> = (1..=horizon).map(|h| self.point(h)).collect();
        let intervals = levels
            .iter()
            .map(|&level| {
                let z = calibration.multiplier(level);
                let (lower, upper) = point
                    .iter()
                    .enumerate()
                    .map(|(i, &p)| {
                        let half = z * self.spread_at(i + 1);
                        let lower = p - half;
                        let lower = if self.non_negative {
                            lower.max(0.0)
                        } else {
                            lower
                        };
                        (lower, p + half)
                    })
                    .unzip();
                (level, lower, upper)
            })
            .collect();
        Forecast { point, intervals }
    }
}

fn path_at(path: &Path, cycles: &[Cycle], h: usize) -> f64 {
    match path {
        Path::Trend(trend) => cycles.iter().fold(trend.at(h), |v, c| c.apply(h, v)),
        Path::Repeat(season) => season[(h - 1) % season.len()],
    }
}

/// Multipliers of the spread per nominal level, measured on backtest errors
/// (how many spreads wide an interval had to be to cover that share).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// (nominal level, multiplier), ascending by level.
    pub points: Vec<(f64, f64)>,
}

impl Default for Calibration {
    /// Gaussian multipliers, used until a backtest has measured better ones.
    fn default() -> Self {
        Calibration {
            points: vec![
                (0.5, 0.674),
                (0.8, 1.2816),
                (0.9, 1.6449),
                (0.95, 1.96),
                (0.99, 2.5758),
            ],
        }
    }
}

impl Calibration {
    /// The multiplier for a level, interpolated between measured levels.
    pub fn multiplier(&self, level: f64) -> f64 {
        let points = &self.points;
        let Some(&(first_level, first)) = points.first() else {
            return 0.0;
        };
        if level <= first_level {
            return first * level / first_level;
        }
        for pair in points.windows(2) {
            let ((l0, m0), (l1, m1)) = (pair[0], pair[1]);
            if level <= l1 {
                return m0 + (m1 - m0) * (level - l0) / (l1 - l0);
            }
        }
        points.last().map_or(0.0, |&(_, m)| m)
    }

    /// Measures the multipliers from standardised backtest errors
    /// (`|error| / spread`), at the given levels.
    pub fn measure(mut standardised: Vec<f64>, levels: &[f64]) -> Option<Self> {
        standardised.retain(|v| v.is_finite());
        if standardised.len() < 50 {
            return None;
        }
        standardised.sort_by(f64::total_cmp);
        let n = standardised.len();
        let points = levels
            .iter()
            .map(|&level| {
                let rank = ((level * n as f64).ceil() as usize).clamp(1, n) - 1;
                (level, standardised[rank])
            })
            .collect();
        Some(Calibration { points })
    }
}

/// A fitted series and the backtest errors it leaves for calibration.
#[derive(Debug, Clone)]
pub struct FittedSeries {
    pub model: SeriesModel,
    /// Backtest errors of the chosen forecast over its spread, for pooling
    /// into a [`Calibration`].
    pub standardised_errors: Vec<f64>,
}

/// The shortest training window a backtest origin may have.
const MIN_TRAIN: usize = 10;

/// Fits one series: classifies it (stopped, intermittent, regular), backtests
/// its candidate methods, keeps the best or a better combination.
pub fn fit_series(config: &SeriesConfig, y: &[f64]) -> Result<FittedSeries, SeriesError> {
    if y.is_empty() {
        return Err(SeriesError::Empty);
    }
    if let Some(i) = y.iter().position(|v| !v.is_finite()) {
        return Err(SeriesError::NotFinite(i));
    }
    let n = y.len();
    let trailing_zeros = y.iter().rev().take_while(|&&v| v == 0.0).count();
    if trailing_zeros == n || (config.paused_after > 0 && trailing_zeros >= config.paused_after) {
        return Ok(FittedSeries {
            model: SeriesModel {
                components: vec![Component {
                    method: Method::Paused,
                    weight: 1.0,
                    path: Path::Trend(Trend::flat(0.0)),
                }],
                cycles: Vec::new(),
                non_negative: config.non_negative,
                spread: Vec::new(),
                backtest_mase: None,
                observations: n,
                outliers: 0,
            },
            standardised_errors: Vec::new(),
        });
    }
    let recent = &y[n.saturating_sub(90)..];
    let zero_share = recent.iter().filter(|&&v| v == 0.0).count() as f64 / recent.len() as f64;
    let intermittent = zero_share >= config.intermittent_share;
    let (seasonality, candidates): (Seasonality, &[Method]) = if intermittent {
        (
            Seasonality::None,
            &[Method::Croston, Method::Tsb, Method::Naive, Method::Theta],
        )
    } else {
        (
            config.seasonality.clone(),
            &[
                Method::Ets,
                Method::Theta,
                Method::Damped,
                Method::SeasonalNaive,
                Method::Naive,
            ],
        )
    };
    let period = seasonality.main_period();
    let scale = mase_scale(y, period);

    // Rolling-origin backtest: every candidate forecasts the same windows.
    let horizon = config.backtest_horizon.min(n.saturating_sub(MIN_TRAIN));
    let mut windows = Vec::new();
    if horizon > 0 {
        for r in 0..config.origins.max(1) {
            let Some(end) = n.checked_sub(horizon + r * config.origin_step) else {
                break;
            };
            if end < MIN_TRAIN {
                break;
            }
            windows.push(end);
        }
    }
    // The whole history first: its ETS form is refitted at every origin.
    let full = fit_methods(config, &seasonality, y, candidates, None);
    // errors[candidate][window][step]
    let mut errors: Vec<Option<Vec<Vec<f64>>>> = vec![Some(Vec::new()); candidates.len()];
    for &end in &windows {
        let fitted = fit_methods(
            config,
            &seasonality,
            &y[..end],
            candidates,
            full.ets_form.as_ref(),
        );
        for (slot, model) in errors.iter_mut().zip(fitted.models) {
            match (slot.as_mut(), model) {
                (Some(rows), Some(model)) => rows.push(
                    (1..=horizon)
                        .map(|h| y[end + h - 1] - model.point(h))
                        .collect(),
                ),
                _ => *slot = None,
            }
        }
    }
    let scored: Vec<(usize, f64)> = errors
        .iter()
        .enumerate()
        .filter_map(|(i, rows)| {
            rows.as_ref()
                .filter(|r| !r.is_empty())
                .map(|r| (i, mean_abs(r)))
        })
        .filter(|(_, m)| m.is_finite())
        .collect();
    let (chosen, chosen_errors) = choose(candidates, &errors, &scored, config.switch_margin);
    let best = if chosen_errors.is_empty() {
        f64::INFINITY
    } else {
        mean_abs(&chosen_errors)
    };

    let mut components = Vec::new();
    let mut cycles = Vec::new();
    for &(i, weight) in &chosen {
        if let Some(model) = full.models[i].clone() {
            cycles = model.cycles.clone();
            components.extend(model.components.into_iter().map(|mut c| {
                c.weight = weight;
                c
            }));
        }
    }
    if components.is_empty() {
        // No backtest was possible (a short history) or every candidate
        // failed on the full series: Theta, or the mean of a very short one.
        let model = fit_methods(config, &Seasonality::None, y, &[Method::Theta], None)
            .models
            .pop()
            .flatten()
            .unwrap_or_else(|| fallback_mean(y));
        cycles = model.cycles;
        components = model.components;
    }
    // Weights sum to one even when a member failed on the full history.
    let total: f64 = components.iter().map(|c| c.weight).sum();
    for c in &mut components {
        c.weight = if total > 0.0 {
            c.weight / total
        } else {
            1.0 / chosen.len().max(1) as f64
        };
    }

    let spread = if chosen_errors.is_empty() {
        // Without a backtest: one-step changes of the history, grown as a
        // random walk's would be.
        let steps: Vec<f64> = y.windows(2).map(|w| w[1] - w[0]).collect();
        let one = if steps.is_empty() {
            y[0].abs().max(1.0)
        } else {
            (steps.iter().map(|s| s * s).sum::<f64>() / steps.len() as f64).sqrt()
        };
        vec![one]
    } else {
        smooth_spread(&chosen_errors)
    };
    let standardised_errors = standardise(&chosen_errors);
    let model = SeriesModel {
        components,
        cycles,
        non_negative: config.non_negative,
        spread,
        backtest_mase: (best.is_finite() && scale > 0.0).then(|| best / scale),
        observations: n,
        outliers: full.outliers,
    };
    Ok(FittedSeries {
        model,
        standardised_errors,
    })
}

/// The default forecast is a combination of the methods in [`COMBINED`],
/// weighted by the inverse square of their backtest error; a single method
/// replaces it only when it backtested better by the margin. On M3 a
/// combination beat per-series selection on every group: a choice made on
/// a few backtest windows is noisy, a weighted average hedges it.
fn choose(
    candidates: &[Method],
    errors: &[Option<Vec<Vec<f64>>>],
    scored: &[(usize, f64)],
    margin: f64,
) -> (Vec<(usize, f64)>, Vec<Vec<f64>>) {
    let Some(&(best, best_score)) = scored.iter().min_by(|a, b| a.1.total_cmp(&b.1)) else {
        return (Vec::new(), Vec::new());
    };
    let single = (vec![(best, 1.0)], errors[best].clone().unwrap_or_default());
    let members: Vec<(usize, f64)> = scored
        .iter()
        .filter(|&&(i, _)| COMBINED.contains(&candidates[i]))
        .map(|&(i, score)| (i, if score > 0.0 { score.powi(-2) } else { 1.0 }))
        .collect();
    if members.len() < 2 {
        return single;
    }
    let total: f64 = members.iter().map(|m| m.1).sum();
    let members: Vec<(usize, f64)> = members.into_iter().map(|(i, w)| (i, w / total)).collect();
    let rows: Vec<(&Vec<Vec<f64>>, f64)> = members
        .iter()
        .filter_map(|&(i, w)| errors[i].as_ref().map(|r| (r, w)))
        .collect();
    let combined: Vec<Vec<f64>> = (0..rows[0].0.len())
        .map(|w| {
            (0..rows[0].0[w].len())
                .map(|s| rows.iter().map(|(r, weight)| weight * r[w][s]).sum::<f64>())
                .collect()
        })
        .collect();
    if best_score < margin * mean_abs(&combined) {
        single
    } else {
        (members, combined)
    }
}

/// The mean absolute error over backtest windows and steps.
fn mean_abs(rows: &[Vec<f64>]) -> f64 {
    let count: usize = rows.iter().map(Vec::len).sum();
    rows.iter().flatten().map(|e| e.abs()).sum::<f64>() / count.max(1) as f64
}

/// The methods combined by default: the M competitions' strongest simple
/// trio (exponential smoothing chosen by AICc, Theta, damped trend).
const COMBINED: [Method; 3] = [Method::Ets, Method::Theta, Method::Damped];

/// Each origin's errors over the spread measured on the *other* origins, so
/// that the calibration sees errors the spread did not fit (standardising by
/// a spread fitted to the same errors understates the tails).
fn standardise(rows: &[Vec<f64>]) -> Vec<f64> {
    if rows.len() < 2 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (w, row) in rows.iter().enumerate() {
        let others: Vec<Vec<f64>> = rows
            .iter()
            .enumerate()
            .filter(|&(o, _)| o != w)
            .map(|(_, r)| r.clone())
            .collect();
        let spread = smooth_spread(&others);
        out.extend(
            row.iter()
                .zip(&spread)
                .map(|(e, s)| if *s > 0.0 { e.abs() / s } else { f64::NAN }),
        );
    }
    out
}

/// Root mean squared error per step, made non-decreasing (a forecast further
/// out is never more certain) so that few origins do not give a ragged band.
fn smooth_spread(rows: &[Vec<f64>]) -> Vec<f64> {
    let steps = rows.first().map_or(0, Vec::len);
    let mut spread: Vec<f64> = (0..steps)
        .map(|s| {
            // Pool neighbouring steps: with four origins one step alone is
            // four numbers.
            let lo = s.saturating_sub(2);
            let hi = (s + 2).min(steps - 1);
            let values: Vec<f64> = rows
                .iter()
                .flat_map(|r| r[lo..=hi].iter().copied())
                .collect();
            (values.iter().map(|e| e * e).sum::<f64>() / values.len() as f64).sqrt()
        })
        .collect();
    for s in 1..spread.len() {
        spread[s] = spread[s].max(spread[s - 1]);
    }
    spread
}

/// The in-sample mean absolute error of the seasonal naive method: MASE's
/// denominator (lag 1 when the history is shorter than a season).
pub fn mase_scale(y: &[f64], period: usize) -> f64 {
    let lag = if y.len() > period && period >= 1 {
        period
    } else {
        1
    };
    if y.len() <= lag {
        return 0.0;
    }
    let diffs: Vec<f64> = y.windows(lag + 1).map(|w| (w[lag] - w[0]).abs()).collect();
    let scale = diffs.iter().sum::<f64>() / diffs.len() as f64;
    if scale > 0.0 || lag == 1 {
        scale
    } else {
        mase_scale(y, 1)
    }
}

fn fallback_mean(y: &[f64]) -> SeriesModel {
    let mean = y.iter().sum::<f64>() / y.len() as f64;
    single(Method::Naive, Path::Trend(Trend::flat(mean)), Vec::new())
}

fn single(method: Method, path: Path, cycles: Vec<Cycle>) -> SeriesModel {
    SeriesModel {
        components: vec![Component {
            method,
            weight: 1.0,
            path,
        }],
        cycles,
        non_negative: false,
        spread: Vec::new(),
        backtest_mase: None,
        observations: 0,
        outliers: 0,
    }
}

/// Each candidate fitted to one history, and the ETS form it chose.
struct Fits {
    models: Vec<Option<SeriesModel>>,
    ets_form: Option<EtsForm>,
    /// Outlier days the seasonal adjustment left out.
    outliers: usize,
}

/// Fits each candidate to `y` (seasonally adjusted once for all of them);
/// ETS searches its forms unless `ets_form` fixes one.
fn fit_methods(
    config: &SeriesConfig,
    seasonality: &Seasonality,
    y: &[f64],
    candidates: &[Method],
    ets_form: Option<&EtsForm>,
) -> Fits {
    let adjusted = seasonality.adjust(y);
    let x = &adjusted.values[adjusted.values.len().saturating_sub(config.fit_window)..];
    let mut form = None;
    let models = candidates
        .iter()
        .map(|&method| {
            let trend = |t: Option<Trend>| {
                t.map(|t| single(method, Path::Trend(t), adjusted.cycles.clone()))
            };
            match method {
                Method::Naive => trend(methods::naive(x)),
                Method::Ets => trend(methods::ets(x, ets_form, config.additive_errors).map(
                    |(t, f)| {
                        form = Some(f);
                        t
                    },
                )),
                Method::Theta => trend(methods::theta(x)),
                Method::Damped => trend(methods::damped(x)),
                Method::Croston => trend(methods::croston(x)),
                Method::Tsb => trend(methods::tsb(x)),
                Method::SeasonalNaive => {
                    let period = adjusted.cycles.first()?.period;
                    (y.len() >= period).then(|| {
                        single(
                            method,
                            Path::Repeat(y[y.len() - period..].to_vec()),
                            Vec::new(),
                        )
                    })
                }
                Method::Paused => Some(single(method, Path::Trend(Trend::flat(0.0)), Vec::new())),
            }
        })
        .collect();
    Fits {
        models,
        ets_form: form,
        outliers: adjusted.outliers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(t: usize) -> f64 {
        // A deterministic, zero-mean wobble.
        (((t * 7919 + 13) % 101) as f64 / 101.0 - 0.5) * 2.0
    }

    #[test]
    fn a_linear_trend_is_extended() {
        let y: Vec<f64> = (0..120).map(|t| 50.0 + 2.0 * t as f64 + noise(t)).collect();
        let mut config = SeriesConfig::daily();
        config.seasonality = Seasonality::None;
        let fitted = fit_series(&config, &y).unwrap();
        let f = fitted.model.forecast(14, &[], &Calibration::default());
        for (h, v) in f.point.iter().enumerate() {
            let want = 50.0 + 2.0 * (120 + h) as f64;
            assert!(
                (v - want).abs() < 4.0,
                "step {}: {v} vs {want} ({})",
                h + 1,
                fitted.model.label()
            );
        }
    }

    #[test]
    fn a_pure_weekly_series_is_forecast_to_its_shape() {
        let shape = [10.0, 12.0, 14.0, 13.0, 11.0, 4.0, 3.0];
        let y: Vec<f64> = (0..200).map(|t| shape[t % 7] * 10.0).collect();
        let fitted = fit_series(&SeriesConfig::daily(), &y).unwrap();
        let f = fitted.model.forecast(21, &[0.8], &Calibration::default());
        for (h, v) in f.point.iter().enumerate() {
            let want = shape[(200 + h) % 7] * 10.0;
            assert!(
                (v - want).abs() < 1.0,
                "step {}: {v} vs {want} ({})",
                h + 1,
                fitted.model.label()
            );
        }
        // A series the methods forecast exactly has (nearly) no spread.
        let (_, lower, upper) = &f.intervals[0];
        assert!(upper[0] - lower[0] < 1.0);
    }

    #[test]
    fn seasonal_naive_repeats_the_last_season() {
        let y: Vec<f64> = (0..48)
            .map(|t| [5.0, 9.0, 2.0, 7.0][t % 4] + (t / 4) as f64)
            .collect();
        let fits = fit_methods(
            &SeriesConfig::periodic(4, 8),
            &Seasonality::Classical { period: 4 },
            &y,
            &[Method::SeasonalNaive],
            None,
        );
        let model = fits.models[0]
            .as_ref()
            .expect("a seasonal series has a seasonal naive fit");
        for h in 1..=8 {
            assert_eq!(model.point(h), y[44 + (h - 1) % 4], "step {h}");
        }
    }

    #[test]
    fn a_paused_series_is_forecast_as_zero() {
        let mut y: Vec<f64> = (0..100).map(|t| 100.0 + noise(t) * 10.0).collect();
        y.extend([0.0; 20]);
        let fitted = fit_series(&SeriesConfig::daily(), &y).unwrap();
        assert_eq!(fitted.model.label(), "paused");
        assert_eq!(fitted.model.point(5), 0.0);
    }

    #[test]
    fn sparse_conversions_use_an_intermittent_method() {
        let y: Vec<f64> = (0..180)
            .map(|t| if t % 5 == 0 { 2.0 } else { 0.0 })
            .collect();
        let fitted = fit_series(&SeriesConfig::daily(), &y).unwrap();
        let label = fitted.model.label();
        assert!(
            ["croston", "tsb", "naive", "theta"]
                .iter()
                .any(|m| label.contains(m)),
            "{label}"
        );
        let p = fitted.model.point(1);
        assert!((0.2..0.6).contains(&p), "{p} ({label})");
    }

    #[test]
    fn a_ten_day_history_still_forecasts() {
        let y = [5.0, 7.0, 6.0, 8.0, 9.0, 7.0, 8.0, 10.0, 9.0, 11.0];
        let fitted = fit_series(&SeriesConfig::daily(), &y).unwrap();
        let f = fitted
            .model
            .forecast(7, &[0.8, 0.95], &Calibration::default());
        assert!(
            f.point.iter().all(|v| (4.0..20.0).contains(v)),
            "{:?}",
            f.point
        );
        let (_, lo80, hi80) = &f.intervals[0];
        let (_, lo95, hi95) = &f.intervals[1];
        assert!(hi95[6] - lo95[6] > hi80[6] - lo80[6]);
        assert!(hi80[6] - lo80[6] > hi80[0] - lo80[0]);
    }

    #[test]
    fn bad_input_is_an_error() {
        let config = SeriesConfig::daily();
        assert_eq!(fit_series(&config, &[]).unwrap_err(), SeriesError::Empty);
        assert_eq!(
            fit_series(&config, &[1.0, f64::NAN]).unwrap_err(),
            SeriesError::NotFinite(1)
        );
    }

    #[test]
    fn a_fitted_series_round_trips_through_serde() {
        let y: Vec<f64> = (0..60).map(|t| 10.0 + t as f64 + noise(t)).collect();
        let model = fit_series(&SeriesConfig::daily(), &y).unwrap().model;
        let json = serde_json::to_string(&model).unwrap();
        let back: SeriesModel = serde_json::from_str(&json).unwrap();
        assert_eq!(back.point(9), model.point(9));
    }

    #[test]
    fn calibration_interpolates_and_measures() {
        let c = Calibration::default();
        assert!((c.multiplier(0.8) - 1.2816).abs() < 1e-9);
        assert!(c.multiplier(0.85) > 1.2816 && c.multiplier(0.85) < 1.6449);
        let errors: Vec<f64> = (1..=100).map(|i| i as f64 / 100.0).collect();
        let m = Calibration::measure(errors, &[0.8, 0.95]).unwrap();
        assert!((m.multiplier(0.8) - 0.8).abs() < 1e-9);
        assert!((m.multiplier(0.95) - 0.95).abs() < 1e-9);
    }
}
