//! `crm_deals`: deals won or lost through a known logistic model.

use std::sync::Arc;

use gyrus_engine::datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use gyrus_engine::schema::CanonicalTable;
use rand::RngExt as _;
use rand_distr::{Distribution, LogNormal};

use crate::truth::{CampaignTruth, DealModelTruth};
use crate::{GeneratorConfig, Shape, canonical_batch, money, money_builder};

const MICROS_PER_DAY: i64 = 86_400_000_000;
/// Deals younger than this at the end of the data are still open.
const OPEN_DAYS: i64 = 45;
const PIPELINES: [&str; 2] = ["new_business", "expansion"];

pub(crate) fn generate(
    config: &GeneratorConfig,
    shape: &Shape,
    campaigns: &[CampaignTruth],
) -> (RecordBatch, DealModelTruth) {
    let intercept = -0.4;
    let coefficients = vec![
        ("log_amount_ratio".to_string(), -0.6),
        ("is_expansion".to_string(), 1.2),
        ("from_search".to_string(), 0.7),
        ("no_campaign".to_string(), -0.5),
    ];
    let features = vec![
        (
            "log_amount_ratio".to_string(),
            "ln(amount / 5000)".to_string(),
        ),
        (
            "is_expansion".to_string(),
            "pipeline = 'expansion'".to_string(),
        ),
        (
            "from_search".to_string(),
            "source_campaign is a campaign whose channel is 'search'".to_string(),
        ),
        (
            "no_campaign".to_string(),
            "source_campaign is null".to_string(),
        ),
    ];
    let mut rng = config.rng(4);
    let amount_dist = LogNormal::new(5000f64.ln(), 0.9).expect("valid parameters");
    let (start, end) = config.span_micros();

    let (mut deal_id, mut customer_id, mut pipeline, mut stage) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let mut amount = money_builder(0);
    let mut currency = StringBuilder::new();
    let mut created_at = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut closed_at = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut is_won = BooleanBuilder::new();
    let mut source_campaign = StringBuilder::new();
    let (mut closed, mut open) = (0, 0);

    for d in 1..=shape.deals {
        let value: f64 = amount_dist.sample(&mut rng);
        let value = (value * 100.0).round() / 100.0;
        let pipe = PIPELINES[usize::from(rng.random_bool(0.3))];
        let campaign = (rng.random_bool(0.7) && !campaigns.is_empty())
            .then(|| &campaigns[rng.random_range(0..campaigns.len())]);
        let logit = intercept
            + coefficients[0].1 * (value / 5000.0).ln()
            + coefficients[1].1 * f64::from(u8::from(pipe == "expansion"))
            + coefficients[2].1
                * f64::from(u8::from(campaign.is_some_and(|c| c.channel == "search")))
            + coefficients[3].1 * f64::from(u8::from(campaign.is_none()));
        let p_win = 1.0 / (1.0 + (-logit).exp());
        let created = rng.random_range(start..end);
        deal_id.append_value(format!("deal-{d:07}"));
        customer_id.append_option(
            rng.random_bool(0.5)
                .then(|| format!("cust-{:07}", rng.random_range(1..=shape.customers.max(1)))),
        );
        pipeline.append_value(pipe);
        amount.append_value(money(value));
        currency.append_value(&config.currency);
        created_at.append_value(created);
        source_campaign.append_option(campaign.map(|c| c.campaign_name.as_str()));
        if end - created < OPEN_DAYS * MICROS_PER_DAY {
            open += 1;
            stage.append_value(if rng.random_bool(0.5) {
                "qualification"
            } else {
                "proposal"
            });
            closed_at.append_null();
            is_won.append_null();
        } else {
            closed += 1;
            let won = rng.random_bool(p_win);
            let close = (created + rng.random_range(7..90) * MICROS_PER_DAY).min(end - 1);
            stage.append_value(if won { "closed_won" } else { "closed_lost" });
            closed_at.append_value(close);
            is_won.append_value(won);
        }
    }
    let batch = canonical_batch(
        CanonicalTable::CrmDeals,
        vec![
            Arc::new(deal_id.finish()) as ArrayRef,
            Arc::new(customer_id.finish()),
            Arc::new(pipeline.finish()),
            Arc::new(stage.finish()),
            Arc::new(amount.finish()),
            Arc::new(currency.finish()),
            Arc::new(created_at.finish()),
            Arc::new(closed_at.finish()),
            Arc::new(is_won.finish()),
            Arc::new(source_campaign.finish()),
        ],
    );
    let truth = DealModelTruth {
        intercept,
        coefficients,
        features,
        closed_deals: closed,
        open_deals: open,
    };
    (batch, truth)
}
