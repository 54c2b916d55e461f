//! HubSpot: CRM v3 deals through the search API, by `hs_lastmodifieddate`
//! ascending, paged with `after`. Search stops at 10,000 results, so a long
//! read starts a new search from the last modification time it saw.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use gyrus_engine::schema::CanonicalTable;
use serde_json::json;

use super::{
    About, ClientParts, CursorGuard, DealRow, OAUTH_FIELDS, Platform, default_currency, field,
    list, parse_instant,
};
use crate::connectors::rows::{Rows, money};
use crate::connectors::{ConnectorConfig, Credentials, Fetched, Shape, Source, SyncError};
use crate::http::{Plain, RotatedToken};

/// The search API's cap on `after`.
const SEARCH_CAP: usize = 10_000;
const PROPERTIES: [&str; 10] = [
    "dealname",
    "amount",
    "deal_currency_code",
    "dealstage",
    "pipeline",
    "createdate",
    "closedate",
    "hs_is_closed",
    "hs_is_closed_won",
    "hs_analytics_source_data_1",
];

/// HubSpot portals: CRM deals.
pub struct Hubspot;

const ABOUT: About = About {
    name: "hubspot",
    table: CanonicalTable::CrmDeals,
    shape: Shape::Modified,
    account_kind: "HubSpot portal id",
    credential_fields: OAUTH_FIELDS,
    settings: &[],
    base_url: "https://api.hubapi.com",
    auth_url: "https://api.hubapi.com",
    page_size: 100,
};

#[async_trait]
impl Platform for Hubspot {
    fn about(&self) -> &About {
        &ABOUT
    }

    fn client(
        &self,
        config: &ConnectorConfig,
        credentials: &Credentials,
        rotated: &RotatedToken,
    ) -> Result<ClientParts, SyncError> {
        ClientParts::oauth(
            Plain(self.name()),
            config,
            credentials,
            rotated,
            "/oauth/v1/token",
        )
    }

    async fn fetch_modified(
        &self,
        source: &Source<'_>,
        since: DateTime<Utc>,
    ) -> Result<Fetched, SyncError> {
        fetch(source, since).await
    }
}

async fn fetch(source: &Source<'_>, since: DateTime<Utc>) -> Result<Fetched, SyncError> {
    let config = source.config;
    let url = source.url("/crm/v3/objects/deals/search")?;
    let limit = source.page_size.min(200);
    let mut rows = Rows::new(config.platform.table());
    let mut high_water: Option<DateTime<Utc>> = None;
    let mut from = since;
    let mut after: Option<String> = None;
    let mut guard = CursorGuard::default();
    loop {
        let mut properties = PROPERTIES.to_vec();
        properties.push("hs_lastmodifieddate");
        let body = json!({
            "filterGroups": [{"filters": [{
                "propertyName": "hs_lastmodifieddate", "operator": "GTE",
                "value": from.timestamp_millis().to_string()}]}],
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
            "properties": properties,
            "limit": limit,
            "after": after.clone().unwrap_or_else(|| "0".into()),
        });
        let page = source
            .http
            .json(&source.post_json(url.clone(), &body), |page| {
                if !page["results"].is_array() {
                    return Err("an answer without results".into());
                }
                for deal in list(page, "/results") {
                    let modified = parse_instant(&deal["properties"]["hs_lastmodifieddate"]);
                    if modified.is_none_or(|m| m < from) {
                        return Err("a deal modified before the requested time".into());
                    }
                }
                Ok(())
            })
            .await?;
        for deal in list(&page, "/results") {
            let p = &deal["properties"];
            let modified = parse_instant(&p["hs_lastmodifieddate"]);
            high_water = high_water.max(modified);
            let closed = p["hs_is_closed"] == "true";
            let created = parse_instant(&p["createdate"])
                .or_else(|| parse_instant(&deal["createdAt"]))
                .ok_or_else(|| source.data_error("a deal without createdate"))?;
            let closed_at = parse_instant(&p["closedate"]).unwrap_or(created);
            let row = DealRow {
                deal_id: field(source, deal, "/id")?,
                customer_id: None,
                pipeline: p["pipeline"].as_str().unwrap_or("default").to_string(),
                stage: p["dealstage"].as_str().unwrap_or_default().to_string(),
                amount: money(&p["amount"])
                    .map_err(|m| source.data_error(format!("amount: {m}")))?,
                currency: p["deal_currency_code"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| default_currency(config)),
                created_at: created,
                closed: closed.then(|| (closed_at, p["hs_is_closed_won"] == "true")),
                source_campaign: p["hs_analytics_source_data_1"].as_str().map(str::to_string),
            };
            rows.insert(row.into_row());
        }
        match page["paging"]["next"]["after"].as_str() {
            Some(next) => {
                guard.next(source, next)?;
                if next.parse::<usize>().unwrap_or(0) + limit > SEARCH_CAP {
                    // Start over from the newest modification seen; the
                    // overlap is deduplicated by key.
                    let newest = high_water.unwrap_or(from);
                    if newest <= from {
                        return Err(source.data_error(format!(
                            "more than {SEARCH_CAP} deals were modified at {from}; the search \
                             cannot page past them"
                        )));
                    }
                    from = newest;
                    after = None;
                } else {
                    after = Some(next.to_string());
                }
            }
            None => break,
        }
    }
    Ok(Fetched { rows, high_water })
}
