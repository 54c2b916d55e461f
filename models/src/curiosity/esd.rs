//! The generalised extreme Studentized deviate test (Rosner 1983), with the
//! median and the MAD in place of the mean and the standard deviation, as in
//! seasonal hybrid ESD (Hochenbaum, Vallis & Kejariwal 2017).
//!
//! The most extreme remaining value is always at one end of the sorted
//! values, so the test sorts once and walks inward from both ends; each step
//! costs one selection for the MAD.

use distrs::StudentsT;

/// MAD × 1.4826 estimates σ for normal data.
pub const MAD_TO_SD: f64 = 1.4826;

/// An outlier the test found: its index in the input and its statistic
/// (robust deviations from the median of the values left at its step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outlier {
    pub index: usize,
    pub statistic: f64,
}

/// Runs the test on `values` at significance `alpha`, for at most
/// `max_outliers`. `min_scale` floors the robust spread, so that a series of
/// identical values does not make every other value infinitely significant.
/// Returns the outliers, most extreme first.
pub fn generalized_esd(
    values: &[f64],
    max_outliers: usize,
    alpha: f64,
    min_scale: f64,
) -> Vec<Outlier> {
    let n = values.len();
    // Below 7 values the critical values need a t quantile on < 4 degrees of
    // freedom; the test says nothing useful there.
    if n < 7 || max_outliers == 0 {
        return Vec::new();
    }
    let max_outliers = max_outliers.min(n - 5);
    let mut order: Vec<usize> = (0..n).filter(|&i| values[i].is_finite()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let (mut lo, mut hi) = (0usize, order.len().saturating_sub(1));
    let mut scratch = Vec::with_capacity(order.len());
    let mut candidates = Vec::with_capacity(max_outliers);
    let mut found = 0;
    for step in 1..=max_outliers {
        let m = hi + 1 - lo;
        if m < 5 {
            break;
        }
        let median = {
            let mid = lo + m / 2;
            if m % 2 == 1 {
                values[order[mid]]
            } else {
                0.5 * (values[order[mid - 1]] + values[order[mid]])
            }
        };
        scratch.clear();
        scratch.extend(order[lo..=hi].iter().map(|&i| (values[i] - median).abs()));
        let mid = m / 2;
        let (_, mad, _) = scratch.select_nth_unstable_by(mid, f64::total_cmp);
        let scale = (MAD_TO_SD * *mad).max(min_scale);
        if scale <= 0.0 || !scale.is_finite() {
            break;
        }
        let (low, high) = (values[order[lo]], values[order[hi]]);
        let index = if (median - low) > (high - median) {
            lo += 1;
            order[lo - 1]
        } else {
            hi -= 1;
            order[hi + 1]
        };
        let statistic = (values[index] - median).abs() / scale;
        candidates.push(Outlier { index, statistic });
        if statistic > critical_value(m, alpha) {
            found = step;
        }
    }
    candidates.truncate(found);
    candidates
}

/// Rosner's λ for a step with `m` values left.
pub fn critical_value(m: usize, alpha: f64) -> f64 {
    let m = m as f64;
    let p = 1.0 - alpha / (2.0 * m);
    let t = StudentsT::ppf(p, m - 2.0);
    (m - 1.0) * t / ((m - 2.0 + t * t) * m).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rosner's (1983) example: 54 values, 3 outliers at α = 0.05 (also the
    /// NIST/SEMATECH e-Handbook's worked example, section 1.3.5.17.3).
    const ROSNER: [f64; 54] = [
        -0.25, 0.68, 0.94, 1.15, 1.20, 1.26, 1.26, 1.34, 1.38, 1.43, 1.49, 1.49, 1.55, 1.56, 1.58,
        1.65, 1.69, 1.70, 1.76, 1.77, 1.81, 1.91, 1.94, 1.96, 1.99, 2.06, 2.09, 2.10, 2.14, 2.15,
        2.23, 2.24, 2.26, 2.35, 2.37, 2.40, 2.47, 2.54, 2.62, 2.64, 2.90, 2.92, 2.92, 2.93, 3.21,
        3.26, 3.30, 3.59, 3.68, 4.30, 4.64, 5.34, 5.42, 6.01,
    ];

    #[test]
    fn critical_values_match_the_nist_table() {
        // NIST's λ for n = 54: 3.159, 3.151, 3.144 for the first three steps.
        for (step, want) in [(0, 3.159), (1, 3.151), (2, 3.144)] {
            let got = critical_value(54 - step, 0.05);
            assert!((got - want).abs() < 2e-3, "step {step}: {got} vs {want}");
        }
    }

    #[test]
    fn finds_the_upper_tail_of_rosners_data_most_extreme_first() {
        // The classical test finds the three largest values. The robust one
        // finds them first; its spread (the MAD) is narrower than the
        // standard deviation these outliers inflate, so it goes on to the
        // next tail values too.
        let found = generalized_esd(&ROSNER, 10, 0.05, 0.0);
        let indices: Vec<usize> = found.iter().map(|o| o.index).collect();
        assert_eq!(indices[..3], [53, 52, 51]);
        assert!(indices.len() <= 6, "{indices:?}");
    }

    #[test]
    fn noise_alone_has_no_outliers_and_a_spike_is_found() {
        // A deterministic, roughly normal sequence (sum of uniforms).
        let mut state = 12345u64;
        let mut uniform = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut y: Vec<f64> = (0..500)
            .map(|_| (0..12).map(|_| uniform()).sum::<f64>() - 6.0)
            .collect();
        assert!(generalized_esd(&y, 25, 0.05, 0.0).is_empty());
        y[200] = 9.0;
        y[300] = -8.0;
        let found = generalized_esd(&y, 25, 0.05, 0.0);
        let mut indices: Vec<usize> = found.iter().map(|o| o.index).collect();
        indices.sort();
        assert_eq!(indices, vec![200, 300]);
    }

    #[test]
    fn identical_values_need_a_scale_floor() {
        let mut y = vec![5.0; 50];
        y[10] = 5.5;
        assert_eq!(
            generalized_esd(&y, 5, 0.05, 0.0).len(),
            0,
            "MAD 0: no scale"
        );
        assert_eq!(generalized_esd(&y, 5, 0.05, 0.01)[0].index, 10);
        assert!(generalized_esd(&y, 5, 0.05, 1.0).is_empty());
    }
}
