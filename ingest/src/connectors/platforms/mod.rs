//! One module per platform API. Each implements [`Platform`]: what a
//! connector of it is configured with, its client (its [`Dialect`], how it
//! says "slow down" and "no"; its auth; its fixed headers), and a fetch: a
//! window of days, or the records modified since a time, as canonical rows.
//! [`PLATFORMS`] lists them; nothing else names a platform.

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

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use gyrus_engine::schema::CanonicalTable;
use serde_json::Value;

use super::rows::Rows;
use super::{ConnectorConfig, Credentials, Fetched, Shape, Source, SyncError};
use crate::http::{Auth, Dialect, OAuth, RotatedToken};

/// Every platform Gyrus connects to, in the order they are listed. A new
/// platform is a module implementing [`Platform`] and one line here.
pub static PLATFORMS: &[&dyn Platform] = &[
    &google_ads::GOOGLE_ADS,
    &google_ads::YOUTUBE_ADS,
    &meta::Meta,
    &linkedin::Linkedin,
    &tiktok::TikTok,
    &ga4::Ga4,
    &shopify::Shopify,
    &stripe::Stripe,
    &hubspot::Hubspot,
    &salesforce::Salesforce,
    &gohighlevel::Gohighlevel,
];

/// One platform's API: what a connector of it is configured with, the
/// canonical table it lands in, and how its data is read.
///
/// A windowed platform ([`Shape::Windowed`]) implements
/// [`fetch_window`](Platform::fetch_window), a modified-since one
/// ([`Shape::Modified`]) [`fetch_modified`](Platform::fetch_modified); the
/// sync loop, checkpoints, writes, retries and guards are shared.
#[async_trait]
pub trait Platform: Send + Sync + 'static {
    /// What it is, as data: names, table, shape, credentials, defaults.
    fn about(&self) -> &About;

    /// The name connectors are configured with: `google_ads`.
    fn name(&self) -> &'static str {
        self.about().name
    }

    /// The canonical table it lands in.
    fn table(&self) -> CanonicalTable {
        self.about().table
    }

    /// How its data is read.
    fn shape(&self) -> Shape {
        self.about().shape
    }

    /// What the account of a connector is, for messages.
    fn account_kind(&self) -> &'static str {
        self.about().account_kind
    }

    /// The credential fields a connector must be given, and no others.
    fn credential_fields(&self) -> &'static [&'static str] {
        self.about().credential_fields
    }

    /// Settings a connector of this platform accepts beside the common ones.
    fn settings(&self) -> &'static [&'static str] {
        self.about().settings
    }

    /// Where the API lives, unless the connector says otherwise.
    fn default_base_url(&self, account: &str) -> String {
        self.about().base_url.replace("{account}", account)
    }

    /// Where OAuth2 tokens come from, unless the connector says otherwise;
    /// empty for a platform whose credentials are a fixed token.
    fn default_auth_url(&self) -> &'static str {
        self.about().auth_url
    }

    /// Rows per page unless the connector's `page_size` says otherwise.
    fn default_page_size(&self) -> usize {
        self.about().page_size
    }

    /// The slice of its table a windowed connector owns, replaced window by
    /// window: by default its platform account (ads).
    fn slice_equals(&self, config: &ConnectorConfig) -> Vec<(String, String)> {
        vec![
            ("platform".into(), self.name().into()),
            ("account_id".into(), config.account.clone()),
        ]
    }

    /// The dialect, auth and fixed headers of a connector's client.
    fn client(
        &self,
        config: &ConnectorConfig,
        credentials: &Credentials,
        rotated: &RotatedToken,
    ) -> Result<ClientParts, SyncError>;

    /// The rows of the days in `window` (windowed platforms).
    async fn fetch_window(
        &self,
        _source: &Source<'_>,
        _window: Window,
    ) -> Result<WindowRows, SyncError> {
        Err(SyncError::Invalid(format!(
            "{} is not read by day",
            self.name()
        )))
    }

    /// The records modified at or after `since` (modified-since platforms).
    async fn fetch_modified(
        &self,
        _source: &Source<'_>,
        _since: DateTime<Utc>,
    ) -> Result<Fetched, SyncError> {
        Err(SyncError::Invalid(format!(
            "{} is read by day",
            self.name()
        )))
    }
}

/// What a platform is, as data.
#[derive(Debug, Clone, Copy)]
pub struct About {
    /// The name connectors are configured with: `google_ads`.
    pub name: &'static str,
    /// The canonical table it lands in.
    pub table: CanonicalTable,
    /// How its data is read.
    pub shape: Shape,
    /// What the account of a connector is, for messages.
    pub account_kind: &'static str,
    /// The credential fields a connector must be given, and no others.
    pub credential_fields: &'static [&'static str],
    /// Settings a connector accepts beside the common ones.
    pub settings: &'static [&'static str],
    /// Where the API lives; `{account}` stands for the connector's account.
    pub base_url: &'static str,
    /// Where OAuth2 tokens come from; empty for a fixed token.
    pub auth_url: &'static str,
    /// Rows per page unless the connector's `page_size` says otherwise: the
    /// API's maximum or a common choice.
    pub page_size: usize,
}

/// Read by day, in windows of at most 30 days.
pub const WINDOWED: Shape = Shape::Windowed {
    max_window_days: 30,
};

/// What a connector's client is made of.
pub struct ClientParts {
    pub dialect: Box<dyn Dialect>,
    pub auth: Auth,
    /// Headers every call carries (API versions, developer tokens).
    pub headers: Vec<(&'static str, String)>,
}

impl ClientParts {
    /// A client whose credential field `field` goes in header `name`,
    /// after `prefix` (`Bearer `).
    pub fn token_header(
        dialect: impl Dialect + 'static,
        credentials: &Credentials,
        (name, field, prefix): (&'static str, &str, &str),
    ) -> Result<ClientParts, SyncError> {
        Ok(ClientParts {
            dialect: Box::new(dialect),
            auth: Auth::Header {
                name,
                value: format!("{prefix}{}", credentials.get(field)?),
            },
            headers: Vec::new(),
        })
    }

    /// A client with OAuth2 refresh-token auth against the connector's
    /// token service at `path` (`/token`).
    pub fn oauth(
        dialect: impl Dialect + 'static,
        config: &ConnectorConfig,
        credentials: &Credentials,
        rotated: &RotatedToken,
        path: &str,
    ) -> Result<ClientParts, SyncError> {
        let mut token_url = config.auth_url()?;
        let joined = format!("{}{path}", token_url.path().trim_end_matches('/'));
        token_url.set_path(&joined);
        Ok(ClientParts {
            dialect: Box::new(dialect),
            auth: Auth::OAuth(OAuth::new(
                token_url,
                credentials.get("client_id")?.to_string(),
                credentials.get("client_secret")?.to_string(),
                credentials.get("refresh_token")?.to_string(),
                rotated.clone(),
            )),
            headers: Vec::new(),
        })
    }

    /// The same client with one more fixed header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// The fields of an OAuth2 refresh-token client.
pub const OAUTH_FIELDS: &[&str] = &["client_id", "client_secret", "refresh_token"];

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::PlatformId;

    /// Names are what connectors are stored with: unique, and each one
    /// reads back as its platform.
    #[test]
    fn every_platform_has_its_own_name() {
        let mut names: Vec<&str> = PLATFORMS.iter().map(|p| p.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PLATFORMS.len());
        for platform in PlatformId::all() {
            let json = serde_json::to_string(&platform).unwrap();
            assert_eq!(json, format!("\"{}\"", platform.name()));
            assert_eq!(serde_json::from_str::<PlatformId>(&json).unwrap(), platform);
        }
        let unknown = serde_json::from_str::<PlatformId>("\"myspace\"").unwrap_err();
        assert!(
            unknown.to_string().contains("google_ads, youtube_ads"),
            "{unknown}"
        );
    }

    /// A platform that takes OAuth2 has a token service; one that does not
    /// takes no refresh token.
    #[test]
    fn auth_urls_go_with_oauth_credentials() {
        for platform in PLATFORMS {
            let oauth = platform.credential_fields().contains(&"refresh_token");
            assert_eq!(
                oauth,
                !platform.default_auth_url().is_empty(),
                "{}",
                platform.name()
            );
        }
    }
}
