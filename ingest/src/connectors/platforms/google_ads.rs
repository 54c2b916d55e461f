//! Google Ads and YouTube (video campaigns of a Google Ads customer):
//! `googleAds:searchStream` with GAQL, one streamed answer per window.

use async_trait::async_trait;
use gyrus_engine::schema::CanonicalTable;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::{
    About, AdRow, ClientParts, Platform, WINDOWED, Window, WindowRows, bad, list, parse_date,
};
use crate::connectors::rows::{Rows, count, micros, money, number, text};
use crate::connectors::{ConnectorConfig, Credentials, Source, SyncError};
use crate::http::{Dialect, RotatedToken, Verdict};

/// The Google Ads API version spoken.
const VERSION: &str = "v21";

/// Google's OAuth2 token service (Ads and Analytics alike).
pub const GOOGLE_OAUTH: &str = "https://oauth2.googleapis.com";

/// A Google Ads customer's campaigns: all but video (`google_ads`), or only
/// video (`youtube_ads`), so that one customer connected twice is not
/// counted twice.
pub struct GoogleAds {
    about: About,
    video: bool,
}

const GOOGLE: About = About {
    name: "google_ads",
    table: CanonicalTable::AdPerformance,
    shape: WINDOWED,
    account_kind: "Google Ads customer id",
    credential_fields: &[
        "client_id",
        "client_secret",
        "refresh_token",
        "developer_token",
    ],
    settings: &["login_customer_id"],
    base_url: "https://googleads.googleapis.com",
    auth_url: GOOGLE_OAUTH,
    page_size: 10_000,
};

pub const GOOGLE_ADS: GoogleAds = GoogleAds {
    about: GOOGLE,
    video: false,
};
pub const YOUTUBE_ADS: GoogleAds = GoogleAds {
    about: About {
        name: "youtube_ads",
        ..GOOGLE
    },
    video: true,
};

#[async_trait]
impl Platform for GoogleAds {
    fn about(&self) -> &About {
        &self.about
    }

    fn client(
        &self,
        config: &ConnectorConfig,
        credentials: &Credentials,
        rotated: &RotatedToken,
    ) -> Result<ClientParts, SyncError> {
        let mut parts = ClientParts::oauth(
            Google(self.about.name),
            config,
            credentials,
            rotated,
            "/token",
        )?
        .with_header("developer-token", credentials.get("developer_token")?);
        if let Some(manager) = config.setting("login_customer_id") {
            parts = parts.with_header("login-customer-id", manager.replace('-', ""));
        }
        Ok(parts)
    }

    async fn fetch_window(
        &self,
        source: &Source<'_>,
        window: Window,
    ) -> Result<WindowRows, SyncError> {
        Ok(fetch(source, window, self.video).await?.into())
    }
}

/// Google's APIs (Ads, Analytics Data): quota errors are
/// `RESOURCE_EXHAUSTED`, with a `retryDelay` somewhere in the details.
pub struct Google(pub &'static str);

impl Dialect for Google {
    fn platform(&self) -> &'static str {
        self.0
    }

    fn judge(
        &self,
        status: StatusCode,
        _headers: &HeaderMap,
        body: Option<&Value>,
    ) -> Option<Verdict> {
        let body = body?;
        let exhausted = body["error"]["status"].as_str() == Some("RESOURCE_EXHAUSTED");
        if status != StatusCode::TOO_MANY_REQUESTS && !exhausted {
            return None;
        }
        Some(Verdict::Retry {
            after: find_retry_delay(body),
            why: format!(
                "RESOURCE_EXHAUSTED: {}",
                body["error"]["message"]
                    .as_str()
                    .unwrap_or("quota exhausted")
            ),
        })
    }
}

/// The first `retryDelay` ("1s", "0.5s") anywhere in a Google error.
fn find_retry_delay(value: &Value) -> Option<std::time::Duration> {
    match value {
        Value::Object(map) => map.iter().find_map(|(key, v)| match (key.as_str(), v) {
            ("retryDelay", Value::String(s)) => s
                .strip_suffix('s')
                .and_then(|n| n.parse::<f64>().ok())
                .and_then(crate::http::seconds),
            _ => find_retry_delay(v),
        }),
        Value::Array(items) => items.iter().find_map(find_retry_delay),
        _ => None,
    }
}

fn channel(kind: &str) -> &'static str {
    match kind {
        "SEARCH" => "search",
        "SHOPPING" => "shopping",
        "VIDEO" => "video",
        "DEMAND_GEN" | "DISCOVERY" => "social",
        // DISPLAY, PERFORMANCE_MAX, MULTI_CHANNEL, ...
        _ => "display",
    }
}

async fn fetch(source: &Source<'_>, window: Window, video: bool) -> Result<Rows, SyncError> {
    let config = source.config;
    let channel_filter = if video { "= 'VIDEO'" } else { "!= 'VIDEO'" };
    let query = format!(
        "SELECT customer.id, customer.currency_code, campaign.id, campaign.name, \
         campaign.advertising_channel_type, ad_group.id, ad_group_ad.ad.id, segments.date, \
         metrics.impressions, metrics.clicks, metrics.cost_micros, metrics.conversions, \
         metrics.conversions_value, metrics.video_views \
         FROM ad_group_ad \
         WHERE segments.date BETWEEN '{}' AND '{}' \
         AND campaign.advertising_channel_type {channel_filter}",
        window.from, window.to
    );
    let customer = config.account.replace('-', "");
    let url = source.url(&format!(
        "/{VERSION}/customers/{customer}/googleAds:searchStream"
    ))?;
    let call = source.post_json(url, &json!({ "query": query }));
    let answer = source
        .http
        .json(&call, |answer| {
            let batches = answer.as_array().ok_or("the stream is not a JSON array")?;
            for result in batches.iter().flat_map(|b| list(b, "/results")) {
                window.check(parse_date(&result["segments"]["date"]))?;
                let is_video = result["campaign"]["advertisingChannelType"] == "VIDEO";
                if is_video != video {
                    return Err("the answer has campaigns of another channel".into());
                }
            }
            Ok(())
        })
        .await?;
    let mut rows = Rows::new(config.platform.table());
    for result in answer
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|b| list(b, "/results"))
    {
        let customer_id = text(&result["customer"]["id"]).unwrap_or_default();
        if customer_id != customer {
            return Err(
                source.data_error(format!("a row of customer {customer_id}, not {customer}"))
            );
        }
        let metrics = &result["metrics"];
        let id = |v: &Value, what: &str| {
            text(v).ok_or_else(|| source.data_error(format!("a row without {what}")))
        };
        let row = AdRow {
            campaign_id: id(&result["campaign"]["id"], "campaign.id")?,
            campaign_name: text(&result["campaign"]["name"]).unwrap_or_default(),
            ad_group_id: text(&result["adGroup"]["id"]),
            ad_id: text(&result["adGroupAd"]["ad"]["id"]),
            channel: channel(
                result["campaign"]["advertisingChannelType"]
                    .as_str()
                    .unwrap_or(""),
            ),
            date: parse_date(&result["segments"]["date"])
                .ok_or_else(|| source.data_error("a row without segments.date"))?,
            impressions: count(&metrics["impressions"]).map_err(bad(source, "impressions"))?,
            clicks: count(&metrics["clicks"]).map_err(bad(source, "clicks"))?,
            spend: micros(&metrics["costMicros"]).map_err(bad(source, "costMicros"))?,
            currency: id(&result["customer"]["currencyCode"], "customer.currencyCode")?,
            conversions: number(&metrics["conversions"]).map_err(bad(source, "conversions"))?,
            conversion_value: money(&metrics["conversionsValue"])
                .map_err(bad(source, "conversionsValue"))?,
            video_views: Some(count(&metrics["videoViews"]).map_err(bad(source, "videoViews"))?),
        };
        rows.insert(row.into_row(config));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_is_found_in_the_details() {
        let error = json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": [
            {"errors": [{"details": {"quotaErrorDetails": {"retryDelay": "2.5s"}}}]}]}});
        assert_eq!(
            find_retry_delay(&error),
            Some(std::time::Duration::from_millis(2500))
        );
        assert_eq!(find_retry_delay(&json!({"error": {}})), None);
    }
}
