//! TikTok ads: `report/integrated/get` at ad level by day, page by page, in
//! windows of at most 30 days. Errors come with HTTP 200 and a `code`.

use async_trait::async_trait;
use gyrus_engine::schema::CanonicalTable;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::{
    About, AdRow, ClientParts, Platform, WINDOWED, Window, WindowRows, bad, field, list, parse_date,
};
use crate::connectors::rows::{Rows, count, money, number};
use crate::connectors::{ConnectorConfig, Credentials, Source, SyncError};
use crate::http::{Dialect, RotatedToken, Verdict};

const PATH: &str = "/open_api/v1.3/report/integrated/get/";

pub struct TikTok;

impl Dialect for TikTok {
    fn platform(&self) -> &'static str {
        "tiktok_ads"
    }

    fn judge(
        &self,
        _status: StatusCode,
        _headers: &HeaderMap,
        body: Option<&Value>,
    ) -> Option<Verdict> {
        let body = body?;
        let code = body["code"].as_i64()?;
        let message = format!("code {code}: {}", body["message"].as_str().unwrap_or(""));
        match code {
            0 => None,
            // Too many requests (per second, per day).
            40100 | 40101 | 40102 | 40133 | 50000 | 50002 => Some(Verdict::Retry {
                after: None,
                why: message,
            }),
            // Access token invalid, expired or revoked: TikTok's tokens are
            // long-lived and cannot be refreshed here.
            40104..=40106 => Some(Verdict::Unauthorized(message)),
            _ => Some(Verdict::Refuse(message)),
        }
    }
}

const ABOUT: About = About {
    name: "tiktok_ads",
    table: CanonicalTable::AdPerformance,
    shape: WINDOWED,
    account_kind: "advertiser id",
    credential_fields: &["access_token"],
    settings: &[],
    base_url: "https://business-api.tiktok.com",
    auth_url: "",
    page_size: 1000,
};

#[async_trait]
impl Platform for TikTok {
    fn about(&self) -> &About {
        &ABOUT
    }

    fn client(
        &self,
        _config: &ConnectorConfig,
        credentials: &Credentials,
        _rotated: &RotatedToken,
    ) -> Result<ClientParts, SyncError> {
        ClientParts::token_header(TikTok, credentials, ("access-token", "access_token", ""))
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
    let metrics = r#"["campaign_id","campaign_name","adgroup_id","spend","impressions","clicks","conversion","total_complete_payment_rate","video_play_actions","currency"]"#;
    let mut rows = Rows::new(config.platform.table());
    let mut page = 1u64;
    loop {
        let mut url = source.url(PATH)?;
        url.query_pairs_mut()
            .append_pair("advertiser_id", &config.account)
            .append_pair("report_type", "BASIC")
            .append_pair("data_level", "AUCTION_AD")
            .append_pair("dimensions", r#"["ad_id","stat_time_day"]"#)
            .append_pair("metrics", metrics)
            .append_pair("start_date", &window.from.to_string())
            .append_pair("end_date", &window.to.to_string())
            .append_pair("page", &page.to_string())
            .append_pair("page_size", &source.page_size.to_string());
        let answer = source
            .http
            .json(&source.get(url), |answer| {
                // A page served twice says which page it is.
                let served = answer["data"]["page_info"]["page"].as_u64();
                if served != Some(page) {
                    return Err(format!("asked for page {page}, got page {served:?}"));
                }
                list(answer, "/data/list")
                    .iter()
                    .try_for_each(|r| window.check(parse_date(&r["dimensions"]["stat_time_day"])))
            })
            .await?;
        for item in list(&answer, "/data/list") {
            let m = &item["metrics"];
            let row = AdRow {
                campaign_id: field(source, m, "/campaign_id")?,
                campaign_name: m["campaign_name"].as_str().unwrap_or_default().to_string(),
                ad_group_id: m["adgroup_id"].as_str().map(str::to_string),
                ad_id: Some(field(source, item, "/dimensions/ad_id")?),
                channel: "social",
                date: parse_date(&item["dimensions"]["stat_time_day"])
                    .ok_or_else(|| source.data_error("a row without stat_time_day"))?,
                impressions: count(&m["impressions"]).map_err(bad(source, "impressions"))?,
                clicks: count(&m["clicks"]).map_err(bad(source, "clicks"))?,
                spend: money(&m["spend"]).map_err(bad(source, "spend"))?,
                currency: field(source, m, "/currency")?,
                conversions: number(&m["conversion"]).map_err(bad(source, "conversion"))?,
                conversion_value: money(&m["total_complete_payment_rate"])
                    .map_err(bad(source, "total_complete_payment_rate"))?,
                video_views: Some(
                    count(&m["video_play_actions"]).map_err(bad(source, "video_play_actions"))?,
                ),
            };
            rows.insert(row.into_row(config));
        }
        let total_pages = answer["data"]["page_info"]["total_page"]
            .as_u64()
            .ok_or_else(|| source.data_error("a page without page_info.total_page"))?;
        if page >= total_pages {
            break;
        }
        page += 1;
    }
    Ok(rows)
}
