//! Salesforce: opportunities by SOQL, modified since the cursor, following
//! `nextRecordsUrl` until `done`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use gyrus_engine::schema::CanonicalTable;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::{
    About, ClientParts, CursorGuard, DealRow, OAUTH_FIELDS, Platform, default_currency, field,
    list, parse_date, parse_instant,
};
use crate::connectors::rows::{Rows, money};
use crate::connectors::{ConnectorConfig, Credentials, Fetched, Shape, Source, SyncError};
use crate::http::{Dialect, HttpError, RotatedToken, Verdict};

const VERSION: &str = "v61.0";

pub struct Salesforce;

impl Dialect for Salesforce {
    fn platform(&self) -> &'static str {
        "salesforce"
    }

    fn judge(
        &self,
        _status: StatusCode,
        _headers: &HeaderMap,
        body: Option<&Value>,
    ) -> Option<Verdict> {
        let error = body?.as_array()?.first()?;
        let code = error["errorCode"].as_str()?;
        let message = format!("{code}: {}", error["message"].as_str().unwrap_or(""));
        match code {
            "REQUEST_LIMIT_EXCEEDED" | "SERVER_UNAVAILABLE" | "UNABLE_TO_LOCK_ROW" => {
                Some(Verdict::Retry {
                    after: None,
                    why: message,
                })
            }
            "INVALID_SESSION_ID" => Some(Verdict::Unauthorized(message)),
            _ => None,
        }
    }
}

const ABOUT: About = About {
    name: "salesforce",
    table: CanonicalTable::CrmDeals,
    shape: Shape::Modified,
    account_kind: "My Domain name (the <domain> of <domain>.my.salesforce.com)",
    credential_fields: OAUTH_FIELDS,
    settings: &["currency"],
    base_url: "https://{account}.my.salesforce.com",
    auth_url: "https://login.salesforce.com",
    page_size: 2000,
};

#[async_trait]
impl Platform for Salesforce {
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
            Salesforce,
            config,
            credentials,
            rotated,
            "/services/oauth2/token",
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
    match read(source, since, true).await {
        // `CurrencyIsoCode` exists only in multi-currency orgs; elsewhere the
        // deals are in the connector's `currency`.
        Err(SyncError::Http(HttpError::Refused { message, .. }))
            if message.contains("CurrencyIsoCode") =>
        {
            read(source, since, false).await
        }
        other => other,
    }
}

async fn read(
    source: &Source<'_>,
    since: DateTime<Utc>,
    multi_currency: bool,
) -> Result<Fetched, SyncError> {
    let config = source.config;
    let currency_field = if multi_currency {
        "CurrencyIsoCode, "
    } else {
        ""
    };
    let soql = format!(
        "SELECT Id, Name, Amount, {currency_field}StageName, IsClosed, IsWon, CloseDate, \
         CreatedDate, SystemModstamp, CampaignId, AccountId FROM Opportunity \
         WHERE SystemModstamp >= {} ORDER BY SystemModstamp, Id",
        since.format("%Y-%m-%dT%H:%M:%SZ")
    );
    let mut url = source.url(&format!("/services/data/{VERSION}/query"))?;
    url.query_pairs_mut().append_pair("q", &soql);
    // Salesforce takes 200-2000 as a hint and may page differently.
    let batch = format!("batchSize={}", source.page_size.min(2000));
    let mut rows = Rows::new(config.platform.table());
    let mut high_water: Option<DateTime<Utc>> = None;
    let mut guard = CursorGuard::default();
    loop {
        let call = source
            .get(url.clone())
            .header("sforce-query-options", batch.clone());
        let page = source
            .http
            .json(&call, |page| {
                if !page["records"].is_array() {
                    return Err("an answer without records".into());
                }
                for record in list(page, "/records") {
                    if parse_instant(&record["SystemModstamp"]).is_none_or(|m| m < since) {
                        return Err("a record modified before the requested time".into());
                    }
                }
                Ok(())
            })
            .await?;
        for record in list(&page, "/records") {
            high_water = high_water.max(parse_instant(&record["SystemModstamp"]));
            let created = parse_instant(&record["CreatedDate"])
                .ok_or_else(|| source.data_error("an opportunity without CreatedDate"))?;
            let closed = record["IsClosed"] == true;
            let close_date = parse_date(&record["CloseDate"])
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
                .unwrap_or(created);
            let row = DealRow {
                deal_id: field(source, record, "/Id")?,
                customer_id: record["AccountId"].as_str().map(str::to_string),
                pipeline: "default".into(),
                stage: record["StageName"].as_str().unwrap_or_default().to_string(),
                amount: money(&record["Amount"])
                    .map_err(|m| source.data_error(format!("Amount: {m}")))?,
                currency: record["CurrencyIsoCode"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| default_currency(config)),
                created_at: created,
                closed: closed.then(|| (close_date, record["IsWon"] == true)),
                source_campaign: record["CampaignId"].as_str().map(str::to_string),
            };
            rows.insert(row.into_row());
        }
        if page["done"] == true {
            break;
        }
        // Only the path is taken from the answer: the host stays ours.
        let next = page["nextRecordsUrl"]
            .as_str()
            .filter(|p| p.starts_with("/services/data/"))
            .ok_or_else(|| source.data_error("not done, but no nextRecordsUrl"))?;
        guard.next(source, next)?;
        let (path, query) = next.split_once('?').unwrap_or((next, ""));
        url = source.url(path)?;
        url.set_query((!query.is_empty()).then_some(query));
    }
    Ok(Fetched { rows, high_water })
}
