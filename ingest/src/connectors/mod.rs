//! Platform connectors: each speaks one platform's API and lands its data in
//! a canonical table, incrementally and exactly.
//!
//! Two shapes of sync:
//!
//! - **Windowed** (ads, GA4, orders): the platform reports by day. A sync
//!   reads from the cursor minus the lookback (30 days by default: platforms
//!   restate recent conversions) to today, in windows; each window's rows
//!   replace that window's slice of the table in one commit, and the
//!   checkpoint then moves past it. A sync killed anywhere resumes at the
//!   first window not yet replaced; a window replaced twice lands the same rows.
//! - **Modified** (CRM): the platform lists records modified since a time.
//!   A sync reads everything modified since the cursor and upserts it by key
//!   in one commit, then moves the cursor.

pub mod platforms;

pub use platforms::Platform;
pub mod registry;
pub mod rows;
pub mod state;
pub mod system;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use chrono::{DateTime, Days, NaiveDate, Utc};
use gyrus_engine::EngineError;
use gyrus_engine::store::{Store, TenantId};
use gyrus_engine::write::{Slice, WriteRequest};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::http::{
    Call, CallGuards, Http, HttpError, HttpPolicy, MAX_RATE, MIN_RATE, RotatedToken,
};
use crate::secrets::SecretError;
use rows::Rows;
use state::StreamState;

/// A platform, by its name: what a connector's configuration holds. It
/// dereferences to the platform's [`Platform`] implementation and is
/// written (JSON, tables) as the name.
#[derive(Clone, Copy)]
pub struct PlatformId(&'static dyn Platform);

/// How a platform's data is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// By day, in windows of at most this many days.
    Windowed { max_window_days: u32 },
    /// Records modified since a time.
    Modified,
}

impl PlatformId {
    /// Every platform, in the order of [`platforms::PLATFORMS`].
    pub fn all() -> impl ExactSizeIterator<Item = PlatformId> {
        platforms::PLATFORMS.iter().map(|p| PlatformId(*p))
    }

    /// The platform called `name`, if there is one.
    pub fn named(name: &str) -> Option<PlatformId> {
        PlatformId::all().find(|p| p.name() == name)
    }
}

impl std::ops::Deref for PlatformId {
    type Target = dyn Platform;

    fn deref(&self) -> &Self::Target {
        self.0
    }
}

impl PartialEq for PlatformId {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for PlatformId {}

impl std::hash::Hash for PlatformId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state)
    }
}

impl PartialOrd for PlatformId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PlatformId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name().cmp(other.name())
    }
}

impl fmt::Debug for PlatformId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for PlatformId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for PlatformId {
    type Err = SyncError;

    fn from_str(s: &str) -> Result<Self, SyncError> {
        PlatformId::named(s).ok_or_else(|| {
            SyncError::Invalid(format!(
                "unknown platform {s:?}; the platforms are: {}",
                PlatformId::all()
                    .map(|p| p.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }
}

impl Serialize for PlatformId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for PlatformId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// The longest lookback: platforms restate up to 90 days; a year is ample.
const MAX_LOOKBACK_DAYS: u32 = 400;
/// The shortest schedule: platforms' quotas are daily, data lands hourly at best.
const MIN_SCHEDULE_MINUTES: u32 = 15;

/// The earliest start date: before 2005 no platform here has data.
fn earliest_start() -> NaiveDate {
    NaiveDate::from_ymd_opt(2005, 1, 1).unwrap_or_default()
}

/// Settings every connector takes.
const COMMON_SETTINGS: &[&str] = &["page_size", "requests_per_second", "window_days"];

/// A connector's configuration: everything but its credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectorConfig {
    pub id: String,
    pub tenant: String,
    pub platform: PlatformId,
    pub account: String,
    /// The API's base URL (a proxy, a regional endpoint, a test fake).
    pub base_url: Option<String>,
    /// The OAuth2 token service's base URL.
    pub auth_url: Option<String>,
    /// The first day to read.
    pub start_date: NaiveDate,
    /// Days re-read before the cursor on each sync.
    pub lookback_days: u32,
    /// Minutes between scheduled syncs; 0 syncs only when asked.
    pub schedule_minutes: u32,
    /// Platform options (`page_size`, `conversion_action_types`, ...).
    pub settings: BTreeMap<String, String>,
}

impl ConnectorConfig {
    pub fn tenant_id(&self) -> Result<TenantId, SyncError> {
        Ok(TenantId::new(&self.tenant)?)
    }

    pub fn setting(&self, name: &str) -> Option<&str> {
        self.settings.get(name).map(String::as_str)
    }

    /// A numeric setting, or `default`.
    pub fn number<T: FromStr>(&self, name: &str, default: T) -> Result<T, SyncError> {
        match self.setting(name) {
            None => Ok(default),
            Some(text) => text.parse().map_err(|_| {
                SyncError::Invalid(format!("setting {name}={text:?} is not a number"))
            }),
        }
    }

    pub fn base_url(&self) -> Result<Url, SyncError> {
        let text = self
            .base_url
            .clone()
            .unwrap_or_else(|| self.platform.default_base_url(&self.account));
        parse_base(&text, "base_url")
    }

    pub fn auth_url(&self) -> Result<Url, SyncError> {
        let text = self
            .auth_url
            .clone()
            .unwrap_or_else(|| self.platform.default_auth_url().to_string());
        parse_base(&text, "auth_url")
    }

    /// Checks what a person gave: the account, the URLs, the settings.
    pub fn validate(&self) -> Result<(), SyncError> {
        let platform = self.platform;
        if self.account.trim().is_empty()
            || !self
                .account
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(SyncError::Invalid(format!(
                "{platform} needs an account: the {} (letters, digits, - _ .), got {:?}",
                platform.account_kind(),
                self.account
            )));
        }
        self.base_url()?;
        if !platform.default_auth_url().is_empty() {
            self.auth_url()?;
        }
        for name in self.settings.keys() {
            if !COMMON_SETTINGS.contains(&name.as_str())
                && !platform.settings().contains(&name.as_str())
            {
                return Err(SyncError::Invalid(format!(
                    "{platform} has no setting {name:?}; its settings are: {}",
                    COMMON_SETTINGS
                        .iter()
                        .chain(platform.settings())
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        let page_size: usize = self.number("page_size", 1)?;
        let rate: f64 = self.number("requests_per_second", 1.0)?;
        let window: u32 = self.number("window_days", 1)?;
        let poll: u64 = self.number("poll_interval_ms", 1)?;
        let bounds = [
            ("page_size", (1..=10_000).contains(&page_size)),
            ("requests_per_second", (MIN_RATE..=MAX_RATE).contains(&rate)),
            ("window_days", (1..=90).contains(&window)),
            ("poll_interval_ms", (1..=60_000).contains(&poll)),
            (
                "lookback_days",
                (1..=MAX_LOOKBACK_DAYS).contains(&self.lookback_days),
            ),
            (
                "schedule_minutes",
                self.schedule_minutes == 0
                    || (MIN_SCHEDULE_MINUTES..=525_600).contains(&self.schedule_minutes),
            ),
            ("start_date", self.start_date >= earliest_start()),
        ];
        if let Some((name, _)) = bounds.iter().find(|(_, ok)| !ok) {
            return Err(SyncError::Invalid(format!(
                "{name} is out of bounds: page_size 1-10000, requests_per_second {MIN_RATE}-{MAX_RATE}, \
                 window_days 1-90, poll_interval_ms 1-60000, lookback_days 1-{MAX_LOOKBACK_DAYS}, \
                 schedule_minutes 0 or {MIN_SCHEDULE_MINUTES}-525600, start_date from {}",
                earliest_start()
            )));
        }
        Ok(())
    }
}

fn parse_base(text: &str, what: &str) -> Result<Url, SyncError> {
    let url = Url::parse(text)
        .map_err(|e| SyncError::Invalid(format!("{what} {text:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(SyncError::Invalid(format!(
            "{what} {text:?} must be an http(s) URL with a host"
        )));
    }
    Ok(url)
}

/// A connector's credentials: field → value. Never printed.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Credentials(pub BTreeMap<String, String>);

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "<redacted>")))
            .finish()
    }
}

impl Credentials {
    pub fn get(&self, field: &str) -> Result<&str, SyncError> {
        self.0
            .get(field)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| SyncError::Invalid(format!("credentials have no {field:?}")))
    }

    /// Checks the fields `platform` needs are there, and no others.
    pub fn validate(&self, platform: PlatformId) -> Result<(), SyncError> {
        let needed = platform.credential_fields();
        let missing: Vec<&str> = needed
            .iter()
            .copied()
            .filter(|f| self.get(f).is_err())
            .collect();
        let unknown: Vec<&str> = self
            .0
            .keys()
            .map(String::as_str)
            .filter(|k| !needed.contains(k))
            .collect();
        if missing.is_empty() && unknown.is_empty() {
            return Ok(());
        }
        Err(SyncError::Invalid(format!(
            "{platform} credentials need exactly {}; missing: {}; unknown: {}",
            needed.join(", "),
            if missing.is_empty() {
                "none".into()
            } else {
                missing.join(", ")
            },
            if unknown.is_empty() {
                "none".into()
            } else {
                unknown.join(", ")
            },
        )))
    }

    /// Every value: strings to keep out of logs and errors.
    pub fn values(&self) -> Vec<String> {
        self.0.values().cloned().collect()
    }
}

/// A connector with its credentials opened. Never printed with them.
#[derive(Clone)]
pub struct Connector {
    pub config: ConnectorConfig,
    pub credentials: Credentials,
    /// A refresh token the platform rotated to during a sync: used by this
    /// connector's (and its clones') later syncs, and for the owner to store.
    pub rotated: RotatedToken,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("config", &self.config)
            .field("credentials", &self.credentials)
            .field("rotated", &"<redacted>")
            .finish()
    }
}

impl Connector {
    pub fn new(config: ConnectorConfig, credentials: Credentials) -> Self {
        Connector {
            config,
            credentials,
            rotated: Default::default(),
        }
    }

    /// The credentials with the rotated refresh token, when there is one.
    pub fn rotated_credentials(&self) -> Option<Credentials> {
        let rotated = self
            .rotated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        let mut credentials = self.credentials.clone();
        (credentials.0.get("refresh_token") != Some(&rotated)).then(|| {
            credentials.0.insert("refresh_token".into(), rotated);
            credentials
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("{platform}: unexpected answer: {message}")]
    Data {
        platform: &'static str,
        message: String,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("no connector {0:?}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("connector {0} is syncing already")]
    Busy(String),
}

/// How to run one sync.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// The last day to read (the platforms' "today"); `None`: today, UTC.
    pub today: Option<NaiveDate>,
    /// Read everything from the start date again, ignoring the cursor.
    pub full: bool,
    pub http: HttpPolicy,
}

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncReport {
    /// Rows written (each window's rows, each upsert's rows).
    pub rows: usize,
    /// Commits to the canonical table.
    pub commits: usize,
    /// The range of days read (windowed syncs).
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    /// Whether it continued an interrupted sync.
    pub resumed: bool,
    pub seconds: f64,
}

/// What a platform module is handed: the connector, its HTTP client and URLs.
pub struct Source<'a> {
    pub config: &'a ConnectorConfig,
    pub http: Http,
    pub base: Url,
    pub page_size: usize,
    /// Headers every call carries.
    headers: Vec<(&'static str, String)>,
}

impl Source<'_> {
    /// `base` joined with `path` (which may start with `/`).
    pub fn url(&self, path: &str) -> Result<Url, SyncError> {
        let mut url = self.base.clone();
        let joined = format!("{}{}", self.base.path().trim_end_matches('/'), path);
        url.set_path(&joined);
        url.set_query(None);
        Ok(url)
    }

    /// A GET of `url` with the connector's fixed headers.
    pub fn get(&self, url: Url) -> Call {
        self.with_headers(Call::get(url))
    }

    /// A JSON POST with the connector's fixed headers.
    pub fn post_json(&self, url: Url, body: &serde_json::Value) -> Call {
        self.with_headers(Call::post_json(url, body))
    }

    /// A form POST with the connector's fixed headers.
    pub fn post_form(&self, url: Url, fields: &[(&str, &str)]) -> Call {
        self.with_headers(Call::post_form(url, fields))
    }

    fn with_headers(&self, mut call: Call) -> Call {
        call.headers.extend(self.headers.iter().cloned());
        call
    }

    /// An error about what the platform answered.
    pub fn data_error(&self, message: impl Into<String>) -> SyncError {
        SyncError::Data {
            platform: self.config.platform.name(),
            message: message.into(),
        }
    }
}

/// Runs one sync of `connector` and returns what it did; its calls are
/// spaced and guarded by the limiter and breaker `guards` hold.
pub async fn sync(
    store: &Store,
    connector: &Connector,
    options: &SyncOptions,
    guards: &CallGuards,
) -> Result<SyncReport, SyncError> {
    let started = Instant::now();
    let config = &connector.config;
    config.validate()?;
    connector.credentials.validate(config.platform)?;
    let source = source(connector, options, guards)?;
    let mut report = match config.platform.shape() {
        Shape::Windowed { max_window_days } => {
            sync_windows(store, &source, options, max_window_days).await?
        }
        Shape::Modified => sync_modified(store, &source, options).await?,
    };
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn source<'a>(
    connector: &'a Connector,
    options: &SyncOptions,
    guards: &CallGuards,
) -> Result<Source<'a>, SyncError> {
    let config = &connector.config;
    let parts = config
        .platform
        .client(config, &connector.credentials, &connector.rotated)?;
    let mut policy = options.http.clone();
    policy.requests_per_second =
        config.number("requests_per_second", policy.requests_per_second)?;
    let http = Http::new(
        policy,
        parts.dialect,
        parts.auth,
        guards,
        (
            // Per tenant and account: one tenant cannot slow another's calls.
            &format!("{}/{}", config.tenant, config.account),
            &format!("{}/{}", config.tenant, config.id),
        ),
        connector.credentials.values(),
    )?;
    Ok(Source {
        config,
        http,
        base: config.base_url()?,
        page_size: config.number("page_size", config.platform.default_page_size())?,
        headers: parts.headers,
    })
}

/// The days of a windowed sync, and whether they continue an interrupted one.
fn sync_range(config: &ConnectorConfig, state: &StreamState, full: bool) -> (NaiveDate, bool) {
    if !full && let Some(resume) = state.resume_from {
        return (resume.max(config.start_date), true);
    }
    let from = match (full, state.synced_through) {
        (false, Some(through)) => through
            .checked_sub_days(Days::new(config.lookback_days.saturating_sub(1) as u64))
            .unwrap_or(config.start_date),
        _ => config.start_date,
    };
    (from.max(config.start_date), false)
}

async fn sync_windows(
    store: &Store,
    source: &Source<'_>,
    options: &SyncOptions,
    max_window_days: u32,
) -> Result<SyncReport, SyncError> {
    let config = source.config;
    let tenant = config.tenant_id()?;
    let table = config.platform.table();
    let today = options.today.unwrap_or_else(|| Utc::now().date_naive());
    let mut state = state::load(store, &config.id, table.name()).await?;
    let (from, resumed) = sync_range(config, &state, options.full);
    let window_days = config
        .number("window_days", max_window_days)?
        .clamp(1, max_window_days);
    let mut report = SyncReport {
        from: Some(from),
        to: Some(today),
        resumed,
        ..Default::default()
    };
    let mut start = from;
    while start <= today {
        let end = start
            .checked_add_days(Days::new(window_days as u64 - 1))
            .unwrap_or(today)
            .min(today);
        let fetched = config
            .platform
            .fetch_window(
                source,
                platforms::Window {
                    from: start,
                    to: end,
                },
            )
            .await?;
        let count = fetched.rows.len();
        let batch = fetched
            .rows
            .into_batch()
            .map_err(|message| source.data_error(message))?;
        let slice = Slice {
            equals: config.platform.slice_equals(config),
            from: start,
            to: end,
        };
        store
            .write(
                &tenant,
                WriteRequest::append(table, vec![batch]).replacing(slice),
            )
            .await?;
        report.rows += count;
        report.commits += 1;
        // Older records changed within the window. Killed before this
        // commit, the resumed sync reads the window again and repeats both.
        if let Some(updates) = fetched.updates.filter(|u| !u.is_empty()) {
            report.rows += updates.len();
            let batch = updates
                .into_batch()
                .map_err(|message| source.data_error(message))?;
            store
                .write(
                    &tenant,
                    WriteRequest::append(table, vec![batch]).upserting(),
                )
                .await?;
            report.commits += 1;
        }
        tracing::info!(connector = %config.id, platform = %config.platform, %start, %end, rows = count, "window replaced");
        let Some(next) = end.succ_opt() else { break };
        state.resume_from = Some(next);
        state::save(store, &config.id, table.name(), &state).await?;
        start = next;
    }
    state.resume_from = None;
    state.synced_through = Some(today);
    state::save(store, &config.id, table.name(), &state).await?;
    Ok(report)
}

/// Records modified a little before the cursor are read again: clocks and
/// platform indexes lag.
const MODIFIED_OVERLAP: chrono::Duration = chrono::Duration::hours(1);

async fn sync_modified(
    store: &Store,
    source: &Source<'_>,
    options: &SyncOptions,
) -> Result<SyncReport, SyncError> {
    let config = source.config;
    let tenant = config.tenant_id()?;
    let table = config.platform.table();
    let mut state = state::load(store, &config.id, table.name()).await?;
    let start = config
        .start_date
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or_default();
    let since: DateTime<Utc> = match (options.full, state.modified_since) {
        (false, Some(since)) => (since - MODIFIED_OVERLAP).max(start),
        _ => start,
    };
    let fetched = config.platform.fetch_modified(source, since).await?;
    let count = fetched.rows.len();
    let batch = fetched
        .rows
        .into_batch()
        .map_err(|message| source.data_error(message))?;
    store
        .write(
            &tenant,
            WriteRequest::append(table, vec![batch]).upserting(),
        )
        .await?;
    tracing::info!(connector = %config.id, platform = %config.platform, %since, rows = count, "records upserted");
    // Never past now: one record stamped in the future (a skewed clock, a
    // user-edited field) would otherwise hide every later change.
    if let Some(high) = fetched.high_water.map(|h| h.min(Utc::now())) {
        state.modified_since = Some(state.modified_since.map_or(high, |s| s.max(high)));
    }
    state::save(store, &config.id, table.name(), &state).await?;
    Ok(SyncReport {
        rows: count,
        commits: 1,
        ..Default::default()
    })
}

/// What a modified-since read found.
pub struct Fetched {
    pub rows: Rows,
    /// The latest modification time among them.
    pub high_water: Option<DateTime<Utc>>,
}
