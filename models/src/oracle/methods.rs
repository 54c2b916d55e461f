//! The forecasting methods ORACLE chooses between, each fitted to one
//! (seasonally adjusted) series and reduced to the path it forecasts.
//!
//! Every non-seasonal method here forecasts a damped linear path
//! `level + slope * (phi + phi^2 + … + phi^h)`: naive and SES (slope 0),
//! Holt (phi 1), damped Holt, Theta (SES plus half the drift), Croston and
//! TSB (a flat demand rate). So a fitted method serialises as three numbers,
//! and the forecast of any horizon is computed from them, not stored.

use std::panic::{AssertUnwindSafe, catch_unwind};

use augurs_core::{Fit as _, Predict as _};
use augurs_ets::AutoETS;
use augurs_ets::model::{ModelType, Unfit};
use serde::{Deserialize, Serialize};

/// The methods, by the name written to `forecasts.model`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The last value carried forward.
    Naive,
    /// The last season carried forward.
    SeasonalNaive,
    /// Exponential smoothing, its form (error, trend, damping) chosen by AICc.
    Ets,
    /// The Theta method (Assimakopoulos & Nikolopoulos; SES with drift).
    Theta,
    /// Holt's linear trend, damped (ETS AAdN).
    Damped,
    /// Croston's method with the Syntetos–Boylan correction, for intermittent demand.
    Croston,
    /// Teunter–Syntetos–Babai: smooths the probability of demand, so it decays
    /// when demand stops.
    Tsb,
    /// Zeros: the series stopped (a paused campaign).
    Paused,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Naive => "naive",
            Method::SeasonalNaive => "seasonal_naive",
            Method::Ets => "ets",
            Method::Theta => "theta",
            Method::Damped => "damped",
            Method::Croston => "croston",
            Method::Tsb => "tsb",
            Method::Paused => "paused",
        }
    }
}

/// A damped linear path: `level + slope * (phi + … + phi^h)` at step `h ≥ 1`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    pub level: f64,
    pub slope: f64,
    pub damping: f64,
}

impl Trend {
    pub fn flat(level: f64) -> Self {
        Trend {
            level,
            slope: 0.0,
            damping: 1.0,
        }
    }

    /// The forecast at step `h` (1-based).
    pub fn at(&self, h: usize) -> f64 {
        if self.slope == 0.0 {
            return self.level;
        }
        let phi = self.damping;
        let sum = if (phi - 1.0).abs() < 1e-12 {
            h as f64
        } else {
            phi * (1.0 - phi.powi(h as i32)) / (1.0 - phi)
        };
        self.level + self.slope * sum
    }

    /// Reads the path back from its first three forecasts, which determine it
    /// exactly: the step differences are `slope * phi^2` and `slope * phi^3`.
    fn from_forecasts(f: &[f64]) -> Option<Self> {
        let [f1, f2, f3] = [*f.first()?, *f.get(1)?, *f.get(2)?];
        if !(f1.is_finite() && f2.is_finite() && f3.is_finite()) {
            return None;
        }
        let (d1, d2) = (f2 - f1, f3 - f2);
        let scale = f1.abs().max(1e-9);
        if d1.abs() <= 1e-12 * scale {
            return Some(Trend::flat(f1));
        }
        let phi = (d2 / d1).clamp(0.0, 1.0);
        let slope = if phi > 0.0 { d1 / (phi * phi) } else { 0.0 };
        Some(Trend {
            level: f1 - slope * phi,
            slope,
            damping: if phi > 0.0 { phi } else { 1.0 },
        })
    }
}

/// The last value.
pub fn naive(y: &[f64]) -> Option<Trend> {
    y.last().map(|&v| Trend::flat(v))
}

/// The form of an ETS model: error, trend and season letters (e.g. `AAN`)
/// and whether the trend is damped.
#[derive(Debug, Clone, Copy)]
pub struct EtsForm {
    model_type: ModelType,
    damped: bool,
}

impl EtsForm {
    /// The form's letters, e.g. `AAdN` for additive errors, damped additive
    /// trend, no season.
    pub fn name(&self) -> String {
        let t = self.model_type;
        let damped = if self.damped { "d" } else { "" };
        format!("{}{}{damped}{}", t.error, t.trend, t.season)
    }
}

/// AutoETS over the non-seasonal forms (ANN, AAN, AAdN, and the
/// multiplicative-error ones for positive data), chosen by AICc; or, given a
/// form, that form alone with its parameters re-estimated (a backtest origin
/// refits the form the whole history chose: one fit instead of six).
/// `augurs-ets` matches statsforecast's non-seasonal AutoETS; it is kept
/// behind `catch_unwind` because a library panic must never reach a user.
///
/// `additive_errors` limits the search to additive-error forms: their
/// likelihood needs no logarithm per observation, which is most of the cost
/// on long daily series, and their point forecasts differ little.
pub fn ets(y: &[f64], form: Option<&EtsForm>, additive_errors: bool) -> Option<(Trend, EtsForm)> {
    if y.len() < 10 || !y.iter().all(|v| v.is_finite()) {
        return None;
    }
    let (points, form) = catch_unwind(AssertUnwindSafe(|| match form {
        None => {
            let search = if additive_errors {
                AutoETS::new(1, "AZN").ok()?
            } else {
                AutoETS::non_seasonal()
            };
            let fitted = search.fit(y).ok()?;
            let model = fitted.model();
            let form = EtsForm {
                model_type: model.model_type(),
                damped: model.damped(),
            };
            fitted.predict(3, None).ok().map(|f| (f.point, form))
        }
        Some(form) => {
            let model = Unfit::new(form.model_type)
                .damped(form.damped)
                .fit(y)
                .ok()?;
            model.predict(3, None).ok().map(|f| (f.point, *form))
        }
    }))
    .ok()??;
    Some((Trend::from_forecasts(&points)?, form))
}

/// Holt's damped trend (ETS with additive errors and a damped additive
/// trend), the form of the "damped" benchmark in the M competitions.
pub fn damped(y: &[f64]) -> Option<Trend> {
    use augurs_ets::model::{ErrorComponent, SeasonalComponent, TrendComponent};
    let form = EtsForm {
        model_type: ModelType {
            error: ErrorComponent::Additive,
            trend: TrendComponent::Additive,
            season: SeasonalComponent::None,
        },
        damped: true,
    };
    ets(y, Some(&form), true).map(|(trend, _)| trend)
}

/// Simple exponential smoothing with its smoothing weight chosen by least
/// squares (golden-section search: the loss is one-dimensional and smooth).
/// Returns (alpha, final level).
pub fn ses(y: &[f64]) -> Option<(f64, f64)> {
    if y.is_empty() {
        return None;
    }
    let sse = |alpha: f64| {
        let mut level = y[0];
        let mut total = 0.0;
        for &v in &y[1..] {
            let e = v - level;
            total += e * e;
            level += alpha * e;
        }
        (total, level)
    };
    let alpha = golden_section(0.05, 0.99, |a| sse(a).0);
    Some((alpha, sse(alpha).1))
}

/// The Theta method as Hyndman & Billah (2003) show it: SES with drift equal
/// to half the slope of the least-squares line.
pub fn theta(y: &[f64]) -> Option<Trend> {
    let n = y.len();
    if n < 3 {
        return None;
    }
    let (alpha, level) = ses(y)?;
    let drift = ols_slope(y) / 2.0;
    let correction = 1.0 / alpha - (1.0 - alpha).powi(n as i32) / alpha - 1.0;
    Some(Trend {
        level: level + drift * correction,
        slope: drift,
        damping: 1.0,
    })
}

/// Croston's method with the Syntetos–Boylan approximation: demand size and
/// interval between demands smoothed separately (alpha 0.1, as usual).
pub fn croston(y: &[f64]) -> Option<Trend> {
    const ALPHA: f64 = 0.1;
    let mut size = None::<f64>;
    let mut interval = None::<f64>;
    let mut since = 1.0;
    for &v in y {
        if v != 0.0 {
            size = Some(size.map_or(v, |s| s + ALPHA * (v - s)));
            interval = Some(interval.map_or(since, |p| p + ALPHA * (since - p)));
            since = 1.0;
        } else {
            since += 1.0;
        }
    }
    let (size, interval) = (size?, interval?);
    Some(Trend::flat((1.0 - ALPHA / 2.0) * size / interval))
}

/// TSB: the demand probability is updated every period (so it decays through
/// a run of zeros), the demand size only when there is demand.
pub fn tsb(y: &[f64]) -> Option<Trend> {
    const ALPHA: f64 = 0.1;
    const BETA: f64 = 0.1;
    let first = y.iter().position(|&v| v != 0.0)?;
    let mut size = y[first];
    let mut probability = 1.0 / (first as f64 + 1.0);
    for &v in &y[first + 1..] {
        let demand = if v != 0.0 { 1.0 } else { 0.0 };
        probability += BETA * (demand - probability);
        if v != 0.0 {
            size += ALPHA * (v - size);
        }
    }
    Some(Trend::flat(probability * size))
}

/// The slope of the least-squares line through `y` against 0, 1, 2, …
pub fn ols_slope(y: &[f64]) -> f64 {
    let n = y.len() as f64;
    if y.len() < 2 {
        return 0.0;
    }
    let mean_t = (n - 1.0) / 2.0;
    let mean_y = y.iter().sum::<f64>() / n;
    let (mut sty, mut stt) = (0.0, 0.0);
    for (t, &v) in y.iter().enumerate() {
        let dt = t as f64 - mean_t;
        sty += dt * (v - mean_y);
        stt += dt * dt;
    }
    if stt == 0.0 { 0.0 } else { sty / stt }
}

/// Minimises a unimodal function of one variable on `[lo, hi]`.
fn golden_section(mut lo: f64, mut hi: f64, f: impl Fn(f64) -> f64) -> f64 {
    const RATIO: f64 = 0.618_033_988_749_895;
    let mut a = hi - RATIO * (hi - lo);
    let mut b = lo + RATIO * (hi - lo);
    let (mut fa, mut fb) = (f(a), f(b));
    for _ in 0..40 {
        if fa <= fb {
            hi = b;
            b = a;
            fb = fa;
            a = hi - RATIO * (hi - lo);
            fa = f(a);
        } else {
            lo = a;
            a = b;
            fa = fb;
            b = lo + RATIO * (hi - lo);
            fb = f(b);
        }
        if hi - lo < 1e-4 {
            break;
        }
    }
    (lo + hi) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damped_path_is_read_back_from_its_forecasts() {
        let path = Trend {
            level: 10.0,
            slope: 2.0,
            damping: 0.9,
        };
        let points: Vec<f64> = (1..=3).map(|h| path.at(h)).collect();
        let read = Trend::from_forecasts(&points).unwrap();
        for h in 1..30 {
            assert!((read.at(h) - path.at(h)).abs() < 1e-9, "step {h}");
        }
    }

    #[test]
    fn theta_extends_a_linear_trend() {
        let y: Vec<f64> = (0..40).map(|t| 5.0 + 2.0 * t as f64).collect();
        let path = theta(&y).unwrap();
        // SES tracks the line (alpha near 1) and adds half the slope per step;
        // the level correction adds the other half at long horizons.
        let f10 = path.at(10);
        assert!((f10 - (5.0 + 2.0 * 49.0)).abs() < 12.0, "{f10}");
        assert!(path.slope > 0.9 && path.slope < 1.1);
    }

    #[test]
    fn ets_forecasts_a_linear_trend_exactly() {
        let y: Vec<f64> = (0..40).map(|t| 100.0 + 3.0 * t as f64).collect();
        let (path, form) = ets(&y, None, false).unwrap();
        assert_eq!(form.name(), "AAN", "{form:?}");
        for h in 1..=12 {
            let want = 100.0 + 3.0 * (39 + h) as f64;
            assert!(
                (path.at(h) - want).abs() < 0.5,
                "h {h}: {} vs {want}",
                path.at(h)
            );
        }
    }

    #[test]
    fn ets_on_a_level_series_is_flat() {
        let y: Vec<f64> = (0..30)
            .map(|t| 50.0 + if t % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let (path, form) = ets(&y, None, false).unwrap();
        assert!((path.at(1) - 50.0).abs() < 1.5);
        // The same form refitted gives the same path.
        let (again, _) = ets(&y, Some(&form), false).unwrap();
        assert!((again.at(5) - path.at(5)).abs() < 1e-9);
        assert!((path.at(20) - path.at(1)).abs() < 1.0);
    }

    #[test]
    fn ets_refuses_what_it_cannot_fit_instead_of_panicking() {
        assert!(ets(&[1.0, 2.0], None, false).is_none());
        assert!(ets(&[f64::NAN; 20], None, true).is_none());
    }

    #[test]
    fn damped_trend_flattens_out() {
        // A trend that slows down: the damped path grows less each step.
        let y: Vec<f64> = (0..60).map(|t| 100.0 * (1.0 - 0.95f64.powi(t))).collect();
        let path = damped(&y).unwrap();
        assert!(path.damping < 1.0, "{path:?}");
        let (d1, d20) = (path.at(2) - path.at(1), path.at(21) - path.at(20));
        assert!(d20 < d1, "{d1} then {d20}");
        assert!(path.at(50) < 110.0, "{}", path.at(50));
    }

    #[test]
    fn naive_carries_the_last_value() {
        assert_eq!(naive(&[3.0, 9.0, 4.0]).unwrap().at(7), 4.0);
        assert!(naive(&[]).is_none());
    }

    #[test]
    fn croston_and_tsb_forecast_the_demand_rate() {
        // Demand of 4 every 4th period: a rate of 1 per period.
        let y: Vec<f64> = (0..200)
            .map(|t| if t % 4 == 3 { 4.0 } else { 0.0 })
            .collect();
        let c = croston(&y).unwrap().at(1);
        let t = tsb(&y).unwrap().at(1);
        assert!((c - 0.95).abs() < 0.05, "croston {c}");
        // TSB's probability saws up at each demand and decays between them.
        assert!((t - 1.0).abs() < 0.2, "tsb {t}");
    }

    #[test]
    fn tsb_decays_when_demand_stops_and_croston_does_not() {
        let mut y: Vec<f64> = (0..100)
            .map(|t| if t % 2 == 0 { 2.0 } else { 0.0 })
            .collect();
        y.extend([0.0; 40]);
        assert!(tsb(&y).unwrap().at(1) < 0.05);
        assert!(croston(&y).unwrap().at(1) > 0.5);
    }

    #[test]
    fn ses_weights_a_random_walk_heavily() {
        let y = [1.0, 3.0, 2.0, 5.0, 4.0, 7.0, 6.0, 9.0, 8.0, 11.0];
        let (alpha, level) = ses(&y).unwrap();
        assert!(alpha > 0.5, "{alpha}");
        assert!((level - 11.0).abs() < 3.0);
    }
}
