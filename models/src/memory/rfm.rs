//! RFM: recency, frequency and monetary quintile scores, and the named
//! segments marketers act on.
//!
//! A score is 1 + ⌊5 · (share of customers strictly worse)⌋: ties share a
//! score, so the many one-time buyers all get F = 1 rather than being
//! split across quintiles at random. Segments follow the common R × F map
//! (M shows in the score, not the segment).

/// Scores 1 to 5 for each value; `higher_is_better` says which way is good
/// (frequency, money), otherwise lower is (days since the last purchase).
pub fn quintile_scores(values: &[f64], higher_is_better: bool) -> Vec<u8> {
    let n = values.len();
    if n == 0 {
        return Vec::new();
    }
    // Score s + 1 needs at least ⌈s·n/5⌉ customers strictly worse: four
    // cut values, found by selection (no full sort of millions of values).
    let mut work = values.to_vec();
    let cuts: Vec<f64> = (1..=4)
        .map(|k| {
            let need = (k * n).div_ceil(5);
            let rank = if higher_is_better { need - 1 } else { n - need };
            *work.select_nth_unstable_by(rank, f64::total_cmp).1
        })
        .collect();
    values
        .iter()
        .map(|&v| {
            let passed = cuts
                .iter()
                .filter(|&&cut| if higher_is_better { v > cut } else { v < cut })
                .count();
            1 + passed as u8
        })
        .collect()
}

/// The segment of an R and F score (1 to 5 each).
pub fn segment(r: u8, f: u8) -> &'static str {
    match r {
        5 => match f {
            4.. => "champions",
            2..=3 => "potential_loyalist",
            _ => "new_customer",
        },
        4 => match f {
            4.. => "loyal",
            2..=3 => "potential_loyalist",
            _ => "promising",
        },
        3 => match f {
            4.. => "loyal",
            3 => "need_attention",
            _ => "about_to_sleep",
        },
        _ => match f {
            5.. => "cant_lose",
            3..=4 => "at_risk",
            _ => "hibernating",
        },
    }
}

/// Every segment, best first (the order segment listings use).
pub const SEGMENTS: [&str; 10] = [
    "champions",
    "loyal",
    "potential_loyalist",
    "new_customer",
    "promising",
    "need_attention",
    "about_to_sleep",
    "at_risk",
    "cant_lose",
    "hibernating",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quintiles_rank_and_ties_share_a_score() {
        let values: Vec<f64> = (0..10).map(f64::from).collect();
        assert_eq!(
            quintile_scores(&values, true),
            vec![1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
        );
        assert_eq!(
            quintile_scores(&values, false),
            vec![5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
        );
        // Seven one-time buyers of ten: all score 1; the rest rank above.
        let f = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 9.0];
        assert_eq!(
            quintile_scores(&f, true),
            vec![1, 1, 1, 1, 1, 1, 1, 4, 4, 5]
        );
    }

    #[test]
    fn cut_values_score_as_counting_the_worse_customers_does() {
        // The definition, counted directly, on values with many ties.
        let values: Vec<f64> = (0..997).map(|i| f64::from((i * 7919) % 13)).collect();
        for higher_is_better in [true, false] {
            let scores = quintile_scores(&values, higher_is_better);
            for (v, s) in values.iter().zip(scores) {
                let worse = values
                    .iter()
                    .filter(|w| if higher_is_better { *w < v } else { *w > v })
                    .count();
                let want = (1 + 5 * worse / values.len()).min(5) as u8;
                assert_eq!(s, want, "{v} {higher_is_better}");
            }
        }
        assert!(quintile_scores(&[], true).is_empty());
    }

    #[test]
    fn every_score_pair_has_a_segment_from_the_list() {
        for r in 1..=5 {
            for f in 1..=5 {
                assert!(SEGMENTS.contains(&segment(r, f)), "{r}{f}");
            }
        }
        assert_eq!(segment(5, 5), "champions");
        assert_eq!(segment(5, 1), "new_customer");
        assert_eq!(segment(1, 5), "cant_lose");
        assert_eq!(segment(2, 3), "at_risk");
        assert_eq!(segment(1, 1), "hibernating");
    }
}
