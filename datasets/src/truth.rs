//! The ground truth written beside generated data.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Everything the generator decided, so models can be checked against it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    pub seed: u64,
    pub scale: String,
    /// The [noise shape](crate::NoiseShape) of the ad data.
    #[serde(default = "standard")]
    pub noise: String,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    pub currency: String,
    pub ad_rows: usize,
    pub campaigns: Vec<CampaignTruth>,
    pub anomalies: Vec<AnomalyTruth>,
    pub bgnbd: BgNbdTruth,
    pub gamma_gamma: GammaGammaTruth,
    pub deal_model: DealModelTruth,
}

fn standard() -> String {
    "standard".into()
}

/// How one campaign's spend turns into conversions.
///
/// Per day t (before noise and anomalies):
/// `spend_t = daily_budget * trend_t * weekly[dow] * (1 + yearly_amplitude * sin(2π doy/365.25 + yearly_phase))`,
/// `adstock_t = spend_t + adstock_decay * adstock_{t-1}`,
/// `E[conversions_t] = max_conversions * demand_t * adstock_t^hill_shape / (adstock_t^hill_shape + hill_half_saturation^hill_shape)`
/// with `demand_t = 1 + yearly_amplitude * sin(...)` (the same yearly wave), and
/// `trend_t = (1 + trend_per_year)^(t / 365.25)`. Conversions are Poisson
/// around that mean, split across ads by `ad_weights`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignTruth {
    pub platform: String,
    pub account_id: String,
    pub campaign_id: String,
    pub campaign_name: String,
    pub channel: String,
    pub launch_date: NaiveDate,
    /// The day after the last active day, if the campaign was paused.
    pub paused_from: Option<NaiveDate>,
    pub daily_budget: f64,
    pub trend_per_year: f64,
    /// Multipliers Monday..Sunday.
    pub weekly: [f64; 7],
    pub yearly_amplitude: f64,
    pub yearly_phase: f64,
    /// Geometric adstock carry-over θ in `adstock_t = spend_t + θ adstock_{t-1}`.
    pub adstock_decay: f64,
    /// Hill half-saturation point K, in adstocked spend (currency units).
    pub hill_half_saturation: f64,
    /// Hill shape α.
    pub hill_shape: f64,
    /// Conversions per day at full saturation (β).
    pub max_conversions: f64,
    /// Cost per thousand impressions.
    pub cpm: f64,
    /// Clicks per impression.
    pub ctr: f64,
    /// Mean value of a conversion.
    pub value_per_conversion: f64,
    /// Share of the campaign's spend and conversions per ad, in `ad_id` order.
    pub ad_weights: Vec<f64>,
}

/// An injected anomaly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyTruth {
    pub platform: String,
    pub account_id: String,
    pub campaign_id: String,
    pub date: NaiveDate,
    /// `spike` and `drop` last one day; `level_shift` lasts from `date` on.
    /// Shapes other than the standard one add `budget_change` (spend moves
    /// to a new level from `date` on; `factor` against the level before),
    /// `slope_change` (a ramp of spend starts or ends on `date`; `factor`
    /// is the ramp's whole move) and `missing_day` (the campaign delivered
    /// nothing that day).
    pub kind: String,
    /// The metrics it multiplies.
    pub metrics: Vec<String>,
    pub factor: f64,
}

/// BG/NBD parameters of the purchase process (time unit: weeks).
///
/// Purchase rate λ ~ Gamma(shape r, rate α); after each repeat purchase the
/// customer drops out with probability p ~ Beta(a, b). Applies to orders with
/// `status = 'paid'`; `cancelled` orders are noise outside the process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BgNbdTruth {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
    pub time_unit: String,
    pub customers: usize,
    pub paid_orders: usize,
}

/// Gamma-Gamma parameters of order values: each customer's ν ~ Gamma(q, rate γ),
/// each order's amount ~ Gamma(p, rate ν).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GammaGammaTruth {
    pub p: f64,
    pub q: f64,
    pub gamma: f64,
}

/// The logistic model deals are won by: `P(won) = σ(intercept + Σ coefficient·feature)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DealModelTruth {
    pub intercept: f64,
    /// Feature name and coefficient; features are defined in `features`.
    pub coefficients: Vec<(String, f64)>,
    /// How each feature is computed from a `crm_deals` row.
    pub features: Vec<(String, String)>,
    pub closed_deals: usize,
    pub open_deals: usize,
}
