//! What CURIOSITY reads: ORACLE's daily series (one query per entity level)
//! and the campaigns' names and places, for sentences and parents.

use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use gyrus_engine::session::TenantSession;

use super::explain::{CampaignInfo, Names};
use crate::error::Result;

/// Each campaign's name, platform, channel and account (the latest name a
/// campaign had, should it have been renamed).
pub async fn load_names(session: &TenantSession) -> Result<Names> {
    let sql = "SELECT campaign_id, \
                      last_value(campaign_name ORDER BY date), \
                      last_value(platform ORDER BY date), \
                      last_value(channel ORDER BY date), \
                      last_value(account_id ORDER BY date) \
               FROM ad_performance GROUP BY campaign_id";
    let mut names = Names::default();
    for batch in session.query(sql).await? {
        let columns = (0..5)
            .map(|i| cast(batch.column(i), &DataType::Utf8))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let text = |c: usize, row: usize| columns[c].as_string::<i32>().value(row).to_string();
        for row in 0..batch.num_rows() {
            names.campaigns.insert(
                text(0, row),
                CampaignInfo {
                    name: text(1, row),
                    platform: text(2, row),
                    channel: text(3, row),
                    account_id: text(4, row),
                },
            );
        }
    }
    Ok(names)
}
