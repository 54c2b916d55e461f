//! One module per platform API. Each gives its [`Dialect`] (how it says
//! "slow down" and "no"), its auth, and a fetch: a window of days, or the
//! records modified since a time, as canonical rows.

mod ga4;
mod gohighlevel;
mod google_ads;
mod hubspot;
mod linkedin;
mod meta;
mod salesforce;
mod shopify;
mod stripe;
mod tiktok;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use super::rows::Rows;
use super::{ConnectorConfig, Credentials, Fetched, Platform, Source, SyncError};
use crate::http::{Auth, Dialect, OAuth, Plain, RotatedToken};

/// What a connector's client is made of.
pub struct ClientParts {
    pub dialect: Box<dyn Dialect>,
    pub auth: Auth,
    /// Headers every call carries (API versions, developer tokens).
    pub headers: Vec<(&'static str, String)>,
}

/// The dialect, auth and fixed headers of a connector's client.
pub fn client_parts(
    config: &ConnectorConfig,
    credentials: &Credentials,
    rotated: &RotatedToken,
) -> Result<ClientParts, SyncError> {
    let platform = config.platform;
    let dialect: Box<dyn Dialect> = match platform {
        Platform::GoogleAds | Platform::YoutubeAds | Platform::Ga4 => {
            Box::new(google_ads::Google(platform.name()))
        }
        Platform::MetaAds => Box::new(meta::Meta),
        Platform::TiktokAds => Box::new(tiktok::TikTok),
        Platform::Shopify => Box::new(shopify::Shopify),
        Platform::Salesforce => Box::new(salesforce::Salesforce),
        other => Box::new(Plain(other.name())),
    };
    let header = |name: &'static str, field: &str, prefix: &str| -> Result<Auth, SyncError> {
        Ok(Auth::Header {
            name,
            value: format!("{prefix}{}", credentials.get(field)?),
        })
    };
    let auth = match platform {
        Platform::MetaAds => header("authorization", "access_token", "Bearer ")?,
        Platform::TiktokAds => header("access-token", "access_token", "")?,
        Platform::Shopify => header("x-shopify-access-token", "access_token", "")?,
        Platform::Stripe => header("authorization", "api_key", "Bearer ")?,
        _ => {
            let path = match platform {
                Platform::LinkedinAds => "/oauth/v2/accessToken",
                Platform::Hubspot => "/oauth/v1/token",
                Platform::Salesforce => "/services/oauth2/token",
                Platform::Gohighlevel => "/oauth/token",
                _ => "/token",
            };
            let mut token_url = config.auth_url()?;
            let joined = format!("{}{path}", token_url.path().trim_end_matches('/'));
            token_url.set_path(&joined);
            Auth::OAuth(OAuth::new(
                token_url,
                credentials.get("client_id")?.to_string(),
                credentials.get("client_secret")?.to_string(),
                credentials.get("refresh_token")?.to_string(),
                rotated.clone(),
            ))
        }
    };
    let mut headers = Vec::new();
    match platform {
        Platform::GoogleAds | Platform::YoutubeAds => {
            headers.push((
                "developer-token",
                credentials.get("developer_token")?.to_string(),
            ));
            if let Some(manager) = config.setting("login_customer_id") {
                headers.push(("login-customer-id", manager.replace('-', "")));
            }
        }
        Platform::LinkedinAds => {
            headers.push(("linkedin-version", linkedin::VERSION.to_string()));
            headers.push(("x-restli-protocol-version", "2.0.0".to_string()));
        }
        Platform::Gohighlevel => headers.push(("version", gohighlevel::VERSION.to_string())),
        _ => {}
    }
    Ok(ClientParts {
        dialect,
        auth,
        headers,
    })
}

/// Rows per page unless the connector's `page_size` says otherwise: each
/// API's maximum or a common choice.
pub fn default_page_size(platform: Platform) -> usize {
    match platform {
        Platform::GoogleAds | Platform::YoutubeAds => 10_000,
        Platform::Ga4 => 10_000,
        Platform::MetaAds => 500,
        Platform::LinkedinAds => 100,
        Platform::TiktokAds => 1000,
        Platform::Shopify => 250,
        Platform::Stripe => 100,
        Platform::Hubspot => 100,
        Platform::Salesforce => 2000,
        Platform::Gohighlevel => 100,
    }
}

/// The slice of its table a windowed connector owns: its platform account
/// (ads), its property (GA4), its source (orders).
pub fn slice_equals(config: &ConnectorConfig) -> Vec<(String, String)> {
    let pair = |c: &str, v: &str| (c.to_string(), v.to_string());
    match config.platform {
        Platform::Ga4 => vec![pair("property_id", &config.account)],
        Platform::Shopify | Platform::Stripe => vec![pair("source", config.platform.name())],
        p => vec![
            pair("platform", p.name()),
            pair("account_id", &config.account),
        ],
    }
}

/// A window's rows, and the rows of older records that changed within it
/// (Stripe: charges refunded in the window, created before it), which are
/// upserted by key.
pub struct WindowRows {
    pub rows: Rows,
    pub updates: Option<Rows>,
}

impl From<Rows> for WindowRows {
    fn from(rows: Rows) -> Self {
        WindowRows {
            rows,
            updates: None,
        }
    }
}

/// The rows of the days `from..=to`.
pub async fn fetch_window(
    source: &Source<'_>,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<WindowRows, SyncError> {
    let window = Window { from, to };
    Ok(match source.config.platform {
        Platform::GoogleAds | Platform::YoutubeAds => {
            google_ads::fetch(source, window).await?.into()
        }
        Platform::MetaAds => meta::fetch(source, window).await?.into(),
        Platform::LinkedinAds => linkedin::fetch(source, window).await?.into(),
        Platform::TiktokAds => tiktok::fetch(source, window).await?.into(),
        Platform::Ga4 => ga4::fetch(source, window).await?.into(),
        Platform::Shopify => shopify::fetch(source, window).await?.into(),
        Platform::Stripe => stripe::fetch(source, window).await?,
        other => return Err(SyncError::Invalid(format!("{other} is not read by day"))),
    })
}

/// The records modified at or after `since`.
pub async fn fetch_modified(
    source: &Source<'_>,
    since: DateTime<Utc>,
) -> Result<Fetched, SyncError> {
    match source.config.platform {
        Platform::Hubspot => hubspot::fetch(source, since).await,
        Platform::Salesforce => salesforce::fetch(source, since).await,
        Platform::Gohighlevel => gohighlevel::fetch(source, since).await,
        other => Err(SyncError::Invalid(format!("{other} is read by day"))),
    }
}

/// The days a request asked for.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Window {
    /// Checks that `date` (as the platform wrote it) lies in the window: an
    /// answer for other days (a stale page served again) is retried.
    pub fn check(&self, date: Option<NaiveDate>) -> Result<(), String> {
        match date {
            Some(d) if (self.from..=self.to).contains(&d) => Ok(()),
            Some(d) => Err(format!(
                "the answer has a row for {d}, outside the requested {}..{}",
                self.from, self.to
            )),
            None => Err("the answer has a row without a readable date".into()),
        }
    }

    /// The window as [start, end) instants, UTC.
    pub fn instants(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        let start = self.from.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
        let end = self
            .to
            .succ_opt()
            .unwrap_or(self.to)
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .and_utc();
        (start, end)
    }
}

/// A date in one of the platforms' spellings: `2026-03-01`,
/// `2026-03-01 00:00:00` (TikTok), `20260301` (GA4).
pub fn parse_date(value: &Value) -> Option<NaiveDate> {
    let text = value.as_str()?;
    let day = text.get(..10).unwrap_or(text);
    NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(text, "%Y%m%d"))
        .ok()
}

/// An instant in one of the platforms' spellings: RFC 3339,
/// `2026-03-01T10:00:00.000+0000` (Salesforce), epoch milliseconds.
pub fn parse_instant(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::Number(n) => DateTime::from_timestamp_millis(n.as_i64()?),
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        _ => None,
    }
}

/// An instant as the canonical tables take it.
pub fn instant_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Guards cursor paging against a platform that keeps answering with the
/// same cursor: a page served twice repeats once or twice, a loop forever.
#[derive(Default)]
pub struct CursorGuard {
    last: Option<String>,
    repeats: u32,
}

impl CursorGuard {
    pub fn next(&mut self, source: &Source<'_>, cursor: &str) -> Result<(), SyncError> {
        if self.last.as_deref() == Some(cursor) {
            self.repeats += 1;
            if self.repeats > 8 {
                return Err(source.data_error(format!(
                    "paging does not advance: the same cursor came back {} times",
                    self.repeats
                )));
            }
        } else {
            self.repeats = 0;
            self.last = Some(cursor.to_string());
        }
        Ok(())
    }
}

/// The rows of `value` at `pointer` (a JSON pointer), or an empty list.
pub fn list<'a>(value: &'a Value, pointer: &str) -> &'a [Value] {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// A required string field, or a data error naming it.
pub fn field(source: &Source<'_>, value: &Value, pointer: &str) -> Result<String, SyncError> {
    value
        .pointer(pointer)
        .and_then(super::rows::text)
        .ok_or_else(|| source.data_error(format!("a record lacks {pointer}")))
}

/// One ad's day, as every ad platform's connector builds it.
pub struct AdRow {
    pub campaign_id: String,
    pub campaign_name: String,
    pub ad_group_id: Option<String>,
    pub ad_id: Option<String>,
    pub channel: &'static str,
    pub date: NaiveDate,
    pub impressions: i64,
    pub clicks: i64,
    pub spend: String,
    pub currency: String,
    pub conversions: f64,
    pub conversion_value: String,
    pub video_views: Option<i64>,
}

impl AdRow {
    pub fn into_row(self, config: &ConnectorConfig) -> super::rows::Row {
        let value = serde_json::json!({
            "platform": config.platform.name(),
            "account_id": config.account,
            "campaign_id": self.campaign_id,
            "campaign_name": self.campaign_name,
            "ad_group_id": self.ad_group_id,
            "ad_id": self.ad_id,
            "channel": self.channel,
            "date": self.date.to_string(),
            "impressions": self.impressions,
            "clicks": self.clicks,
            "spend": self.spend,
            "currency": self.currency.to_ascii_uppercase(),
            "conversions": self.conversions,
            "conversion_value": self.conversion_value,
            "video_views": self.video_views,
        });
        match value {
            Value::Object(row) => row,
            _ => unreachable!("a JSON object literal"),
        }
    }
}

/// A data error for a value that did not convert.
pub fn bad(source: &Source<'_>, what: &str) -> impl Fn(String) -> SyncError {
    let platform = source.config.platform.name();
    let what = what.to_string();
    move |message| SyncError::Data {
        platform,
        message: format!("{what}: {message}"),
    }
}

/// The last segment of an ID path or URN: `gid://shopify/Order/12` → `12`,
/// `urn:li:sponsoredCampaign:456` → `456`.
pub fn tail(id: &str) -> &str {
    id.rsplit(['/', ':']).next().unwrap_or(id)
}

/// One deal, as every CRM connector builds it.
pub struct DealRow {
    pub deal_id: String,
    pub customer_id: Option<String>,
    pub pipeline: String,
    pub stage: String,
    pub amount: String,
    pub currency: String,
    pub created_at: DateTime<Utc>,
    /// When closed: the close time and whether it was won.
    pub closed: Option<(DateTime<Utc>, bool)>,
    pub source_campaign: Option<String>,
}

impl DealRow {
    pub fn into_row(self) -> super::rows::Row {
        let value = serde_json::json!({
            "deal_id": self.deal_id,
            "customer_id": self.customer_id,
            "pipeline": self.pipeline,
            "stage": self.stage,
            "amount": self.amount,
            "currency": self.currency.to_ascii_uppercase(),
            "created_at": instant_text(self.created_at),
            "closed_at": self.closed.map(|(at, _)| instant_text(at)),
            "is_won": self.closed.map(|(_, won)| won),
            "source_campaign": self.source_campaign,
        });
        match value {
            Value::Object(row) => row,
            _ => unreachable!("a JSON object literal"),
        }
    }
}

/// The currency of a CRM's deals when a deal does not say: the connector's
/// `currency` setting, else US dollars.
pub fn default_currency(config: &ConnectorConfig) -> String {
    config.setting("currency").unwrap_or("USD").to_string()
}
