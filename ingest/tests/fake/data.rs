//! Seeded data: every value is a hash of (seed, entity, date), plus the
//! restatement history and the deals' modification history kept in `World`.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};
use serde_json::{Value, json};

pub const ADS: [&str; 5] = [
    "google_ads",
    "youtube_ads",
    "meta_ads",
    "linkedin_ads",
    "tiktok_ads",
];
pub const CRM: [&str; 3] = ["hubspot", "salesforce", "gohighlevel"];
pub const OAUTH: [&str; 7] = [
    "google_ads",
    "youtube_ads",
    "ga4",
    "linkedin_ads",
    "hubspot",
    "salesforce",
    "gohighlevel",
];
pub const PLATFORMS: [&str; 11] = [
    "google_ads",
    "youtube_ads",
    "meta_ads",
    "linkedin_ads",
    "tiktok_ads",
    "ga4",
    "shopify",
    "stripe",
    "hubspot",
    "salesforce",
    "gohighlevel",
];
const SOURCES: [&str; 5] = ["google", "facebook", "newsletter", "tiktok", "linkedin"];
const CAMPAIGNS: [&str; 5] = [
    "spring_sale",
    "retargeting",
    "may_newsletter",
    "spark_ads",
    "b2b_leads",
];

pub fn platform(name: &str) -> &'static str {
    PLATFORMS
        .iter()
        .find(|p| **p == name)
        .copied()
        .unwrap_or_else(|| panic!("unknown platform {name}"))
}

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

pub fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// The hash every generated value comes from.
pub fn h(seed: u64, tag: &str, parts: &[u64]) -> u64 {
    parts.iter().fold(mix(seed ^ fnv(tag)), |x, p| mix(x ^ p))
}

pub fn day(d: NaiveDate) -> u64 {
    d.num_days_from_ce() as u64
}
pub fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_time(NaiveTime::MIN).and_utc()
}
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}
pub fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}
pub fn ts_ms(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S.000Z").to_string()
}
/// Whether `d` is within the last 10 days as of `today`.
fn recent(d: NaiveDate, today: NaiveDate) -> bool {
    d <= today && (today - d).num_days() < 10
}
fn pick<'a>(list: &[&'a str], x: u64) -> &'a str {
    list[(x % list.len() as u64) as usize]
}

/// The account a connector is configured with (see SPEC "Auth").
pub fn account(seed: u64, p: &str) -> String {
    let x = h(seed, "account", &[fnv(p)]);
    match p {
        "google_ads" | "youtube_ads" => {
            (1_000_000_000 + h(seed, "account", &[fnv("google")]) % 9_000_000_000).to_string()
        }
        "meta_ads" => (100_000_000_000_000 + x % 900_000_000_000_000).to_string(),
        "linkedin_ads" => (500_000_000 + x % 99_999_999).to_string(),
        "tiktok_ads" => (7_000_000_000_000_000_000 + x % 1_000_000_000_000_000_000).to_string(),
        "ga4" => (300_000_000 + x % 99_999_999).to_string(),
        "shopify" => format!("gyrus-fake-{:04x}", x & 0xffff),
        "stripe" => format!("acct_1Fk{:012x}", x & 0xffff_ffff_ffff),
        "hubspot" => (40_000_000 + x % 9_999_999).to_string(),
        "salesforce" => format!("00DFk{:013}", x % 10_000_000_000_000),
        _ => format!("Lc{x:016x}Fk"),
    }
}

/// One ad of an ads platform (LinkedIn: campaign, campaign group, creative).
pub struct Ad {
    pub campaign_id: u64,
    pub campaign_name: String,
    pub ad_group_id: u64,
    pub ad_id: u64,
    pub channel_type: &'static str,
}

impl Ad {
    pub fn channel(&self, p: &str) -> String {
        match p {
            "google_ads" => self.channel_type.to_lowercase(),
            "youtube_ads" => "video".into(),
            _ => "social".into(),
        }
    }
}

/// `3 * scale` campaigns, 2 ad groups each, 2 ads each, ordered by ad id.
/// LinkedIn: each campaign has 4 creatives and sits in campaign group `c / 2`.
pub fn ads(p: &str, scale: u64) -> Vec<Ad> {
    let pi = ADS.iter().position(|x| *x == p).expect("ads platform") as u64 + 1;
    let mut out = Vec::new();
    for c in 0..3 * scale {
        let campaign_id = pi * 100_000_000 + c + 1;
        let (channel_type, label) = match p {
            "google_ads" => [
                ("SEARCH", "Search – Brand"),
                ("DISPLAY", "Display – Retargeting"),
                ("SHOPPING", "Shopping – All Products"),
            ][(c % 3) as usize],
            "youtube_ads" => ("VIDEO", "YouTube – Awareness"),
            "meta_ads" => ("", "Meta – Prospecting"),
            "linkedin_ads" => ("", "LinkedIn – B2B Leads"),
            _ => ("", "TikTok – Spark Ads"),
        };
        for g in 0..2 {
            for a in 0..2 {
                let (ad_group_id, ad_id) = if p == "linkedin_ads" {
                    (
                        pi * 100_000_000 + 50_000_000 + c / 2 + 1,
                        campaign_id * 10 + g * 2 + a + 1,
                    )
                } else {
                    (
                        campaign_id * 10 + g + 1,
                        (campaign_id * 10 + g + 1) * 10 + a + 1,
                    )
                };
                let campaign_name = format!("{label} {}", c + 1);
                out.push(Ad {
                    campaign_id,
                    campaign_name,
                    ad_group_id,
                    ad_id,
                    channel_type,
                });
            }
        }
    }
    out
}

pub struct AdRow {
    pub ad: usize,
    pub date: NaiveDate,
    pub impressions: i64,
    pub clicks: i64,
    pub spend: i64,
    /// Conversions times two (Google's can be halves).
    pub conv2: i64,
    pub value: i64,
    pub video_views: i64,
}
impl AdRow {
    pub fn conversions(&self) -> f64 {
        self.conv2 as f64 / 2.0
    }
}

pub struct Ga4Row {
    pub date: NaiveDate,
    pub source: String,
    pub medium: String,
    pub campaign: String,
    pub m: [i64; 6], // sessions, users, new users, engaged sessions, key events, revenue cents
}

/// `8 * scale` (source, medium, campaign), sorted.
pub fn ga4_combos(scale: u64) -> Vec<(String, String, String)> {
    let base = [
        ("google", "cpc", "spring_sale"),
        ("facebook", "paid_social", "retargeting"),
        ("(direct)", "(none)", "(direct)"),
        ("newsletter", "email", "may_newsletter"),
        ("linkedin", "paid_social", "b2b_leads"),
        ("tiktok", "paid_social", "spark_ads"),
        ("google", "organic", "(organic)"),
        ("bing", "cpc", "(not set)"),
    ];
    let mut out: Vec<_> = (0..scale)
        .flat_map(|k| {
            base.iter().map(move |(s, m, c)| {
                let c = if k == 0 {
                    c.to_string()
                } else {
                    format!("{c}_{k}")
                };
                (s.to_string(), m.to_string(), c)
            })
        })
        .collect();
    out.sort();
    out
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Status {
    Open,
    Won,
    Lost,
    Abandoned,
}

#[derive(Clone)]
pub struct Deal {
    pub n: u64,
    pub created: DateTime<Utc>,
    pub status: Status,
    pub closed: Option<DateTime<Utc>>,
    pub modified: DateTime<Utc>,
}

pub struct Order {
    pub number: u64,
    pub created: DateTime<Utc>,
    pub amount: i64,
    pub customer: Option<u64>,
    pub financial: &'static str,
    pub cancelled: Option<DateTime<Utc>>,
    /// 0: no journey summary, 1: no last visit, 2: no UTM parameters, 3: UTM set.
    pub journey: u64,
    pub utm: (String, String),
}

pub struct Charge {
    pub number: u64,
    pub created: DateTime<Utc>,
    pub amount: i64,
    pub currency: &'static str,
    pub customer: Option<u64>,
    pub status: &'static str,
    pub refunded: bool,
    pub amount_refunded: i64,
    pub utm: Option<(String, String)>,
}
impl Charge {
    pub fn id(&self) -> String {
        format!("ch_3Fk{:012}", self.number)
    }
}

/// Everything that is not a pure hash: the calendar, restatements, deals.
#[derive(Clone)]
pub struct World {
    pub start: NaiveDate,
    pub today: NaiveDate,
    pub scale: u64,
    pub seed: u64,
    /// `today` at each `restate()`.
    pub restates: Vec<NaiveDate>,
    /// (platform, ad id or GA4 combination, date) rows dropped by restatements.
    pub removed: HashSet<(&'static str, u64, NaiveDate)>,
    pub deals: BTreeMap<&'static str, Vec<Deal>>,
    /// The fake clock deals are modified by; only moves forward.
    pub clock: DateTime<Utc>,
    pub events: u64,
}

impl World {
    pub fn new(start: NaiveDate, today: NaiveDate, scale: u64, seed: u64) -> World {
        let clock = midnight(today) + Duration::hours(23);
        let mut w = World {
            start,
            today,
            scale,
            seed,
            restates: vec![],
            removed: HashSet::new(),
            deals: BTreeMap::new(),
            clock,
            events: 0,
        };
        let span = (clock - midnight(start)).num_seconds().max(1) as u64;
        for p in CRM {
            let n = 100 * scale;
            let deals = (0..n)
                .map(|i| {
                    let r = |t: &str| h(seed, t, &[fnv(p), i]);
                    let off = i * span / n + r("created") % (span / n).max(1);
                    let created = midnight(start) + Duration::seconds(off.min(span - 1) as i64);
                    let left = (clock - created).num_seconds().max(1) as u64;
                    let status = match r("status") % 10 {
                        0..=3 => Status::Open,
                        4..=6 => Status::Won,
                        9 if p == "gohighlevel" => Status::Abandoned,
                        _ => Status::Lost,
                    };
                    let closed = (status != Status::Open)
                        .then(|| created + Duration::seconds((r("closed") % left) as i64));
                    let modified = closed
                        .unwrap_or(created + Duration::seconds((r("modified") % left) as i64));
                    Deal {
                        n: i,
                        created,
                        status,
                        closed,
                        modified,
                    }
                })
                .collect();
            w.deals.insert(p, deals);
        }
        w
    }

    /// Moves `today`; adds `scale` deals a day; closes ~10% of the open deals.
    pub fn advance(&mut self, days: u32) {
        let old = self.today;
        self.today = old + Duration::days(days as i64);
        for p in CRM {
            let deals = self.deals.get_mut(p).unwrap();
            for d in 1..=days as i64 {
                let date = old + Duration::days(d);
                for _ in 0..self.scale {
                    let n = deals.len() as u64;
                    let created = midnight(date)
                        + Duration::seconds(
                            (h(self.seed, "created", &[fnv(p), n]) % 82_800) as i64,
                        );
                    deals.push(Deal {
                        n,
                        created,
                        status: Status::Open,
                        closed: None,
                        modified: created,
                    });
                }
            }
        }
        self.clock =
            (self.clock + Duration::seconds(1)).max(midnight(self.today) + Duration::hours(23));
        self.close_some();
    }

    /// Adds a conversion to recent rows, drops one row at `today - 3`,
    /// refunds recent orders numbered by 7, closes ~10% of the open deals.
    pub fn restate(&mut self) {
        let i = self.restates.len() as u64;
        self.restates.push(self.today);
        let d = self.today - Duration::days(3);
        if d >= self.start {
            let mut entities: Vec<(&'static str, Vec<u64>)> = ADS
                .iter()
                .map(|p| (*p, ads(p, self.scale).iter().map(|a| a.ad_id).collect()))
                .collect();
            entities.push(("ga4", (0..ga4_combos(self.scale).len() as u64).collect()));
            for (p, keys) in entities {
                let from = (h(self.seed, "drop", &[fnv(p), i]) % keys.len() as u64) as usize;
                let hit = (0..keys.len())
                    .map(|k| keys[(from + k) % keys.len()])
                    .find(|k| !self.removed.contains(&(p, *k, d)) && self.present(p, *k, d));
                if let Some(k) = hit {
                    self.removed.insert((p, k, d));
                }
            }
        }
        self.clock += Duration::seconds(1);
        self.close_some();
    }

    fn close_some(&mut self) {
        self.events += 1;
        let (seed, e, clock) = (self.seed, self.events, self.clock);
        for (p, deals) in self.deals.iter_mut() {
            for deal in deals.iter_mut().filter(|d| d.status == Status::Open) {
                if h(seed, "close", &[fnv(p), e, deal.n]).is_multiple_of(10) {
                    let won = h(seed, "won", &[fnv(p), e, deal.n]).is_multiple_of(2);
                    deal.status = if won { Status::Won } else { Status::Lost };
                    deal.closed = Some(clock);
                    deal.modified = clock;
                }
            }
        }
    }

    fn restated(&self, d: NaiveDate) -> i64 {
        self.restates.iter().filter(|r| recent(d, **r)).count() as i64
    }

    fn present(&self, p: &str, key: u64, d: NaiveDate) -> bool {
        let x = h(self.seed, "present", &[fnv(p), key, day(d)]);
        if p == "ga4" {
            !x.is_multiple_of(12)
        } else {
            !x.is_multiple_of(10)
        }
    }

    fn dates(&self, from: NaiveDate, to: NaiveDate) -> impl Iterator<Item = NaiveDate> {
        let (from, to) = (from.max(self.start), to.min(self.today));
        (0..=(to - from).num_days()).map(move |i| from + Duration::days(i))
    }

    /// The (date, ad index) of the rows of `p` in [from, to], ordered by
    /// (date, ad id): one hash per candidate, so paging is cheap.
    pub fn ad_keys(
        &self,
        p: &'static str,
        ads: &[Ad],
        from: NaiveDate,
        to: NaiveDate,
    ) -> Vec<(NaiveDate, usize)> {
        let present = |d: NaiveDate, ad: &Ad| {
            self.present(p, ad.ad_id, d) && !self.removed.contains(&(p, ad.ad_id, d))
        };
        self.dates(from, to)
            .flat_map(|d| {
                ads.iter()
                    .enumerate()
                    .filter(move |(_, ad)| present(d, ad))
                    .map(move |(i, _)| (d, i))
            })
            .collect()
    }

    /// The metrics of ad `i` of `p` on `d`.
    pub fn ad_row(&self, p: &str, ads: &[Ad], (d, i): (NaiveDate, usize)) -> AdRow {
        let (ad, k) = (&ads[i], self.restated(d));
        let r = |t: &str| h(self.seed, t, &[fnv(p), ad.ad_id, day(d)]) as i64 & i64::MAX;
        let impressions = 100 + r("impressions") % 5000;
        let clicks = r("clicks") % (impressions / 20 + 1);
        let spend = clicks * (20 + r("cpc") % 280) + r("cpm") % 500;
        let conv2 = if p == "google_ads" || p == "youtube_ads" {
            r("conv") % (clicks / 5 + 3)
        } else {
            2 * (r("conv") % (clicks / 10 + 2))
        };
        let value = conv2 * (500 + r("price") % 4500);
        let video_views = match p {
            "google_ads" => 0,
            "youtube_ads" => impressions / 3 + r("views") % (impressions / 3 + 1),
            "linkedin_ads" => r("views") % (impressions / 10 + 1),
            _ => r("views") % (impressions / 5 + 1),
        };
        AdRow {
            ad: i,
            date: d,
            impressions,
            clicks,
            spend,
            conv2: conv2 + 2 * k,
            value: value + 100 * k,
            video_views,
        }
    }

    /// All rows of an ads platform in [from, to], ordered by (date, ad id).
    pub fn ad_rows(
        &self,
        p: &'static str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> (Vec<Ad>, Vec<AdRow>) {
        let ads = ads(p, self.scale);
        let rows = self
            .ad_keys(p, &ads, from, to)
            .into_iter()
            .map(|k| self.ad_row(p, &ads, k))
            .collect();
        (ads, rows)
    }

    /// The (date, combination) of the GA4 rows in [from, to], ordered by
    /// (date, source, medium, campaign).
    pub fn ga4_keys(&self, from: NaiveDate, to: NaiveDate) -> Vec<(NaiveDate, usize)> {
        let n = ga4_combos(self.scale).len();
        let present = |d: NaiveDate, k: u64| {
            self.present("ga4", k, d) && !self.removed.contains(&("ga4", k, d))
        };
        self.dates(from, to)
            .flat_map(|d| {
                (0..n)
                    .filter(move |i| present(d, *i as u64))
                    .map(move |i| (d, i))
            })
            .collect()
    }

    pub fn ga4_row(
        &self,
        combos: &[(String, String, String)],
        (d, i): (NaiveDate, usize),
    ) -> Ga4Row {
        let (key, k) = (i as u64, self.restated(d));
        let r = |t: &str| h(self.seed, t, &[fnv("ga4"), key, day(d)]) as i64 & i64::MAX;
        let sessions = 10 + r("sessions") % 490;
        let users = sessions - r("users") % (sessions / 4 + 1);
        let new_users = r("new") % (users + 1);
        let engaged = r("engaged") % (sessions + 1);
        let events = r("events") % (sessions / 20 + 1);
        let revenue = events * (500 + r("price") % 19_500);
        let (source, medium, campaign) = combos[i].clone();
        Ga4Row {
            date: d,
            source,
            medium,
            campaign,
            m: [
                sessions,
                users,
                new_users,
                engaged,
                events + k,
                revenue + 100 * k,
            ],
        }
    }

    fn stride(&self) -> u64 {
        25 * self.scale
    }
    fn day_count(&self, tag: &str, d: NaiveDate) -> u64 {
        15 * self.scale + h(self.seed, "count", &[fnv(tag), day(d)]) % (10 * self.scale + 1)
    }
    fn sale_time(&self, tag: &str, number: u64) -> DateTime<Utc> {
        let d = self.start + Duration::days(((number - 1001) / self.stride()) as i64);
        midnight(d) + Duration::seconds((h(self.seed, "time", &[fnv(tag), number]) % 86_400) as i64)
    }
    /// The creation time of sale `number` if it exists.
    pub fn sale(&self, tag: &str, number: u64) -> Option<DateTime<Utc>> {
        let n = number.checked_sub(1001)?;
        let d = self.start + Duration::days((n / self.stride()) as i64);
        (d <= self.today && n % self.stride() < self.day_count(tag, d))
            .then(|| self.sale_time(tag, number))
    }
    /// (created, number) of Shopify orders or Stripe charges created in
    /// [from, to), ascending (descending if `desc`), generated a day at a time.
    pub fn sales<'a>(
        &'a self,
        tag: &'a str,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        desc: bool,
    ) -> impl Iterator<Item = (DateTime<Utc>, u64)> + 'a {
        let (lo, hi) = (
            from.map_or(self.start, |t| t.date_naive()),
            to.map_or(self.today, |t| t.date_naive()),
        );
        let mut days: Vec<NaiveDate> = self.dates(lo, hi).collect();
        if desc {
            days.reverse();
        }
        days.into_iter().flat_map(move |d| {
            let first = 1001 + (d - self.start).num_days() as u64 * self.stride();
            let mut v: Vec<_> = (first..first + self.day_count(tag, d))
                .map(|n| (self.sale_time(tag, n), n))
                .filter(|(t, _)| from.is_none_or(|f| *t >= f) && to.is_none_or(|e| *t < e))
                .collect();
            v.sort();
            if desc {
                v.reverse();
            }
            v
        })
    }
    /// When a restatement refunded this charge: recent ones numbered by 7,
    /// and older ones (35-60 days, numbered by 11), whose refund lies
    /// outside a 30-day lookback of the charge: only the refund's balance
    /// transaction tells of it.
    pub fn restatement_refund(&self, number: u64, created: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let day = created.date_naive();
        self.restates
            .iter()
            .find(|r| {
                (number.is_multiple_of(7) && recent(day, **r))
                    || (number.is_multiple_of(11) && (35..=60).contains(&(**r - day).num_days()))
            })
            .map(|r| midnight(*r) + Duration::hours(12))
    }
    fn refunded_by_restatement(&self, number: u64, created: DateTime<Utc>) -> bool {
        number.is_multiple_of(7)
            && self
                .restates
                .iter()
                .any(|r| recent(created.date_naive(), *r))
    }

    pub fn order(&self, number: u64) -> Order {
        let created = self.sale_time("shopify", number);
        let r = |t: &str| h(self.seed, t, &[fnv("shopify"), number]);
        let financial = if self.refunded_by_restatement(number, created) || r("refund") % 25 == 1 {
            "REFUNDED"
        } else if r("refund") % 20 == 0 {
            "PARTIALLY_REFUNDED"
        } else {
            "PAID"
        };
        Order {
            number,
            created,
            financial,
            amount: 500 + (r("amount") % 49_500) as i64,
            customer: (r("guest") % 5 != 0).then(|| 77 + r("customer") % (500 * self.scale)),
            cancelled: (r("cancel") % 30 == 2).then(|| created + Duration::hours(1)),
            journey: r("journey") % 4,
            utm: (
                pick(&SOURCES, r("utm")).into(),
                pick(&CAMPAIGNS, r("utm") >> 8).into(),
            ),
        }
    }

    pub fn charge(&self, number: u64) -> Charge {
        let created = self.sale_time("stripe", number);
        let r = |t: &str| h(self.seed, t, &[fnv("stripe"), number]);
        let status = match r("status") % 10 {
            0 => "failed",
            1 => "pending",
            _ => "succeeded",
        };
        let amount = 500 + (r("amount") % 49_500) as i64;
        let refunded = status == "succeeded"
            && (r("refund") % 25 == 3 || self.restatement_refund(number, created).is_some());
        let partial = status == "succeeded" && !refunded && r("refund") % 20 == 5;
        Charge {
            number,
            created,
            amount,
            status,
            refunded,
            currency: if r("jpy") % 15 == 0 { "jpy" } else { "usd" },
            customer: (r("guest") % 4 != 0).then(|| r("customer") % (1 << 40)),
            amount_refunded: if refunded {
                amount
            } else if partial {
                amount / 2
            } else {
                0
            },
            utm: (r("utm") % 3 != 0).then(|| {
                (
                    pick(&SOURCES, r("utm") >> 4).into(),
                    pick(&CAMPAIGNS, r("utm") >> 12).into(),
                )
            }),
        }
    }

    /// Per-deal static properties.
    pub fn deal_hash(&self, p: &str, tag: &str, n: u64) -> u64 {
        h(self.seed, tag, &[fnv(p), n])
    }
    pub fn deal_amount(&self, p: &str, n: u64) -> Option<i64> {
        let x = self.deal_hash(p, "amount", n);
        (!x.is_multiple_of(10)).then(|| (1000 + (x >> 8) % 99_000) as i64 * 50)
    }
    pub fn deal_currency(&self, p: &str, n: u64) -> &'static str {
        if p != "gohighlevel" && self.deal_hash(p, "currency", n) % 10 == 1 {
            "EUR"
        } else {
            "USD"
        }
    }
    pub fn deal_source(&self, p: &str, n: u64) -> Option<String> {
        let x = self.deal_hash(p, "source", n);
        match p {
            "salesforce" => {
                (!x.is_multiple_of(3)).then(|| format!("701Fk{:013}", (x >> 8) % (20 * self.scale)))
            }
            _ => (!x.is_multiple_of(4)).then(|| pick(&CAMPAIGNS, x >> 8).to_string()),
        }
    }
    /// Salesforce AccountId, GoHighLevel contact id.
    pub fn deal_customer(&self, p: &str, n: u64) -> Option<String> {
        let x = self.deal_hash(p, "customer", n);
        match p {
            "salesforce" => {
                (!x.is_multiple_of(5)).then(|| format!("001Fk{:013}", (x >> 8) % (40 * self.scale)))
            }
            _ => Some(format!("ct{:018}", (x >> 8) % (60 * self.scale))),
        }
    }
    pub fn deal_stage(&self, p: &str, d: &Deal) -> String {
        let k = self.deal_hash(p, "stage", d.n);
        match (p, d.status) {
            ("hubspot", Status::Won) => "closedwon".into(),
            ("hubspot", Status::Lost | Status::Abandoned) => "closedlost".into(),
            ("hubspot", _) => pick(
                &[
                    "appointmentscheduled",
                    "qualifiedtobuy",
                    "presentationscheduled",
                    "decisionmakerboughtin",
                    "contractsent",
                ],
                k,
            )
            .into(),
            ("salesforce", Status::Won) => "Closed Won".into(),
            ("salesforce", Status::Lost | Status::Abandoned) => "Closed Lost".into(),
            ("salesforce", _) => pick(
                &[
                    "Prospecting",
                    "Qualification",
                    "Needs Analysis",
                    "Proposal/Price Quote",
                    "Negotiation/Review",
                ],
                k,
            )
            .into(),
            _ => format!("{}-stage-{}", self.ghl_pipeline(d.n), k % 5 + 1),
        }
    }
    pub fn ghl_pipeline(&self, n: u64) -> &'static str {
        pick(
            &["pipeline-sales-7Fk2", "pipeline-renewals-9Qx4"],
            self.deal_hash("gohighlevel", "pipeline", n),
        )
    }
    pub fn deal_id(p: &str, n: u64) -> String {
        match p {
            "hubspot" => (10_000_000_000 + n).to_string(),
            "salesforce" => format!("006Fk{n:013}"),
            _ => format!("op{n:018}"),
        }
    }
    /// Salesforce's CloseDate: the close date, or an expected one for open deals.
    pub fn sf_close_date(d: &Deal) -> NaiveDate {
        d.closed
            .map_or(d.created.date_naive() + Duration::days(30), |c| {
                c.date_naive()
            })
    }

    /// What a complete sync of `p` must land (SPEC "Canonical rows").
    pub fn expected(&self, p: &'static str) -> Vec<Value> {
        let acct = account(self.seed, p);
        let combos = ga4_combos(self.scale);
        match p {
            "ga4" => self.ga4_keys(self.start, self.today).into_iter().map(|k| self.ga4_row(&combos, k)).map(|r| json!({
                "date": r.date.to_string(), "property_id": acct, "source": r.source, "medium": r.medium,
                "campaign": r.campaign, "sessions": r.m[0], "users": r.m[1], "new_users": r.m[2],
                "engaged_sessions": r.m[3], "conversions": r.m[4] as f64, "revenue": money(r.m[5]), "currency": "USD",
            })).collect(),
            "shopify" => self.sales(p, None, None, false).map(|(_, n)| {
                let o = self.order(n);
                let status = if o.cancelled.is_some() { "cancelled" } else if o.financial == "REFUNDED" { "refunded" } else { "paid" };
                let utm = o.journey == 3;
                json!({
                    "order_id": n.to_string(),
                    "customer_id": o.customer.map_or(format!("guest:{n}"), |c| c.to_string()),
                    "created_at": ts(o.created), "amount": money(o.amount), "currency": "USD", "status": status,
                    "source": "shopify", "utm_source": utm.then_some(&o.utm.0), "utm_campaign": utm.then_some(&o.utm.1),
                })
            }).collect(),
            "stripe" => self.sales(p, None, None, false).map(|(_, n)| self.charge(n)).filter(|c| c.status == "succeeded").map(|c| json!({
                "order_id": c.id(),
                "customer_id": c.customer.map_or(format!("guest:{}", c.id()), |x| format!("cus_Fk{x:010}")),
                "created_at": ts(c.created),
                "amount": if c.currency == "jpy" { c.amount.to_string() } else { money(c.amount) },
                "currency": c.currency.to_uppercase(), "status": if c.refunded { "refunded" } else { "paid" },
                "source": "stripe", "utm_source": c.utm.as_ref().map(|u| &u.0), "utm_campaign": c.utm.as_ref().map(|u| &u.1),
            })).collect(),
            "hubspot" | "salesforce" | "gohighlevel" => self.deals[p].iter().map(|d| {
                let closed = d.status != Status::Open;
                let closed_at = match p {
                    "salesforce" => closed.then(|| ts(midnight(Self::sf_close_date(d)))),
                    _ => d.closed.map(ts),
                };
                json!({
                    "deal_id": Self::deal_id(p, d.n),
                    "customer_id": if p == "hubspot" { None } else { self.deal_customer(p, d.n) },
                    "pipeline": match p { "hubspot" => "default", "salesforce" => "default", _ => self.ghl_pipeline(d.n) },
                    "stage": self.deal_stage(p, d),
                    "amount": money(self.deal_amount(p, d.n).unwrap_or(0)),
                    "currency": self.deal_currency(p, d.n), "created_at": ts(d.created), "closed_at": closed_at,
                    "is_won": closed.then_some(d.status == Status::Won), "source_campaign": self.deal_source(p, d.n),
                })
            }).collect(),
            _ => {
                let (ads, rows) = self.ad_rows(p, self.start, self.today);
                rows.iter().map(|r| {
                    let ad = &ads[r.ad];
                    json!({
                        "platform": p, "account_id": acct, "campaign_id": ad.campaign_id.to_string(),
                        "campaign_name": ad.campaign_name, "ad_group_id": ad.ad_group_id.to_string(),
                        "ad_id": ad.ad_id.to_string(), "channel": ad.channel(p), "date": r.date.to_string(),
                        "impressions": r.impressions, "clicks": r.clicks, "spend": money(r.spend),
                        "currency": if p == "tiktok_ads" { "EUR" } else { "USD" }, "conversions": r.conversions(),
                        "conversion_value": money(r.value), "video_views": r.video_views,
                    })
                }).collect()
            }
        }
    }
}
