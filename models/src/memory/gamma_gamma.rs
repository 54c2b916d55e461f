//! The Gamma-Gamma model of order value (Fader, Hardie & Lee 2005, "RFM and
//! CLV"): a customer's orders are Gamma(p, ν) with ν ~ Gamma(q, γ) across
//! customers. Fitted on repeat customers' mean repeat-order values; assumes
//! value is independent of frequency, which [`fit`] measures and reports.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::optimize::{Objective, covariance, minimize};
use crate::special::{digamma, ln_gamma};

const PARALLEL_CUSTOMERS: usize = 4096;

/// Gamma-Gamma parameters (γ in currency units).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GammaGammaParams {
    pub p: f64,
    pub q: f64,
    pub gamma: f64,
}

/// A fitted Gamma-Gamma model and how the fit went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GammaGammaFit {
    pub params: GammaGammaParams,
    pub standard_errors: Option<GammaGammaParams>,
    pub log_likelihood: f64,
    /// Repeat customers it was fitted on.
    pub customers: usize,
    /// Pearson correlation of frequency and mean order value among them:
    /// the model assumes none; |ρ| above 0.3 makes its values suspect.
    pub frequency_value_correlation: f64,
    pub iterations: u64,
    pub method: String,
}

impl GammaGammaParams {
    fn from_log(theta: &[f64]) -> GammaGammaParams {
        GammaGammaParams {
            p: theta[0].exp(),
            q: theta[1].exp(),
            gamma: theta[2].exp(),
        }
    }

    /// E[order value | x repeat purchases averaging `monetary`]: a weighted
    /// mean of the population mean and the customer's own (eq. 5). Without
    /// repeats it is the population mean, which is infinite unless q > 1.
    pub fn expected_value(&self, x: u32, monetary: f64) -> Option<f64> {
        let GammaGammaParams { p, q, gamma } = *self;
        let x = f64::from(x);
        if x > 0.0 && monetary > 0.0 {
            Some(p * (gamma + x * monetary) / (p * x + q - 1.0))
                .filter(|v| v.is_finite() && *v > 0.0)
        } else {
            (q > 1.0).then(|| p * gamma / (q - 1.0))
        }
    }
}

struct Likelihood<'a> {
    frequency: &'a [f64],
    monetary: &'a [f64],
    /// Customers per distinct frequency: the gamma-function terms depend on
    /// x alone, so they are evaluated once per distinct x.
    histogram: Vec<(f64, f64)>,
    /// Σ ln m, Σ x ln m and Σ x ln x, which do not depend on the parameters.
    sum_ln_m: f64,
    sum_x_ln_m: f64,
    sum_x_ln_x: f64,
}

impl<'a> Likelihood<'a> {
    fn new(frequency: &'a [f64], monetary: &'a [f64]) -> Self {
        let mut counts: std::collections::BTreeMap<u64, f64> = Default::default();
        let (mut sum_ln_m, mut sum_x_ln_m, mut sum_x_ln_x) = (0.0, 0.0, 0.0);
        for (&x, &m) in frequency.iter().zip(monetary) {
            *counts.entry(x.to_bits()).or_default() += 1.0;
            sum_ln_m += m.ln();
            sum_x_ln_m += x * m.ln();
            sum_x_ln_x += x * x.ln();
        }
        Likelihood {
            frequency,
            monetary,
            histogram: counts
                .into_iter()
                .map(|(x, n)| (f64::from_bits(x), n))
                .collect(),
            sum_ln_m,
            sum_x_ln_m,
            sum_x_ln_x,
        }
    }

    /// Σ log-likelihood and its gradient in (p, q, γ).
    fn sum(&self, v: &GammaGammaParams) -> (f64, [f64; 3]) {
        let GammaGammaParams { p, q, gamma } = *v;
        let n = self.frequency.len() as f64;
        let (lgq, dq) = (ln_gamma(q), digamma(q));
        let mut value =
            p * self.sum_x_ln_m - self.sum_ln_m + p * self.sum_x_ln_x + n * (q * gamma.ln() - lgq);
        let mut grad = [
            self.sum_x_ln_m + self.sum_x_ln_x,
            n * (gamma.ln() - dq),
            n * q / gamma,
        ];
        for &(x, count) in &self.histogram {
            let px = p * x;
            let (d_pxq, d_px) = (digamma(px + q), digamma(px));
            value += count * (ln_gamma(px + q) - ln_gamma(px));
            grad[0] += count * x * (d_pxq - d_px);
            grad[1] += count * d_pxq;
        }
        // Per customer, one logarithm and one division: Σ ln(γ + m x),
        // Σ x ln(γ + m x), Σ 1/(γ + m x), Σ x/(γ + m x).
        let one = |i: usize| -> [f64; 4] {
            let (x, m) = (self.frequency[i], self.monetary[i]);
            let total = gamma + m * x;
            let (spread, w) = (total.ln(), 1.0 / total);
            [spread, x * spread, w, x * w]
        };
        let add = |a: [f64; 4], b: [f64; 4]| [a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]];
        let len = self.frequency.len();
        let [s, xs, w, xw] = if len < PARALLEL_CUSTOMERS {
            (0..len).map(one).fold([0.0; 4], add)
        } else {
            (0..len)
                .into_par_iter()
                .with_min_len(4096)
                .map(one)
                .reduce(|| [0.0; 4], add)
        };
        value -= p * xs + q * s;
        grad[0] -= xs;
        grad[1] -= s;
        grad[2] -= p * xw + q * w;
        (value, grad)
    }
}

impl Objective for Likelihood<'_> {
    fn value_and_gradient(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let v = GammaGammaParams::from_log(theta);
        let (value, grad) = self.sum(&v);
        let scale = -1.0 / self.frequency.len() as f64;
        let chain = [v.p, v.q, v.gamma];
        (
            scale * value,
            (0..3).map(|k| scale * grad[k] * chain[k]).collect(),
        )
    }
}

/// Fits Gamma-Gamma to customers' repeat counts and mean repeat-order values;
/// customers without repeats, or whose repeats were free, are skipped.
pub fn fit(frequency: &[u32], monetary: &[f64]) -> Result<GammaGammaFit> {
    let (x, m): (Vec<f64>, Vec<f64>) = frequency
        .iter()
        .zip(monetary)
        .filter(|(x, m)| **x > 0 && **m > 0.0 && m.is_finite())
        .map(|(x, m)| (f64::from(*x), *m))
        .unzip();
    if x.len() < 2 {
        return Err(ModelError::Invalid(
            "Gamma-Gamma needs at least two customers with paid repeat purchases".into(),
        ));
    }
    let likelihood = Likelihood::new(&x, &m);
    let mean = m.iter().sum::<f64>() / m.len() as f64;
    // At p = 1, q = 2 the population mean order value is γ.
    let start = [0.0, 2f64.ln(), mean.ln()];
    let found = minimize(&likelihood, &start, 500)?;
    let params = GammaGammaParams::from_log(&found.theta);
    if ![params.p, params.q, params.gamma]
        .iter()
        .all(|v| v.is_finite() && *v > 0.0)
    {
        return Err(ModelError::Invalid(format!(
            "Gamma-Gamma did not converge to finite parameters ({params:?})"
        )));
    }
    let gradient = |v: &[f64]| {
        let p = GammaGammaParams {
            p: v[0],
            q: v[1],
            gamma: v[2],
        };
        likelihood.sum(&p).1.to_vec()
    };
    let standard_errors =
        covariance(gradient, &[params.p, params.q, params.gamma]).map(|cov| GammaGammaParams {
            p: cov[0][0].sqrt(),
            q: cov[1][1].sqrt(),
            gamma: cov[2][2].sqrt(),
        });
    Ok(GammaGammaFit {
        params,
        standard_errors,
        log_likelihood: -found.value * x.len() as f64,
        customers: x.len(),
        frequency_value_correlation: pearson(&x, &m),
        iterations: found.iterations,
        method: found.method.to_string(),
    })
}

/// Pearson's correlation; 0 when either side is constant.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma).powi(2);
        sbb += (y - mb).powi(2);
    }
    if saa == 0.0 || sbb == 0.0 {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimize::assert_gradient_matches;

    #[test]
    fn analytic_gradient_matches_finite_differences() {
        let (x, m) = (vec![1.0, 3.0, 7.0, 2.0], vec![12.5, 40.0, 22.0, 8.0]);
        let l = Likelihood::new(&x, &m);
        let theta = [6f64.ln(), 3.7f64.ln(), 15f64.ln()];
        assert_gradient_matches(&l, &theta);
    }

    #[test]
    fn expected_value_shrinks_toward_the_population_mean() {
        let v = GammaGammaParams {
            p: 6.25,
            q: 3.74,
            gamma: 15.44,
        };
        let population = v.expected_value(0, 0.0).unwrap();
        assert!((population - 6.25 * 15.44 / 2.74).abs() < 1e-9);
        // One repeat at 100 pulls a little; ten pull more.
        let one = v.expected_value(1, 100.0).unwrap();
        let ten = v.expected_value(10, 100.0).unwrap();
        assert!(population < one && one < ten && ten < 100.0);
        // q ≤ 1: the population mean does not exist.
        assert!(
            GammaGammaParams { q: 0.9, ..v }
                .expected_value(0, 0.0)
                .is_none()
        );
    }

    #[test]
    fn too_few_repeat_customers_are_refused() {
        assert!(fit(&[0, 0, 1], &[0.0, 0.0, 10.0]).is_err());
    }
}
