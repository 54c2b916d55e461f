//! The HTTP layer every connector shares.
//!
//! A call is retried when the platform is busy or broken (429, 5xx, timeouts,
//! cut-off or malformed bodies, answers that do not match the request), with
//! exponential backoff and full jitter, honouring `Retry-After` and each
//! platform's own throttle signals (read by its [`Dialect`]). Calls are
//! spaced by a client-side rate limit per platform and account, and a
//! circuit breaker per connector stops calling a platform that keeps
//! failing; both are held by the connector service's [`CallGuards`], which
//! drops them once idle. OAuth2 access tokens are refreshed when they expire or are
//! refused. Nothing secret is logged: calls are named by method and path,
//! and every error message is scrubbed of the credentials in play.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::RngExt as _;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use url::Url;

/// The slowest and fastest client-side rates, calls per second.
pub const MIN_RATE: f64 = 0.01;
pub const MAX_RATE: f64 = 100_000.0;

/// How hard to try.
#[derive(Debug, Clone)]
pub struct HttpPolicy {
    /// The whole of one attempt: connecting, sending, reading the body.
    pub timeout: Duration,
    /// Attempts per call before giving up.
    pub attempts: u32,
    /// The first backoff; each retry doubles it, up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// The longest wait a platform may ask for (`Retry-After`, usage headers)
    /// before the call gives up instead.
    pub max_wait: Duration,
    /// Client-side limit per platform and account.
    pub requests_per_second: f64,
    /// Calls that must fail in a row (after their retries) to open a connector's circuit.
    pub breaker_failures: u32,
    /// How long an open circuit refuses calls.
    pub breaker_cooldown: Duration,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        HttpPolicy {
            timeout: Duration::from_secs(60),
            attempts: 8,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            max_wait: Duration::from_secs(300),
            requests_per_second: 5.0,
            breaker_failures: 3,
            breaker_cooldown: Duration::from_secs(300),
        }
    }
}

/// Why a call failed for good.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    #[error(
        "{platform}: {call}: gave up after {attempts} attempts over {seconds:.1} s; last: {last}"
    )]
    Exhausted {
        platform: &'static str,
        call: String,
        attempts: u32,
        seconds: f64,
        last: String,
    },
    #[error("{platform}: {call}: refused: {message}")]
    Refused {
        platform: &'static str,
        call: String,
        message: String,
    },
    #[error(
        "{platform}: credentials were rejected ({message}); the connector needs new credentials \
         (remove it and add it again)"
    )]
    Unauthorized {
        platform: &'static str,
        message: String,
    },
    #[error(
        "{platform}: not calling: the last {failures} calls failed, so the circuit is open until {until}"
    )]
    CircuitOpen {
        platform: &'static str,
        failures: u32,
        until: DateTime<Utc>,
    },
    #[error("{platform}: {call}: {message}")]
    Invalid {
        platform: &'static str,
        call: String,
        message: String,
    },
}

/// A platform's verdict on one answer, overriding the generic reading.
#[derive(Debug)]
pub enum Verdict {
    /// Busy: try again, after this long if it says.
    Retry {
        after: Option<Duration>,
        why: String,
    },
    /// The access token is no good.
    Unauthorized(String),
    /// A final refusal (bad request, no permission).
    Refuse(String),
}

/// How a platform says "slow down" and "no".
pub trait Dialect: Send + Sync {
    fn platform(&self) -> &'static str;

    /// A platform-specific reading of an answer (error shapes, throttling
    /// reported with status 200 or 400); `None` leaves it to the generic
    /// rules: 2xx is fine, 429/5xx retry, 401 is unauthorized, the rest refused.
    fn judge(
        &self,
        _status: StatusCode,
        _headers: &HeaderMap,
        _body: Option<&Value>,
    ) -> Option<Verdict> {
        None
    }

    /// After a good answer: how long to hold off the next call, from the
    /// platform's usage signals.
    fn pace(&self, _headers: &HeaderMap, _body: &Value) -> Option<Duration> {
        None
    }
}

/// The generic dialect: status codes and `Retry-After` only.
pub struct Plain(pub &'static str);

impl Dialect for Plain {
    fn platform(&self) -> &'static str {
        self.0
    }
}

/// One request.
#[derive(Clone)]
pub struct Call {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<(&'static str, Vec<u8>)>,
}

/// Method and path only: headers and bodies carry credentials.
impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

impl Call {
    pub fn get(url: Url) -> Self {
        Call {
            method: Method::GET,
            url,
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn post_json(url: Url, body: &Value) -> Self {
        Call {
            method: Method::POST,
            url,
            headers: Vec::new(),
            body: Some(("application/json", body.to_string().into_bytes())),
        }
    }

    pub fn post_form(url: Url, fields: &[(&str, &str)]) -> Self {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        Call {
            method: Method::POST,
            url,
            headers: Vec::new(),
            body: Some(("application/x-www-form-urlencoded", body.into_bytes())),
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// How the call is named in logs and errors: method and path, never the
    /// query (which may carry filters) or the headers (which carry tokens).
    fn label(&self) -> String {
        format!("{} {}", self.method, self.url.path())
    }
}

/// How a connector proves who it is.
pub enum Auth {
    None,
    /// A fixed header (an API key, a long-lived token).
    Header {
        name: &'static str,
        value: String,
    },
    /// OAuth2 with a refresh token: access tokens fetched and refreshed here.
    OAuth(OAuth),
}

/// Where a refresh token the platform rotated to is left for its owner to
/// store (GoHighLevel's refresh tokens are single-use; others may rotate).
pub type RotatedToken = Arc<Mutex<Option<String>>>;

/// The OAuth2 refresh-token grant.
pub struct OAuth {
    pub token_url: Url,
    pub client_id: String,
    pub client_secret: String,
    refresh_token: Mutex<String>,
    rotated: RotatedToken,
    token: Mutex<Option<(String, Instant)>>,
}

impl OAuth {
    /// The grant with `refresh_token`, or with the one `rotated` holds when
    /// the platform has rotated it since.
    pub fn new(
        token_url: Url,
        client_id: String,
        client_secret: String,
        refresh_token: String,
        rotated: RotatedToken,
    ) -> Self {
        let current = rotated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or(refresh_token);
        OAuth {
            token_url,
            client_id,
            client_secret,
            refresh_token: Mutex::new(current),
            rotated,
            token: Mutex::new(None),
        }
    }

    fn refresh_token(&self) -> String {
        self.refresh_token
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Keeps a new refresh token from a token answer, here and for the owner.
    fn rotate(&self, answer: &Value) -> Option<String> {
        let new = answer["refresh_token"].as_str().filter(|t| !t.is_empty())?;
        let mut current = self.refresh_token.lock().unwrap_or_else(|e| e.into_inner());
        if *current == new {
            return None;
        }
        *current = new.to_string();
        *self.rotated.lock().unwrap_or_else(|e| e.into_inner()) = Some(new.to_string());
        Some(new.to_string())
    }

    fn cached(&self) -> Option<String> {
        let token = self.token.lock().unwrap_or_else(|e| e.into_inner());
        token
            .as_ref()
            .filter(|(_, expires)| Instant::now() < *expires)
            .map(|(t, _)| t.clone())
    }

    fn forget(&self) {
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// A token bucket of one: calls are spaced `1 / rate` apart, and a platform's
/// "slow down" pushes the next call later.
struct Limiter {
    next: tokio::sync::Mutex<Instant>,
}

/// A connector's circuit: consecutive failed calls and when it reopens.
#[derive(Default)]
struct Breaker {
    failures: u32,
    open_until: Option<(Instant, DateTime<Utc>)>,
}

/// The rate limiters (per platform and account) and circuit breakers (per
/// connector) of one connector service, shared by the clients it makes.
///
/// An entry no client holds is dropped once it has been idle for `idle`,
/// unless it still means something: a limiter pushed into the future by a
/// platform's "slow down", a circuit still open. So the maps hold what is
/// in use, not every account and connector the process ever called.
pub struct CallGuards {
    limiters: Held<Limiter>,
    breakers: Held<Mutex<Breaker>>,
    idle: Duration,
}

impl Default for CallGuards {
    fn default() -> Self {
        CallGuards::new(CallGuards::DEFAULT_IDLE)
    }
}

impl CallGuards {
    /// How long an unused entry is kept unless said otherwise.
    pub const DEFAULT_IDLE: Duration = Duration::from_secs(3600);

    pub fn new(idle: Duration) -> Self {
        CallGuards {
            limiters: Held::default(),
            breakers: Held::default(),
            idle,
        }
    }

    /// The limiters and breakers held now.
    pub fn held(&self) -> (usize, usize) {
        (self.limiters.len(), self.breakers.len())
    }

    fn limiter(&self, key: &str) -> Arc<Limiter> {
        self.limiters.take(key, self.idle, |limiter, now| {
            // Pushed back by the platform, or locked by a call now.
            limiter.next.try_lock().map_or(true, |next| *next > now)
        })
    }

    fn breaker(&self, key: &str) -> Arc<Mutex<Breaker>> {
        self.breakers.take(key, self.idle, |breaker, now| {
            breaker
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .open_until
                .is_some_and(|(until, _)| until > now)
        })
    }
}

/// Shared values by key, each with when it was last handed out.
struct Held<T>(Mutex<HashMap<String, (Arc<T>, Instant)>>);

impl<T> Default for Held<T> {
    fn default() -> Self {
        Held(Mutex::default())
    }
}

impl<T: Default> Held<T> {
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The value under `key` (made when missing), marked used now. Others
    /// are dropped when no one holds them, they were last used `idle` ago
    /// or more, and `needed` (given the value and now) says they mean
    /// nothing any more.
    fn take(&self, key: &str, idle: Duration, needed: impl Fn(&T, Instant) -> bool) -> Arc<T> {
        let now = Instant::now();
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|k, (value, used)| {
            k == key
                || Arc::strong_count(value) > 1
                || now.duration_since(*used) < idle
                || needed(value, now)
        });
        let (value, used) = map
            .entry(key.to_string())
            .or_insert_with(|| (Arc::default(), now));
        *used = now;
        value.clone()
    }
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter {
            next: tokio::sync::Mutex::new(Instant::now()),
        }
    }
}

/// A connector's HTTP client.
pub struct Http {
    client: reqwest::Client,
    policy: HttpPolicy,
    dialect: Arc<dyn Dialect>,
    auth: Auth,
    limiter: Arc<Limiter>,
    breaker: Arc<Mutex<Breaker>>,
    /// Strings never to show: the credentials and the access tokens.
    secrets: Arc<Mutex<Vec<String>>>,
}

/// What one attempt came to.
enum Attempt {
    Done(Value),
    Retry {
        after: Option<Duration>,
        why: String,
    },
    Unauthorized(String),
    Refuse(String),
}

impl Http {
    /// A client for one connector (`breaker_key`) calling one account
    /// (`limit_key`, shared by every connector on that platform account),
    /// with the limiter and breaker `guards` hold for them.
    pub fn new(
        policy: HttpPolicy,
        dialect: Box<dyn Dialect>,
        auth: Auth,
        guards: &CallGuards,
        (limit_key, breaker_key): (&str, &str),
        secrets: Vec<String>,
    ) -> Result<Self, HttpError> {
        let client = reqwest::Client::builder()
            // Redirects would carry the credentials' headers (and a token
            // form) to wherever a platform, or a proxy, points.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("gyrus/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HttpError::Invalid {
                platform: dialect.platform(),
                call: "client".into(),
                message: e.to_string(),
            })?;
        let platform = dialect.platform();
        Ok(Http {
            client,
            limiter: guards.limiter(&format!("{platform}/{limit_key}")),
            breaker: guards.breaker(breaker_key),
            policy,
            dialect: Arc::from(dialect),
            auth,
            secrets: Arc::new(Mutex::new(
                secrets.into_iter().filter(|s| s.len() >= 4).collect(),
            )),
        })
    }

    pub fn platform(&self) -> &'static str {
        self.dialect.platform()
    }

    /// Sends `call` until it gets a JSON answer that `check` accepts. `check`
    /// says why an answer does not fit the request (a page of another
    /// window, a page served twice): such answers are retried like errors.
    pub async fn json(
        &self,
        call: &Call,
        check: impl Fn(&Value) -> Result<(), String> + Sync,
    ) -> Result<Value, HttpError> {
        self.breaker_check()?;
        let result = self.json_unguarded(call, &check).await;
        self.breaker_record(&result);
        result.map_err(|e| self.scrub(e))
    }

    async fn json_unguarded(
        &self,
        call: &Call,
        check: &(dyn Fn(&Value) -> Result<(), String> + Sync),
    ) -> Result<Value, HttpError> {
        let platform = self.platform();
        let started = Instant::now();
        let mut refreshed = 0;
        let mut last = String::new();
        let mut attempt = 0;
        while attempt < self.policy.attempts {
            attempt += 1;
            let auth = self.auth_header().await?;
            self.wait_turn().await;
            let outcome = self.attempt(call, auth, check).await;
            let (after, why) = match outcome {
                Attempt::Done(value) => {
                    tracing::debug!(platform, call = %call.label(), attempt, "ok");
                    return Ok(value);
                }
                Attempt::Refuse(message) => {
                    return Err(HttpError::Refused {
                        platform,
                        call: call.label(),
                        message,
                    });
                }
                Attempt::Unauthorized(message) => match &self.auth {
                    Auth::OAuth(oauth) if refreshed < 2 => {
                        refreshed += 1;
                        attempt -= 1;
                        oauth.forget();
                        tracing::info!(platform, call = %call.label(), "access token refused; refreshing");
                        continue;
                    }
                    _ => return Err(HttpError::Unauthorized { platform, message }),
                },
                Attempt::Retry { after, why } => (after, why),
            };
            last = why;
            if attempt == self.policy.attempts {
                break;
            }
            let wait = match after {
                Some(after) if after > self.policy.max_wait => {
                    return Err(HttpError::Refused {
                        platform,
                        call: call.label(),
                        message: format!(
                            "asked to wait {} s, more than the {} s allowed; last: {last}",
                            after.as_secs(),
                            self.policy.max_wait.as_secs()
                        ),
                    });
                }
                // Honour the platform's wait, plus a little jitter so that
                // clients told the same thing do not return in lockstep.
                Some(after) => after + self.jitter(self.policy.backoff / 4),
                None => self.jitter(self.backoff(attempt)),
            };
            tracing::warn!(platform, call = %call.label(), attempt, wait_ms = wait.as_millis() as u64, why = %self.scrub_text(&last), "retrying");
            tokio::time::sleep(wait).await;
        }
        Err(HttpError::Exhausted {
            platform,
            call: call.label(),
            attempts: attempt,
            seconds: started.elapsed().as_secs_f64(),
            last,
        })
    }

    /// One attempt: send, read, judge.
    async fn attempt(
        &self,
        call: &Call,
        auth: Option<(&'static str, String)>,
        check: &(dyn Fn(&Value) -> Result<(), String> + Sync),
    ) -> Attempt {
        let mut request = self.client.request(call.method.clone(), call.url.clone());
        for (name, value) in &call.headers {
            request = request.header(*name, value);
        }
        if let Some((name, value)) = auth {
            request = request.header(name, value);
        }
        if let Some((content_type, body)) = &call.body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, *content_type)
                .body(body.clone());
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                return Attempt::Retry {
                    after: None,
                    why: transport_error(&e),
                };
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(e) => {
                return Attempt::Retry {
                    after: None,
                    why: format!("HTTP {status}, body cut off: {}", transport_error(&e)),
                };
            }
        };
        let body: Option<Value> = serde_json::from_slice(&bytes).ok();
        if let Some(verdict) = self.dialect.judge(status, &headers, body.as_ref()) {
            return match verdict {
                Verdict::Retry { after, why } => Attempt::Retry {
                    after: after.or_else(|| retry_after(&headers)),
                    why,
                },
                Verdict::Unauthorized(m) => Attempt::Unauthorized(m),
                Verdict::Refuse(m) => Attempt::Refuse(m),
            };
        }
        let message = || describe(status, body.as_ref(), &bytes);
        if status.is_success() {
            let Some(body) = body else {
                return Attempt::Retry {
                    after: None,
                    why: format!(
                        "HTTP {status} with a body that is not JSON ({} bytes)",
                        bytes.len()
                    ),
                };
            };
            if let Err(why) = check(&body) {
                return Attempt::Retry { after: None, why };
            }
            if let Some(pause) = self.dialect.pace(&headers, &body) {
                self.hold_off(pause).await;
            }
            return Attempt::Done(body);
        }
        match status {
            // Busy, or broken on their side (5xx includes CDNs' 52x).
            StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT => Attempt::Retry {
                after: retry_after(&headers),
                why: message(),
            },
            s if s.is_server_error() => Attempt::Retry {
                after: retry_after(&headers),
                why: message(),
            },
            StatusCode::UNAUTHORIZED => Attempt::Unauthorized(message()),
            _ => Attempt::Refuse(message()),
        }
    }

    /// The Authorization header, fetching an access token first if needed.
    async fn auth_header(&self) -> Result<Option<(&'static str, String)>, HttpError> {
        match &self.auth {
            Auth::None => Ok(None),
            Auth::Header { name, value } => Ok(Some((name, value.clone()))),
            Auth::OAuth(oauth) => {
                let token = match oauth.cached() {
                    Some(token) => token,
                    None => self.refresh(oauth).await?,
                };
                Ok(Some(("authorization", format!("Bearer {token}"))))
            }
        }
    }

    async fn refresh(&self, oauth: &OAuth) -> Result<String, HttpError> {
        let platform = self.platform();
        let refresh_token = oauth.refresh_token();
        let call = Call::post_form(
            oauth.token_url.clone(),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh_token),
                ("client_id", &oauth.client_id),
                ("client_secret", &oauth.client_secret),
            ],
        );
        let token_client = Http {
            client: self.client.clone(),
            policy: self.policy.clone(),
            // The platform's own dialect: token services throttle too.
            dialect: self.dialect.clone(),
            auth: Auth::None,
            limiter: self.limiter.clone(),
            breaker: self.breaker.clone(),
            // The same list: its warnings are scrubbed too.
            secrets: self.secrets.clone(),
        };
        // Boxed: the token call is itself a call that may need a token.
        let answer = Box::pin(token_client.json_unguarded(&call, &|v| {
            v["access_token"]
                .as_str()
                .map(|_| ())
                .ok_or_else(|| "token answer without access_token".to_string())
        }))
        .await
        .map_err(|e| match e {
            // invalid_grant and friends: 400 or 401 from the token service.
            HttpError::Refused { message, .. }
                if message.starts_with("HTTP 400") || message.starts_with("HTTP 401") =>
            {
                HttpError::Unauthorized {
                    platform,
                    message: format!("the refresh token was refused: {message}"),
                }
            }
            other => other,
        })?;
        let token = answer["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // Renew a minute early; assume an hour when the platform does not say.
        let lifetime = answer["expires_in"]
            .as_u64()
            .or_else(|| answer["expires_in"].as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(3600);
        let expires = Instant::now() + Duration::from_secs(lifetime.clamp(61, 86_400) - 60);
        let mut secrets = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
        secrets.push(token.clone());
        if let Some(rotated) = oauth.rotate(&answer) {
            secrets.push(rotated);
            tracing::info!(platform, "the platform rotated the refresh token");
        }
        drop(secrets);
        *oauth.token.lock().unwrap_or_else(|e| e.into_inner()) = Some((token.clone(), expires));
        tracing::debug!(platform, "fetched an access token");
        Ok(token)
    }

    /// Takes the next slot of the account's limiter, then waits for it (not
    /// holding the lock, so that other calls can take the slots after it).
    async fn wait_turn(&self) {
        let rate = self.policy.requests_per_second.clamp(MIN_RATE, MAX_RATE);
        let spacing = Duration::from_secs_f64(1.0 / rate);
        let slot = {
            let mut next = self.limiter.next.lock().await;
            let slot = Instant::now().max(*next);
            *next = slot + spacing;
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }

    /// Pushes the account's next call at least `pause` into the future.
    async fn hold_off(&self, pause: Duration) {
        let pause = pause.min(self.policy.max_wait);
        tracing::info!(
            platform = self.platform(),
            pause_ms = pause.as_millis() as u64,
            "platform usage is high; slowing down"
        );
        let mut next = self.limiter.next.lock().await;
        *next = (*next).max(Instant::now() + pause);
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        (self.policy.backoff * factor).min(self.policy.max_backoff)
    }

    /// Full jitter: uniformly in [0, up to].
    fn jitter(&self, up_to: Duration) -> Duration {
        let fraction: f64 = rand::rng().random();
        up_to.mul_f64(fraction)
    }

    fn breaker_check(&self) -> Result<(), HttpError> {
        let breaker = self.breaker.lock().unwrap_or_else(|e| e.into_inner());
        match breaker.open_until {
            Some((until, at)) if Instant::now() < until => Err(HttpError::CircuitOpen {
                platform: self.platform(),
                failures: breaker.failures,
                until: at,
            }),
            _ => Ok(()),
        }
    }

    fn breaker_record(&self, result: &Result<Value, HttpError>) {
        let mut breaker = self.breaker.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(_) | Err(HttpError::Refused { .. } | HttpError::Invalid { .. }) => {
                *breaker = Breaker::default();
            }
            Err(_) => {
                breaker.failures += 1;
                if breaker.failures >= self.policy.breaker_failures {
                    let cooldown = self.policy.breaker_cooldown;
                    breaker.open_until = Some((
                        Instant::now() + cooldown,
                        Utc::now() + chrono::Duration::from_std(cooldown).unwrap_or_default(),
                    ));
                    tracing::error!(
                        platform = self.platform(),
                        failures = breaker.failures,
                        "circuit opened"
                    );
                }
            }
        }
    }

    /// Replaces every known secret in `text`.
    fn scrub_text(&self, text: &str) -> String {
        let secrets = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
        secrets.iter().fold(text.to_string(), |acc, s| {
            acc.replace(s.as_str(), "<redacted>")
        })
    }

    fn scrub(&self, error: HttpError) -> HttpError {
        match error {
            HttpError::Exhausted {
                platform,
                call,
                attempts,
                seconds,
                last,
            } => HttpError::Exhausted {
                platform,
                call,
                attempts,
                seconds,
                last: self.scrub_text(&last),
            },
            HttpError::Refused {
                platform,
                call,
                message,
            } => HttpError::Refused {
                platform,
                call,
                message: self.scrub_text(&message),
            },
            HttpError::Unauthorized { platform, message } => HttpError::Unauthorized {
                platform,
                message: self.scrub_text(&message),
            },
            other => other,
        }
    }
}

/// A wait a platform asked for, in seconds: `None` unless a finite, non-negative
/// number; capped at a day (the policy's `max_wait` refuses long ones anyway),
/// so that no number a platform sends can overflow.
pub fn seconds(value: f64) -> Option<Duration> {
    (value.is_finite() && value >= 0.0).then(|| Duration::from_secs_f64(value.min(86_400.0)))
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return self::seconds(seconds);
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&Utc) - Utc::now()).to_std().ok()
}

/// A short description of an error answer for people: status and the
/// platform's message, not the whole body.
fn describe(status: StatusCode, body: Option<&Value>, bytes: &[u8]) -> String {
    let message = body.and_then(|b| {
        [
            &b["error"]["message"],
            &b["message"],
            &b["error_description"],
            &b[0]["message"],
            &b["error"],
        ]
        .into_iter()
        .find_map(|v| v.as_str().map(str::to_string))
    });
    let text = message
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned());
    format!("HTTP {}: {}", status.as_u16(), text.trim())
}

fn transport_error(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connect() {
        "could not connect".into()
    } else {
        // Without the URL's query, which may carry filters.
        let text = error.to_string();
        match error.url() {
            Some(url) => text.replace(url.as_str(), url.path()),
            None => text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_hold_what_is_in_use_and_drop_what_went_idle() {
        let guards = CallGuards::new(Duration::ZERO);
        let limiter = guards.limiter("ads/acme/1");
        let breaker = guards.breaker("acme/c1");
        // Asked for and let go at once: idle from then on.
        guards.limiter("ads/acme/2");
        guards.breaker("acme/c2");
        assert_eq!(guards.held(), (2, 2));
        // The next request drops the idle ones no client holds.
        let _held = (guards.limiter("ads/acme/3"), guards.breaker("acme/c3"));
        assert_eq!(guards.held(), (2, 2), "1 and 3 of each");
        // A platform's "slow down" and an open circuit outlive their clients.
        *limiter.next.try_lock().unwrap() = Instant::now() + Duration::from_secs(60);
        breaker.lock().unwrap().open_until =
            Some((Instant::now() + Duration::from_secs(60), Utc::now()));
        drop((limiter, breaker));
        guards.limiter("ads/acme/4");
        guards.breaker("acme/c4");
        assert_eq!(guards.held(), (3, 3), "1 (still meaningful), 3 (held), 4");
        // One key, one limiter, for every client that asks.
        assert!(Arc::ptr_eq(&guards.limiter("x"), &guards.limiter("x")));
        // Kept while not idle long enough.
        let patient = CallGuards::new(Duration::from_secs(3600));
        patient.limiter("a");
        patient.limiter("b");
        assert_eq!(patient.held().0, 2);
    }
}
