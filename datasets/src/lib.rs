//! Seeded, deterministic synthetic marketing data with its ground truth.
//!
//! One [`GeneratorConfig`] (seed, scale, last day) always produces the same
//! [`Dataset`]: `ad_performance` over the five ad platforms, `web_sessions`,
//! `customers` and `orders` from a BG/NBD purchase process with Gamma-Gamma
//! order values, and `crm_deals` won or lost through a known logistic model.
//! The [`GroundTruth`] (response-curve parameters per campaign, injected
//! anomalies, BG/NBD, Gamma-Gamma and deal-model parameters) comes with it, so
//! the model families can check what they recover.
//!
//! ```
//! use gyrus_datasets::{GeneratorConfig, Scale, generate};
//!
//! let data = generate(&GeneratorConfig::new(7, Scale::Small));
//! let again = generate(&GeneratorConfig::new(7, Scale::Small));
//! assert_eq!(data.ad_performance, again.ad_performance);
//! assert!(!data.truth.anomalies.is_empty());
//! ```

mod ads;
mod buyers;
mod deals;
mod load;
mod noise;
mod packaged;
mod truth;
mod web;

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use gyrus_engine::datafusion::arrow::array::{ArrayRef, Decimal128Builder, RecordBatch};
use gyrus_engine::schema::{CanonicalTable, MONEY_PRECISION, MONEY_SCALE};
use rand::SeedableRng;
use rand::rngs::StdRng;

pub use buyers::{SimulatedCustomer, btyd_summaries, repeat_purchases};
pub use load::{GROUND_TRUTH_FILE, LoadReport, LoadStep};
pub use noise::{HELD_OUT_SEEDS, NoiseShape, TUNING_SEEDS, check_cases};
pub use packaged::package_data;
pub use truth::{
    AnomalyTruth, BgNbdTruth, CampaignTruth, DealModelTruth, GammaGammaTruth, GroundTruth,
};

/// How much data to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Seconds to make and load; for tests (about 6 thousand ad rows).
    Small,
    /// About 250 thousand ad rows over a year.
    Medium,
    /// At least 10 million ad rows over two years, for one tenant.
    Large,
}

impl Scale {
    pub fn as_str(self) -> &'static str {
        match self {
            Scale::Small => "small",
            Scale::Medium => "medium",
            Scale::Large => "large",
        }
    }

    fn shape(self) -> Shape {
        match self {
            Scale::Small => Shape {
                accounts: 1,
                campaigns: 3,
                ad_groups: 2,
                ads: 2,
                days: 120,
                customers: 500,
                deals: 300,
            },
            Scale::Medium => Shape {
                accounts: 2,
                campaigns: 8,
                ad_groups: 3,
                ads: 3,
                days: 365,
                customers: 5_000,
                deals: 3_000,
            },
            Scale::Large => Shape {
                accounts: 4,
                campaigns: 30,
                ad_groups: 4,
                ads: 8,
                days: 730,
                customers: 50_000,
                deals: 30_000,
            },
        }
    }
}

impl fmt::Display for Scale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scale {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "small" => Ok(Scale::Small),
            "medium" => Ok(Scale::Medium),
            "large" => Ok(Scale::Large),
            other => Err(format!(
                "unknown scale `{other}`: use small, medium or large"
            )),
        }
    }
}

/// Counts per level of the account tree, per platform.
#[derive(Debug, Clone, Copy)]
struct Shape {
    accounts: usize,
    campaigns: usize,
    ad_groups: usize,
    ads: usize,
    days: usize,
    customers: usize,
    deals: usize,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    pub seed: u64,
    pub scale: Scale,
    /// The last reporting day; the data ends here.
    pub end_date: NaiveDate,
    /// ISO 4217 currency of every account and order.
    pub currency: String,
    /// Where orders come from: `shopify` or `stripe`.
    pub commerce_source: String,
    /// How the ad data is noisy; [`NoiseShape::Standard`] unless set.
    pub noise: NoiseShape,
}

impl GeneratorConfig {
    /// A config ending on a fixed day, so the same seed gives the same dates.
    pub fn new(seed: u64, scale: Scale) -> Self {
        GeneratorConfig {
            seed,
            scale,
            end_date: NaiveDate::from_ymd_opt(2026, 10, 31).unwrap_or_default(),
            currency: "USD".into(),
            commerce_source: "shopify".into(),
            noise: NoiseShape::Standard,
        }
    }

    /// The config the demo uses for one tenant: seed, currency and shop
    /// differ per tenant so tenants are told apart at a glance.
    pub fn for_tenant(tenant: &str, scale: Scale) -> Self {
        let seed = tenant.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        });
        let mut config = GeneratorConfig::new(seed, scale);
        let (currency, source) = match tenant {
            "globex" => ("EUR", "stripe"),
            "initech" => ("GBP", "shopify"),
            _ => ("USD", "shopify"),
        };
        config.currency = currency.into();
        config.commerce_source = source.into();
        config
    }

    /// The first reporting day.
    pub fn start_date(&self) -> NaiveDate {
        self.end_date - chrono::Days::new(self.scale.shape().days as u64 - 1)
    }

    /// The data's span as UTC microseconds: [first day 00:00, day after the last 00:00).
    fn span_micros(&self) -> (i64, i64) {
        let micros = |d: NaiveDate| {
            d.and_time(chrono::NaiveTime::MIN)
                .and_utc()
                .timestamp_micros()
        };
        (
            micros(self.start_date()),
            micros(self.end_date + chrono::Days::new(1)),
        )
    }

    /// A generator for one part of the data, independent of the others.
    fn rng(&self, stream: u64) -> StdRng {
        StdRng::seed_from_u64(self.seed ^ stream.wrapping_mul(0x9e3779b97f4a7c15))
    }
}

/// Generated tables and the truth behind them.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Date-ordered chunks of about a million rows or fewer, each one write.
    pub ad_performance: Vec<RecordBatch>,
    pub web_sessions: RecordBatch,
    pub customers: RecordBatch,
    pub orders: RecordBatch,
    pub crm_deals: RecordBatch,
    pub truth: GroundTruth,
}

impl Dataset {
    /// Rows of `ad_performance` across its chunks.
    pub fn ad_rows(&self) -> usize {
        self.ad_performance.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Currency units to exact money: rounded to cents, at the money scale.
pub(crate) fn money(units: f64) -> i128 {
    ((units * 100.0).round() as i128) * 10_i128.pow(MONEY_SCALE as u32 - 2)
}

/// A builder for a money column.
pub(crate) fn money_builder(capacity: usize) -> Decimal128Builder {
    Decimal128Builder::with_capacity(capacity)
        .with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE)
        .expect("the money type is a valid decimal")
}

/// A generated table's batch; the generators build columns in schema order.
pub(crate) fn canonical_batch(table: CanonicalTable, columns: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(table.schema(), columns)
        .expect("generated columns follow the canonical schema")
}

/// Generates a whole dataset (in parallel where the parts allow).
pub fn generate(config: &GeneratorConfig) -> Dataset {
    let shape = config.scale.shape();
    let (ads, campaigns, anomalies) = ads::generate(config, &shape);
    let web_sessions = web::generate(config, &campaigns);
    let (customers, orders, bgnbd, gamma_gamma) = buyers::generate(config, &shape, &campaigns);
    let (crm_deals, deal_model) = deals::generate(config, &shape, &campaigns);
    let truth = GroundTruth {
        seed: config.seed,
        scale: config.scale.as_str().to_string(),
        noise: config.noise.as_str().to_string(),
        start_date: config.start_date(),
        end_date: config.end_date,
        currency: config.currency.clone(),
        ad_rows: ads.iter().map(RecordBatch::num_rows).sum(),
        campaigns,
        anomalies,
        bgnbd,
        gamma_gamma,
        deal_model,
    };
    Dataset {
        ad_performance: ads,
        web_sessions,
        customers,
        orders,
        crm_deals,
        truth,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gyrus_engine::write::prepare;

    #[test]
    fn small_data_is_valid_for_every_table() {
        let data = generate(&GeneratorConfig::new(1, Scale::Small));
        prepare(CanonicalTable::AdPerformance, &data.ad_performance).unwrap();
        prepare(
            CanonicalTable::WebSessions,
            std::slice::from_ref(&data.web_sessions),
        )
        .unwrap();
        prepare(
            CanonicalTable::Customers,
            std::slice::from_ref(&data.customers),
        )
        .unwrap();
        prepare(CanonicalTable::Orders, std::slice::from_ref(&data.orders)).unwrap();
        prepare(
            CanonicalTable::CrmDeals,
            std::slice::from_ref(&data.crm_deals),
        )
        .unwrap();
        assert!(data.ad_rows() > 3_000, "{}", data.ad_rows());
        assert!(data.orders.num_rows() > data.customers.num_rows());
    }

    #[test]
    fn seeds_change_the_data_and_tenants_differ() {
        let a = generate(&GeneratorConfig::new(1, Scale::Small));
        let b = generate(&GeneratorConfig::new(2, Scale::Small));
        assert_ne!(a.ad_performance, b.ad_performance);
        assert_ne!(
            GeneratorConfig::for_tenant("acme", Scale::Small).seed,
            GeneratorConfig::for_tenant("globex", Scale::Small).seed
        );
    }

    #[test]
    fn truth_covers_every_anomaly_kind_and_serialises() {
        let data = generate(&GeneratorConfig::new(3, Scale::Small));
        for kind in ["spike", "drop", "level_shift"] {
            assert!(
                data.truth.anomalies.iter().any(|a| a.kind == kind),
                "no {kind}"
            );
        }
        let json = serde_json::to_string(&data.truth).unwrap();
        assert!(json.contains("\"hill_half_saturation\""));
    }
}
