//! Lead scores: P(win) of open deals from an L2-regularised logistic
//! regression (linfa) trained on closed deals, judged by its AUC on closed
//! deals held back from training.
//!
//! Features: ln(1 + amount), ln(1 + age in days), the pipeline and the
//! source campaign's channel (one-hot). The stage is left out on purpose:
//! `crm_deals` keeps only a deal's current stage, which for a closed deal
//! is its outcome (`closed_won`), so a model trained on it would learn
//! nothing it could use on open deals.

use linfa::prelude::{Fit as _, *};
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Fewest closed deals, and fewest of each outcome, to train on.
pub const MIN_CLOSED: usize = 30;
const MIN_EACH_OUTCOME: usize = 5;
/// A category seen fewer times than this in training counts as `other`.
const MIN_CATEGORY: usize = 5;
/// One in this many closed deals (by a hash of its id) is held back.
const HOLD_BACK_ONE_IN: u64 = 5;

/// One deal, as the model sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Deal {
    pub deal_id: String,
    pub pipeline: String,
    /// The source campaign's channel; `none` without a campaign, `unknown`
    /// for a campaign not found in `ad_performance`.
    pub channel: String,
    pub amount: f64,
    /// Days from creation to close (closed deals) or to the end of the data (open ones).
    pub age_days: f64,
    /// `Some` for closed deals.
    pub won: Option<bool>,
}

/// The fitted lead model: standardisation, categories and coefficients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadModel {
    pub pipelines: Vec<String>,
    pub channels: Vec<String>,
    /// Mean and standard deviation of ln(1 + amount) and ln(1 + age).
    pub numeric_scale: [(f64, f64); 2],
    /// Feature names, in the order of `coefficients`.
    pub features: Vec<String>,
    pub intercept: f64,
    pub coefficients: Vec<f64>,
    pub l2: f64,
    pub metrics: LeadMetrics,
}

/// How well the lead model ranks and is calibrated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadMetrics {
    pub closed_deals: usize,
    pub held_back: usize,
    /// AUC on the held-back closed deals, of a model trained without them.
    pub holdout_auc: f64,
    /// Brier score on the held-back deals.
    pub holdout_brier: f64,
    /// Mean predicted and actual win rate on the held-back deals.
    pub holdout_predicted_win_rate: f64,
    pub holdout_actual_win_rate: f64,
    pub open_deals: usize,
}

impl LeadModel {
    fn row(&self, deal: &Deal) -> Vec<f64> {
        let mut row = vec![
            (deal.amount.max(0.0).ln_1p() - self.numeric_scale[0].0) / self.numeric_scale[0].1,
            (deal.age_days.max(0.0).ln_1p() - self.numeric_scale[1].0) / self.numeric_scale[1].1,
        ];
        one_hot(&mut row, &self.pipelines, &deal.pipeline);
        one_hot(&mut row, &self.channels, &deal.channel);
        row
    }

    /// P(win) of a deal.
    pub fn p_win(&self, deal: &Deal) -> f64 {
        let z: f64 = self.intercept
            + self
                .row(deal)
                .iter()
                .zip(&self.coefficients)
                .map(|(x, w)| x * w)
                .sum::<f64>();
        1.0 / (1.0 + (-z).exp())
    }
}

/// The first category is the baseline (no column); unseen values are `other`.
fn one_hot(row: &mut Vec<f64>, categories: &[String], value: &str) {
    let known = categories.iter().any(|c| c == value);
    for c in categories.iter().skip(1) {
        row.push(f64::from(u8::from(c == value || (!known && c == "other"))));
    }
}

/// Categories seen at least [`MIN_CATEGORY`] times, most frequent first
/// (the baseline), with `other` for the rest.
fn categories<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for v in values {
        *counts.entry(v).or_default() += 1;
    }
    let mut kept: Vec<(&str, usize)> = counts.into_iter().filter(|c| c.1 >= MIN_CATEGORY).collect();
    kept.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut names: Vec<String> = kept.into_iter().map(|c| c.0.to_string()).collect();
    if !names.iter().any(|n| n == "other") {
        names.push("other".into());
    }
    names
}

fn mean_sd(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let n = values.clone().count().max(1) as f64;
    let mean = values.clone().sum::<f64>() / n;
    let var = values.map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, if var > 0.0 { var.sqrt() } else { 1.0 })
}

/// Fits on `train` (closed deals) with L2 strength `l2`.
fn fit_on(train: &[&Deal], l2: f64) -> Result<LeadModel> {
    let pipelines = categories(train.iter().map(|d| d.pipeline.as_str()));
    let channels = categories(train.iter().map(|d| d.channel.as_str()));
    let numeric_scale = [
        mean_sd(train.iter().map(|d| d.amount.max(0.0).ln_1p())),
        mean_sd(train.iter().map(|d| d.age_days.max(0.0).ln_1p())),
    ];
    let mut features = vec!["ln_amount".to_string(), "ln_age_days".to_string()];
    features.extend(pipelines.iter().skip(1).map(|p| format!("pipeline={p}")));
    features.extend(channels.iter().skip(1).map(|c| format!("channel={c}")));
    let mut model = LeadModel {
        pipelines,
        channels,
        numeric_scale,
        features,
        intercept: 0.0,
        coefficients: Vec::new(),
        l2,
        metrics: LeadMetrics {
            closed_deals: 0,
            held_back: 0,
            holdout_auc: f64::NAN,
            holdout_brier: f64::NAN,
            holdout_predicted_win_rate: f64::NAN,
            holdout_actual_win_rate: f64::NAN,
            open_deals: 0,
        },
    };
    let width = model.features.len();
    let mut records = Array2::<f64>::zeros((train.len(), width));
    for (i, deal) in train.iter().enumerate() {
        for (j, v) in model.row(deal).into_iter().enumerate() {
            records[(i, j)] = v;
        }
    }
    let targets: Array1<bool> = train.iter().map(|d| d.won == Some(true)).collect();
    let fitted = LogisticRegression::default()
        .alpha(l2)
        .max_iterations(200)
        .fit(&Dataset::new(records, targets))
        .map_err(|e| ModelError::Invalid(format!("the lead model could not be fitted: {e}")))?;
    // linfa's probabilities are of its "positive" class, the more frequent
    // outcome: turn them into P(win) when losses are the majority.
    let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
    model.intercept = sign * fitted.intercept();
    model.coefficients = fitted.params().iter().map(|w| sign * w).collect();
    Ok(model)
}

/// Area under the ROC curve: the chance a random win scores above a random loss.
pub fn auc(scores: &[f64], won: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Mid-ranks, so ties count one half.
    let mut rank = vec![0.0; scores.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        for k in i..=j {
            rank[order[k]] = (i + j) as f64 / 2.0 + 1.0;
        }
        i = j + 1;
    }
    let wins = won.iter().filter(|w| **w).count() as f64;
    let losses = won.len() as f64 - wins;
    let rank_sum: f64 = rank
        .iter()
        .zip(won)
        .filter(|(_, w)| **w)
        .map(|(r, _)| r)
        .sum();
    (rank_sum - wins * (wins + 1.0) / 2.0) / (wins * losses)
}

fn held_back(deal_id: &str) -> bool {
    crate::hash::fnv1a(deal_id.as_bytes()).is_multiple_of(HOLD_BACK_ONE_IN)
}

/// Trains the lead model on the closed deals among `deals`: first without
/// the held-back ones (to measure AUC), then on all of them (to serve).
pub fn fit(deals: &[Deal], l2: f64) -> Result<LeadModel> {
    let closed: Vec<&Deal> = deals.iter().filter(|d| d.won.is_some()).collect();
    let wins = closed.iter().filter(|d| d.won == Some(true)).count();
    if closed.len() < MIN_CLOSED
        || wins < MIN_EACH_OUTCOME
        || closed.len() - wins < MIN_EACH_OUTCOME
    {
        return Err(ModelError::Invalid(format!(
            "lead scores need at least {MIN_CLOSED} closed deals with {MIN_EACH_OUTCOME} won and \
             {MIN_EACH_OUTCOME} lost; there are {} closed, {wins} won",
            closed.len()
        )));
    }
    let (test, train): (Vec<&Deal>, Vec<&Deal>) =
        closed.iter().partition(|d| held_back(&d.deal_id));
    let test_wins = test.iter().filter(|d| d.won == Some(true)).count();
    let (auc_value, brier, predicted, actual) = if test_wins == 0 || test_wins == test.len() {
        (f64::NAN, f64::NAN, f64::NAN, f64::NAN)
    } else {
        let trial = fit_on(&train, l2)?;
        let scores: Vec<f64> = test.iter().map(|d| trial.p_win(d)).collect();
        let won: Vec<bool> = test.iter().map(|d| d.won == Some(true)).collect();
        let n = test.len() as f64;
        let brier = scores
            .iter()
            .zip(&won)
            .map(|(s, w)| (s - f64::from(u8::from(*w))).powi(2))
            .sum::<f64>()
            / n;
        (
            auc(&scores, &won),
            brier,
            scores.iter().sum::<f64>() / n,
            test_wins as f64 / n,
        )
    };
    let mut model = fit_on(&closed, l2)?;
    model.metrics = LeadMetrics {
        closed_deals: closed.len(),
        held_back: test.len(),
        holdout_auc: auc_value,
        holdout_brier: brier,
        holdout_predicted_win_rate: predicted,
        holdout_actual_win_rate: actual,
        open_deals: deals.len() - closed.len(),
    };
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ordered_pairs() {
        assert_eq!(auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]), 1.0);
        assert_eq!(auc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]), 0.0);
        assert_eq!(auc(&[0.5, 0.5], &[false, true]), 0.5);
        // 3 of the 4 win/loss pairs are ordered.
        assert_eq!(
            auc(&[0.1, 0.6, 0.4, 0.9], &[false, false, true, true]),
            0.75
        );
    }

    fn deal(i: usize, pipeline: &str, won: Option<bool>) -> Deal {
        Deal {
            deal_id: format!("d{i}"),
            pipeline: pipeline.into(),
            channel: if i.is_multiple_of(3) {
                "search".into()
            } else {
                "social".into()
            },
            amount: 1000.0 + (i % 17) as f64 * 300.0,
            age_days: 10.0 + (i % 11) as f64,
            won,
        }
    }

    #[test]
    fn learns_a_pipeline_that_wins_more() {
        // Expansion deals win 80% of the time, new business 20%.
        let deals: Vec<Deal> = (0..400)
            .map(|i| {
                let pipeline = if i % 2 == 0 {
                    "expansion"
                } else {
                    "new_business"
                };
                let won = if pipeline == "expansion" {
                    i % 10 != 0
                } else {
                    i % 5 == 1
                };
                deal(i, pipeline, Some(won))
            })
            .chain((400..410).map(|i| deal(i, "expansion", None)))
            .collect();
        let model = fit(&deals, 1.0).unwrap();
        let expansion = model.p_win(&deal(1000, "expansion", None));
        let new_business = model.p_win(&deal(1001, "new_business", None));
        assert!(
            expansion > 0.6 && new_business < 0.4,
            "{expansion} {new_business}"
        );
        // The pipeline alone ranks with AUC 0.8; 77 held-back deals are noisy.
        assert!(model.metrics.holdout_auc > 0.6, "{:?}", model.metrics);
        assert_eq!(model.metrics.open_deals, 10);
        // A pipeline never seen in training scores as `other`, not as an error.
        let unseen = model.p_win(&deal(1002, "renewal", None));
        assert!(unseen > 0.0 && unseen < 1.0);
    }

    #[test]
    fn too_few_closed_deals_are_refused_with_the_counts() {
        let deals: Vec<Deal> = (0..10).map(|i| deal(i, "x", Some(i % 2 == 0))).collect();
        let err = fit(&deals, 1.0).unwrap_err().to_string();
        assert!(err.contains("10 closed"), "{err}");
    }
}
