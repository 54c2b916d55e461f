//! Budget allocation: the spend per entity that maximises the total expected
//! response for a total budget, within per-entity bounds, optionally keeping
//! an efficiency target (a CPA or ROAS the whole plan must reach).
//!
//! For concave curves the optimum equalises marginal returns: every entity
//! inside its bounds has response′(xᵢ) = ρ, and ρ is the one number for which
//! the spends add up to the budget. Spends are monotone in ρ, so ρ is found by
//! a bracketed root search, and each entity's spend for a ρ by a safeguarded
//! Newton step in closed form (Hill's slope is monotone in log scale). An
//! efficiency target adds a second multiplier μ (Lagrangian of Σ a·cᵢ·fᵢ − xᵢ ≥ 0):
//! each entity then solves (1 + μ·a·cᵢ)·fᵢ′(xᵢ) = ρ, and μ is found the same way.
//!
//! S-shaped curves (Hill shape > 1) are not concave: each is replaced by its
//! concave envelope (a straight line from the lower bound to the tangent
//! point, the curve after it), which makes the problem exact again; an entity
//! whose optimum falls on the straight stretch is then moved to whichever end
//! gives the larger total.
//!
//! ```
//! use gyrus_models::reflexes::allocate::{Entity, Problem, allocate};
//! use gyrus_models::reflexes::curve::ResponseCurve;
//! let curve = |beta| ResponseCurve { baseline: 0.0, beta, half_saturation: 100.0, shape: 1.0, adstock: 0.0 };
//! let problem = Problem {
//!     entities: vec![Entity::new("a", curve(10.0)), Entity::new("b", curve(40.0))],
//!     budget: 200.0,
//!     efficiency: None,
//! };
//! let plan = allocate(&problem).unwrap();
//! assert!((plan.spend.iter().sum::<f64>() - 200.0).abs() < 1e-6);
//! assert!(plan.spend[1] > plan.spend[0]); // the stronger curve gets more
//! ```

use rayon::prelude::*;

use super::curve::ResponseCurve;
use crate::error::{ModelError, Result};

/// One entity of a problem.
#[derive(Debug, Clone)]
pub struct Entity {
    pub id: String,
    /// Expected response (the objective) per period to spend per period.
    pub curve: ResponseCurve,
    pub lower: f64,
    /// `f64::INFINITY` for no upper bound.
    pub upper: f64,
    /// Units of the efficiency target's response per unit of the objective's
    /// (conversion value per conversion when maximising conversions under a
    /// ROAS target; 1 when the two are the same).
    pub efficiency_weight: f64,
}

impl Entity {
    /// An entity with no bounds beyond spend ≥ 0.
    pub fn new(id: impl Into<String>, curve: ResponseCurve) -> Self {
        Entity {
            id: id.into(),
            curve,
            lower: 0.0,
            upper: f64::INFINITY,
            efficiency_weight: 1.0,
        }
    }
}

/// Maximise Σ fᵢ(xᵢ) subject to Σ xᵢ ≤ budget, lowerᵢ ≤ xᵢ ≤ upperᵢ and,
/// with `efficiency = Some(a)`, Σ (a · cᵢ · fᵢ(xᵢ) − xᵢ) ≥ 0: a is the target
/// CPA (response per spend at least 1/a) or 1 / the target ROAS.
#[derive(Debug, Clone)]
pub struct Problem {
    pub entities: Vec<Entity>,
    pub budget: f64,
    pub efficiency: Option<f64>,
}

/// The optimum.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    pub spend: Vec<f64>,
    /// Expected response of each entity at its spend.
    pub response: Vec<f64>,
    pub total_spend: f64,
    pub total_response: f64,
    /// ρ: the marginal response per unit of spend at the optimum.
    pub marginal: f64,
    /// μ: the price of the efficiency target (0 when it does not bind).
    pub efficiency_multiplier: f64,
    /// An entity moved off the straight stretch of its concave envelope.
    pub rounded: Option<usize>,
}

/// Solves a problem. Errors say why it has no solution (bounds that need
/// more than the budget, an efficiency target no allocation reaches).
pub fn allocate(problem: &Problem) -> Result<Allocation> {
    check(problem)?;
    let prepared: Vec<Prepared> = problem.entities.iter().map(Prepared::new).collect();
    let solver = Solver {
        problem,
        entities: prepared,
    };
    solver.solve(0)
}

fn check(problem: &Problem) -> Result<()> {
    let invalid = |m: String| Err(ModelError::Invalid(m));
    if !(problem.budget.is_finite() && problem.budget >= 0.0) {
        return invalid(format!(
            "the budget must be a finite amount ≥ 0, not {}",
            problem.budget
        ));
    }
    if let Some(a) = problem.efficiency
        && !(a.is_finite() && a > 0.0)
    {
        return invalid(format!("the efficiency target must be > 0, not {a}"));
    }
    for e in &problem.entities {
        let c = &e.curve;
        let finite = [c.baseline, c.beta, c.half_saturation, c.shape, c.adstock]
            .iter()
            .all(|v| v.is_finite());
        if !finite
            || c.baseline < 0.0
            || c.beta < 0.0
            || c.half_saturation <= 0.0
            || c.shape <= 0.0
            || !(0.0..1.0).contains(&c.adstock)
        {
            return invalid(format!(
                "entity `{}`: a curve needs baseline ≥ 0, beta ≥ 0, half_saturation > 0, \
                 shape > 0 and 0 ≤ adstock < 1",
                e.id
            ));
        }
        if !(e.lower.is_finite() && e.lower >= 0.0 && e.upper >= e.lower) || e.upper.is_nan() {
            return invalid(format!(
                "entity `{}`: bounds need 0 ≤ lower ≤ upper, not {} and {}",
                e.id, e.lower, e.upper
            ));
        }
        if !(e.efficiency_weight.is_finite() && e.efficiency_weight >= 0.0) {
            return invalid(format!(
                "entity `{}`: the efficiency weight must be ≥ 0",
                e.id
            ));
        }
    }
    let floor: f64 = problem.entities.iter().map(|e| e.lower).sum();
    if floor > problem.budget * (1.0 + 1e-12) {
        return invalid(format!(
            "the lower bounds add up to {floor:.2}, more than the budget of {:.2}",
            problem.budget
        ));
    }
    Ok(())
}

/// An entity's curve in the form the solver needs.
#[derive(Debug, Clone)]
struct Prepared {
    curve: ResponseCurve,
    beta: f64,
    /// Half-saturation in spend per period.
    k: f64,
    shape: f64,
    lower: f64,
    upper: f64,
    /// Where the envelope meets the curve: from here on the curve is concave.
    knee: f64,
    /// Slope of the envelope's straight stretch from `lower` to `knee`.
    stretch: Option<f64>,
    weight: f64,
}

impl Prepared {
    fn new(e: &Entity) -> Self {
        let mut p = Prepared {
            curve: e.curve,
            beta: e.curve.beta,
            k: e.curve.steady_half_saturation(),
            shape: e.curve.shape,
            lower: e.lower,
            upper: e.upper,
            knee: e.lower,
            stretch: None,
            weight: e.efficiency_weight,
        };
        if p.shape > 1.0 && p.beta > 0.0 && p.upper > p.lower {
            let inflection = p.k * ((p.shape - 1.0) / (p.shape + 1.0)).powf(1.0 / p.shape);
            if p.lower < inflection {
                let tangent = p.tangent_from_lower(inflection);
                if tangent < p.upper {
                    p.knee = tangent;
                    p.stretch = Some(p.slope(tangent));
                } else {
                    p.knee = p.upper;
                    p.stretch = Some((p.value(p.upper) - p.value(p.lower)) / (p.upper - p.lower));
                }
            }
        }
        p
    }

    fn value(&self, x: f64) -> f64 {
        self.curve.response(x)
    }

    fn slope(&self, x: f64) -> f64 {
        self.curve.marginal(x)
    }

    /// The point t past the inflection where the line from (lower, f(lower))
    /// touches the curve: f′(t)·(t − lower) = f(t) − f(lower).
    fn tangent_from_lower(&self, inflection: f64) -> f64 {
        let gap =
            |t: f64| self.slope(t) * (t - self.lower) - (self.value(t) - self.value(self.lower));
        let (mut lo, mut hi) = (inflection, inflection * 2.0);
        while gap(hi) > 0.0 && hi < 1e300 {
            lo = hi;
            hi *= 2.0;
        }
        for _ in 0..200 {
            let mid = (lo * hi).sqrt();
            if gap(mid) > 0.0 {
                lo = mid;
            } else {
                hi = mid;
            }
            if hi - lo <= 1e-14 * hi {
                break;
            }
        }
        hi
    }

    /// The spend at which the envelope's slope falls to `tau`, within bounds.
    /// `warm` is the previous answer's log-Hill coordinate, a good start.
    fn spend_at(&self, tau: f64, warm: &mut f64) -> f64 {
        if self.upper <= self.lower || self.beta == 0.0 {
            return if self.beta == 0.0 {
                self.lower
            } else {
                self.upper
            };
        }
        if let Some(stretch) = self.stretch {
            if tau >= stretch {
                return self.lower;
            }
            if self.knee >= self.upper {
                return self.upper;
            }
        }
        let from = self.knee;
        if self.slope(from) <= tau {
            return from;
        }
        if self.upper.is_finite() && self.slope(self.upper) >= tau {
            return self.upper;
        }
        // Solve ln f′ = ln τ in z = ln u = s·ln(x/k), where ln f′ =
        // ln(β s / k) + (1 − 1/s) z − 2 ln(1 + eᶻ): decreasing on the concave part.
        let s = self.shape;
        let z_of = |x: f64| s * (x / self.k).ln();
        let mut lo = if from > 0.0 { z_of(from) } else { -700.0 };
        let mut hi = if self.upper.is_finite() {
            z_of(self.upper)
        } else {
            700.0
        };
        let target = (self.beta * s / self.k).ln() - tau.ln();
        let gap = |z: f64| target + (1.0 - 1.0 / s) * z - 2.0 * softplus(z);
        let mut z = if warm.is_finite() && *warm > lo && *warm < hi {
            *warm
        } else {
            // For large u the gap is nearly linear: a close first guess.
            (target / (1.0 + 1.0 / s)).clamp(lo.max(-690.0), hi.min(690.0))
        };
        for _ in 0..100 {
            let g = gap(z);
            if g > 0.0 {
                lo = z;
            } else {
                hi = z;
            }
            let e = logistic(z);
            let derivative = (1.0 - 1.0 / s) - 2.0 * e;
            let mut next = z - g / derivative;
            if !(next > lo && next < hi) || derivative >= 0.0 {
                next = 0.5 * (lo + hi);
            }
            if (next - z).abs() < 1e-13 * z.abs().max(1.0) {
                z = next;
                break;
            }
            z = next;
        }
        *warm = z;
        (self.k * (z / s).exp()).clamp(from, self.upper)
    }
}

fn softplus(z: f64) -> f64 {
    if z > 30.0 {
        z + (-z).exp()
    } else {
        z.exp().ln_1p()
    }
}

fn logistic(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

struct Solver<'a> {
    problem: &'a Problem,
    entities: Vec<Prepared>,
}

/// Spends for one (ρ, μ), with the warm starts of each entity.
struct Point {
    spend: Vec<f64>,
    total: f64,
}

impl Solver<'_> {
    /// The spends at multipliers (ρ, μ).
    fn point(&self, rho: f64, mu: f64, warm: &mut [f64]) -> Point {
        let a = self.problem.efficiency.unwrap_or(0.0);
        let spend: Vec<f64> = if self.entities.len() >= 4096 {
            self.entities
                .par_iter()
                .zip(warm.par_iter_mut())
                .map(|(e, w)| e.spend_at(rho / (1.0 + mu * a * e.weight), w))
                .collect()
        } else {
            self.entities
                .iter()
                .zip(warm.iter_mut())
                .map(|(e, w)| e.spend_at(rho / (1.0 + mu * a * e.weight), w))
                .collect()
        };
        let total = spend.iter().sum();
        Point { spend, total }
    }

    /// Σ (a·cᵢ·fᵢ(xᵢ) − xᵢ): ≥ 0 when the efficiency target holds.
    fn efficiency_gap(&self, spend: &[f64]) -> f64 {
        let a = self.problem.efficiency.unwrap_or(0.0);
        self.entities
            .iter()
            .zip(spend)
            .map(|(e, &x)| a * e.weight * e.value(x) - x)
            .sum()
    }

    fn solve(&self, depth: usize) -> Result<Allocation> {
        let mut warm = vec![f64::NAN; self.entities.len()];
        let (mut rho, mut point) = self.budget_point(0.0, &mut warm);
        let mut mu = 0.0;
        if self.problem.efficiency.is_some() {
            let tolerance = 1e-10 * self.problem.budget.max(1.0);
            if self.efficiency_gap(&point.spend) < -tolerance {
                (mu, rho, point) = self.efficiency_point(&mut warm)?;
            }
        }
        let budget = self.problem.budget;
        // A budget that falls inside an S-curve's straight stretch: the
        // relaxed optimum spends part of the stretch; move that entity to one
        // end or the other, whichever gives more.
        if depth == 0
            && self.problem.efficiency.is_none()
            && budget - point.total > 1e-9 * budget.max(1.0)
            && let Some(j) = self.straddling(rho, mu, &point)
        {
            let mut best = self.finish(point, rho, mu, None);
            for lower_at_knee in [false, true] {
                let mut entities = self.entities.clone();
                let e = &mut entities[j];
                if lower_at_knee {
                    e.lower = e.knee;
                    e.stretch = None;
                } else {
                    e.upper = e.lower;
                }
                let floor: f64 = entities.iter().map(|e| e.lower).sum();
                if floor > budget {
                    continue;
                }
                let other = Solver {
                    problem: self.problem,
                    entities,
                };
                if let Ok(found) = other.solve(depth + 1)
                    && found.total_response > best.total_response
                {
                    best = Allocation {
                        rounded: Some(j),
                        ..found
                    };
                }
            }
            return Ok(self.fill(best));
        }
        let found = self.finish(point, rho, mu, None);
        Ok(if depth == 0 { self.fill(found) } else { found })
    }

    /// Spends what the envelope left unspent. Responses only rise with
    /// spend, so budget left over (entities on straight stretches that
    /// would each overshoot it) goes, greedily, where it adds the most.
    fn fill(&self, mut found: Allocation) -> Allocation {
        if self.problem.efficiency.is_some() {
            return found;
        }
        let budget = self.problem.budget;
        for _ in 0..self.entities.len() {
            let left = budget - found.spend.iter().sum::<f64>();
            if left <= 1e-12 * budget.max(1.0) {
                break;
            }
            let best = self
                .entities
                .iter()
                .enumerate()
                .filter(|(i, e)| found.spend[*i] < e.upper)
                .map(|(i, e)| {
                    let to = (found.spend[i] + left).min(e.upper);
                    (i, to, e.value(to) - found.response[i])
                })
                .max_by(|a, b| a.2.total_cmp(&b.2));
            let Some((i, to, _)) = best else { break };
            found.spend[i] = to;
            found.response[i] = self.entities[i].value(to);
        }
        found.total_spend = found.spend.iter().sum();
        found.total_response = found.response.iter().sum();
        found
    }

    /// The entity whose spend jumps at ρ: on its stretch's slope.
    fn straddling(&self, rho: f64, mu: f64, point: &Point) -> Option<usize> {
        let a = self.problem.efficiency.unwrap_or(0.0);
        self.entities
            .iter()
            .enumerate()
            .filter(|(i, e)| {
                e.stretch.is_some_and(|s| {
                    let tau = rho / (1.0 + mu * a * e.weight);
                    (tau - s).abs() <= 1e-6 * s && point.spend[*i] <= e.lower
                })
            })
            .map(|(i, _)| i)
            .next()
    }

    fn finish(&self, point: Point, rho: f64, mu: f64, rounded: Option<usize>) -> Allocation {
        let response: Vec<f64> = self
            .entities
            .iter()
            .zip(&point.spend)
            .map(|(e, &x)| e.value(x))
            .collect();
        Allocation {
            total_spend: point.total,
            total_response: response.iter().sum(),
            spend: point.spend,
            response,
            marginal: rho,
            efficiency_multiplier: mu,
            rounded,
        }
    }

    /// The ρ ≥ μ at which spends fill the budget (or ρ = μ when they stay
    /// below it), and the spends there.
    fn budget_point(&self, mu: f64, warm: &mut [f64]) -> (f64, Point) {
        let budget = self.problem.budget;
        let at_floor = self.point(mu, mu, warm);
        if at_floor.total <= budget {
            return (mu, at_floor);
        }
        // Bracket ρ: the spends fall as ρ rises.
        let (mut lo, mut hi) = (mu, mu.max(1e-300));
        let mut p_hi = self.point(hi, mu, warm);
        while p_hi.total > budget && hi < 1e300 {
            lo = hi;
            hi = if hi < 1e-12 { 1e-12 } else { hi * 8.0 };
            p_hi = self.point(hi, mu, warm);
        }
        // Illinois (regula falsi) on ln ρ, falling back to bisection.
        let (mut f_lo, mut f_hi) = (f64::INFINITY, p_hi.total - budget);
        let (mut l_lo, mut l_hi) = (lo.max(1e-300).ln(), hi.ln());
        if lo > 0.0 {
            f_lo = self.point(lo, mu, warm).total - budget;
        }
        let mut side = 0;
        for _ in 0..200 {
            if f_hi.abs() <= 1e-13 * budget.max(1.0) || (l_hi - l_lo) < 1e-15 {
                break;
            }
            let l = if f_lo.is_finite() && f_lo > f_hi {
                let guess = l_hi - f_hi * (l_hi - l_lo) / (f_hi - f_lo);
                if guess > l_lo && guess < l_hi {
                    guess
                } else {
                    0.5 * (l_lo + l_hi)
                }
            } else {
                0.5 * (l_lo + l_hi)
            };
            let p = self.point(l.exp(), mu, warm);
            let f = p.total - budget;
            if f > 0.0 {
                l_lo = l;
                f_lo = f;
                if side == -1 {
                    f_hi /= 2.0;
                }
                side = -1;
            } else {
                l_hi = l;
                f_hi = f;
                p_hi = p;
                if side == 1 {
                    f_lo /= 2.0;
                }
                side = 1;
            }
        }
        (l_hi.exp(), p_hi)
    }

    /// The smallest μ at which the plan keeps the efficiency target.
    fn efficiency_point(&self, warm: &mut [f64]) -> Result<(f64, f64, Point)> {
        let tolerance = 1e-10 * self.problem.budget.max(1.0);
        let mut hi = 1e-6;
        let (mut rho, mut point) = self.budget_point(hi, warm);
        while self.efficiency_gap(&point.spend) < -tolerance {
            hi *= 4.0;
            if hi > 1e15 {
                return Err(self.unreachable());
            }
            (rho, point) = self.budget_point(hi, warm);
        }
        let mut lo = 0.0;
        for _ in 0..200 {
            if hi - lo <= 1e-13 * hi {
                break;
            }
            let mid = if lo == 0.0 {
                hi / 16.0
            } else {
                (lo * hi).sqrt()
            };
            let (r, p) = self.budget_point(mid, warm);
            if self.efficiency_gap(&p.spend) < -tolerance {
                lo = mid;
                if lo < 1e-14 {
                    // μ so small that the target barely binds.
                    lo = lo.max(1e-300);
                }
            } else {
                hi = mid;
                rho = r;
                point = p;
            }
        }
        Ok((hi, rho, point))
    }

    fn unreachable(&self) -> ModelError {
        // The most efficient spends: every entity where its marginal
        // efficiency equals 1, within bounds.
        let a = self.problem.efficiency.unwrap_or(1.0);
        let mut warm = vec![f64::NAN; self.entities.len()];
        let spend: Vec<f64> = self
            .entities
            .iter()
            .zip(warm.iter_mut())
            .map(|(e, w)| e.spend_at(1.0 / (a * e.weight.max(1e-300)), w))
            .collect();
        let total: f64 = spend.iter().sum();
        let back: f64 = self
            .entities
            .iter()
            .zip(&spend)
            .map(|(e, &x)| e.weight * e.value(x))
            .sum();
        ModelError::Invalid(format!(
            "the efficiency target cannot be met within these bounds: the most efficient \
             plan spends {total:.2} for {back:.4} units of the target's response \
             ({:.4} per unit of spend; the target needs {:.4})",
            back / total.max(1e-300),
            1.0 / a
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hill(beta: f64, k: f64, s: f64) -> ResponseCurve {
        ResponseCurve {
            baseline: 1.0,
            beta,
            half_saturation: k,
            shape: s,
            adstock: 0.0,
        }
    }

    /// Brute force over a grid for two entities: the best split of the budget.
    fn brute_force(problem: &Problem) -> f64 {
        let (a, b) = (&problem.entities[0], &problem.entities[1]);
        let mut best = f64::MIN;
        let steps = 200_000;
        for i in 0..=steps {
            let x = problem.budget * i as f64 / steps as f64;
            let y = problem.budget - x;
            if x < a.lower || x > a.upper || y < b.lower || y > b.upper {
                continue;
            }
            best = best.max(a.curve.response(x) + b.curve.response(y));
        }
        best
    }

    #[test]
    fn equalises_marginal_returns_on_concave_curves() {
        let problem = Problem {
            entities: vec![
                Entity::new("a", hill(50.0, 300.0, 0.8)),
                Entity::new("b", hill(20.0, 100.0, 1.0)),
                Entity::new("c", hill(80.0, 900.0, 0.6)),
            ],
            budget: 1000.0,
            efficiency: None,
        };
        let plan = allocate(&problem).unwrap();
        assert!((plan.total_spend - 1000.0).abs() < 1e-7, "{plan:?}");
        for (e, &x) in problem.entities.iter().zip(&plan.spend) {
            let m = e.curve.marginal(x);
            assert!(
                (m - plan.marginal).abs() < 1e-8 * m,
                "{m} vs {}",
                plan.marginal
            );
        }
    }

    #[test]
    fn matches_brute_force_with_bounds_and_s_curves() {
        let cases = [
            (
                hill(50.0, 300.0, 2.5),
                hill(30.0, 100.0, 0.9),
                500.0,
                (0.0, 1e9),
            ),
            (
                hill(50.0, 300.0, 2.5),
                hill(30.0, 100.0, 0.9),
                150.0,
                (0.0, 1e9),
            ),
            (
                hill(50.0, 300.0, 2.0),
                hill(60.0, 250.0, 3.0),
                400.0,
                (50.0, 300.0),
            ),
            (
                hill(10.0, 50.0, 1.0),
                hill(60.0, 250.0, 1.0),
                400.0,
                (0.0, 80.0),
            ),
        ];
        for (f, g, budget, (lower, upper)) in cases {
            let mut a = Entity::new("a", f);
            (a.lower, a.upper) = (lower, upper);
            let problem = Problem {
                entities: vec![a, Entity::new("b", g)],
                budget,
                efficiency: None,
            };
            let plan = allocate(&problem).unwrap();
            let best = brute_force(&problem);
            assert!(
                plan.total_response >= best - 1e-6 * best,
                "{budget}: {} < brute force {best}: {plan:?}",
                plan.total_response
            );
            assert!(plan.total_spend <= budget * (1.0 + 1e-12));
        }
    }

    #[test]
    fn keeps_a_cpa_target_by_spending_less() {
        let problem = |target| Problem {
            entities: vec![
                Entity::new("a", hill(50.0, 300.0, 1.0)),
                Entity::new("b", hill(20.0, 100.0, 1.0)),
            ],
            budget: 2000.0,
            efficiency: target,
        };
        let free = allocate(&problem(None)).unwrap();
        let cpa = free.total_spend / free.total_response;
        let target = cpa * 0.8;
        let plan = allocate(&problem(Some(target))).unwrap();
        let got = plan.total_spend / plan.total_response;
        assert!(got <= target * (1.0 + 1e-9), "{got} > {target}");
        assert!(
            (got - target).abs() < 1e-6 * target,
            "binds: {got} vs {target}"
        );
        assert!(plan.total_spend < 2000.0);
        assert!(plan.efficiency_multiplier > 0.0);
        // Spending nothing keeps any CPA (the baselines convert for free),
        // unless lower bounds force spend: then a low target is a clear error.
        assert!(allocate(&problem(Some(0.01))).is_ok());
        let mut forced = problem(Some(0.01));
        forced.entities[0].lower = 500.0;
        let error = allocate(&forced).unwrap_err().to_string();
        assert!(error.contains("cannot be met"), "{error}");
    }

    #[test]
    fn refuses_bounds_above_the_budget_and_bad_curves() {
        let mut a = Entity::new("a", hill(5.0, 10.0, 1.0));
        a.lower = 600.0;
        let problem = Problem {
            entities: vec![a],
            budget: 500.0,
            efficiency: None,
        };
        assert!(
            allocate(&problem)
                .unwrap_err()
                .to_string()
                .contains("lower bounds")
        );
        let problem = Problem {
            entities: vec![Entity::new("a", hill(5.0, -1.0, 1.0))],
            budget: 500.0,
            efficiency: None,
        };
        assert!(allocate(&problem).is_err());
    }

    #[test]
    fn ten_thousand_entities_add_up() {
        let entities: Vec<Entity> = (0..10_000)
            .map(|i| {
                let f = i as f64;
                let mut e = Entity::new(
                    format!("e{i}"),
                    hill(
                        10.0 + (f * 0.37).sin().abs() * 90.0,
                        50.0 + (f * 0.11).cos().abs() * 500.0,
                        0.6 + (f * 0.07).sin().abs() * 2.0,
                    ),
                );
                e.upper = 1_000.0;
                e
            })
            .collect();
        let problem = Problem {
            entities,
            budget: 2_000_000.0,
            efficiency: None,
        };
        let plan = allocate(&problem).unwrap();
        assert!(plan.total_spend <= 2_000_000.0 * (1.0 + 1e-12));
        assert!(
            plan.total_spend > 2_000_000.0 * (1.0 - 1e-3),
            "{}",
            plan.total_spend
        );
    }
}
