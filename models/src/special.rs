//! Special functions: log-gamma (from `libm`), digamma and the Gauss
//! hypergeometric function for the BTYD likelihoods; the regularised
//! incomplete gamma function for Poisson tails.

/// ln Γ(x) for x > 0.
pub fn ln_gamma(x: f64) -> f64 {
    libm::lgamma(x)
}

/// ψ(x) = d/dx ln Γ(x) for x > 0: recurrence up to x ≥ 10, then the
/// asymptotic series (absolute error below 1e-13 there).
pub fn digamma(mut x: f64) -> f64 {
    let mut shift = 0.0;
    while x < 10.0 {
        shift -= 1.0 / x;
        x += 1.0;
    }
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    let series = inv2
        * (1.0 / 12.0
            - inv2
                * (1.0 / 120.0
                    - inv2 * (1.0 / 252.0 - inv2 * (1.0 / 240.0 - inv2 * (1.0 / 132.0)))));
    shift + x.ln() - 0.5 * inv - series
}

/// ₂F₁(a, b; c; z) by its power series, for 0 ≤ z < 1 and c > 0.
///
/// Callers arrange the parameters so that the terms stay small (see the
/// Euler transformation in [`super::bgnbd`]); the series stops when a term
/// no longer moves the sum, or after 100,000 terms (z very close to 1).
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
    let (sum, ln_scale) = hyp2f1_scaled(a, b, c, z);
    sum * ln_scale.exp()
}

/// ₂F₁ as `(s, k)` with ₂F₁ = s · e^k: the sum is rescaled as it grows, so
/// that series whose value overflows an f64 (large a and b) can still be
/// multiplied by small factors in log space.
pub fn hyp2f1_scaled(a: f64, b: f64, c: f64, z: f64) -> (f64, f64) {
    const BIG: f64 = 1e250;
    let mut term = 1.0;
    let mut sum = 1.0;
    let mut ln_scale = 0.0;
    for n in 0..100_000 {
        let n = n as f64;
        term *= (a + n) * (b + n) / ((c + n) * (n + 1.0)) * z;
        sum += term;
        if sum.abs() > BIG {
            sum /= BIG;
            term /= BIG;
            ln_scale += BIG.ln();
        }
        if term.abs() <= 1e-15 * sum.abs() {
            break;
        }
    }
    (sum, ln_scale)
}

/// The regularised lower incomplete gamma function P(a, x) for a > 0,
/// x ≥ 0: its series below x = a + 1, Lentz's continued fraction for
/// Q = 1 − P above (Numerical Recipes §6.2), to a relative 1e-14.
pub fn gamma_p(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    let ln_prefix = a * x.ln() - x - ln_gamma(a);
    if x < a + 1.0 {
        let (mut term, mut sum, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..10_000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        (sum.ln() + ln_prefix).exp().min(1.0)
    } else {
        1.0 - gamma_q_fraction(a, x, ln_prefix)
    }
}

/// Q(a, x) = 1 − P(a, x), accurate also where it is tiny.
pub fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    if x < a + 1.0 {
        1.0 - gamma_p(a, x)
    } else {
        gamma_q_fraction(a, x, a * x.ln() - x - ln_gamma(a))
    }
}

fn gamma_q_fraction(a: f64, x: f64, ln_prefix: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut b = x + 1.0 - a;
    let mut c = 1.0 / TINY;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..10_000 {
        let an = -(i as f64) * (i as f64 - a);
        b += 2.0;
        d = an * d + b;
        if d.abs() < TINY {
            d = TINY;
        }
        c = b + an / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < 1e-15 {
            break;
        }
    }
    (ln_prefix.exp() * h).clamp(0.0, 1.0)
}

/// P(X ≥ k) for X ~ Poisson(mean), k real (the continuous extension:
/// P(k, mean)); 1 for k ≤ 0.
pub fn poisson_upper_tail(k: f64, mean: f64) -> f64 {
    if k <= 0.0 { 1.0 } else { gamma_p(k, mean) }
}

/// P(X ≤ k) for X ~ Poisson(mean), k real (Q(k + 1, mean)).
pub fn poisson_lower_tail(k: f64, mean: f64) -> f64 {
    if k < 0.0 { 0.0 } else { gamma_q(k + 1.0, mean) }
}

/// P(X ≤ k) for X negative binomial with `mean` and variance mean +
/// dispersion × mean² (k rounded down), summed term by term: meant for the
/// low counts of a drop (at most a few hundred terms).
pub fn negative_binomial_lower_tail(k: f64, mean: f64, dispersion: f64) -> f64 {
    if k < 0.0 {
        return 0.0;
    }
    if dispersion <= 0.0 {
        return poisson_lower_tail(k.floor(), mean);
    }
    let r = 1.0 / dispersion;
    let q = mean / (r + mean);
    // P(0) = (r / (r + mean))^r, then P(j + 1) = P(j) (j + r) / (j + 1) q.
    let mut term = (r * (r / (r + mean)).ln()).exp();
    let mut sum = term;
    for j in 0..k.floor() as u64 {
        let j = j as f64;
        term *= (j + r) / (j + 1.0) * q;
        sum += term;
    }
    sum.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_binomial_tails_match_their_closed_forms() {
        // Dispersion 1 is the geometric: P(X ≤ k) = 1 − (mean/(1 + mean))^(k+1).
        for &mean in &[0.5f64, 3.0, 20.0] {
            for k in [0.0, 1.0, 4.0, 30.0] {
                let want = 1.0 - (mean / (1.0 + mean)).powf(k + 1.0);
                let got = negative_binomial_lower_tail(k, mean, 1.0);
                assert!((got - want).abs() < 1e-12, "{mean} {k}: {got} vs {want}");
            }
        }
        // Near no dispersion it is Poisson's.
        let (nb, poisson) = (
            negative_binomial_lower_tail(2.0, 10.0, 1e-9),
            poisson_lower_tail(2.0, 10.0),
        );
        assert!((nb / poisson - 1.0).abs() < 1e-6, "{nb} vs {poisson}");
        // No conversions where 7 were expected: rare for Poisson, common
        // when the rate itself varies by a share of ±55%.
        assert!(negative_binomial_lower_tail(0.0, 7.0, 0.3) > 0.02);
        assert!(poisson_lower_tail(0.0, 7.0) < 0.001);
    }

    #[test]
    fn poisson_tails_match_their_sums() {
        // Direct sums of the probability mass function.
        let pmf = |k: u32, m: f64| (-m + k as f64 * m.ln() - ln_gamma(k as f64 + 1.0)).exp();
        for &mean in &[0.5, 3.0, 7.0, 40.0, 300.0] {
            for k in [0u32, 1, 2, 5, 10, 30, 60, 350] {
                let below: f64 = (0..=k).map(|j| pmf(j, mean)).sum();
                let above: f64 = (k..k + 2_000).map(|j| pmf(j, mean)).sum();
                let lower = poisson_lower_tail(k as f64, mean);
                let upper = poisson_upper_tail(k as f64, mean);
                assert!(
                    (lower - below).abs() < 1e-10,
                    "P(X ≤ {k} | {mean}) {lower} vs {below}"
                );
                if above > 1e-12 {
                    assert!((upper / above - 1.0).abs() < 1e-6, "P(X ≥ {k} | {mean})");
                }
            }
        }
        // Known values: P(X = 0 | 7) = e^-7; P(X ≥ 10 | 3) = 0.001102.
        assert!((poisson_lower_tail(0.0, 7.0) - (-7.0f64).exp()).abs() < 1e-15);
        assert!((poisson_upper_tail(10.0, 3.0) - 0.001_102_488).abs() < 1e-8);
    }

    #[test]
    fn digamma_matches_known_values() {
        // ψ(1) = −γ (Euler–Mascheroni), ψ(1/2) = −γ − 2 ln 2, ψ(x+1) = ψ(x) + 1/x.
        let euler = 0.577_215_664_901_532_9;
        assert!((digamma(1.0) + euler).abs() < 1e-12);
        assert!((digamma(0.5) + euler + 2.0 * 2f64.ln()).abs() < 1e-12);
        for x in [0.01, 0.3, 2.5, 7.0, 40.0, 1e4] {
            assert!(
                (digamma(x + 1.0) - digamma(x) - 1.0 / x).abs() < 1e-10,
                "{x}"
            );
        }
    }

    #[test]
    fn digamma_is_the_derivative_of_ln_gamma() {
        for x in [0.05f64, 0.7, 3.0, 12.5, 300.0] {
            let h = 1e-5 * x.max(1.0);
            let numeric = (ln_gamma(x + h) - ln_gamma(x - h)) / (2.0 * h);
            assert!((numeric - digamma(x)).abs() < 1e-6, "{x}");
        }
    }

    #[test]
    fn hyp2f1_matches_closed_forms() {
        // ₂F₁(1, 1; 2; z) = −ln(1−z)/z and ₂F₁(a, b; b; z) = (1−z)^−a.
        for z in [0.0f64, 0.1, 0.5, 0.9, 0.99] {
            let log = if z == 0.0 { 1.0 } else { -(1.0 - z).ln() / z };
            assert!((hyp2f1(1.0, 1.0, 2.0, z) - log).abs() < 1e-10 * log, "{z}");
            let power = (1.0 - z).powf(-0.7);
            assert!(
                (hyp2f1(0.7, 2.3, 2.3, z) - power).abs() < 1e-10 * power,
                "{z}"
            );
        }
        // Past f64's range, in log space: ₂F₁(a, b; b; z) = (1−z)^−a with a = 5000.
        let (sum, ln_scale) = hyp2f1_scaled(5000.0, 2.0, 2.0, 0.5);
        assert!((sum.ln() + ln_scale - 5000.0 * 2f64.ln()).abs() < 1e-8);
    }
}
