//! The BG/NBD model of repeat purchasing (Fader, Hardie & Lee 2005,
//! "Counting your customers the easy way").
//!
//! While alive, a customer buys at rate λ ~ Gamma(r, α); after each repeat
//! purchase they drop out for good with probability p ~ Beta(a, b). Fitted
//! by maximum likelihood over customers grouped on identical (x, t_x, T).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::memory::summary::Groups;
use crate::optimize::{Objective, covariance, minimize};
use crate::special::{digamma, hyp2f1_scaled, ln_gamma};

/// Past this a + b, the dropout probability's Beta is treated as the point
/// mass it has become (relative error in the expectations ~ 1/(a + b)).
const DEGENERATE_DROPOUT: f64 = 1e4;

/// Below this many groups the likelihood is summed on one thread.
const PARALLEL_GROUPS: usize = 4096;

/// BG/NBD parameters (α in the fitting time unit).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BgNbdParams {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
}

/// A fitted BG/NBD model and how the fit went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BgNbdFit {
    pub params: BgNbdParams,
    /// Asymptotic standard errors (inverse observed information), when the
    /// information matrix is positive definite.
    pub standard_errors: Option<BgNbdParams>,
    pub log_likelihood: f64,
    pub customers: f64,
    pub groups: usize,
    pub iterations: u64,
    pub method: String,
}

impl BgNbdParams {
    fn from_log(theta: &[f64]) -> BgNbdParams {
        BgNbdParams {
            r: theta[0].exp(),
            alpha: theta[1].exp(),
            a: theta[2].exp(),
            b: theta[3].exp(),
        }
    }

    fn to_vec(self) -> Vec<f64> {
        vec![self.r, self.alpha, self.a, self.b]
    }

    /// ln of the two terms of one customer's likelihood: alive at T, and
    /// dropped out right after the last purchase (absent without repeats).
    fn log_terms(&self, x: f64, recency: f64, tenure: f64) -> (f64, Option<f64>) {
        let alive = -(self.r + x) * (self.alpha + tenure).ln();
        let dropped = (x > 0.0).then(|| {
            self.a.ln() - (self.b + x - 1.0).ln() - (self.r + x) * (self.alpha + recency).ln()
        });
        (alive, dropped)
    }

    /// ln of the part of the likelihood that depends on x alone.
    fn log_frequency_part(&self, x: f64) -> f64 {
        let BgNbdParams { r, alpha, a, b } = *self;
        ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln() + ln_gamma(a + b) + ln_gamma(b + x)
            - ln_gamma(b)
            - ln_gamma(a + b + x)
    }

    /// One customer's log-likelihood.
    pub fn log_likelihood(&self, x: u32, recency: f64, tenure: f64) -> f64 {
        let x = f64::from(x);
        let (alive, dropped) = self.log_terms(x, recency, tenure);
        self.log_frequency_part(x) + dropped.map_or(alive, |d| log_add_exp(alive, d))
    }

    /// ln of the odds that the customer has dropped out (−∞ without repeats).
    fn log_dropout_odds(&self, x: f64, recency: f64, tenure: f64) -> f64 {
        if x == 0.0 {
            return f64::NEG_INFINITY;
        }
        self.a.ln() - (self.b + x - 1.0).ln()
            + (self.r + x) * ((self.alpha + tenure).ln() - (self.alpha + recency).ln())
    }

    /// P(alive at T | x, t_x, T). Customers without repeats are alive: in
    /// BG/NBD a customer can only drop out right after a repeat purchase.
    pub fn p_alive(&self, x: u32, recency: f64, tenure: f64) -> f64 {
        1.0 / (1.0 + self.log_dropout_odds(f64::from(x), recency, tenure).exp())
    }

    /// Expected purchases in (T, T + t] given (x, t_x, T) (FHL 2005, eq. 10).
    pub fn expected_purchases(&self, t: f64, x: u32, recency: f64, tenure: f64) -> f64 {
        if t <= 0.0 {
            return 0.0;
        }
        let x = f64::from(x);
        let BgNbdParams { r, alpha, b, .. } = *self;
        let p_alive = 1.0 / (1.0 + self.log_dropout_odds(x, recency, tenure).exp());
        if self.a + b > DEGENERATE_DROPOUT {
            // p ~ Beta(a, b) is all but a point mass at p = a / (a + b) (small
            // data often fits this way): given λ, E[purchases in t | alive]
            // = (1 − e^(−λpt)) / p, and λ | data ~ Gamma(r + x, α + T).
            let p = self.a / (self.a + b);
            let quiet = ((alpha + tenure) / (alpha + tenure + p * t)).powf(r + x);
            return (p_alive * (1.0 - quiet) / p).max(0.0);
        }
        // The formula has a removable singularity at a = 1.
        let a = if (self.a - 1.0).abs() < 1e-7 {
            1.0 + 1e-7
        } else {
            self.a
        };
        let z = t / (alpha + tenure + t);
        // Euler's transformation keeps the series' terms small for any x:
        // ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x; a+b+x−1; z)
        //   = (1−z)^(a−1) ₂F₁(a+b−1−r, a−1; a+b+x−1; z),
        // summed with rescaling so that large a and b do not overflow.
        let (sum, ln_scale) = hyp2f1_scaled(a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, z);
        let tail = if sum > 0.0 {
            ((a - 1.0) * (1.0 - z).ln() + sum.ln() + ln_scale).exp()
        } else {
            (1.0 - z).powf(a - 1.0) * sum * ln_scale.exp()
        };
        let alive_part = (a + b + x - 1.0) / (a - 1.0) * (1.0 - tail);
        (alive_part * p_alive).max(0.0)
    }

    /// P(no purchase in (T, T + t] | x, t_x, T): dropped out, or alive and
    /// quiet (the rate's posterior is Gamma(r + x, α + T)).
    pub fn p_no_purchase(&self, t: f64, x: u32, recency: f64, tenure: f64) -> f64 {
        let alive = self.p_alive(x, recency, tenure);
        let quiet = ((self.alpha + tenure) / (self.alpha + tenure + t)).powf(self.r + f64::from(x));
        (1.0 - alive) + alive * quiet
    }

    /// Expected purchases of a customer in the first t after their first
    /// purchase (FHL 2005, eq. 7), e.g. for one seen only once.
    pub fn expected_purchases_new(&self, t: f64) -> f64 {
        // A customer just acquired is one with x = 0 observed for no time.
        self.expected_purchases(t, 0, 0.0, 0.0)
    }
}

/// ln(e^u + e^v) without overflow.
fn log_add_exp(u: f64, v: f64) -> f64 {
    let (hi, lo) = if u > v { (u, v) } else { (v, u) };
    hi + (lo - hi).exp().ln_1p()
}

/// The mean negative log-likelihood over log-parameters.
struct Likelihood<'a> {
    groups: &'a Groups,
    histogram: Vec<(u32, f64)>,
    customers: f64,
}

impl Likelihood<'_> {
    /// Σ log-likelihood and its gradient in (r, α, a, b).
    fn sum(&self, p: &BgNbdParams) -> (f64, [f64; 4]) {
        let BgNbdParams { r, alpha, a, b } = *p;
        let mut value = 0.0;
        let mut grad = [0.0; 4];
        // The terms in x alone, once per distinct frequency.
        let (dr, dab) = (digamma(r), digamma(a + b));
        let db = digamma(b);
        for &(x, n) in &self.histogram {
            let x = f64::from(x);
            value += n * p.log_frequency_part(x);
            grad[0] += n * (digamma(r + x) - dr + alpha.ln());
            grad[1] += n * r / alpha;
            let dabx = digamma(a + b + x);
            grad[2] += n * (dab - dabx);
            grad[3] += n * (dab + digamma(b + x) - db - dabx);
        }
        // The terms in (t_x, T), once per group.
        let g = self.groups;
        let one = |i: usize| -> (f64, [f64; 4]) {
            let (x, n) = (f64::from(g.frequency[i]), g.count[i]);
            let (lt, lr) = ((alpha + g.tenure[i]).ln(), (alpha + g.recency[i]).ln());
            let alive = -(r + x) * lt;
            if x == 0.0 {
                return (
                    n * alive,
                    [-n * lt, -n * r / (alpha + g.tenure[i]), 0.0, 0.0],
                );
            }
            let dropped = a.ln() - (b + x - 1.0).ln() - (r + x) * lr;
            // Weights of the two terms in their sum (a softmax).
            let w_dropped = 1.0 / (1.0 + (alive - dropped).exp());
            let w_alive = 1.0 - w_dropped;
            (
                n * log_add_exp(alive, dropped),
                [
                    -n * (w_alive * lt + w_dropped * lr),
                    -n * (r + x)
                        * (w_alive / (alpha + g.tenure[i]) + w_dropped / (alpha + g.recency[i])),
                    n * w_dropped / a,
                    -n * w_dropped / (b + x - 1.0),
                ],
            )
        };
        let add = |(v1, g1): (f64, [f64; 4]), (v2, g2): (f64, [f64; 4])| {
            (
                v1 + v2,
                [g1[0] + g2[0], g1[1] + g2[1], g1[2] + g2[2], g1[3] + g2[3]],
            )
        };
        let (v, gr) = if g.len() < PARALLEL_GROUPS {
            (0..g.len()).map(one).fold((0.0, [0.0; 4]), add)
        } else {
            (0..g.len())
                .into_par_iter()
                .with_min_len(1024)
                .map(one)
                .reduce(|| (0.0, [0.0; 4]), add)
        };
        value += v;
        for k in 0..4 {
            grad[k] += gr[k];
        }
        (value, grad)
    }
}

impl Objective for Likelihood<'_> {
    fn value_and_gradient(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let p = BgNbdParams::from_log(theta);
        let (value, grad) = self.sum(&p);
        let chain = p.to_vec();
        let scale = -1.0 / self.customers;
        (
            scale * value,
            (0..4).map(|k| scale * grad[k] * chain[k]).collect(),
        )
    }
}

/// Fits BG/NBD to grouped customers by maximum likelihood.
pub fn fit(groups: &Groups) -> Result<BgNbdFit> {
    let customers = groups.customers();
    if groups.is_empty() || customers == 0.0 {
        return Err(ModelError::Invalid(
            "BG/NBD needs at least one customer".into(),
        ));
    }
    if groups.frequency.iter().all(|&x| x == 0) {
        return Err(ModelError::Invalid(
            "BG/NBD needs repeat purchases: no customer bought twice".into(),
        ));
    }
    let likelihood = Likelihood {
        groups,
        histogram: groups.frequency_histogram(),
        customers,
    };
    // α is a time scale: start it at the customers' mean tenure.
    let mean_tenure = groups
        .tenure
        .iter()
        .zip(&groups.count)
        .map(|(t, n)| t * n)
        .sum::<f64>()
        / customers;
    let start = [0.0, mean_tenure.max(1e-3).ln(), 0.0, 0.0];
    let found = minimize(&likelihood, &start, 500)?;
    let params = BgNbdParams::from_log(&found.theta);
    if !params.to_vec().iter().all(|v| v.is_finite() && *v > 0.0) {
        return Err(ModelError::Invalid(format!(
            "BG/NBD did not converge to finite parameters ({params:?})"
        )));
    }
    let gradient = |v: &[f64]| {
        let p = BgNbdParams {
            r: v[0],
            alpha: v[1],
            a: v[2],
            b: v[3],
        };
        likelihood.sum(&p).1.to_vec()
    };
    let standard_errors = covariance(gradient, &params.to_vec()).map(|cov| BgNbdParams {
        r: cov[0][0].sqrt(),
        alpha: cov[1][1].sqrt(),
        a: cov[2][2].sqrt(),
        b: cov[3][3].sqrt(),
    });
    Ok(BgNbdFit {
        params,
        standard_errors,
        log_likelihood: -found.value * customers,
        customers,
        groups: groups.len(),
        iterations: found.iterations,
        method: found.method.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimize::assert_gradient_matches;

    const CDNOW: BgNbdParams = BgNbdParams {
        r: 0.243,
        alpha: 4.414,
        a: 0.793,
        b: 2.426,
    };

    #[test]
    fn analytic_gradient_matches_finite_differences() {
        let groups = Groups::new(
            &[0, 2, 5, 1, 0],
            &[0.0, 10.0, 30.5, 1.5, 0.0],
            &[38.0, 30.0, 35.0, 20.0, 2.0],
        );
        let l = Likelihood {
            histogram: groups.frequency_histogram(),
            customers: groups.customers(),
            groups: &groups,
        };
        let theta = [0.2f64.ln(), 3.0f64.ln(), 0.8f64.ln(), 2.5f64.ln()];
        assert_gradient_matches(&l, &theta);
    }

    #[test]
    fn the_likelihood_is_a_distribution_over_outcomes() {
        // Without repeats P(x = 0 | T) = L(0, 0, T); it falls with T.
        let p = CDNOW;
        let l0 = p.log_likelihood(0, 0.0, 10.0).exp();
        assert!(l0 > 0.0 && l0 < 1.0);
        assert!(p.log_likelihood(0, 0.0, 20.0) < p.log_likelihood(0, 0.0, 10.0));
    }

    #[test]
    fn scores_behave_as_the_model_says() {
        let p = CDNOW;
        // Without repeats a customer is alive; a long silence after repeats is not.
        assert_eq!(p.p_alive(0, 0.0, 30.0), 1.0);
        assert!(p.p_alive(5, 5.0, 38.0) < p.p_alive(5, 37.0, 38.0));
        // Recent frequent buyers are expected to buy more.
        let quiet = p.expected_purchases(39.0, 5, 5.0, 38.0);
        let busy = p.expected_purchases(39.0, 5, 37.0, 38.0);
        assert!(busy > quiet && quiet >= 0.0, "{busy} {quiet}");
        assert!(
            p.expected_purchases(10.0, 2, 20.0, 30.0) < p.expected_purchases(20.0, 2, 20.0, 30.0)
        );
        let none = p.p_no_purchase(13.0, 2, 20.0, 30.0);
        assert!(none > 0.0 && none < 1.0);
        // A new customer's expectation grows with time, from 0.
        assert!(p.expected_purchases_new(0.0).abs() < 1e-12);
        assert!(p.expected_purchases_new(52.0) > p.expected_purchases_new(26.0));
    }

    #[test]
    fn conditional_expectation_matches_the_papers_worked_example() {
        // FHL 2005: a customer with x = 2, t_x = 30.43, T = 38.86 is
        // expected to make 1.226 purchases in the next 39 weeks.
        let e = CDNOW.expected_purchases(39.0, 2, 30.43, 38.86);
        assert!((e - 1.226_028).abs() < 1e-5, "{e}");
        // The same figures from lifetimes 0.11.3 with these parameters:
        // P(alive), a new customer's first year, and a large x (finite
        // thanks to the Euler transformation).
        assert!((CDNOW.p_alive(2, 30.43, 38.86) - 0.726_578_6).abs() < 1e-6);
        assert!((CDNOW.expected_purchases_new(52.0) - 1.446_050_6).abs() < 1e-6);
        let big = CDNOW.expected_purchases(52.0, 400, 100.0, 101.0);
        assert!((big - 153.680_276).abs() < 1e-4, "{big}");
    }

    #[test]
    fn a_near_degenerate_dropout_gives_finite_continuous_expectations() {
        // Small data often fits a, b → ∞ at a fixed a / (a + b): expectations
        // on either side of the switch to the point-mass limit agree.
        let args = (13.0, 1, 4.4, 8.4);
        let at = |s: f64| {
            let p = BgNbdParams {
                r: 0.26,
                alpha: 5.4,
                a: 0.19 * s,
                b: 0.81 * s,
            };
            p.expected_purchases(args.0, args.1, args.2, args.3)
        };
        let (below, above, huge) = (at(0.999e4), at(1.001e4), at(7e6));
        assert!(below > 0.0 && below.is_finite(), "{below}");
        assert!((below - above).abs() < 1e-3 * below, "{below} vs {above}");
        assert!((above - huge).abs() < 2e-3 * above, "{above} vs {huge}");
        // Through the series at a + b = 2000 (no overflow) and the limit agree.
        assert!((at(2000.0) - huge).abs() < 1e-2 * huge);
    }
}
