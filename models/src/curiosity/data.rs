//! What CURIOSITY reads beside the shared daily series ([`crate::series`]):
//! the campaigns' names and places, for sentences and parents, and their
//! recent totals.

use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use gyrus_engine::session::TenantSession;

use super::explain::Names;
use crate::campaigns::load_campaigns;
use crate::error::Result;

/// Each campaign's name, platform, channel and account, for sentences.
pub async fn load_names(session: &TenantSession) -> Result<Names> {
    Ok(Names {
        campaigns: load_campaigns(session).await?,
    })
}

/// A campaign's totals over the recent window, for segments and benchmarks.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignTotals {
    pub campaign_id: String,
    pub platform: String,
    pub channel: String,
    pub spend: f64,
    pub impressions: f64,
    pub clicks: f64,
    pub conversions: f64,
    pub conversion_value: f64,
    /// Spend over the window before, for the trend.
    pub spend_before: f64,
}

/// Each campaign's totals over the `days` up to `end`, and its spend over
/// the `days` before them. Campaigns without spend in the window are left
/// out.
pub async fn load_totals(
    session: &TenantSession,
    end: chrono::NaiveDate,
    days: u64,
) -> Result<Vec<CampaignTotals>> {
    let start = end - chrono::Days::new(days - 1);
    let before = start - chrono::Days::new(days);
    let recent = format!("date >= DATE '{start}'");
    let sum = |c: &str| format!("CAST(COALESCE(SUM({c}) FILTER (WHERE {recent}), 0) AS DOUBLE)");
    let sql = format!(
        "SELECT campaign_id, last_value(platform ORDER BY date), last_value(channel ORDER BY date), \
                {}, {}, {}, {}, {}, \
                CAST(COALESCE(SUM(spend) FILTER (WHERE date < DATE '{start}'), 0) AS DOUBLE) \
         FROM ad_performance WHERE date >= DATE '{before}' AND date <= DATE '{end}' \
         GROUP BY campaign_id",
        sum("spend"),
        sum("impressions"),
        sum("clicks"),
        sum("conversions"),
        sum("conversion_value"),
    );
    let mut out = Vec::new();
    for batch in session.query(&sql).await? {
        let text: Vec<_> = (0..3)
            .map(|i| cast(batch.column(i), &DataType::Utf8))
            .collect::<std::result::Result<_, _>>()?;
        let numbers: Vec<_> = (3..9)
            .map(|i| cast(batch.column(i), &DataType::Float64))
            .collect::<std::result::Result<_, _>>()?;
        let s = |c: usize, row: usize| text[c].as_string::<i32>().value(row).to_string();
        let v = |c: usize, row: usize| {
            numbers[c]
                .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                .value(row)
        };
        for row in 0..batch.num_rows() {
            if v(0, row) <= 0.0 {
                continue;
            }
            out.push(CampaignTotals {
                campaign_id: s(0, row),
                platform: s(1, row),
                channel: s(2, row),
                spend: v(0, row),
                impressions: v(1, row),
                clicks: v(2, row),
                conversions: v(3, row),
                conversion_value: v(4, row),
                spend_before: v(5, row),
            });
        }
    }
    out.sort_by(|a, b| a.campaign_id.cmp(&b.campaign_id));
    Ok(out)
}
