//! Customer summaries in the conventions of the BTYD literature, and the
//! same summaries grouped on identical (x, t_x, T).
//!
//! - frequency x: repeat purchases, i.e. days with a purchase after the
//!   first one (several orders on one day are one purchase);
//! - recency t_x: time from the first purchase to the last;
//! - tenure T: time from the first purchase to the end of observation;
//! - monetary: mean value of the repeat purchases (0 without any).

use std::collections::HashMap;

use rustc_hash::FxBuildHasher;

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// The time unit the BTYD models are fitted in. Fitted parameters (α) are
/// in this unit; summaries in tables and over HTTP are in days.
pub const DAYS_PER_UNIT: f64 = 7.0;

/// One customer's summary (times in the fitting unit, weeks).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub frequency: u32,
    pub recency: f64,
    pub tenure: f64,
    pub monetary: f64,
}

impl Summary {
    /// Checks the summary is one a purchase history could give.
    pub fn check(&self) -> Result<()> {
        let finite =
            self.recency.is_finite() && self.tenure.is_finite() && self.monetary.is_finite();
        if !finite || self.recency < 0.0 || self.tenure < 0.0 || self.monetary < 0.0 {
            return Err(ModelError::Invalid(
                "recency, tenure and monetary must be finite and not negative".into(),
            ));
        }
        if self.recency > self.tenure {
            return Err(ModelError::Invalid(format!(
                "recency ({} days) cannot exceed tenure ({} days): the last purchase is within the observed time",
                self.recency * DAYS_PER_UNIT,
                self.tenure * DAYS_PER_UNIT
            )));
        }
        if self.frequency == 0 && self.recency > 0.0 {
            return Err(ModelError::Invalid(
                "a customer without repeat purchases has recency 0".into(),
            ));
        }
        Ok(())
    }

    /// The summary of a purchase history: each purchase's day number (days
    /// since any fixed origin) and value, observed up to day `end`.
    /// Purchases on one day are one purchase whose value is their sum.
    pub fn from_history(purchases: &[(i64, f64)], end: i64) -> Result<Summary> {
        let mut days: Vec<(i64, f64)> = purchases.to_vec();
        days.sort_by_key(|p| p.0);
        let mut merged: Vec<(i64, f64)> = Vec::with_capacity(days.len());
        for (day, value) in days {
            match merged.last_mut() {
                Some(last) if last.0 == day => last.1 += value,
                _ => merged.push((day, value)),
            }
        }
        let (Some(first), Some(last)) = (merged.first(), merged.last()) else {
            return Err(ModelError::Invalid(
                "a purchase history needs at least one purchase".into(),
            ));
        };
        if last.0 > end {
            return Err(ModelError::Invalid(
                "a purchase is dated after the end of observation".into(),
            ));
        }
        let repeats = &merged[1..];
        let monetary = if repeats.is_empty() {
            0.0
        } else {
            repeats.iter().map(|p| p.1).sum::<f64>() / repeats.len() as f64
        };
        let summary = Summary {
            frequency: repeats.len() as u32,
            recency: (last.0 - first.0) as f64 / DAYS_PER_UNIT,
            tenure: (end - first.0) as f64 / DAYS_PER_UNIT,
            monetary,
        };
        summary.check()?;
        Ok(summary)
    }
}

/// Customers with identical (x, t_x, T), each distinct triple once with its
/// count: the likelihood of a million customers costs what its few
/// thousand distinct triples do.
#[derive(Debug, Clone, Default)]
pub struct Groups {
    pub frequency: Vec<u32>,
    pub recency: Vec<f64>,
    pub tenure: Vec<f64>,
    pub count: Vec<f64>,
    /// The group of each customer, in the order they were given.
    pub of_customer: Vec<u32>,
}

impl Groups {
    pub fn new(frequency: &[u32], recency: &[f64], tenure: &[f64]) -> Groups {
        // Millions of small keys: FxHash, not the DoS-resistant default.
        let mut index: HashMap<(u32, u64, u64), u32, FxBuildHasher> =
            HashMap::with_capacity_and_hasher(frequency.len() / 4, FxBuildHasher);
        let mut groups = Groups {
            of_customer: Vec::with_capacity(frequency.len()),
            ..Groups::default()
        };
        for ((&x, &tx), &t) in frequency.iter().zip(recency).zip(tenure) {
            let next = groups.frequency.len() as u32;
            let id = *index.entry((x, tx.to_bits(), t.to_bits())).or_insert(next);
            if id == next {
                groups.frequency.push(x);
                groups.recency.push(tx);
                groups.tenure.push(t);
                groups.count.push(0.0);
            }
            groups.count[id as usize] += 1.0;
            groups.of_customer.push(id);
        }
        groups
    }

    pub fn len(&self) -> usize {
        self.frequency.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frequency.is_empty()
    }

    /// Customers in all groups.
    pub fn customers(&self) -> f64 {
        self.count.iter().sum()
    }

    /// Customers per distinct frequency, ascending.
    pub fn frequency_histogram(&self) -> Vec<(u32, f64)> {
        let mut hist: HashMap<u32, f64> = HashMap::new();
        for (&x, &n) in self.frequency.iter().zip(&self.count) {
            *hist.entry(x).or_default() += n;
        }
        let mut hist: Vec<(u32, f64)> = hist.into_iter().collect();
        hist.sort_by_key(|h| h.0);
        hist
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_follows_the_btyd_conventions() {
        // First purchase day 0, two orders on day 14 (one purchase), one on day 28.
        let s = Summary::from_history(&[(28, 30.0), (0, 99.0), (14, 10.0), (14, 5.0)], 35).unwrap();
        assert_eq!(s.frequency, 2);
        assert!((s.recency - 4.0).abs() < 1e-12);
        assert!((s.tenure - 5.0).abs() < 1e-12);
        // The first purchase is not a repeat: (15 + 30) / 2.
        assert!((s.monetary - 22.5).abs() < 1e-12);
        let once = Summary::from_history(&[(3, 50.0)], 10).unwrap();
        assert_eq!((once.frequency, once.recency, once.monetary), (0, 0.0, 0.0));
    }

    #[test]
    fn impossible_histories_and_summaries_are_refused() {
        assert!(Summary::from_history(&[], 10).is_err());
        assert!(Summary::from_history(&[(12, 1.0)], 10).is_err());
        let bad = Summary {
            frequency: 1,
            recency: 5.0,
            tenure: 4.0,
            monetary: 1.0,
        };
        assert!(bad.check().is_err());
        let bad = Summary {
            frequency: 0,
            recency: 1.0,
            tenure: 4.0,
            monetary: 0.0,
        };
        assert!(bad.check().is_err());
    }

    #[test]
    fn identical_customers_share_a_group() {
        let g = Groups::new(&[0, 1, 0, 1], &[0.0, 2.0, 0.0, 3.0], &[5.0, 5.0, 5.0, 5.0]);
        assert_eq!(g.len(), 3);
        assert_eq!(g.of_customer, vec![0, 1, 0, 2]);
        assert_eq!(g.count, vec![2.0, 1.0, 1.0]);
        assert_eq!(g.frequency_histogram(), vec![(0, 2.0), (1, 2.0)]);
    }
}
