//! Response curves: expected daily response (conversions or conversion
//! value) to daily spend,
//!
//! ```text
//! adstock_t  = spend_t + θ · adstock_{t-1}
//! response_t = baseline + β · Hill(adstock_t; K, s),   Hill(a) = aˢ / (aˢ + Kˢ)
//! ```
//!
//! fitted by bounded nonlinear least squares to a daily history of the
//! response a platform attributes to the entity's ads. That response is
//! zero without spend, so fits have no baseline (it stays in the type for
//! curves given from elsewhere); over a long history a yearly demand wave
//! multiplies it. The linear parameters (β and the wave's two weights) are
//! solved exactly for each (θ, K, s) (variable projection), so the
//! optimiser searches three bounded parameters only: a grid finds the
//! basin, argmin's L-BFGS refines it.
//!
//! A baseline was fitted until 2026-12-05: with spend seen over ±40% of one
//! level, an intercept and a steep S-curve explain a history as well as the
//! true curve through the origin, and extrapolate from it badly (the fitted
//! curves fell off too little below the spend seen and rose too much above
//! it, so plans claimed about twice their true gain).
//!
//! ```
//! use gyrus_models::reflexes::curve::ResponseCurve;
//! let curve = ResponseCurve { baseline: 2.0, beta: 40.0, half_saturation: 500.0, shape: 1.0, adstock: 0.5 };
//! // At a steady 250 a day, adstock is 500: half of β above the baseline.
//! assert!((curve.response(250.0) - 22.0).abs() < 1e-9);
//! ```

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::optimize::{Objective, minimize};

/// Largest adstock carry-over θ a fit may find.
pub const MAX_ADSTOCK: f64 = 0.9;
/// Hill shapes a fit may find.
pub const SHAPE_RANGE: (f64, f64) = (0.5, 3.0);
/// Half-saturation points a fit may find, as multiples of the mean steady adstock.
pub const HALF_SATURATION_RANGE: (f64, f64) = (0.1, 10.0);

/// A fitted response curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ResponseCurve {
    /// Response per day without spend.
    pub baseline: f64,
    /// Response per day above the baseline at full saturation.
    pub beta: f64,
    /// Hill half-saturation point K, in adstocked spend.
    pub half_saturation: f64,
    /// Hill shape s: above 1 the curve is S-shaped, at most 1 concave.
    pub shape: f64,
    /// Geometric adstock carry-over θ.
    pub adstock: f64,
}

impl ResponseCurve {
    /// K in daily spend: a steady daily spend `x` builds an adstock of `x / (1 − θ)`.
    pub fn steady_half_saturation(&self) -> f64 {
        self.half_saturation * (1.0 - self.adstock)
    }

    /// Hill of an adstock level.
    fn hill(&self, adstock: f64) -> f64 {
        if adstock <= 0.0 {
            return 0.0;
        }
        let u = (adstock / self.half_saturation).powf(self.shape);
        if u.is_infinite() { 1.0 } else { u / (1.0 + u) }
    }

    /// Expected daily response to a steady daily spend.
    pub fn response(&self, daily_spend: f64) -> f64 {
        self.baseline + self.beta * self.hill(daily_spend / (1.0 - self.adstock))
    }

    /// d response / d daily spend at a steady daily spend.
    pub fn marginal(&self, daily_spend: f64) -> f64 {
        let k = self.steady_half_saturation();
        if daily_spend <= 0.0 {
            // Hill's slope at 0: infinite below shape 1, β/K at 1, 0 above.
            return if self.shape < 1.0 {
                f64::INFINITY
            } else if self.shape == 1.0 {
                self.beta / k
            } else {
                0.0
            };
        }
        let u = (daily_spend / k).powf(self.shape);
        if !u.is_finite() {
            return 0.0;
        }
        self.beta * self.shape * u / (daily_spend * (1.0 + u) * (1.0 + u))
    }

    /// Expected response on each day of a spend history (adstock starts at 0).
    pub fn predict(&self, spend: &[f64]) -> Vec<f64> {
        let mut level = 0.0;
        spend
            .iter()
            .map(|&x| {
                level = x + self.adstock * level;
                self.baseline + self.beta * self.hill(level)
            })
            .collect()
    }

    /// The curve of a part of a pooled entity: a campaign that spends
    /// `spend_share` of its channel's spend and gets `response_share` of its
    /// response, as a scaled copy of the channel's curve: f(x) = r · F(x / w).
    pub fn scaled(&self, spend_share: f64, response_share: f64) -> ResponseCurve {
        ResponseCurve {
            baseline: self.baseline * response_share,
            beta: self.beta * response_share,
            half_saturation: self.half_saturation * spend_share,
            ..*self
        }
    }

    /// The curve with its response multiplied by `factor` (conversions into value).
    pub fn times(&self, factor: f64) -> ResponseCurve {
        ResponseCurve {
            baseline: self.baseline * factor,
            beta: self.beta * factor,
            ..*self
        }
    }
}

/// The nonlinear parameters (θ, K, s) on an unbounded scale: each is a
/// logistic of its coordinate between its bounds.
#[derive(Debug, Clone, Copy)]
struct Bounded {
    /// Mean daily spend over the fitted days: K is searched relative to it.
    scale: f64,
}

fn logistic(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-9, 1.0 - 1e-9);
    (p / (1.0 - p)).ln()
}

impl Bounded {
    fn decode(&self, z: &[f64]) -> (f64, f64, f64) {
        let adstock = MAX_ADSTOCK * logistic(z[0]);
        let (lo, hi) = SHAPE_RANGE;
        let shape = lo + (hi - lo) * logistic(z[1]);
        let (klo, khi) = HALF_SATURATION_RANGE;
        let ratio = (klo.ln() + (khi / klo).ln() * logistic(z[2])).exp();
        let half_saturation = ratio * self.scale / (1.0 - adstock);
        (adstock, half_saturation, shape)
    }

    fn encode(&self, adstock: f64, half_saturation: f64, shape: f64) -> [f64; 3] {
        let (lo, hi) = SHAPE_RANGE;
        let (klo, khi) = HALF_SATURATION_RANGE;
        let ratio = half_saturation * (1.0 - adstock) / self.scale;
        [
            logit(adstock / MAX_ADSTOCK),
            logit((shape - lo) / (hi - lo)),
            logit((ratio.ln() - klo.ln()) / (khi / klo).ln()),
        ]
    }
}

/// What a curve's shape is drawn toward where its own history says
/// little: the curve of its channel, as a Gaussian prior on the
/// nonlinear parameters in the coordinates the fit searches (logits of
/// θ, s and log K between their bounds). K is carried relative to spend
/// (`ratio`: K in daily spend over the mean daily spend), so a campaign
/// is drawn toward a scaled copy of its channel's curve, the one a
/// pooled campaign gets.
///
/// A history whose spend moved only ±40% around one level cannot tell a
/// steep S-curve from a gentle concave one; without a prior, noise picks
/// between them and the plan chases it. With the prior, the data move a
/// campaign away from its channel only as far as they show it differs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prior {
    pub adstock: f64,
    /// Steady half-saturation (K · (1 − θ)) over mean daily spend.
    pub ratio: f64,
    pub shape: f64,
    /// Precision in the fit's coordinates: the profile log-likelihood of
    /// the history (Gaussian residuals) is penalised by
    /// `weight / 2 · |z − z_prior|²`.
    pub weight: f64,
}

impl Prior {
    /// A generic curve, for curves with nothing better to be drawn toward
    /// (channels): the defaults of Google Meridian's Hill priors — shape 1
    /// (Meridian fixes its Hill slope at 1 unless told otherwise) and
    /// half-saturation at about the usual spend (Meridian's `ec` prior has
    /// its median at 0.8 of the median media level) — and a carry-over in
    /// the middle of its range. `None` for weight 0.
    pub fn generic(weight: f64) -> Option<Prior> {
        (weight > 0.0).then_some(Prior {
            adstock: MAX_ADSTOCK / 2.0,
            ratio: 1.0,
            shape: 1.0,
            weight,
        })
    }

    /// The prior a curve gives the curves of its parts: `mean_spend` is
    /// the mean daily spend (over days with spend) it was fitted on.
    pub fn of(curve: &ResponseCurve, mean_spend: f64, weight: f64) -> Option<Prior> {
        let ratio = curve.steady_half_saturation() / mean_spend;
        (ratio.is_finite() && ratio > 0.0 && weight > 0.0).then_some(Prior {
            adstock: curve.adstock,
            ratio,
            shape: curve.shape,
            weight,
        })
    }
}

/// Least squares of a response history given the nonlinear parameters.
struct Squares<'a> {
    spend: &'a [f64],
    response: &'a [f64],
    bounded: Bounded,
    /// Sum of squares of the response about its mean, to keep values near 1.
    norm: f64,
    /// The yearly demand controls per day; empty for short histories.
    wave: Vec<[f64; 2]>,
    /// The prior's centre in search coordinates and its weight per day.
    prior: Option<([f64; 3], f64)>,
}

/// A demand wave of one year, as two columns (sin, cos) per day: the
/// controls that keep seasonal demand, which moves spend and response
/// together, from being read as the effect of spend.
fn yearly_wave(days: usize) -> Vec<[f64; 2]> {
    (0..days)
        .map(|t| {
            let angle = std::f64::consts::TAU * t as f64 / 365.25;
            [angle.sin(), angle.cos()]
        })
        .collect()
}

/// Histories at least this long get the yearly demand controls.
pub const WAVE_DAYS: usize = 120;

/// The linear part of a fit: β and the demand wave's weights (relative
/// to β: the wave multiplies the response).
#[derive(Debug, Clone, Copy, Default)]
struct Linear {
    beta: f64,
    wave: [f64; 2],
    sse: f64,
}

/// Solves the normal equations of the first `k` columns; `None` when singular.
#[allow(clippy::needless_range_loop)] // Gauss–Jordan reads best with indices
fn solve(gram: &[[f64; 3]; 3], rhs: &[f64; 3], k: usize) -> Option<[f64; 3]> {
    let mut a = [[0.0; 4]; 3];
    for r in 0..k {
        a[r][..k].copy_from_slice(&gram[r][..k]);
        a[r][k] = rhs[r];
    }
    for col in 0..k {
        let pivot = (col..k).max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 * gram[col][col].abs().max(1e-300) {
            return None;
        }
        a.swap(col, pivot);
        for row in 0..k {
            if row != col {
                let f = a[row][col] / a[col][col];
                for c in col..=k {
                    a[row][c] -= f * a[col][c];
                }
            }
        }
    }
    let mut out = [0.0; 3];
    for r in 0..k {
        out[r] = a[r][k] / a[r][r];
    }
    Some(out)
}

impl Squares<'_> {
    /// The best β ≥ 0 and wave weights for (θ, K, s), and the sum of
    /// squares left.
    ///
    /// The response is what the platform attributes to the entity's own
    /// ads: none without spend (no baseline), and the yearly demand wave
    /// multiplies it (columns h, h·sin, h·cos), as seasonal demand does.
    #[allow(clippy::needless_range_loop)] // a Gram matrix reads best with indices
    fn project(&self, adstock: f64, half_saturation: f64, shape: f64) -> Linear {
        let curve = ResponseCurve {
            baseline: 0.0,
            beta: 1.0,
            half_saturation,
            shape,
            adstock,
        };
        let hills = curve.predict(self.spend);
        let width = if self.wave.is_empty() { 1 } else { 3 };
        let mut gram = [[0.0; 3]; 3];
        let mut rhs = [0.0; 3];
        let mut yy = 0.0;
        for (t, (&h, &y)) in hills.iter().zip(self.response).enumerate() {
            let mut v = [h, 0.0, 0.0];
            if width == 3 {
                v[1] = h * self.wave[t][0];
                v[2] = h * self.wave[t][1];
            }
            for i in 0..width {
                for j in i..width {
                    gram[i][j] += v[i] * v[j];
                }
                rhs[i] += v[i] * y;
            }
            yy += y * y;
        }
        for i in 0..width {
            for j in 0..i {
                gram[i][j] = gram[j][i];
            }
        }
        let nothing = Linear {
            sse: yy,
            ..Linear::default()
        };
        let Some(theta) = solve(&gram, &rhs, width).filter(|t| t[0] > 0.0) else {
            return nothing;
        };
        let mut e = yy;
        for i in 0..width {
            e -= 2.0 * theta[i] * rhs[i];
            for j in 0..width {
                e += theta[i] * gram[i][j] * theta[j];
            }
        }
        Linear {
            beta: theta[0],
            wave: [theta[1] / theta[0], theta[2] / theta[0]],
            sse: e.max(0.0),
        }
    }

    fn loss(&self, z: &[f64]) -> f64 {
        let (adstock, half_saturation, shape) = self.bounded.decode(z);
        let sse = self.project(adstock, half_saturation, shape).sse / self.norm;
        match &self.prior {
            None => sse,
            // −2/n × the log posterior, up to a constant: ln SSE + λ/n |z − z₀|².
            Some((centre, per_day)) => {
                let distance: f64 = z.iter().zip(centre).map(|(a, b)| (a - b) * (a - b)).sum();
                sse.max(1e-12).ln() + per_day * distance
            }
        }
    }

    fn curve(&self, z: &[f64]) -> (ResponseCurve, Linear) {
        let (adstock, half_saturation, shape) = self.bounded.decode(z);
        let linear = self.project(adstock, half_saturation, shape);
        (
            ResponseCurve {
                baseline: 0.0,
                beta: linear.beta,
                half_saturation,
                shape,
                adstock,
            },
            linear,
        )
    }
}

impl Objective for Squares<'_> {
    fn value_and_gradient(&self, z: &[f64]) -> (f64, Vec<f64>) {
        // Central differences: the profile over the linear part has no simple
        // analytic gradient, and three parameters make it cheap.
        let value = self.loss(z);
        let gradient = (0..z.len())
            .map(|k| {
                let h = 1e-5;
                let (mut up, mut down) = (z.to_vec(), z.to_vec());
                up[k] += h;
                down[k] -= h;
                (self.loss(&up) - self.loss(&down)) / (2.0 * h)
            })
            .collect();
        (value, gradient)
    }
}

/// A least-squares fit of a curve to a daily history.
#[derive(Debug, Clone, Copy)]
pub struct CurveFit {
    /// The response to spend, with demand at its yearly mean.
    pub curve: ResponseCurve,
    /// Weights of the yearly demand wave (sin, cos) the fit controlled
    /// for, relative to the response: on a day, the curve's response times
    /// `1 + wave[0]·sin + wave[1]·cos`.
    pub wave: [f64; 2],
    /// Share of the response's variance the fit explains.
    pub r2: f64,
}

impl CurveFit {
    /// The fit's expected response on each day of a spend history that
    /// starts where the fitted one did (the curve plus the demand wave).
    pub fn fitted(&self, spend: &[f64]) -> Vec<f64> {
        let wave = yearly_wave(spend.len());
        self.curve
            .predict(spend)
            .into_iter()
            .zip(wave)
            .map(|(y, [s, c])| (y * (1.0 + self.wave[0] * s + self.wave[1] * c)).max(0.0))
            .collect()
    }
}

/// Fits a curve to daily spend and response (same length, adstock starting
/// at 0 on the first day). `start` skips the grid and refines from a known
/// curve (the bootstrap refits from the estimate); `prior` draws the
/// curve's shape toward another's (its channel's).
pub fn fit_curve(
    spend: &[f64],
    response: &[f64],
    start: Option<&ResponseCurve>,
    prior: Option<&Prior>,
) -> Result<CurveFit> {
    fit_shifted(spend, response, start, prior.map(|p| (p, [0.0; 3])))
}

/// [`fit_curve`] with the prior's centre moved by an offset in the fit's
/// coordinates (the bootstrap draws one per refit).
fn fit_shifted(
    spend: &[f64],
    response: &[f64],
    start: Option<&ResponseCurve>,
    prior: Option<(&Prior, [f64; 3])>,
) -> Result<CurveFit> {
    if spend.len() != response.len() || spend.len() < 14 {
        return Err(ModelError::Invalid(format!(
            "a response curve needs at least 14 days of spend and response, not {}",
            spend.len().min(response.len())
        )));
    }
    if spend
        .iter()
        .chain(response)
        .any(|v| !v.is_finite() || *v < 0.0)
    {
        return Err(ModelError::Invalid(
            "spend and response must be finite and not negative".into(),
        ));
    }
    let active: Vec<f64> = spend.iter().copied().filter(|&x| x > 0.0).collect();
    if active.is_empty() {
        return Err(ModelError::Invalid("no day has spend".into()));
    }
    let scale = active.iter().sum::<f64>() / active.len() as f64;
    let mean = response.iter().sum::<f64>() / response.len() as f64;
    let tss: f64 = response.iter().map(|y| (y - mean) * (y - mean)).sum();
    let bounded = Bounded { scale };
    let squares = Squares {
        spend,
        response,
        bounded,
        norm: tss.max(1e-12),
        wave: if spend.len() >= WAVE_DAYS {
            yearly_wave(spend.len())
        } else {
            Vec::new()
        },
        prior: prior.map(|(p, shift)| {
            let adstock = p.adstock.clamp(0.0, MAX_ADSTOCK);
            let half = p.ratio * scale / (1.0 - adstock);
            let mut centre = bounded.encode(adstock, half, p.shape);
            for (c, d) in centre.iter_mut().zip(shift) {
                *c += d;
            }
            (centre, p.weight / spend.len() as f64)
        }),
    };
    let z0 = match start {
        Some(c) => squares
            .bounded
            .encode(c.adstock, c.half_saturation, c.shape)
            .to_vec(),
        None => grid_start(&squares),
    };
    let found = minimize(&squares, &z0, 200)?;
    let z = if squares.loss(&found.theta) <= squares.loss(&z0) {
        found.theta
    } else {
        z0
    };
    let (curve, linear) = squares.curve(&z);
    Ok(CurveFit {
        curve,
        wave: linear.wave,
        r2: if tss > 0.0 {
            1.0 - linear.sse / tss
        } else {
            0.0
        },
    })
}

/// The best point of a coarse grid over (θ, K, s), and of the prior's centre.
fn grid_start(squares: &Squares) -> Vec<f64> {
    let mut best = (f64::INFINITY, vec![0.0; 3]);
    if let Some((centre, _)) = &squares.prior {
        best = (squares.loss(centre), centre.to_vec());
    }
    for adstock in [0.0, 0.15, 0.3, 0.45, 0.6, 0.75] {
        for shape in [0.7, 1.2, 1.8, 2.5] {
            for ratio in [0.3, 0.6, 1.0, 1.6, 2.5, 4.0] {
                let half = ratio * squares.bounded.scale / (1.0 - adstock);
                let z = squares.bounded.encode(adstock, half, shape).to_vec();
                let loss = squares.loss(&z);
                if loss < best.0 {
                    best = (loss, z);
                }
            }
        }
    }
    best.1
}

/// Goodness of fit on held-back days: the curve fitted without them,
/// predicting them from their spend (adstock carried over).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Holdout {
    pub days: usize,
    /// 1 − SSE / TSS over the held-back days.
    pub r2: f64,
    /// Σ|weekly predicted − actual| / Σ actual, over whole held-back weeks.
    pub weekly_wape: f64,
    /// Σ predicted / Σ actual − 1.
    pub bias: f64,
}

/// Scores a fit made on all but the last `days` days on those days.
pub fn holdout(
    spend: &[f64],
    response: &[f64],
    days: usize,
    prior: Option<&Prior>,
) -> Result<Holdout> {
    let cut = spend.len().saturating_sub(days);
    let fit = fit_curve(&spend[..cut], &response[..cut], None, prior)?;
    let predicted = &fit.fitted(spend)[cut..];
    let actual = &response[cut..];
    let mean = actual.iter().sum::<f64>() / actual.len().max(1) as f64;
    let (mut sse, mut tss) = (0.0, 0.0);
    for (p, a) in predicted.iter().zip(actual) {
        sse += (p - a) * (p - a);
        tss += (a - mean) * (a - mean);
    }
    let (mut absolute, mut total) = (0.0, 0.0);
    for (p, a) in predicted.chunks_exact(7).zip(actual.chunks_exact(7)) {
        let (p, a): (f64, f64) = (p.iter().sum(), a.iter().sum());
        absolute += (p - a).abs();
        total += a;
    }
    let sum_actual: f64 = actual.iter().sum();
    Ok(Holdout {
        days: actual.len(),
        r2: if tss > 0.0 { 1.0 - sse / tss } else { 0.0 },
        weekly_wape: if total > 0.0 { absolute / total } else { 0.0 },
        bias: if sum_actual > 0.0 {
            predicted.iter().sum::<f64>() / sum_actual - 1.0
        } else {
            0.0
        },
    })
}

/// Refits the curve on `replicates` moving-block bootstraps of its
/// residuals (blocks of `block` days keep the autocorrelation adstock leaves).
/// Refit `b` is drawn toward `priors[b]` (cycling; none when empty): the
/// fit's own prior, or one per refit of the curve it came from.
pub fn bootstrap(
    spend: &[f64],
    response: &[f64],
    fit: &CurveFit,
    priors: &[Prior],
    replicates: usize,
    block: usize,
    seed: u64,
) -> Vec<ResponseCurve> {
    use rand::rngs::StdRng;
    use rand::{RngExt as _, SeedableRng};
    let fitted = fit.fitted(spend);
    let residuals: Vec<f64> = response.iter().zip(&fitted).map(|(y, f)| y - f).collect();
    let n = residuals.len();
    let block = block.clamp(1, n);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(replicates);
    for b in 0..replicates {
        let prior = (!priors.is_empty()).then(|| &priors[b % priors.len()]);
        let mut resampled = Vec::with_capacity(n);
        while resampled.len() < n {
            let from = rng.random_range(0..=n - block);
            resampled.extend_from_slice(&residuals[from..from + block]);
        }
        let y: Vec<f64> = fitted
            .iter()
            .zip(&resampled)
            .map(|(f, e)| (f + e).max(0.0))
            .collect();
        // Randomize, then optimise: the prior's centre is drawn from the
        // prior too, so that where the history says little about the
        // shape the refits spread as widely as the prior allows, not only
        // as far as resampled residuals move them.
        let drawn = prior.map(|p| {
            let shift: [f64; 3] = std::array::from_fn(|_| {
                let (u, v): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random());
                (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos() / p.weight.sqrt()
            });
            (p, shift)
        });
        if let Ok(refit) = fit_shifted(spend, &y, Some(&fit.curve), drawn) {
            out.push(refit.curve);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Through the origin, as attributed responses are.
    fn truth() -> ResponseCurve {
        ResponseCurve {
            baseline: 0.0,
            beta: 60.0,
            half_saturation: 400.0,
            shape: 1.6,
            adstock: 0.4,
        }
    }

    /// Spend varying ±50% day to day around 250, deterministic.
    fn spend(days: usize) -> Vec<f64> {
        (0..days)
            .map(|d| {
                let wobble = ((d as f64 * 1.7).sin() + (d as f64 * 0.37).cos()) / 2.0;
                250.0 * (1.0 + 0.5 * wobble)
            })
            .collect()
    }

    #[test]
    fn marginal_is_the_slope_of_response() {
        for curve in [
            truth(),
            ResponseCurve {
                shape: 0.7,
                ..truth()
            },
        ] {
            for x in [10.0, 100.0, 240.0, 900.0] {
                let numeric = (curve.response(x + 1e-4) - curve.response(x - 1e-4)) / 2e-4;
                assert!(
                    (numeric - curve.marginal(x)).abs() < 1e-6 * numeric.abs().max(1.0),
                    "{x}: {numeric} vs {}",
                    curve.marginal(x)
                );
            }
        }
    }

    #[test]
    fn predict_reaches_the_steady_response() {
        let curve = truth();
        let days = curve.predict(&[200.0; 200]);
        assert!((days[199] - curve.response(200.0)).abs() < 1e-9);
    }

    #[test]
    fn recovers_a_curve_from_noiseless_history() {
        let x = spend(365);
        let y = truth().predict(&x);
        let fit = fit_curve(&x, &y, None, None).unwrap();
        assert!(fit.r2 > 0.999_999, "{fit:?}");
        let c = fit.curve;
        assert!((c.adstock - 0.4).abs() < 0.01, "{c:?}");
        for spend in [150.0, 250.0, 350.0] {
            let (got, want) = (c.response(spend), truth().response(spend));
            assert!((got - want).abs() < 1e-3 * want, "{spend}: {got} vs {want}");
        }
    }

    /// A yearly wave that multiplies the response is found as such, and
    /// the curve under it is the curve at the wave's mean.
    #[test]
    fn separates_a_multiplying_demand_wave_from_the_curve() {
        let x = spend(500);
        let wave = yearly_wave(x.len());
        let y: Vec<f64> = truth()
            .predict(&x)
            .iter()
            .zip(&wave)
            .map(|(v, [s, c])| v * (1.0 + 0.25 * s - 0.1 * c))
            .collect();
        let fit = fit_curve(&x, &y, None, None).unwrap();
        assert!(fit.r2 > 0.999_99, "{fit:?}");
        assert!(
            (fit.wave[0] - 0.25).abs() < 0.005 && (fit.wave[1] + 0.1).abs() < 0.005,
            "{fit:?}"
        );
        for spend in [150.0, 250.0, 350.0] {
            let (got, want) = (fit.curve.response(spend), truth().response(spend));
            assert!((got - want).abs() < 1e-2 * want, "{spend}: {got} vs {want}");
        }
        let fitted = fit.fitted(&x);
        assert!(
            fitted
                .iter()
                .zip(&y)
                .all(|(f, y)| (f - y).abs() < 1e-2 * y.max(1e-9))
        );
    }

    #[test]
    fn holdout_and_bootstrap_describe_a_noisy_fit() {
        let x = spend(300);
        let clean = truth().predict(&x);
        // Deterministic ±10% noise.
        let y: Vec<f64> = clean
            .iter()
            .enumerate()
            .map(|(d, v)| v * (1.0 + 0.1 * ((d as f64 * 12.9898).sin() * 43_758.545).fract()))
            .collect();
        let scored = holdout(&x, &y, 28, None).unwrap();
        assert_eq!(scored.days, 28);
        assert!(scored.weekly_wape < 0.1, "{scored:?}");
        let fit = fit_curve(&x, &y, None, None).unwrap();
        let replicates = bootstrap(&x, &y, &fit, &[], 20, 14, 7);
        assert!(replicates.len() >= 18);
        let at: Vec<f64> = replicates.iter().map(|c| c.response(250.0)).collect();
        let (lo, hi) = at
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
        assert!(lo < hi, "replicates differ");
        assert!(hi - lo < 0.2 * fit.curve.response(250.0), "{lo}..{hi}");
    }

    #[test]
    fn refuses_short_or_bad_histories() {
        assert!(fit_curve(&[1.0; 5], &[1.0; 5], None, None).is_err());
        assert!(fit_curve(&[0.0; 30], &[1.0; 30], None, None).is_err());
        let mut y = vec![1.0; 30];
        y[3] = f64::NAN;
        assert!(fit_curve(&[1.0; 30], &y, None, None).is_err());
    }
}
