//! One tenant's MEMORY run: fit, validate, score every customer and open
//! deal, and build the `customer_scores` and `lead_scores` rows.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    ArrayRef, Decimal128Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use gyrus_engine::schema::{CanonicalTable, MONEY_PRECISION, MONEY_SCALE};

use crate::error::{ModelError, Result};
use crate::memory::data::{Customers, TenantMemoryData};
use crate::memory::model::{
    CustomerScore, MemoryConfig, MemoryModel, fit_customers, fit_leads, rfm_segments, validate,
};
use gyrus_engine::day::date_to_day;
use gyrus_engine::money::column_from_units;

/// Customers, their scores, and their RFM score and segment.
type ScoredCustomers = (Customers, Vec<CustomerScore>, Vec<(String, &'static str)>);

/// A tenant's fitted model with its scores, ready to be written.
#[derive(Debug)]
pub struct TenantScores {
    pub model: MemoryModel,
    customers: Option<ScoredCustomers>,
    /// Open deals and their P(win).
    leads: Vec<(String, f64)>,
}

/// Fits and scores one tenant. Parts that cannot be fitted (no repeat
/// buyers, too few closed deals) are left out with a note; the model is
/// empty only when both are.
pub fn fit_tenant(config: &MemoryConfig, data: TenantMemoryData) -> TenantScores {
    let mut model = MemoryModel {
        config: config.clone(),
        observation_end: None,
        customers: None,
        leads: None,
        notes: Vec::new(),
        customers_scored: 0,
        deals_scored: 0,
    };
    let mut scored = None;
    match data.customers {
        None => model
            .notes
            .push("no customer scores: orders has no paid order with a customer_id".into()),
        Some(customers) => {
            let (recency, tenure) = (customers.recency(), customers.tenure());
            match fit_customers(
                &customers.frequency,
                &recency,
                &tenure,
                &customers.monetary,
                customers.mean_purchase_value,
            ) {
                Err(e) => model.notes.push(format!("no customer scores: {e}")),
                Ok((mut fitted, groups)) => {
                    if let Some(holdout) = &customers.holdout {
                        match validate(holdout) {
                            Ok(v) => fitted.validation = Some(v),
                            Err(e) => model.notes.push(format!("no holdout validation: {e}")),
                        }
                    } else {
                        model
                            .notes
                            .push("no holdout validation: under 6 weeks of orders".into());
                    }
                    if fitted.gamma_gamma.is_none() {
                        model.notes.push(
                            "no Gamma-Gamma fit: order values are each customer's own mean, or the mean purchase"
                                .into(),
                        );
                    }
                    let scores = fitted.score_all(
                        config,
                        &groups,
                        &customers.frequency,
                        &customers.monetary,
                    );
                    let end = date_to_day(customers.end);
                    let since_last: Vec<f64> = customers
                        .last_day
                        .iter()
                        .map(|d| f64::from(end - d))
                        .collect();
                    let purchases: Vec<f64> = customers
                        .frequency
                        .iter()
                        .map(|x| f64::from(x + 1))
                        .collect();
                    let revenue: Vec<f64> = customers
                        .revenue
                        .iter()
                        .map(|r| *r as f64 / 10f64.powi(i32::from(MONEY_SCALE)))
                        .collect();
                    let rfm = rfm_segments(&since_last, &purchases, &revenue);
                    model.observation_end = Some(customers.end);
                    model.customers_scored = customers.len();
                    model.customers = Some(fitted);
                    scored = Some((customers, scores, rfm));
                }
            }
        }
    }
    let mut leads = Vec::new();
    if data.deals.is_empty() {
        model
            .notes
            .push("no lead scores: crm_deals is empty".into());
    } else {
        match fit_leads(&data.deals, config) {
            Err(e) => model.notes.push(format!("no lead scores: {e}")),
            Ok(lead_model) => {
                leads = data
                    .deals
                    .iter()
                    .filter(|d| d.won.is_none())
                    .map(|d| (d.deal_id.clone(), lead_model.p_win(d)))
                    .collect();
                model.deals_scored = leads.len();
                model.leads = Some(lead_model);
            }
        }
    }
    TenantScores {
        model,
        customers: scored,
        leads,
    }
}

impl TenantScores {
    /// Whether anything was fitted.
    pub fn is_empty(&self) -> bool {
        self.model.customers.is_none() && self.model.leads.is_none()
    }

    /// The `customer_scores` rows, if customers were scored.
    pub fn customer_rows(
        &self,
        version: &str,
        scored_at: DateTime<Utc>,
    ) -> Result<Option<RecordBatch>> {
        let Some((customers, scores, rfm)) = &self.customers else {
            return Ok(None);
        };
        if let Some(bad) = scores.iter().position(|s| {
            ![
                s.p_alive,
                s.expected_purchases,
                s.clv,
                s.churn_risk,
                s.expected_order_value,
            ]
            .iter()
            .all(|v| v.is_finite())
        }) {
            return Err(ModelError::Invalid(format!(
                "the model gave a non-finite score to customer {bad} of {}; nothing was written",
                scores.len()
            )));
        }
        let n = customers.len();
        let end = date_to_day(customers.end);
        let days = |from: &[i32], to: &dyn Fn(usize) -> i32| -> Float64Array {
            from.iter()
                .enumerate()
                .map(|(i, d)| f64::from(to(i) - d))
                .collect()
        };
        let config = &self.model.config;
        let columns: Vec<ArrayRef> = vec![
            customers.ids.clone(),
            Arc::new(Int64Array::from_iter_values(
                customers.frequency.iter().map(|x| i64::from(*x)),
            )),
            Arc::new(days(&customers.first_day, &|i| customers.last_day[i])),
            Arc::new(days(&customers.first_day, &|_| end)),
            column_from_units(customers.monetary.iter().copied())?,
            Arc::new(Float64Array::from_iter_values(
                scores.iter().map(|s| s.p_alive.clamp(0.0, 1.0)),
            )),
            Arc::new(Float64Array::from_iter_values(
                scores.iter().map(|s| s.expected_purchases.max(0.0)),
            )),
            column_from_units(scores.iter().map(|s| s.clv))?,
            Arc::new(StringArray::from_iter_values(rfm.iter().map(|r| r.1))),
            Arc::new(Float64Array::from_iter_values(
                scores.iter().map(|s| s.churn_risk.clamp(0.0, 1.0)),
            )),
            Arc::new(StringArray::from(vec![version; n])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![scored_at.timestamp_micros(); n])
                    .with_timezone("UTC"),
            ),
            Arc::new(
                Decimal128Array::from(customers.revenue.clone())
                    .with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE)?,
            ),
            column_from_units(scores.iter().map(|s| s.expected_order_value))?,
            Arc::new(StringArray::from_iter_values(
                rfm.iter().map(|r| r.0.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                scores.iter().map(|s| config.churn_band(s.churn_risk)),
            )),
        ];
        RecordBatch::try_new(CanonicalTable::CustomerScores.schema(), columns)
            .map(Some)
            .map_err(|e| ModelError::Registry(format!("building customer scores: {e}")))
    }

    /// The `lead_scores` rows, if deals were scored.
    pub fn lead_rows(
        &self,
        version: &str,
        scored_at: DateTime<Utc>,
    ) -> Result<Option<RecordBatch>> {
        if self.model.leads.is_none() {
            return Ok(None);
        }
        let n = self.leads.len();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                self.leads.iter().map(|l| l.0.as_str()),
            )),
            Arc::new(Float64Array::from_iter_values(
                self.leads.iter().map(|l| l.1),
            )),
            Arc::new(StringArray::from(vec![version; n])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![scored_at.timestamp_micros(); n])
                    .with_timezone("UTC"),
            ),
        ];
        RecordBatch::try_new(CanonicalTable::LeadScores.schema(), columns)
            .map(Some)
            .map_err(|e| ModelError::Registry(format!("building lead scores: {e}")))
    }
}
