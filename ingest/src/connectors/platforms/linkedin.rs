//! LinkedIn ads (Rest.li 2.0): the account's currency, its campaigns (for
//! names and campaign groups, by page token), then `adAnalytics` statistics
//! pivoted by campaign and creative, daily.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::NaiveDate;
use gyrus_engine::schema::CanonicalTable;
use serde_json::Value;

use super::{
    About, AdRow, ClientParts, CursorGuard, OAUTH_FIELDS, Platform, WINDOWED, Window, WindowRows,
    bad, field, list, tail,
};
use crate::connectors::rows::{Rows, count, money, number};
use crate::connectors::{ConnectorConfig, Credentials, Source, SyncError};
use crate::http::{Plain, RotatedToken};

/// The most elements one statistics answer holds.
const ANALYTICS_CAP: usize = 15_000;

/// The LinkedIn Marketing API version spoken (`LinkedIn-Version`).
pub const VERSION: &str = "202501";

/// A Rest.li date: `(year:2026,month:3,day:1)`.
fn restli_date(date: NaiveDate) -> String {
    use chrono::Datelike as _;
    format!(
        "(year:{},month:{},day:{})",
        date.year(),
        date.month(),
        date.day()
    )
}

fn date_of(value: &Value) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(
        value["year"].as_i64()? as i32,
        value["month"].as_u64()? as u32,
        value["day"].as_u64()? as u32,
    )
}

/// LinkedIn Marketing: sponsored ad accounts.
pub struct Linkedin;

const ABOUT: About = About {
    name: "linkedin_ads",
    table: CanonicalTable::AdPerformance,
    shape: WINDOWED,
    account_kind: "sponsored ad account id",
    credential_fields: OAUTH_FIELDS,
    settings: &[],
    base_url: "https://api.linkedin.com",
    auth_url: "https://www.linkedin.com",
    page_size: 100,
};

#[async_trait]
impl Platform for Linkedin {
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
            "/oauth/v2/accessToken",
        )?
        .with_header("linkedin-version", VERSION)
        .with_header("x-restli-protocol-version", "2.0.0"))
    }

    async fn fetch_window(
        &self,
        source: &Source<'_>,
        window: Window,
    ) -> Result<WindowRows, SyncError> {
        Ok(fetch(source, window).await?.into())
    }
}

async fn fetch(source: &Source<'_>, window: Window) -> Result<Rows, SyncError> {
    let config = source.config;
    let account = &config.account;
    let any = |_: &Value| Ok(());

    let account_info = source
        .http
        .json(
            &source.get(source.url(&format!("/rest/adAccounts/{account}"))?),
            any,
        )
        .await?;
    let currency = field(source, &account_info, "/currency")?;

    // Campaign id → (name, campaign group id).
    let mut campaigns: HashMap<String, (String, Option<String>)> = HashMap::new();
    let mut token: Option<String> = None;
    let mut guard = CursorGuard::default();
    loop {
        let mut url = source.url(&format!("/rest/adAccounts/{account}/adCampaigns"))?;
        url.query_pairs_mut()
            .append_pair("q", "search")
            .append_pair("pageSize", &source.page_size.to_string());
        if let Some(token) = &token {
            url.query_pairs_mut().append_pair("pageToken", token);
        }
        let page = source.http.json(&source.get(url), any).await?;
        for campaign in list(&page, "/elements") {
            let id = field(source, campaign, "/id")?;
            let group = campaign["campaignGroup"]
                .as_str()
                .map(|g| tail(g).to_string());
            let name = campaign["name"].as_str().unwrap_or_default().to_string();
            campaigns.insert(id, (name, group));
        }
        match page["metadata"]["nextPageToken"].as_str() {
            Some(next) if !next.is_empty() => {
                guard.next(source, next)?;
                token = Some(next.to_string());
            }
            _ => break,
        }
    }

    // Rest.li query syntax: the parentheses and commas stay as they are, so
    // the query is written rather than form-encoded.
    let mut url = source.url("/rest/adAnalytics")?;
    let account_urn = format!("urn%3Ali%3AsponsoredAccount%3A{account}");
    url.set_query(Some(&format!(
        "q=statistics&pivots=List(CAMPAIGN,CREATIVE)&timeGranularity=DAILY\
         &dateRange=(start:{},end:{})&accounts=List({account_urn})\
         &fields=pivotValues,dateRange,impressions,clicks,costInLocalCurrency,\
externalWebsiteConversions,conversionValueInLocalCurrency,videoViews",
        restli_date(window.from),
        restli_date(window.to)
    )));
    let answer = source
        .http
        .json(&source.get(url), |answer| {
            if !answer["elements"].is_array() {
                return Err("an answer without elements".into());
            }
            list(answer, "/elements")
                .iter()
                .try_for_each(|e| window.check(date_of(&e["dateRange"]["start"])))
        })
        .await?;
    // The statistics finder is not paged: it answers at most 15,000
    // elements, and a window that hits the cap may be cut short.
    if list(&answer, "/elements").len() >= ANALYTICS_CAP {
        return Err(source.data_error(format!(
            "{} to {} has {ANALYTICS_CAP} or more rows, LinkedIn's cap; set window_days lower",
            window.from, window.to
        )));
    }
    let mut rows = Rows::new(config.platform.table());
    for element in list(&answer, "/elements") {
        let pivots = list(element, "/pivotValues");
        let (Some(campaign), Some(creative)) = (
            pivots.first().and_then(Value::as_str),
            pivots.get(1).and_then(Value::as_str),
        ) else {
            return Err(
                source.data_error("a statistics element without campaign and creative pivots")
            );
        };
        let campaign_id = tail(campaign).to_string();
        // A campaign the list omits (removed since) keeps its numbers.
        let (name, group) = campaigns.get(&campaign_id).cloned().unwrap_or_default();
        let row = AdRow {
            campaign_id,
            campaign_name: name,
            ad_group_id: group,
            ad_id: Some(tail(creative).to_string()),
            channel: "social",
            date: date_of(&element["dateRange"]["start"])
                .ok_or_else(|| source.data_error("an element without a date"))?,
            impressions: count(&element["impressions"]).map_err(bad(source, "impressions"))?,
            clicks: count(&element["clicks"]).map_err(bad(source, "clicks"))?,
            spend: money(&element["costInLocalCurrency"])
                .map_err(bad(source, "costInLocalCurrency"))?,
            currency: currency.clone(),
            conversions: number(&element["externalWebsiteConversions"])
                .map_err(bad(source, "externalWebsiteConversions"))?,
            conversion_value: money(&element["conversionValueInLocalCurrency"])
                .map_err(bad(source, "conversionValueInLocalCurrency"))?,
            video_views: Some(count(&element["videoViews"]).map_err(bad(source, "videoViews"))?),
        };
        rows.insert(row.into_row(config));
    }
    Ok(rows)
}
