//! MEMORY as a family: the config, the fitted model the registry stores,
//! per-customer scores and the calibration/holdout validation.

use chrono::NaiveDate;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::family::{FamilyId, TrainedModel};
use crate::memory::bgnbd::{self, BgNbdFit, BgNbdParams};
use crate::memory::gamma_gamma::{self, GammaGammaFit};
use crate::memory::leads::{self, Deal, LeadModel};
use crate::memory::rfm;
use crate::memory::summary::{DAYS_PER_UNIT, Groups, Summary};

/// What MEMORY computes, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryConfig {
    /// Horizon of `expected_purchases_90d` and `churn_risk`, in days.
    pub horizon_days: f64,
    /// Horizon of `clv_365d`, in days, discounted month by month.
    pub clv_days: f64,
    /// Monthly discount rate of future purchases in the CLV.
    pub monthly_discount_rate: f64,
    /// Length of the validation's holdout period in days; by default a
    /// third of the order history, at most 26 weeks.
    pub holdout_days: Option<u32>,
    /// Churn-risk thresholds of the bands medium, high and very_high.
    pub churn_bands: [f64; 3],
    /// L2 strength of the lead model.
    pub lead_l2: f64,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            horizon_days: 90.0,
            clv_days: 365.0,
            monthly_discount_rate: 0.01,
            holdout_days: None,
            churn_bands: [0.5, 0.8, 0.95],
            lead_l2: 1.0,
        }
    }
}

impl MemoryConfig {
    pub fn check(&self) -> Result<()> {
        let ok = self.horizon_days > 0.0
            && self.horizon_days <= 3660.0
            && self.clv_days > 0.0
            && self.clv_days <= 3660.0
            && (0.0..1.0).contains(&self.monthly_discount_rate)
            && self.churn_bands.windows(2).all(|w| w[0] < w[1])
            && self.churn_bands.iter().all(|b| (0.0..=1.0).contains(b))
            && self.lead_l2 >= 0.0;
        if ok {
            Ok(())
        } else {
            Err(ModelError::Invalid(
                "horizons must be 1 to 3660 days, the discount rate in [0, 1), \
                 churn bands increasing in [0, 1]"
                    .into(),
            ))
        }
    }

    /// The churn band of a churn risk.
    pub fn churn_band(&self, risk: f64) -> &'static str {
        match self.churn_bands.iter().filter(|b| risk >= **b).count() {
            0 => "low",
            1 => "medium",
            2 => "high",
            _ => "very_high",
        }
    }
}

/// The customer half of a MEMORY model: BG/NBD and Gamma-Gamma.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerModel {
    pub bgnbd: BgNbdFit,
    /// Absent when fewer than two customers have paid repeat purchases.
    pub gamma_gamma: Option<GammaGammaFit>,
    /// Mean value of a purchase (a day's orders), the fallback order value.
    pub mean_purchase_value: f64,
    pub validation: Option<Validation>,
}

/// One customer's model scores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CustomerScore {
    pub p_alive: f64,
    pub expected_purchases: f64,
    pub expected_order_value: f64,
    pub clv: f64,
    /// P(no purchase within the horizon).
    pub churn_risk: f64,
}

/// Scores that depend only on (x, t_x, T), computed once per group.
#[derive(Debug, Clone, Copy)]
struct GroupScore {
    p_alive: f64,
    expected_purchases: f64,
    churn_risk: f64,
    /// Σ over months of the expected purchases in the month, discounted.
    discounted_purchases: f64,
}

impl CustomerModel {
    fn group_score(&self, config: &MemoryConfig, x: u32, recency: f64, tenure: f64) -> GroupScore {
        let p: &BgNbdParams = &self.bgnbd.params;
        let horizon = config.horizon_days / DAYS_PER_UNIT;
        let month = config.clv_days / 12.0 / DAYS_PER_UNIT;
        let mut discounted = 0.0;
        let mut previous = 0.0;
        for m in 1..=12 {
            let cumulative = p.expected_purchases(month * f64::from(m), x, recency, tenure);
            discounted += (cumulative - previous) / (1.0 + config.monthly_discount_rate).powi(m);
            previous = cumulative;
        }
        GroupScore {
            p_alive: p.p_alive(x, recency, tenure),
            expected_purchases: p.expected_purchases(horizon, x, recency, tenure),
            churn_risk: p.p_no_purchase(horizon, x, recency, tenure).clamp(0.0, 1.0),
            discounted_purchases: discounted,
        }
    }

    fn order_value(&self, x: u32, monetary: f64) -> f64 {
        self.gamma_gamma
            .as_ref()
            .and_then(|gg| gg.params.expected_value(x, monetary))
            .unwrap_or(if x > 0 && monetary > 0.0 {
                monetary
            } else {
                self.mean_purchase_value
            })
    }

    /// Scores one customer.
    pub fn score(&self, config: &MemoryConfig, s: &Summary) -> CustomerScore {
        let group = self.group_score(config, s.frequency, s.recency, s.tenure);
        self.with_value(group, s.frequency, s.monetary)
    }

    /// A customer's scores from their group's and their own order value.
    fn with_value(&self, g: GroupScore, x: u32, monetary: f64) -> CustomerScore {
        let value = self.order_value(x, monetary);
        CustomerScore {
            p_alive: g.p_alive,
            expected_purchases: g.expected_purchases,
            expected_order_value: value,
            clv: g.discounted_purchases * value,
            churn_risk: g.churn_risk,
        }
    }

    /// Scores many customers: the BG/NBD part once per distinct (x, t_x, T).
    pub fn score_all(
        &self,
        config: &MemoryConfig,
        groups: &Groups,
        frequency: &[u32],
        monetary: &[f64],
    ) -> Vec<CustomerScore> {
        let per_group: Vec<GroupScore> = (0..groups.len())
            .into_par_iter()
            .with_min_len(256)
            .map(|g| {
                self.group_score(
                    config,
                    groups.frequency[g],
                    groups.recency[g],
                    groups.tenure[g],
                )
            })
            .collect();
        groups
            .of_customer
            .par_iter()
            .with_min_len(4096)
            .enumerate()
            .map(|(i, &g)| self.with_value(per_group[g as usize], frequency[i], monetary[i]))
            .collect()
    }
}

/// Fits BG/NBD and Gamma-Gamma to customers' summaries (weeks).
pub fn fit_customers(
    frequency: &[u32],
    recency: &[f64],
    tenure: &[f64],
    monetary: &[f64],
    mean_purchase_value: f64,
) -> Result<(CustomerModel, Groups)> {
    let groups = Groups::new(frequency, recency, tenure);
    let bgnbd = bgnbd::fit(&groups)?;
    let gamma_gamma = gamma_gamma::fit(frequency, monetary).ok();
    Ok((
        CustomerModel {
            bgnbd,
            gamma_gamma,
            mean_purchase_value,
            validation: None,
        },
        groups,
    ))
}

/// The calibration/holdout check: BG/NBD fitted on the calibration period
/// predicts each customer's purchases in the holdout period; predicted and
/// actual are compared per calibration-period frequency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    pub calibration_end: NaiveDate,
    pub holdout_days: u32,
    pub customers: usize,
    pub calibration_params: BgNbdParams,
    pub predicted_purchases: f64,
    pub actual_purchases: f64,
    /// Σ_bucket |predicted − actual| / Σ actual over the frequency buckets
    /// 0, 1, …, 6, 7+: the registry's score (lower is better).
    pub bucket_error: f64,
    /// Mean |predicted − actual| per customer.
    pub mean_absolute_error: f64,
    pub buckets: Vec<ValidationBucket>,
}

/// Customers with one calibration-period frequency (the last bucket is 7+).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationBucket {
    pub frequency: String,
    pub customers: usize,
    pub mean_predicted: f64,
    pub mean_actual: f64,
}

/// Summaries of the calibration period and the purchases that followed.
#[derive(Debug, Clone, Default)]
pub struct HoldoutData {
    pub calibration_end: NaiveDate,
    pub holdout_days: u32,
    pub frequency: Vec<u32>,
    pub recency: Vec<f64>,
    pub tenure: Vec<f64>,
    pub holdout_purchases: Vec<u32>,
}

/// Fits the calibration period and scores the holdout.
pub fn validate(data: &HoldoutData) -> Result<Validation> {
    let groups = Groups::new(&data.frequency, &data.recency, &data.tenure);
    let fit = bgnbd::fit(&groups)?;
    let t = f64::from(data.holdout_days) / DAYS_PER_UNIT;
    let per_group: Vec<f64> = (0..groups.len())
        .into_par_iter()
        .map(|g| {
            fit.params.expected_purchases(
                t,
                groups.frequency[g],
                groups.recency[g],
                groups.tenure[g],
            )
        })
        .collect();
    const BUCKETS: usize = 8;
    let mut sums = [(0usize, 0.0f64, 0.0f64); BUCKETS];
    let mut absolute = 0.0;
    for (i, &g) in groups.of_customer.iter().enumerate() {
        let predicted = per_group[g as usize];
        let actual = f64::from(data.holdout_purchases[i]);
        let bucket = (data.frequency[i] as usize).min(BUCKETS - 1);
        sums[bucket].0 += 1;
        sums[bucket].1 += predicted;
        sums[bucket].2 += actual;
        absolute += (predicted - actual).abs();
    }
    let predicted: f64 = sums.iter().map(|s| s.1).sum();
    let actual: f64 = sums.iter().map(|s| s.2).sum();
    let bucket_error = sums.iter().map(|s| (s.1 - s.2).abs()).sum::<f64>() / actual.max(1.0);
    let n = data.frequency.len();
    Ok(Validation {
        calibration_end: data.calibration_end,
        holdout_days: data.holdout_days,
        customers: n,
        calibration_params: fit.params,
        predicted_purchases: predicted,
        actual_purchases: actual,
        bucket_error,
        mean_absolute_error: absolute / n.max(1) as f64,
        buckets: sums
            .iter()
            .enumerate()
            .filter(|(_, s)| s.0 > 0)
            .map(|(b, s)| ValidationBucket {
                frequency: if b == BUCKETS - 1 {
                    format!("{b}+")
                } else {
                    b.to_string()
                },
                customers: s.0,
                mean_predicted: s.1 / s.0 as f64,
                mean_actual: s.2 / s.0 as f64,
            })
            .collect(),
    })
}

/// A tenant's trained MEMORY model, as the registry stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryModel {
    pub config: MemoryConfig,
    /// The last day of order data: customers' tenure runs to it.
    pub observation_end: Option<NaiveDate>,
    pub customers: Option<CustomerModel>,
    pub leads: Option<LeadModel>,
    /// Why a part is missing (no repeat buyers, too few closed deals, …).
    pub notes: Vec<String>,
    /// Customers and open deals scored.
    pub customers_scored: usize,
    pub deals_scored: usize,
}

impl TrainedModel for MemoryModel {
    const FAMILY: FamilyId = FamilyId::Memory;
    const SCORE_METRIC: &'static str = "holdout_bucket_error";
    const SCORE_NAME: &'static str = "holdout error";

    fn score(&self) -> Option<f64> {
        self.customers
            .as_ref()?
            .validation
            .as_ref()
            .map(|v| v.bucket_error)
    }

    fn metrics(&self) -> serde_json::Value {
        let customers = self.customers.as_ref();
        serde_json::json!({
            "holdout_bucket_error": self.score(),
            "validation": customers.and_then(|c| c.validation.as_ref()),
            "bgnbd": customers.map(|c| &c.bgnbd),
            "gamma_gamma": customers.and_then(|c| c.gamma_gamma.as_ref()),
            "lead_auc": self.leads.as_ref().map(|l| l.metrics.holdout_auc).filter(|a| a.is_finite()),
            "leads": self.leads.as_ref().map(|l| &l.metrics),
            "customers_scored": self.customers_scored,
            "deals_scored": self.deals_scored,
            "notes": self.notes,
        })
    }
}

/// RFM scores and segment of each customer, from days since the last
/// purchase, purchase count and revenue.
pub fn rfm_segments(
    days_since_last: &[f64],
    purchases: &[f64],
    revenue: &[f64],
) -> Vec<(String, &'static str)> {
    let r = rfm::quintile_scores(days_since_last, false);
    let f = rfm::quintile_scores(purchases, true);
    let m = rfm::quintile_scores(revenue, true);
    (0..r.len())
        .map(|i| {
            (
                format!("{}{}{}", r[i], f[i], m[i]),
                rfm::segment(r[i], f[i]),
            )
        })
        .collect()
}

/// Fits the lead model, or says why not.
pub fn fit_leads(deals: &[Deal], config: &MemoryConfig) -> Result<LeadModel> {
    leads::fit(deals, config.lead_l2)
}
