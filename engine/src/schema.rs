//! The canonical tables: the public contract of design.md, spelled once.
//!
//! Every column list in Gyrus comes from here. Dashboards, notebooks and the
//! application layer are written against these names and types; columns may
//! be added, never renamed or retyped without a migration.
//!
//! ```
//! use gyrus_engine::schema::CanonicalTable;
//!
//! let table: CanonicalTable = "ad_performance".parse().unwrap();
//! assert_eq!(table.name(), "ad_performance");
//! assert!(table.schema().field_with_name("spend").is_ok());
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::error::EngineError;

/// Exact money: 18 digits, 6 after the point, in the row's currency.
pub const MONEY: DataType = DataType::Decimal128(18, 6);
/// Precision of [`MONEY`].
pub const MONEY_PRECISION: u8 = 18;
/// Scale of [`MONEY`].
pub const MONEY_SCALE: i8 = 6;

/// UTC timestamps with microsecond precision.
pub fn timestamp_utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// What a column promises beyond its Arrow type; checked by validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// No further constraint.
    Plain,
    /// A count or amount that can never be negative.
    NonNegative,
    /// An ISO 4217 currency code.
    Currency,
    /// A calendar day or instant that must fall in the plausible range.
    Time,
    /// One of a fixed set of values.
    OneOf(&'static [&'static str]),
    /// A probability in [0, 1].
    Probability,
}

/// One column of a canonical table.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: &'static str,
    pub data_type: DataType,
    pub nullable: bool,
    pub rule: Rule,
}

fn col(name: &'static str, data_type: DataType, nullable: bool, rule: Rule) -> Column {
    Column {
        name,
        data_type,
        nullable,
        rule,
    }
}

fn text(name: &'static str) -> Column {
    col(name, DataType::Utf8, false, Rule::Plain)
}
fn text_null(name: &'static str) -> Column {
    col(name, DataType::Utf8, true, Rule::Plain)
}
fn count(name: &'static str) -> Column {
    col(name, DataType::Int64, false, Rule::NonNegative)
}
fn money(name: &'static str) -> Column {
    col(name, MONEY, false, Rule::NonNegative)
}
fn currency() -> Column {
    col("currency", DataType::Utf8, false, Rule::Currency)
}
fn day(name: &'static str) -> Column {
    col(name, DataType::Date32, false, Rule::Time)
}
fn instant(name: &'static str, nullable: bool) -> Column {
    col(name, timestamp_utc(), nullable, Rule::Time)
}
fn float(name: &'static str, nullable: bool, rule: Rule) -> Column {
    col(name, DataType::Float64, nullable, rule)
}

/// The ad platforms `ad_performance.platform` may name.
pub const AD_PLATFORMS: &[&str] = &[
    "google_ads",
    "meta_ads",
    "linkedin_ads",
    "tiktok_ads",
    "youtube_ads",
];
/// The channels `ad_performance.channel` may name.
pub const CHANNELS: &[&str] = &["search", "social", "video", "display", "shopping"];
/// The statuses `orders.status` may name.
pub const ORDER_STATUSES: &[&str] = &["paid", "refunded", "cancelled"];
/// The kinds `insights.kind` may name.
pub const INSIGHT_KINDS: &[&str] = &["anomaly", "changepoint", "mover", "segment", "benchmark"];

/// The tables every tenant has: the data tables and the model outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CanonicalTable {
    AdPerformance,
    WebSessions,
    Orders,
    Customers,
    CrmDeals,
    Forecasts,
    Insights,
    CustomerScores,
    LeadScores,
    BudgetPlans,
}

/// A list of column names.
type Names = &'static [&'static str];

/// Everything known about one canonical table, built once.
pub struct TableDef {
    pub columns: Vec<Column>,
    pub schema: SchemaRef,
    /// Columns that identify a row; no two rows of one write may share them.
    pub natural_key: &'static [&'static str],
    /// Order rows are written in: time first, then entity, so filters skip files.
    /// It holds every natural key column, so rows sharing a key end up adjacent
    /// when the key columns it adds are equal too.
    pub sort_key: &'static [&'static str],
    /// The time column that slices and range validation use.
    pub time_column: &'static str,
    /// Equality columns a slice replacement may name (with a range on `time_column`).
    pub slice_columns: &'static [&'static str],
    /// How far into the future `time_column` may lie (model outputs look ahead).
    pub max_future_days: i64,
}

impl CanonicalTable {
    /// Every canonical table, data tables first.
    pub const ALL: [CanonicalTable; 10] = [
        CanonicalTable::AdPerformance,
        CanonicalTable::WebSessions,
        CanonicalTable::Orders,
        CanonicalTable::Customers,
        CanonicalTable::CrmDeals,
        CanonicalTable::Forecasts,
        CanonicalTable::Insights,
        CanonicalTable::CustomerScores,
        CanonicalTable::LeadScores,
        CanonicalTable::BudgetPlans,
    ];

    /// The table's SQL name.
    pub fn name(self) -> &'static str {
        match self {
            CanonicalTable::AdPerformance => "ad_performance",
            CanonicalTable::WebSessions => "web_sessions",
            CanonicalTable::Orders => "orders",
            CanonicalTable::Customers => "customers",
            CanonicalTable::CrmDeals => "crm_deals",
            CanonicalTable::Forecasts => "forecasts",
            CanonicalTable::Insights => "insights",
            CanonicalTable::CustomerScores => "customer_scores",
            CanonicalTable::LeadScores => "lead_scores",
            CanonicalTable::BudgetPlans => "budget_plans",
        }
    }

    /// The table's definition.
    pub fn def(self) -> &'static TableDef {
        static DEFS: LazyLock<Vec<TableDef>> =
            LazyLock::new(|| CanonicalTable::ALL.iter().map(|t| t.build_def()).collect());
        &DEFS[self as usize]
    }

    /// The table's Arrow schema.
    pub fn schema(self) -> SchemaRef {
        self.def().schema.clone()
    }

    fn build_def(self) -> TableDef {
        use CanonicalTable::*;
        match self {
            AdPerformance => table_def(
                vec![
                    col("platform", DataType::Utf8, false, Rule::OneOf(AD_PLATFORMS)),
                    text("account_id"),
                    text("campaign_id"),
                    text("campaign_name"),
                    text_null("ad_group_id"),
                    text_null("ad_id"),
                    col("channel", DataType::Utf8, false, Rule::OneOf(CHANNELS)),
                    day("date"),
                    count("impressions"),
                    count("clicks"),
                    money("spend"),
                    currency(),
                    float("conversions", false, Rule::NonNegative),
                    money("conversion_value"),
                    col("video_views", DataType::Int64, true, Rule::NonNegative),
                ],
                &[
                    "platform",
                    "account_id",
                    "campaign_id",
                    "ad_group_id",
                    "ad_id",
                    "date",
                ],
                &[
                    "date",
                    "platform",
                    "account_id",
                    "campaign_id",
                    "ad_group_id",
                    "ad_id",
                ],
                "date",
                &["platform", "account_id", "campaign_id"],
                1,
            ),
            WebSessions => table_def(
                vec![
                    day("date"),
                    text("property_id"),
                    text("source"),
                    text("medium"),
                    text("campaign"),
                    count("sessions"),
                    count("users"),
                    count("new_users"),
                    count("engaged_sessions"),
                    float("conversions", false, Rule::NonNegative),
                    money("revenue"),
                    currency(),
                ],
                &["property_id", "source", "medium", "campaign", "date"],
                &["date", "property_id", "source", "medium", "campaign"],
                "date",
                &["property_id", "source", "medium", "campaign"],
                1,
            ),
            Orders => table_def(
                vec![
                    text("order_id"),
                    text("customer_id"),
                    instant("created_at", false),
                    money("amount"),
                    currency(),
                    col("status", DataType::Utf8, false, Rule::OneOf(ORDER_STATUSES)),
                    text("source"),
                    text_null("utm_source"),
                    text_null("utm_campaign"),
                ],
                &["order_id"],
                &["created_at", "customer_id", "order_id"],
                "created_at",
                &["source"],
                1,
            ),
            Customers => table_def(
                vec![
                    text("customer_id"),
                    instant("first_seen_at", false),
                    text_null("country"),
                    text_null("email_sha256"),
                    text("source"),
                ],
                &["customer_id"],
                &["first_seen_at", "customer_id"],
                "first_seen_at",
                &["source"],
                1,
            ),
            CrmDeals => table_def(
                vec![
                    text("deal_id"),
                    text_null("customer_id"),
                    text("pipeline"),
                    text("stage"),
                    money("amount"),
                    currency(),
                    instant("created_at", false),
                    instant("closed_at", true),
                    col("is_won", DataType::Boolean, true, Rule::Plain),
                    text_null("source_campaign"),
                ],
                &["deal_id"],
                &["created_at", "deal_id"],
                "created_at",
                &["pipeline"],
                1,
            ),
            Forecasts => table_def(
                vec![
                    text("entity_type"),
                    text("entity_id"),
                    text("metric"),
                    day("date"),
                    float("yhat", false, Rule::Plain),
                    // Null where an interval cannot be derived: a ratio whose
                    // denominator's interval reaches zero.
                    float("yhat_lower", true, Rule::Plain),
                    float("yhat_upper", true, Rule::Plain),
                    float("interval_level", false, Rule::Probability),
                    text("model"),
                    text("model_version"),
                    instant("trained_at", false),
                ],
                // One row per interval level (80% and 95% by default).
                &[
                    "entity_type",
                    "entity_id",
                    "metric",
                    "date",
                    "model",
                    "model_version",
                    "interval_level",
                ],
                &[
                    "date",
                    "entity_type",
                    "entity_id",
                    "metric",
                    "model",
                    "model_version",
                    "interval_level",
                ],
                "date",
                &["entity_type", "metric", "model"],
                5 * 366,
            ),
            Insights => table_def(
                vec![
                    text("insight_id"),
                    col("kind", DataType::Utf8, false, Rule::OneOf(INSIGHT_KINDS)),
                    text("entity_type"),
                    text("entity_id"),
                    text("metric"),
                    day("date"),
                    float("severity", false, Rule::Plain),
                    float("score", false, Rule::Plain),
                    float("expected", true, Rule::Plain),
                    float("actual", true, Rule::Plain),
                    text("explanation"),
                    text("model_version"),
                    instant("detected_at", false),
                ],
                &["insight_id"],
                &["date", "entity_type", "entity_id", "metric", "insight_id"],
                "date",
                &["kind", "entity_type"],
                1,
            ),
            CustomerScores => table_def(
                vec![
                    text("customer_id"),
                    count("frequency"),
                    float("recency_days", false, Rule::NonNegative),
                    float("tenure_days", false, Rule::NonNegative),
                    money("monetary"),
                    float("p_alive", false, Rule::Probability),
                    float("expected_purchases_90d", false, Rule::NonNegative),
                    money("clv_365d"),
                    text("rfm_segment"),
                    float("churn_risk", false, Rule::Probability),
                    text("model_version"),
                    instant("scored_at", false),
                    // Added by MEMORY beside the contract's columns: total
                    // paid, the Gamma-Gamma expected order value, the RFM
                    // quintile scores ("534") and the churn band.
                    money("revenue"),
                    money("expected_order_value"),
                    text("rfm_score"),
                    text("churn_band"),
                ],
                &["customer_id", "model_version"],
                &["scored_at", "customer_id", "model_version"],
                "scored_at",
                &["model_version"],
                1,
            ),
            LeadScores => table_def(
                vec![
                    text("deal_id"),
                    float("p_win", false, Rule::Probability),
                    text("model_version"),
                    instant("scored_at", false),
                ],
                &["deal_id", "model_version"],
                &["scored_at", "deal_id", "model_version"],
                "scored_at",
                &["model_version"],
                1,
            ),
            BudgetPlans => table_def(
                vec![
                    text("plan_id"),
                    text("entity_type"),
                    text("entity_id"),
                    money("current_spend"),
                    money("recommended_spend"),
                    float("expected_current", false, Rule::Plain),
                    float("expected_recommended", false, Rule::Plain),
                    text("objective"),
                    text("model_version"),
                    instant("created_at", false),
                ],
                &["plan_id", "entity_type", "entity_id"],
                &["created_at", "plan_id", "entity_type", "entity_id"],
                "created_at",
                &["plan_id"],
                1,
            ),
        }
    }
}

fn table_def(
    columns: Vec<Column>,
    natural_key: Names,
    sort_key: Names,
    time_column: &'static str,
    slice_columns: Names,
    max_future_days: i64,
) -> TableDef {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(c.name, c.data_type.clone(), c.nullable))
            .collect::<Vec<_>>(),
    ));
    TableDef {
        columns,
        schema,
        natural_key,
        sort_key,
        time_column,
        slice_columns,
        max_future_days,
    }
}

impl fmt::Display for CanonicalTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for CanonicalTable {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CanonicalTable::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| EngineError::UnknownTable {
                name: s.to_string(),
                known: CanonicalTable::ALL.iter().map(|t| t.name()).collect(),
            })
    }
}

/// Active ISO 4217 currency codes.
pub fn is_currency_code(code: &str) -> bool {
    const CODES: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL \
        BSD BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD \
        FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS \
        KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK \
        MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD \
        SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX \
        USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG";
    code.len() == 3 && CODES.split_whitespace().any(|c| c == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_names_a_column() {
        for table in CanonicalTable::ALL {
            let def = table.def();
            let names: Vec<_> = def.columns.iter().map(|c| c.name).collect();
            for key in def
                .natural_key
                .iter()
                .chain(def.sort_key)
                .chain(def.slice_columns)
                .chain([&def.time_column])
            {
                assert!(names.contains(key), "{table}: {key} is not a column");
            }
        }
    }

    #[test]
    fn sort_key_covers_natural_key() {
        for table in CanonicalTable::ALL {
            let def = table.def();
            for key in def.natural_key {
                assert!(def.sort_key.contains(key), "{table}: sort key lacks {key}");
            }
        }
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_listed() {
        for table in CanonicalTable::ALL {
            assert_eq!(table.name().parse::<CanonicalTable>().unwrap(), table);
        }
        let err = "ad_perf".parse::<CanonicalTable>().unwrap_err().to_string();
        assert!(err.contains("ad_performance"), "{err}");
    }

    #[test]
    fn money_is_exact() {
        let schema = CanonicalTable::AdPerformance.schema();
        assert_eq!(schema.field_with_name("spend").unwrap().data_type(), &MONEY);
        assert!(is_currency_code("USD") && is_currency_code("EUR"));
        assert!(!is_currency_code("usd") && !is_currency_code("XXX") && !is_currency_code(""));
    }
}
