//! Smooth unconstrained minimisation, for maximum-likelihood fits: argmin's
//! L-BFGS with a Moré–Thuente line search, and its Nelder–Mead when the line
//! search gives up (a likelihood that overflows far from the optimum).
//!
//! Models write their objective once, value and gradient together, on
//! unconstrained parameters (logs of positive ones); [`minimize`] does the rest.

use argmin::core::{CostFunction, Error as ArgminError, Executor, Gradient, IterState, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::neldermead::NelderMead;
use argmin::solver::quasinewton::LBFGS;
use ndarray::Array1;

use crate::error::{ModelError, Result};

/// A smooth function of unconstrained parameters.
pub trait Objective: Sync {
    /// The value and gradient at `theta`. Non-finite values are allowed far
    /// from the optimum; the minimiser steps back from them.
    fn value_and_gradient(&self, theta: &[f64]) -> (f64, Vec<f64>);
}

/// Where a minimisation ended.
#[derive(Debug, Clone)]
pub struct Minimum {
    pub theta: Vec<f64>,
    pub value: f64,
    pub iterations: u64,
    /// `lbfgs`, or `nelder-mead` when L-BFGS failed.
    pub method: &'static str,
}

struct Adapter<'a, O>(&'a O);

impl<O: Objective> CostFunction for Adapter<'_, O> {
    type Param = Array1<f64>;
    type Output = f64;
    fn cost(&self, theta: &Array1<f64>) -> std::result::Result<f64, ArgminError> {
        let (value, _) = self.0.value_and_gradient(theta.as_slice().unwrap_or(&[]));
        // Line searches need an ordered value; overflow means "far too far".
        Ok(if value.is_finite() { value } else { f64::MAX })
    }
}

impl<O: Objective> Gradient for Adapter<'_, O> {
    type Param = Array1<f64>;
    type Gradient = Array1<f64>;
    fn gradient(&self, theta: &Array1<f64>) -> std::result::Result<Array1<f64>, ArgminError> {
        let (_, gradient) = self.0.value_and_gradient(theta.as_slice().unwrap_or(&[]));
        Ok(Array1::from(gradient).mapv(|g| if g.is_finite() { g } else { 0.0 }))
    }
}

/// Minimises `objective` from `start`.
pub fn minimize<O: Objective>(objective: &O, start: &[f64], max_iters: u64) -> Result<Minimum> {
    let lbfgs = lbfgs(objective, start, max_iters);
    if let Ok(found) = &lbfgs
        && found.value.is_finite()
        && found.value < f64::MAX
    {
        return lbfgs;
    }
    let simplex = nelder_mead(objective, start, max_iters * 20)?;
    // Polish: L-BFGS from Nelder–Mead's point converges where it could not before.
    match self::lbfgs(objective, &simplex.theta, max_iters) {
        Ok(polished) if polished.value <= simplex.value => Ok(Minimum {
            method: "nelder-mead",
            ..polished
        }),
        _ => Ok(simplex),
    }
}

fn lbfgs<O: Objective>(objective: &O, start: &[f64], max_iters: u64) -> Result<Minimum> {
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), 10)
        .with_tolerance_grad(1e-9)
        .and_then(|s| s.with_tolerance_cost(1e-13))
        .map_err(optimiser_error)?;
    let result = Executor::new(Adapter(objective), solver)
        .configure(|state| {
            state
                .param(Array1::from(start.to_vec()))
                .max_iters(max_iters)
        })
        .run()
        .map_err(optimiser_error)?;
    best(result.state(), "lbfgs")
}

/// The best point an argmin run found.
fn best<G>(
    state: &IterState<Array1<f64>, G, (), (), (), f64>,
    method: &'static str,
) -> Result<Minimum> {
    let theta = state
        .get_best_param()
        .map(|p| p.to_vec())
        .ok_or_else(|| ModelError::Invalid("the optimiser returned no parameters".into()))?;
    Ok(Minimum {
        theta,
        value: state.get_best_cost(),
        iterations: state.get_iter(),
        method,
    })
}

fn nelder_mead<O: Objective>(objective: &O, start: &[f64], max_iters: u64) -> Result<Minimum> {
    let mut simplex = vec![Array1::from(start.to_vec())];
    for i in 0..start.len() {
        let mut vertex = Array1::from(start.to_vec());
        vertex[i] += 0.5;
        simplex.push(vertex);
    }
    let solver = NelderMead::new(simplex)
        .with_sd_tolerance(1e-12)
        .map_err(optimiser_error)?;
    let result = Executor::new(Adapter(objective), solver)
        .configure(|state| state.max_iters(max_iters))
        .run()
        .map_err(optimiser_error)?;
    best(result.state(), "nelder-mead")
}

fn optimiser_error(e: ArgminError) -> ModelError {
    ModelError::Invalid(format!("the likelihood could not be maximised: {e}"))
}

/// The inverse of the negative Hessian of a log-likelihood at its maximum
/// (the asymptotic covariance of the estimates), from central differences
/// of its gradient; `None` when the Hessian is not negative definite.
pub fn covariance(gradient: impl Fn(&[f64]) -> Vec<f64>, at: &[f64]) -> Option<Vec<Vec<f64>>> {
    let n = at.len();
    let mut hessian = nalgebra::DMatrix::<f64>::zeros(n, n);
    for j in 0..n {
        let h = 1e-5 * at[j].abs().max(1e-3);
        let (mut up, mut down) = (at.to_vec(), at.to_vec());
        up[j] += h;
        down[j] -= h;
        let (gu, gd) = (gradient(&up), gradient(&down));
        for i in 0..n {
            hessian[(i, j)] = (gu[i] - gd[i]) / (2.0 * h);
        }
    }
    let information = -(hessian.clone() + hessian.transpose()) / 2.0;
    let cholesky = information.cholesky()?;
    let inverse = cholesky.inverse();
    Some(
        (0..n)
            .map(|i| (0..n).map(|j| inverse[(i, j)]).collect())
            .collect(),
    )
}

/// Asserts that an objective's analytic gradient matches central
/// differences of its value at `theta` (for the models' tests).
#[cfg(test)]
pub(crate) fn assert_gradient_matches(objective: &impl Objective, theta: &[f64]) {
    let (_, gradient) = objective.value_and_gradient(theta);
    for k in 0..theta.len() {
        let (mut up, mut down) = (theta.to_vec(), theta.to_vec());
        up[k] += 1e-6;
        down[k] -= 1e-6;
        let numeric =
            (objective.value_and_gradient(&up).0 - objective.value_and_gradient(&down).0) / 2e-6;
        assert!(
            (numeric - gradient[k]).abs() < 1e-6,
            "parameter {k}: numeric {numeric} vs analytic {}",
            gradient[k]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rosenbrock's banana, a standard hard valley.
    struct Banana;
    impl Objective for Banana {
        fn value_and_gradient(&self, t: &[f64]) -> (f64, Vec<f64>) {
            let (x, y) = (t[0], t[1]);
            let value = (1.0 - x).powi(2) + 100.0 * (y - x * x).powi(2);
            let gradient = vec![
                -2.0 * (1.0 - x) - 400.0 * x * (y - x * x),
                200.0 * (y - x * x),
            ];
            (value, gradient)
        }
    }

    #[test]
    fn finds_the_minimum_of_a_hard_valley() {
        let found = minimize(&Banana, &[-1.2, 1.0], 500).unwrap();
        assert!((found.theta[0] - 1.0).abs() < 1e-5, "{found:?}");
        assert!((found.theta[1] - 1.0).abs() < 1e-5, "{found:?}");
    }

    #[test]
    fn covariance_of_a_gaussian_likelihood_is_its_variance() {
        // ln L(μ) = −Σ (x_i − μ)² / 2σ² has information n/σ².
        let (n, sigma2) = (50.0, 4.0);
        let gradient = |t: &[f64]| vec![-n * (t[0] - 3.0) / sigma2];
        let cov = covariance(gradient, &[3.0]).unwrap();
        assert!((cov[0][0] - sigma2 / n).abs() < 1e-6);
    }
}
