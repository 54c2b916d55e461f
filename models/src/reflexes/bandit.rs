//! Traffic splits across creatives or ad variants by Thompson sampling: each
//! arm's share is the posterior probability that it is the best arm, with a
//! floor that keeps every arm explored.
//!
//! - Rates (clicks per impression, conversions per click): Beta-Binomial with
//!   a uniform Beta(1, 1) prior.
//! - Value per impression: a Gaussian with unknown mean and variance; the
//!   mean's posterior is Student's t around the sample mean (a weak prior
//!   keeps arms with fewer than two observations wide).
//!
//! ```
//! use gyrus_models::reflexes::bandit::{Arm, split};
//! let arms = [Arm::rate("a", 1000, 50), Arm::rate("b", 1000, 80)];
//! let s = split(&arms, 0.05, 10_000, 7).unwrap();
//! assert!(s.shares[1] > 0.9 && s.shares[0] >= 0.05);
//! ```

use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng};
use rand_distr::{Beta, Distribution, StudentT};

use crate::error::{ModelError, Result};

/// What an arm has seen so far.
#[derive(Debug, Clone, PartialEq)]
pub enum Evidence {
    /// Successes out of trials (clicks of impressions, conversions of clicks).
    Rate { trials: u64, successes: u64 },
    /// Observations of a value (value per impression): count, sum, sum of squares.
    Value { n: u64, sum: f64, sum_squares: f64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Arm {
    pub id: String,
    pub evidence: Evidence,
}

impl Arm {
    pub fn rate(id: impl Into<String>, trials: u64, successes: u64) -> Self {
        Arm {
            id: id.into(),
            evidence: Evidence::Rate { trials, successes },
        }
    }
}

/// Traffic shares and what they rest on.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Share of traffic per arm, in the arms' order; they add up to 1.
    pub shares: Vec<f64>,
    /// Posterior probability that each arm is the best.
    pub p_best: Vec<f64>,
    /// Posterior mean of each arm's rate or value.
    pub mean: Vec<f64>,
    /// Expected loss (in the arms' unit) of choosing each arm now.
    pub expected_loss: Vec<f64>,
}

/// Most draws a split may take.
pub const MAX_DRAWS: usize = 1_000_000;

/// The Thompson-sampling split: `draws` joint draws from the posteriors,
/// each arm's share of wins, then at least `floor` for every arm.
pub fn split(arms: &[Arm], floor: f64, draws: usize, seed: u64) -> Result<Split> {
    check(arms, floor, draws)?;
    let posteriors: Vec<Posterior> = arms.iter().map(Posterior::of).collect::<Result<_>>()?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut wins = vec![0usize; arms.len()];
    let mut loss = vec![0.0; arms.len()];
    let mut sample = vec![0.0; arms.len()];
    for _ in 0..draws {
        for (s, p) in sample.iter_mut().zip(&posteriors) {
            *s = p.draw(&mut rng);
        }
        let (best, top) =
            sample.iter().enumerate().fold(
                (0, f64::MIN),
                |(bi, bv), (i, &v)| {
                    if v > bv { (i, v) } else { (bi, bv) }
                },
            );
        wins[best] += 1;
        for (l, s) in loss.iter_mut().zip(&sample) {
            *l += top - s;
        }
    }
    let p_best: Vec<f64> = wins.iter().map(|&w| w as f64 / draws as f64).collect();
    Ok(Split {
        shares: with_floor(&p_best, floor),
        mean: posteriors.iter().map(Posterior::mean).collect(),
        expected_loss: loss.iter().map(|l| l / draws as f64).collect(),
        p_best,
    })
}

fn check(arms: &[Arm], floor: f64, draws: usize) -> Result<()> {
    let invalid = |m: String| Err(ModelError::Invalid(m));
    if arms.len() < 2 {
        return invalid("a split needs at least two arms".into());
    }
    let mut ids: Vec<&str> = arms.iter().map(|a| a.id.as_str()).collect();
    ids.sort_unstable();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        return invalid(format!("arm `{}` is named twice", w[0]));
    }
    let kinds = arms
        .iter()
        .map(|a| matches!(a.evidence, Evidence::Rate { .. }))
        .collect::<std::collections::HashSet<_>>();
    if kinds.len() > 1 {
        return invalid("arms must all be rates or all be values".into());
    }
    if !(0.0..=1.0 / arms.len() as f64).contains(&floor) {
        return invalid(format!(
            "floor must be from 0 to 1/{} (one arm's even share), not {floor}",
            arms.len()
        ));
    }
    if !(1..=MAX_DRAWS).contains(&draws) {
        return invalid(format!("draws must be from 1 to {MAX_DRAWS}, not {draws}"));
    }
    Ok(())
}

/// Shares of at least `floor` each: floor + (1 − n·floor) · p.
fn with_floor(p_best: &[f64], floor: f64) -> Vec<f64> {
    let rest = 1.0 - floor * p_best.len() as f64;
    p_best.iter().map(|p| floor + rest * p).collect()
}

enum Posterior {
    Beta(Beta<f64>, f64),
    /// mean + scale · t(df)
    T {
        mean: f64,
        scale: f64,
        t: StudentT<f64>,
    },
}

impl Posterior {
    fn of(arm: &Arm) -> Result<Posterior> {
        let bad = |m: &str| ModelError::Invalid(format!("arm `{}`: {m}", arm.id));
        match arm.evidence {
            Evidence::Rate { trials, successes } => {
                if successes > trials {
                    return Err(bad("successes cannot exceed trials"));
                }
                let (a, b) = (1.0 + successes as f64, 1.0 + (trials - successes) as f64);
                let beta = Beta::new(a, b).map_err(|e| bad(&e.to_string()))?;
                Ok(Posterior::Beta(beta, a / (a + b)))
            }
            Evidence::Value {
                n,
                sum,
                sum_squares,
            } => {
                if !(sum.is_finite() && sum_squares.is_finite() && sum_squares >= 0.0) {
                    return Err(bad("sum and sum_squares must be finite, sum_squares ≥ 0"));
                }
                let count = n as f64;
                if n > 0 && sum * sum > count * sum_squares * (1.0 + 1e-9) + 1e-9 {
                    return Err(bad("sum_squares is smaller than sum² / n allows"));
                }
                // Weak prior: one pseudo-observation at 0 with unit variance,
                // so arms with little data stay wide.
                let mean = if n > 0 { sum / count } else { 0.0 };
                let variance = if n > 1 {
                    ((sum_squares - sum * sum / count) / (count - 1.0)).max(0.0)
                } else {
                    0.0
                };
                let prior_var = 1.0_f64.max(mean * mean);
                let pooled = (variance * (count - 1.0).max(0.0) + prior_var) / count.max(1.0);
                let scale = (pooled / (count + 1.0)).sqrt().max(1e-12);
                let df = (count).max(1.0);
                let t = StudentT::new(df).map_err(|e| bad(&e.to_string()))?;
                Ok(Posterior::T { mean, scale, t })
            }
        }
    }

    fn draw(&self, rng: &mut StdRng) -> f64 {
        match self {
            Posterior::Beta(b, _) => b.sample(rng),
            Posterior::T { mean, scale, t } => mean + scale * t.sample(rng),
        }
    }

    fn mean(&self) -> f64 {
        match self {
            Posterior::Beta(_, m) => *m,
            Posterior::T { mean, .. } => *mean,
        }
    }
}

/// A simulated campaign for the regret test and the bench: rounds of
/// `per_round` impressions split by a policy, true click rates `rates`.
/// Returns the cumulative regret (clicks lost against always showing the
/// best arm, in expectation) after each round.
pub fn simulate(
    rates: &[f64],
    rounds: usize,
    per_round: u64,
    thompson: bool,
    seed: u64,
) -> Result<Vec<f64>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let best = rates.iter().copied().fold(f64::MIN, f64::max);
    let mut trials = vec![0u64; rates.len()];
    let mut successes = vec![0u64; rates.len()];
    let mut regret = 0.0;
    let mut out = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let shares = if thompson {
            let arms: Vec<Arm> = (0..rates.len())
                .map(|i| Arm::rate(format!("{i}"), trials[i], successes[i]))
                .collect();
            split(&arms, 0.0, 1_000, seed ^ round as u64)?.shares
        } else {
            vec![1.0 / rates.len() as f64; rates.len()]
        };
        for (i, share) in shares.iter().enumerate() {
            let n = (share * per_round as f64).round() as u64;
            let clicks = (0..n).filter(|_| rng.random::<f64>() < rates[i]).count() as u64;
            trials[i] += n;
            successes[i] += clicks;
            regret += n as f64 * (best - rates[i]);
        }
        out.push(regret);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regret_grows_sublinearly_and_far_below_a_uniform_split() {
        let rates = [0.040, 0.050, 0.045, 0.030];
        let (rounds, per_round) = (400, 200);
        let mut thompson_total = (0.0, 0.0);
        let mut uniform_total = 0.0;
        for seed in 0..5 {
            let ts = simulate(&rates, rounds, per_round, true, seed).unwrap();
            let uniform = simulate(&rates, rounds, per_round, false, seed).unwrap();
            thompson_total.0 += ts[rounds / 4 - 1];
            thompson_total.1 += ts[rounds - 1];
            uniform_total += uniform[rounds - 1];
        }
        let (quarter, full) = thompson_total;
        // Linear regret would grow 4× from a quarter of the rounds to all.
        assert!(full < 2.0 * quarter, "regret grew {:.2}×", full / quarter);
        assert!(
            full < 0.2 * uniform_total,
            "{full} vs uniform {uniform_total}"
        );
    }

    #[test]
    fn the_floor_keeps_every_arm_explored() {
        let arms = [
            Arm::rate("a", 10_000, 100),
            Arm::rate("b", 10_000, 900),
            Arm::rate("c", 10_000, 120),
        ];
        let s = split(&arms, 0.1, 5_000, 1).unwrap();
        assert!((s.shares.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(s.shares.iter().all(|&x| x >= 0.1 - 1e-12));
        assert!(s.shares[1] > 0.79);
        assert!(s.expected_loss[1] < s.expected_loss[0]);
    }

    #[test]
    fn value_arms_follow_their_means() {
        let value = |id: &str, n: u64, mean: f64, sd: f64| Arm {
            id: id.into(),
            evidence: Evidence::Value {
                n,
                sum: mean * n as f64,
                sum_squares: n as f64 * (sd * sd + mean * mean),
            },
        };
        let arms = [value("a", 500, 1.0, 2.0), value("b", 500, 1.6, 2.0)];
        let s = split(&arms, 0.0, 20_000, 3).unwrap();
        assert!(s.p_best[1] > 0.99, "{s:?}");
        // Little data: close to even.
        let arms = [value("a", 3, 1.0, 2.0), value("b", 3, 1.1, 2.0)];
        let s = split(&arms, 0.0, 20_000, 3).unwrap();
        assert!(s.p_best[0] > 0.3, "{s:?}");
    }

    #[test]
    fn refuses_bad_arms() {
        assert!(split(&[Arm::rate("a", 1, 2), Arm::rate("b", 1, 0)], 0.0, 10, 1).is_err());
        assert!(split(&[Arm::rate("a", 1, 1)], 0.0, 10, 1).is_err());
        assert!(split(&[Arm::rate("a", 1, 1), Arm::rate("a", 1, 1)], 0.0, 10, 1).is_err());
        assert!(split(&[Arm::rate("a", 1, 1), Arm::rate("b", 1, 1)], 0.6, 10, 1).is_err());
    }
}
