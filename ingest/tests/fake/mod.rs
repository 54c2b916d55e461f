//! An in-process fake of the eleven platform APIs the connectors call, as
//! specified in `SPEC.md` (read that first). Use it from a test with
//! `#[path = "fake/mod.rs"] mod fake;`.
//!
//! Where SPEC.md leaves room:
//! - fault kinds (`Fake::faults()` keys): `throttle_retry_after`, `throttle`,
//!   `server_error` (500 or 503), `timeout` (stalls, then answers normally),
//!   `truncated`, `malformed`, `repeat_page` (last unfaulted 200 body of the
//!   same platform and route), `token_expired`;
//! - cursors: Meta `after` and LinkedIn `pageToken` are base64url("offset:N");
//!   Shopify's is base64url(order number) and Stripe's `starting_after` the
//!   charge id (both resume strictly after that key); HubSpot `after` is the
//!   offset; Salesforce's locator is `01g<base64url(since:strict:batch)>-<offset>`;
//! - restatements apply to dates within 10 days of `today` at each `restate()`.
#![allow(dead_code)]

mod ads;
mod auth;
mod commerce;
mod crm;
mod data;
mod faults;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use chrono::NaiveDate;
use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng};
use serde_json::{Value, json};

#[allow(unused_imports)]
pub use data::PLATFORMS;
use data::World;

pub struct FakeConfig {
    /// First day of data.
    pub start: NaiveDate,
    /// Last day of data (moves with `advance`).
    pub today: NaiveDate,
    /// Entity multiplier (SPEC "Data").
    pub scale: usize,
    pub seed: u64,
    /// How long the timeout fault stalls.
    pub stall: Duration,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            start: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
            today: NaiveDate::from_ymd_opt(2026, 5, 29).unwrap(),
            scale: 1,
            seed: 7,
            stall: Duration::from_secs(3),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: String,
    pub platform: String,
}

/// The running fake; the server stops when it is dropped.
pub struct Fake {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub struct Shared {
    url: String,
    seed: u64,
    stall: Duration,
    /// While set, data requests (not token grants) wait.
    held: std::sync::atomic::AtomicBool,
    inner: Mutex<Inner>,
}

pub struct Inner {
    world: Arc<World>,
    /// Valid access tokens and the platform each was issued to.
    tokens: HashMap<String, &'static str>,
    issued: Vec<String>,
    /// GoHighLevel's refresh token now, and the one it replaced (good until
    /// the new one is used).
    refresh: Option<(String, Option<String>)>,
    /// GoHighLevel refresh grants: all, and those made with the token the
    /// current one replaced.
    grants: (usize, usize),
    counter: u64,
    faults: Option<(f64, StdRng)>,
    fault_counts: BTreeMap<String, usize>,
    /// The last unfaulted 200 body per (platform, route).
    last_ok: HashMap<String, Vec<u8>>,
    log: Vec<Logged>,
    reports: HashMap<String, ads::Report>,
}

impl Fake {
    pub async fn start(config: FakeConfig) -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let world = World::new(config.start, config.today, config.scale as u64, config.seed);
        let inner = Inner {
            world: Arc::new(world),
            tokens: HashMap::new(),
            issued: vec![],
            refresh: None,
            grants: (0, 0),
            counter: 0,
            faults: None,
            fault_counts: BTreeMap::new(),
            last_ok: HashMap::new(),
            log: vec![],
            reports: HashMap::new(),
        };
        let shared = Arc::new(Shared {
            url,
            seed: config.seed,
            stall: config.stall,
            held: false.into(),
            inner: Mutex::new(inner),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("fake server");
        });
        Fake { shared, task }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.inner.lock().unwrap()
    }
    fn world(&self) -> Arc<World> {
        self.inner().world.clone()
    }

    pub fn url(&self) -> String {
        self.shared.url.clone()
    }
    pub fn today(&self) -> NaiveDate {
        self.world().today
    }
    pub fn credentials(&self, platform: &str) -> Value {
        auth::credentials(self.shared.seed, data::platform(platform))
    }
    /// The credentials as field → value, as a connector takes them.
    pub fn credential_map(&self, platform: &str) -> BTreeMap<String, String> {
        let credentials = self.credentials(platform);
        credentials
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect()
    }
    pub fn account(&self, platform: &str) -> String {
        data::account(self.shared.seed, data::platform(platform))
    }
    /// Every credential and every access token issued so far.
    pub fn secrets(&self) -> Vec<String> {
        let mut s = auth::all_secrets(self.shared.seed);
        s.extend(self.inner().issued.iter().cloned());
        s
    }
    pub fn advance(&self, days: u32) {
        Arc::make_mut(&mut self.inner().world).advance(days);
    }
    pub fn restate(&self) {
        Arc::make_mut(&mut self.inner().world).restate();
    }
    /// Each data or token request gets a fault with probability `rate` (0: off).
    pub fn set_faults(&self, rate: f64, seed: u64) {
        self.inner().faults = (rate > 0.0).then(|| (rate, StdRng::seed_from_u64(seed)));
    }
    /// Faults injected so far, by kind (see `faults::KINDS`).
    pub fn faults(&self) -> BTreeMap<String, usize> {
        self.inner().fault_counts.clone()
    }
    pub fn requests(&self) -> Vec<Logged> {
        self.inner().log.clone()
    }
    /// Holds data requests (token grants still answer) until released.
    pub fn hold(&self, held: bool) {
        self.shared
            .held
            .store(held, std::sync::atomic::Ordering::SeqCst);
    }
    /// GoHighLevel refresh grants: all, and those presenting the replaced
    /// token (a client that lost the new one).
    pub fn refresh_grants(&self) -> (usize, usize) {
        self.inner().grants
    }
    pub fn request_count(&self) -> usize {
        self.inner().log.len()
    }
    /// The canonical rows a complete sync of `platform` must land.
    pub fn expected(&self, platform: &str) -> Vec<Value> {
        self.world().expected(data::platform(platform))
    }
}

/// A request, as the handlers see it.
pub struct Req {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Req {
    fn header(&self, k: &str) -> Option<&str> {
        self.headers.get(k)?.to_str().ok()
    }
    /// A query parameter, percent-decoded.
    fn param(&self, k: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    }
    fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }
    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
    fn segs(&self) -> Vec<&str> {
        self.path.trim_matches('/').split('/').collect()
    }
}

pub struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn json(status: u16, v: Value) -> Resp {
        Resp {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: v.to_string().into_bytes(),
        }
    }
    fn header(mut self, k: &str, v: &str) -> Resp {
        self.headers.push((k.into(), v.into()));
        self
    }
}

impl IntoResponse for Resp {
    fn into_response(self) -> Response {
        let mut b = Response::builder().status(self.status);
        for (k, v) in &self.headers {
            b = b.header(k, v);
        }
        b.body(Body::from(self.body)).unwrap()
    }
}

/// What a handler works with: a snapshot of the data, the request, the platform.
pub struct Ctx<'a> {
    shared: &'a Shared,
    world: Arc<World>,
    req: &'a Req,
    platform: &'static str,
}

/// Opaque cursors: URL-safe base64 without padding.
fn enc(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}
fn dec(s: &str) -> Option<String> {
    String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()
}
fn enc_offset(n: usize) -> String {
    enc(&format!("offset:{n}"))
}
fn dec_offset(s: &str) -> Option<usize> {
    dec(s)?.strip_prefix("offset:")?.parse().ok()
}
/// Percent-decodes once more (Rest.li values may arrive encoded twice).
fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let (mut out, mut i) = (Vec::with_capacity(b.len()), 0);
    while i < b.len() {
        let hex = (b[i] == b'%' && i + 2 < b.len())
            .then(|| u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).ok()?, 16).ok())
            .flatten();
        match hex {
            Some(x) => {
                out.push(x);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Clone, Copy, Debug)]
enum Route {
    Token(&'static [&'static str]),
    GoogleAds,
    Ga4,
    MetaCreate,
    MetaStatus,
    MetaInsights,
    LinkedInAccount,
    LinkedInCampaigns,
    LinkedInAnalytics,
    TikTok,
    Shopify,
    Stripe,
    StripeCharge,
    StripeBalance,
    HubSpot,
    SalesforceQuery,
    SalesforceMore,
    GoHighLevel,
}

fn route(seed: u64, req: &Req) -> Option<(Route, &'static str)> {
    use Route::*;
    if req.method == "POST"
        && let Some(family) = auth::token_family(&req.path)
    {
        return Some((
            Token(family),
            auth::token_platform(seed, family, req).unwrap_or(family[0]),
        ));
    }
    Some(match (req.method.as_str(), req.segs().as_slice()) {
        ("POST", ["v21", "customers", _, "googleAds:searchStream"]) => {
            (GoogleAds, ads::google_platform(req))
        }
        ("POST", ["v1beta", "properties", p]) if p.ends_with(":runReport") => (Ga4, "ga4"),
        ("POST", ["v21.0", node, "insights"]) if node.starts_with("act_") => {
            (MetaCreate, "meta_ads")
        }
        ("GET", ["v21.0", _, "insights"]) => (MetaInsights, "meta_ads"),
        ("GET", ["v21.0", _]) => (MetaStatus, "meta_ads"),
        ("GET", ["rest", "adAccounts", _]) => (LinkedInAccount, "linkedin_ads"),
        ("GET", ["rest", "adAccounts", _, "adCampaigns"]) => (LinkedInCampaigns, "linkedin_ads"),
        ("GET", ["rest", "adAnalytics"]) => (LinkedInAnalytics, "linkedin_ads"),
        ("GET", ["open_api", "v1.3", "report", "integrated", "get"]) => (TikTok, "tiktok_ads"),
        ("POST", ["admin", "api", "2025-07", "graphql.json"]) => (Shopify, "shopify"),
        ("GET", ["v1", "charges"]) => (Stripe, "stripe"),
        ("GET", ["v1", "charges", _]) => (StripeCharge, "stripe"),
        ("GET", ["v1", "balance_transactions"]) => (StripeBalance, "stripe"),
        ("POST", ["crm", "v3", "objects", "deals", "search"]) => (HubSpot, "hubspot"),
        ("GET", ["services", "data", "v61.0", "query"]) => (SalesforceQuery, "salesforce"),
        ("GET", ["services", "data", "v61.0", "query", _]) => (SalesforceMore, "salesforce"),
        ("GET", ["opportunities", "search"]) => (GoHighLevel, "gohighlevel"),
        _ => return None,
    })
}

fn answer(c: &Ctx, route: Route) -> Resp {
    match route {
        Route::Token(family) => auth::token(c, family),
        Route::GoogleAds => ads::google_ads(c),
        Route::Ga4 => ads::ga4(c),
        Route::MetaCreate => ads::meta_create(c),
        Route::MetaStatus => ads::meta_status(c),
        Route::MetaInsights => ads::meta_insights(c),
        Route::LinkedInAccount => ads::linkedin_account_get(c),
        Route::LinkedInCampaigns => ads::linkedin_campaigns(c),
        Route::LinkedInAnalytics => ads::linkedin_analytics(c),
        Route::TikTok => ads::tiktok(c),
        Route::Shopify => commerce::shopify(c),
        Route::Stripe => commerce::stripe(c),
        Route::StripeCharge => commerce::stripe_charge(c),
        Route::StripeBalance => commerce::stripe_balance(c),
        Route::HubSpot => crm::hubspot(c),
        Route::SalesforceQuery => crm::salesforce_query(c),
        Route::SalesforceMore => crm::salesforce_more(c),
        Route::GoHighLevel => crm::gohighlevel(c),
    }
}

struct Fault {
    kind: &'static str,
    alt: bool,
}

impl Inner {
    /// Draws this request's fault, if any, among the kinds that apply.
    fn draw_fault(
        &mut self,
        platform: &str,
        key: &str,
        continuation: bool,
        token: bool,
    ) -> Option<Fault> {
        let (rate, rng) = self.faults.as_mut()?;
        if rng.random::<f64>() >= *rate {
            return None;
        }
        let kinds: Vec<&'static str> = faults::KINDS
            .into_iter()
            .filter(|k| match *k {
                "repeat_page" => continuation && self.last_ok.contains_key(key),
                "token_expired" => !token && auth::is_oauth(platform),
                _ => true,
            })
            .collect();
        let kind = kinds[rng.random_range(0..kinds.len())];
        let alt = rng.random::<bool>();
        *self.fault_counts.entry(kind.into()).or_default() += 1;
        Some(Fault { kind, alt })
    }
}

async fn handle(State(s): State<Arc<Shared>>, request: axum::extract::Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let req = Req {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts.headers,
        body,
    };
    serve(&s, &req).await.into_response()
}

/// The paging sequence a request belongs to (its route and parameters
/// without the paging ones), and whether it continues one (asks for a page
/// after the first). "A page served twice" answers a continuation with the
/// page served just before in the same sequence, as a platform whose cursor
/// did not advance would; a first page is never a repeat.
fn sequence(route: Route, platform: &str, req: &Req) -> (String, bool) {
    const PAGING: [&str; 7] = [
        "after",
        "offset",
        "page",
        "starting_after",
        "pageToken",
        "startAfter",
        "startAfterId",
    ];
    if matches!(route, Route::SalesforceQuery | Route::SalesforceMore) {
        return (
            format!("{platform} opportunities"),
            matches!(route, Route::SalesforceMore),
        );
    }
    let mut continuation = false;
    let mut rest = Vec::new();
    for pair in req.query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if PAGING.contains(&k) {
            continuation |= !matches!((k, v), ("page", "1") | ("offset", "0"));
        } else {
            rest.push(pair);
        }
    }
    let mut body = serde_json::from_slice::<Value>(&req.body).unwrap_or(Value::Null);
    if let Some(object) = body.as_object_mut() {
        if let Some(after) = object.remove("after") {
            continuation |= after.as_str().is_some_and(|a| a != "0");
        }
        if let Some(offset) = object.remove("offset") {
            continuation |= !(offset == json!(0) || offset == json!("0"));
        }
        if let Some(cursor) = object
            .get_mut("variables")
            .and_then(Value::as_object_mut)
            .and_then(|v| v.remove("cursor"))
        {
            continuation |= !cursor.is_null();
        }
    }
    (
        format!("{platform} {} {} {body}", req.path, rest.join("&")),
        continuation,
    )
}

/// Logs the request and draws its fault (under the lock, no await).
fn begin(
    s: &Shared,
    req: &Req,
    routed: Option<(Route, &'static str)>,
) -> (Option<Fault>, Arc<World>, u64, String) {
    let mut inner = s.inner.lock().unwrap();
    inner.log.push(Logged {
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.query.clone(),
        body: String::from_utf8_lossy(&req.body).into_owned(),
        platform: routed.map_or("", |r| r.1).to_string(),
    });
    let seq = inner.log.len() as u64;
    let (key, continuation) = routed.map_or((String::new(), false), |(r, p)| sequence(r, p, req));
    let fault = routed
        .and_then(|(r, p)| inner.draw_fault(p, &key, continuation, matches!(r, Route::Token(_))));
    (fault, inner.world.clone(), seq, key)
}

async fn serve(s: &Shared, req: &Req) -> Resp {
    let routed = route(s.seed, req);
    if !matches!(routed, Some((Route::Token(_), _))) {
        while s.held.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let (fault, world, seq, key) = begin(s, req, routed);
    let Some((route, platform)) = routed else {
        return Resp::json(
            404,
            json!({"error": format!("the fake serves no {} {}", req.method, req.path)}),
        );
    };
    let c = Ctx {
        shared: s,
        world,
        req,
        platform,
    };
    let kind = fault.as_ref().map(|f| f.kind);
    let mut resp = match kind {
        Some("throttle_retry_after") => faults::throttle(platform).header("retry-after", "1"),
        Some("throttle") => faults::throttle(platform),
        Some("server_error") => faults::server_error(platform, fault.as_ref().unwrap().alt),
        Some("malformed") => Resp {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: b"<html><body>upstream error</body></html>".to_vec(),
        },
        Some("repeat_page") => {
            let body = s.inner.lock().unwrap().last_ok[&key].clone();
            Resp {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body,
            }
        }
        Some("token_expired") => {
            s.inner.lock().unwrap().tokens.clear();
            auth::unauthorized(platform)
        }
        Some("timeout") => {
            tokio::time::sleep(s.stall).await;
            answer(&c, route)
        }
        _ => answer(&c, route),
    };
    if kind.is_none() && resp.status == 200 {
        s.inner
            .lock()
            .unwrap()
            .last_ok
            .insert(key, resp.body.clone());
    }
    if kind == Some("truncated") {
        resp.status = 200;
        resp.body.truncate(resp.body.len() / 2);
    }
    if platform == "meta_ads" {
        let pct = if kind.is_some_and(|k| k.starts_with("throttle")) {
            100
        } else {
            seq % 40 + 1
        };
        resp = ads::meta_usage(resp, &data::account(s.seed, platform), pct);
    }
    resp
}
