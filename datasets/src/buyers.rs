//! `customers` and `orders`: a BG/NBD purchase process with Gamma-Gamma order values.

use std::sync::Arc;

use gyrus_engine::datafusion::arrow::array::{
    ArrayRef, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use gyrus_engine::schema::CanonicalTable;
use rand::RngExt as _;
use rand_distr::{Beta, Distribution, Exp, Gamma};
use sha2::{Digest, Sha256};

use crate::truth::{BgNbdTruth, CampaignTruth, GammaGammaTruth};
use crate::web::paid_source;
use crate::{GeneratorConfig, Shape, canonical_batch, money, money_builder};

const COUNTRIES: [(&str, f64); 8] = [
    ("US", 0.42),
    ("GB", 0.14),
    ("DE", 0.11),
    ("FR", 0.09),
    ("CA", 0.08),
    ("AU", 0.06),
    ("NL", 0.05),
    ("ES", 0.05),
];
const MICROS_PER_WEEK: f64 = 7.0 * 86_400_000_000.0;

/// The repeat purchases of one customer of the BG/NBD process: times
/// after `first` and before `end` (in any unit; `per_week` of it make a
/// week). Purchases come at rate λ per week; after each, the customer drops
/// out with probability p.
pub fn repeat_purchases<R: rand::Rng>(
    rng: &mut R,
    lambda: f64,
    p: f64,
    first: f64,
    end: f64,
    per_week: f64,
) -> Vec<f64> {
    let mut times = Vec::new();
    let Ok(gap) = Exp::new(lambda) else {
        return times;
    };
    if lambda <= 0.0 {
        return times;
    }
    let mut t = first;
    loop {
        t += gap.sample(rng) * per_week;
        if t >= end {
            break;
        }
        times.push(t);
        if rng.random_bool(p.clamp(0.0, 1.0)) {
            break;
        }
    }
    times
}

/// A customer of [`btyd_summaries`], in days.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimulatedCustomer {
    /// Days with a purchase after the first.
    pub frequency: u32,
    /// Days from the first purchase to the last.
    pub recency_days: u32,
    /// Days from the first purchase to the end of observation.
    pub tenure_days: u32,
    /// Mean value of the repeat purchases (0 without any).
    pub monetary: f64,
    /// Value of every purchase, the first included.
    pub revenue: f64,
    /// The exact (continuous-time) repeat count, recency and tenure in
    /// weeks, before purchases are counted per day.
    pub exact: (u32, f64, f64),
}

/// Summaries of `customers` drawn from the BG/NBD and Gamma-Gamma
/// processes, acquired uniformly over `days` days and observed to their
/// end, with purchases counted per day as the pipeline counts them.
/// Millions of customers without building their orders.
pub fn btyd_summaries(
    customers: usize,
    bgnbd: &BgNbdTruth,
    gg: &GammaGammaTruth,
    days: u32,
    seed: u64,
) -> Vec<SimulatedCustomer> {
    use rand::SeedableRng as _;
    use rayon::prelude::*;
    const CHUNK: usize = 65_536;
    let lambda_dist = Gamma::new(bgnbd.r, 1.0 / bgnbd.alpha).expect("valid BG/NBD parameters");
    let p_dist = Beta::new(bgnbd.a, bgnbd.b).expect("valid BG/NBD parameters");
    let nu_dist = Gamma::new(gg.q, 1.0 / gg.gamma).expect("valid Gamma-Gamma parameters");
    (0..customers.div_ceil(CHUNK))
        .into_par_iter()
        .flat_map_iter(|chunk| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(
                seed ^ (chunk as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            );
            let n = CHUNK.min(customers - chunk * CHUNK);
            (0..n)
                .map(|_| {
                    // Acquired at a random moment; observed to the end of day `days − 1`.
                    let first_at: f64 = rng.random_range(0.0..f64::from(days));
                    let first = first_at as u32;
                    let (lambda, p, nu): (f64, f64, f64) = (
                        lambda_dist.sample(&mut rng),
                        p_dist.sample(&mut rng),
                        nu_dist.sample(&mut rng),
                    );
                    let value = Gamma::new(gg.p, 1.0 / nu).expect("positive scale");
                    let times =
                        repeat_purchases(&mut rng, lambda, p, first_at, f64::from(days), 7.0);
                    let mut repeat_days: Vec<u32> = times
                        .iter()
                        .map(|t| *t as u32)
                        .filter(|d| *d > first)
                        .collect();
                    repeat_days.dedup();
                    let values: Vec<f64> =
                        repeat_days.iter().map(|_| value.sample(&mut rng)).collect();
                    let repeat_value: f64 = values.iter().sum();
                    let frequency = repeat_days.len() as u32;
                    SimulatedCustomer {
                        frequency,
                        recency_days: repeat_days.last().map_or(0, |d| d - first),
                        tenure_days: days - 1 - first,
                        monetary: if frequency > 0 {
                            repeat_value / f64::from(frequency)
                        } else {
                            0.0
                        },
                        revenue: value.sample(&mut rng) + repeat_value,
                        exact: (
                            times.len() as u32,
                            times.last().map_or(0.0, |t| t - first_at) / 7.0,
                            (f64::from(days) - first_at) / 7.0,
                        ),
                    }
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

pub(crate) fn generate(
    config: &GeneratorConfig,
    shape: &Shape,
    campaigns: &[CampaignTruth],
) -> (RecordBatch, RecordBatch, BgNbdTruth, GammaGammaTruth) {
    // The published CDNOW fits (Fader, Hardie & Lee 2005), so recovery can be compared with them too.
    let bgnbd = BgNbdTruth {
        r: 0.243,
        alpha: 4.414,
        a: 0.793,
        b: 2.426,
        time_unit: "weeks".into(),
        customers: shape.customers,
        paid_orders: 0,
    };
    let gg = GammaGammaTruth {
        p: 6.25,
        q: 3.74,
        gamma: 15.44,
    };
    let mut rng = config.rng(3);
    let (start, end) = config.span_micros();
    let lambda_dist = Gamma::new(bgnbd.r, 1.0 / bgnbd.alpha).expect("valid BG/NBD parameters");
    let p_dist = Beta::new(bgnbd.a, bgnbd.b).expect("valid BG/NBD parameters");
    let nu_dist = Gamma::new(gg.q, 1.0 / gg.gamma).expect("valid Gamma-Gamma parameters");

    let mut customer_id = StringBuilder::new();
    let mut first_seen = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let (mut country, mut email, mut source) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let mut order_id = StringBuilder::new();
    let mut order_customer = StringBuilder::new();
    let mut created_at = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut amount = money_builder(0);
    let (mut currency, mut status, mut order_source) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let (mut utm_source, mut utm_campaign) = (StringBuilder::new(), StringBuilder::new());

    let mut orders = 0usize;
    let mut paid = 0usize;
    let mut push_order =
        |customer: &str, at: i64, value: f64, state: &str, utm: Option<(&str, &str)>| {
            orders += 1;
            order_id.append_value(format!("ord-{orders:08}"));
            order_customer.append_value(customer);
            created_at.append_value(at);
            amount.append_value(money(value));
            currency.append_value(&config.currency);
            status.append_value(state);
            order_source.append_value(&config.commerce_source);
            utm_source.append_option(utm.map(|u| u.0));
            utm_campaign.append_option(utm.map(|u| u.1));
        };

    for c in 1..=shape.customers {
        let id = format!("cust-{c:07}");
        // Acquisition spreads over the period; the process then runs to its end.
        let first = rng.random_range(start..end);
        let lambda: f64 = lambda_dist.sample(&mut rng);
        let p: f64 = p_dist.sample(&mut rng);
        let nu: f64 = nu_dist.sample(&mut rng);
        let value_dist = Gamma::new(gg.p, 1.0 / nu).expect("positive scale");
        let utm_owned = (rng.random_bool(0.6) && !campaigns.is_empty()).then(|| {
            let t = &campaigns[rng.random_range(0..campaigns.len())];
            (paid_source(&t.platform).0, t.campaign_name.clone())
        });
        let utm = utm_owned.as_ref().map(|(s, n)| (*s, n.as_str()));

        let cutoff = COUNTRIES.iter().map(|c| c.1).sum::<f64>() * rng.random_range(0.0..1.0);
        let mut acc = 0.0;
        let land = COUNTRIES
            .iter()
            .find(|(_, w)| {
                acc += w;
                acc >= cutoff
            })
            .map_or("US", |c| c.0);
        customer_id.append_value(&id);
        first_seen.append_value(first);
        country.append_value(land);
        email.append_value(hex::encode(Sha256::digest(
            format!("{id}@example.com").as_bytes(),
        )));
        source.append_value(&config.commerce_source);

        push_order(&id, first, value_dist.sample(&mut rng), "paid", utm);
        paid += 1;
        let repeats = repeat_purchases(
            &mut rng,
            lambda,
            p,
            first as f64,
            end as f64,
            MICROS_PER_WEEK,
        );
        for t in repeats {
            push_order(&id, t as i64, value_dist.sample(&mut rng), "paid", utm);
            paid += 1;
        }
        // Noise outside the process: an occasional cancelled order.
        if rng.random_bool(0.02) {
            push_order(
                &id,
                rng.random_range(first..end),
                value_dist.sample(&mut rng),
                "cancelled",
                utm,
            );
        }
    }
    let customers = canonical_batch(
        CanonicalTable::Customers,
        vec![
            Arc::new(customer_id.finish()) as ArrayRef,
            Arc::new(first_seen.finish()),
            Arc::new(country.finish()),
            Arc::new(email.finish()),
            Arc::new(source.finish()),
        ],
    );
    let orders = canonical_batch(
        CanonicalTable::Orders,
        vec![
            Arc::new(order_id.finish()) as ArrayRef,
            Arc::new(order_customer.finish()),
            Arc::new(created_at.finish()),
            Arc::new(amount.finish()),
            Arc::new(currency.finish()),
            Arc::new(status.finish()),
            Arc::new(order_source.finish()),
            Arc::new(utm_source.finish()),
            Arc::new(utm_campaign.finish()),
        ],
    );
    (
        customers,
        orders,
        BgNbdTruth {
            paid_orders: paid,
            ..bgnbd
        },
        gg,
    )
}
