//! GoHighLevel (LeadConnector API v2): a location's opportunities, paged
//! with `startAfter` and `startAfterId`. The search has no modified-since
//! filter, so every sync reads the list and upserts only what changed
//! since the cursor.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use gyrus_engine::schema::CanonicalTable;

use super::{
    About, ClientParts, CursorGuard, DealRow, OAUTH_FIELDS, Platform, default_currency, field,
    list, parse_instant,
};
use crate::connectors::rows::{Rows, money};
use crate::connectors::{ConnectorConfig, Credentials, Fetched, Shape, Source, SyncError};
use crate::http::{Plain, RotatedToken};

/// The API version header GoHighLevel requires.
pub const VERSION: &str = "2021-07-28";

/// GoHighLevel locations: opportunities as deals.
pub struct Gohighlevel;

const ABOUT: About = About {
    name: "gohighlevel",
    table: CanonicalTable::CrmDeals,
    shape: Shape::Modified,
    account_kind: "location id",
    credential_fields: OAUTH_FIELDS,
    settings: &["currency"],
    base_url: "https://services.leadconnectorhq.com",
    auth_url: "https://services.leadconnectorhq.com",
    page_size: 100,
};

#[async_trait]
impl Platform for Gohighlevel {
    fn about(&self) -> &About {
        &ABOUT
    }

    fn client(
        &self,
        config: &ConnectorConfig,
        credentials: &Credentials,
        rotated: &RotatedToken,
    ) -> Result<ClientParts, SyncError> {
        Ok(ClientParts::oauth(
            Plain(self.name()),
            config,
            credentials,
            rotated,
            "/oauth/token",
        )?
        .with_header("version", VERSION))
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
    let mut rows = Rows::new(config.platform.table());
    let mut high_water: Option<DateTime<Utc>> = None;
    let mut position: Option<(String, String)> = None;
    let mut guard = CursorGuard::default();
    loop {
        let mut url = source.url("/opportunities/search")?;
        url.query_pairs_mut()
            .append_pair("location_id", &config.account)
            .append_pair("limit", &source.page_size.min(100).to_string());
        if let Some((after, after_id)) = &position {
            url.query_pairs_mut()
                .append_pair("startAfter", after)
                .append_pair("startAfterId", after_id);
        }
        let page = source
            .http
            .json(&source.get(url), |page| {
                page["opportunities"]
                    .is_array()
                    .then_some(())
                    .ok_or_else(|| "an answer without opportunities".to_string())
            })
            .await?;
        for opportunity in list(&page, "/opportunities") {
            let modified = parse_instant(&opportunity["updatedAt"]);
            high_water = high_water.max(modified);
            if modified.is_some_and(|m| m < since) {
                continue;
            }
            let status = opportunity["status"].as_str().unwrap_or("open");
            let closed = matches!(status, "won" | "lost" | "abandoned");
            let created = parse_instant(&opportunity["createdAt"])
                .ok_or_else(|| source.data_error("an opportunity without createdAt"))?;
            let closed_at = parse_instant(&opportunity["lastStatusChangeAt"]).unwrap_or(created);
            let row = DealRow {
                deal_id: field(source, opportunity, "/id")?,
                customer_id: opportunity["contact"]["id"].as_str().map(str::to_string),
                pipeline: opportunity["pipelineId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                stage: opportunity["pipelineStageId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                amount: money(&opportunity["monetaryValue"])
                    .map_err(|m| source.data_error(format!("monetaryValue: {m}")))?,
                currency: default_currency(config),
                created_at: created,
                closed: closed.then(|| (closed_at, status == "won")),
                source_campaign: opportunity["source"].as_str().map(str::to_string),
            };
            rows.insert(row.into_row());
        }
        let meta = &page["meta"];
        let next_id = meta["startAfterId"].as_str();
        let next_after = meta["startAfter"]
            .as_i64()
            .map(|n| n.to_string())
            .or_else(|| meta["startAfter"].as_str().map(str::to_string));
        match (next_after, next_id) {
            (Some(after), Some(id))
                if !meta["nextPageUrl"].is_null() && !list(&page, "/opportunities").is_empty() =>
            {
                guard.next(source, id)?;
                position = Some((after, id.to_string()));
            }
            _ => break,
        }
    }
    Ok(Fetched { rows, high_water })
}
