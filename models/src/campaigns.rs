//! What every family knows of a tenant's campaigns beside their numbers:
//! name, platform, channel and account, as `ad_performance` last had them.

use std::collections::HashMap;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use gyrus_engine::session::TenantSession;

use crate::error::Result;

/// A campaign's name and places.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignInfo {
    pub name: String,
    pub platform: String,
    pub channel: String,
    pub account_id: String,
}

/// Each campaign by id: the latest name, platform, channel and account it
/// reported, should it have been renamed or moved.
pub async fn load_campaigns(session: &TenantSession) -> Result<HashMap<String, CampaignInfo>> {
    let sql = "SELECT campaign_id, \
                      last_value(campaign_name ORDER BY date), \
                      last_value(platform ORDER BY date), \
                      last_value(channel ORDER BY date), \
                      last_value(account_id ORDER BY date) \
               FROM ad_performance GROUP BY campaign_id";
    let mut campaigns = HashMap::new();
    for batch in session.query(sql).await? {
        let columns = (0..5)
            .map(|i| cast(batch.column(i), &DataType::Utf8))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let text = |c: usize, row: usize| columns[c].as_string::<i32>().value(row).to_string();
        for row in 0..batch.num_rows() {
            campaigns.insert(
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
    Ok(campaigns)
}
