//! How well a run can hear on this tenant's data: CURIOSITY has no labels
//! to score a run by, so it makes its own. Into copies of a sample of the
//! tenant's campaign series it injects events a marketer would want to hear
//! about (a day at 4×, a lasting shift to 2×), scans the copies, and counts
//! the events it missed and the findings the injection set off that are
//! not the event. A run on data the detector cannot read (a broken feed,
//! doubled rows, noise swamping everything) misses them, and is rejected
//! like a worse forecast is.
//!
//! ```
//! use gyrus_models::curiosity::detect::Sensitivity;
//! use gyrus_models::curiosity::quality::injection_check;
//!
//! // One campaign's spend: ~500 a day with a weekly cycle.
//! let spend: Vec<f64> = (0..200).map(|t| 500.0 + 60.0 * ((t % 7) as f64 - 3.0)).collect();
//! let q = injection_check(&[("c1", &spend, None)], &Sensitivity::default()).unwrap();
//! assert_eq!(q.injected, 2);
//! assert_eq!(q.found, 2);
//! ```

use serde::{Deserialize, Serialize};

use super::detect::{Sensitivity, scan};

/// Series sampled per run, at most.
pub const MAX_SERIES: usize = 40;
/// Series shorter than this are not used.
const MIN_DAYS: usize = 90;
/// The injected spike and shift.
const SPIKE: f64 = 4.0;
const SHIFT: f64 = 2.0;
/// Scores below this are all as good: a run is rejected for missing
/// events, not for the noise of a near-perfect figure.
pub const SCORE_FLOOR: f64 = 0.1;

/// What the injection check found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunQuality {
    pub series: usize,
    pub injected: usize,
    pub found: usize,
    /// New findings in the injected copies that are not the event.
    pub extra: usize,
    /// (missed + extra) / injected, floored at [`SCORE_FLOOR`]; lower is
    /// better.
    pub score: f64,
}

/// A deterministic position in `lo..hi` from a name (FNV-1a).
fn position(name: &str, salt: u64, lo: usize, hi: usize) -> usize {
    let h = name.bytes().fold(0xcbf29ce484222325u64 ^ salt, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    lo + (h % (hi - lo).max(1) as u64) as usize
}

/// Runs the check over `series` (name, daily values, unit as for
/// [`scan`]); `None` when no series is long and busy enough to use.
pub fn injection_check(
    series: &[(&str, &[f64], Option<f64>)],
    s: &Sensitivity,
) -> Option<RunQuality> {
    let mut q = RunQuality {
        series: 0,
        injected: 0,
        found: 0,
        extra: 0,
        score: 0.0,
    };
    for &(name, values, unit) in series.iter().take(MAX_SERIES) {
        let n = values.len();
        if n < MIN_DAYS || values[n - 60..].iter().any(|v| *v <= 0.0) {
            continue;
        }
        if unit.is_some_and(|u| values.iter().sum::<f64>() / (n as f64 * u) < 4.0 * s.min_count) {
            continue;
        }
        let Some(base) = scan(values, unit, None, s) else {
            continue;
        };
        let known = |t: usize, days: usize| {
            base.anomalies.iter().any(|a| a.index.abs_diff(t) <= days)
                || base
                    .change_points
                    .iter()
                    .any(|c| c.index.abs_diff(t) <= days)
        };
        // Both events in the last 60 days (where the series is active),
        // away from what the series already holds.
        let spike_day = position(name, 1, n - 55, n - 35);
        let shift_day = position(name, 2, n - 30, n - 16);
        if known(spike_day, 3) || known(shift_day, 14) {
            continue;
        }
        q.series += 1;
        let mut spiked = values.to_vec();
        spiked[spike_day] *= SPIKE;
        let mut shifted = values.to_vec();
        for v in &mut shifted[shift_day..] {
            *v *= SHIFT;
        }
        for (copy, day, is_spike) in [(spiked, spike_day, true), (shifted, shift_day, false)] {
            q.injected += 1;
            let Some(found) = scan(&copy, unit, None, s) else {
                continue;
            };
            let hit = if is_spike {
                found.anomalies.iter().any(|a| a.index.abs_diff(day) <= 1)
            } else {
                found
                    .change_points
                    .iter()
                    .any(|c| c.index.abs_diff(day) <= 3)
            };
            if hit {
                q.found += 1;
            }
            let reach = if is_spike { 1 } else { 14 };
            q.extra += found
                .anomalies
                .iter()
                .map(|a| a.index)
                .chain(found.change_points.iter().map(|c| c.index))
                .filter(|&t| t.abs_diff(day) > reach && !known(t, 3))
                .count();
        }
    }
    if q.injected == 0 {
        return None;
    }
    let missed = q.injected - q.found;
    q.score = ((missed + q.extra) as f64 / q.injected as f64).max(SCORE_FLOOR);
    Some(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::curiosity::detect::tests::weekly;

    #[test]
    fn clean_series_hear_everything_and_swamped_ones_do_not() {
        let names: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
        let clean: Vec<Vec<f64>> = (0..10).map(|i| weekly(300, 800.0, i)).collect();
        let input: Vec<(&str, &[f64], Option<f64>)> = names
            .iter()
            .zip(&clean)
            .map(|(n, v)| (n.as_str(), v.as_slice(), None))
            .collect();
        let good = injection_check(&input, &Sensitivity::default()).unwrap();
        assert_eq!(good.found, good.injected, "{good:?}");
        assert_eq!(good.score, SCORE_FLOOR, "{good:?}");
        // The same campaigns behind a feed gone wrong: every day is off by
        // up to 8× either way.
        let broken: Vec<Vec<f64>> = clean
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.iter()
                    .zip(weekly(300, 1.0, 100 + i as u64))
                    .map(|(x, u)| x * 8f64.powf(10.0 * (u - 1.0)))
                    .collect()
            })
            .collect();
        let input: Vec<(&str, &[f64], Option<f64>)> = names
            .iter()
            .zip(&broken)
            .map(|(n, v)| (n.as_str(), v.as_slice(), None))
            .collect();
        let bad = injection_check(&input, &Sensitivity::default()).unwrap();
        assert!(bad.score > 1.5 * SCORE_FLOOR, "{bad:?}");
    }

    #[test]
    fn nothing_usable_is_no_score() {
        let short = vec![5.0; 30];
        assert!(injection_check(&[("c", &short, None)], &Sensitivity::default()).is_none());
    }
}
