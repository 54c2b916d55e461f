//! Admission: whether a request may start now, the same for every surface
//! (HTTP and Flight SQL share one [`Admission`] per process).
//!
//! - a token bucket per API key and one per tenant ([`RateLimiter`]): a key
//!   over its rate, or a tenant over its own (however many keys it spreads
//!   the load over), is refused with the seconds to wait;
//! - slots for work in progress ([`Slots`]), in the process and per tenant:
//!   one tenant can hold at most its share, so others always find slots.
//!   Past a cap the answer is an immediate refusal, never a queue that grows
//!   memory.
//!
//! ```
//! use gyrus_engine::admission::{Slots, Refusal};
//! use gyrus_engine::TenantId;
//!
//! let slots = Slots::new(4, 2);
//! let (acme, globex) = (TenantId::new("acme").unwrap(), TenantId::new("globex").unwrap());
//! let _a = slots.acquire(Some(&acme)).unwrap();
//! let _b = slots.acquire(Some(&acme)).unwrap();
//! assert!(matches!(slots.acquire(Some(&acme)), Err(Refusal::Busy { .. })));
//! assert!(slots.acquire(Some(&globex)).is_ok());
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::store::TenantId;

/// Requests per second, with bursts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second; 0 turns the limit off.
    pub per_second: f64,
    /// Requests that may come at once after being idle.
    pub burst: f64,
}

impl RateLimit {
    /// No limit.
    pub const OFF: RateLimit = RateLimit {
        per_second: 0.0,
        burst: 0.0,
    };
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: 100.0,
            burst: 200.0,
        }
    }
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
}

/// One token bucket per name (a key id, a tenant).
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Buckets idle this long are full again and are dropped, so the map only
/// holds names seen lately.
const IDLE_BUCKET: Duration = Duration::from_secs(600);

impl RateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        RateLimiter {
            limit,
            buckets: Mutex::default(),
        }
    }

    /// The limit each bucket refills at.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes a token for `name`, or says how many seconds until one is there.
    pub fn check(&self, name: &str) -> Result<(), u64> {
        let RateLimit { per_second, burst } = self.limit;
        if per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 10_000 {
            buckets.retain(|_, b| now.duration_since(b.refilled) < IDLE_BUCKET);
        }
        let bucket = buckets.entry(name.to_string()).or_insert(Bucket {
            tokens: burst,
            refilled: now,
        });
        let earned = now.duration_since(bucket.refilled).as_secs_f64() * per_second;
        bucket.tokens = (bucket.tokens + earned).min(burst.max(1.0));
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / per_second).ceil().max(1.0) as u64)
        }
    }
}

/// Who a refusal is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Key,
    Tenant,
    Server,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::Key => "key",
            Scope::Tenant => "tenant",
            Scope::Server => "server",
        })
    }
}

/// Why a request may not start now; every refusal says when to retry.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Over a rate limit.
    RateLimited {
        scope: Scope,
        per_second: f64,
        retry_after: u64,
    },
    /// Every slot of `scope` is taken.
    Busy {
        scope: Scope,
        what: &'static str,
        limit: usize,
    },
}

impl Refusal {
    /// Seconds after which a retry may succeed.
    pub fn retry_after(&self) -> u64 {
        match self {
            Refusal::RateLimited { retry_after, .. } => *retry_after,
            Refusal::Busy { .. } => 1,
        }
    }

    /// True for a rate limit (HTTP 429), false for full slots (503).
    pub fn is_rate_limit(&self) -> bool {
        matches!(self, Refusal::RateLimited { .. })
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::RateLimited {
                scope,
                per_second,
                retry_after,
            } => write!(
                f,
                "this {scope} is over its limit of {per_second} requests per second; retry after {retry_after} s"
            ),
            Refusal::Busy { scope, what, limit } => {
                let whose = match scope {
                    Scope::Server => "the server",
                    Scope::Tenant => "this tenant",
                    Scope::Key => "this key",
                };
                write!(
                    f,
                    "{whose} has its limit of {limit} {what} in progress; retry shortly"
                )
            }
        }
    }
}

/// Slots for work in progress: `total` in the process, at most `per_tenant`
/// of them held by one tenant.
pub struct Slots {
    what: &'static str,
    total: usize,
    per_tenant: usize,
    global: Arc<Semaphore>,
    tenants: Mutex<HashMap<TenantId, Arc<Semaphore>>>,
}

/// A held slot; dropping it frees it.
#[derive(Debug)]
pub struct Permit {
    _global: OwnedSemaphorePermit,
    _tenant: Option<OwnedSemaphorePermit>,
}

impl Slots {
    /// `total` slots, `per_tenant` of them for one tenant (both at least 1).
    pub fn new(total: usize, per_tenant: usize) -> Self {
        Self::named("requests", total, per_tenant)
    }

    /// Slots whose refusals call the work `what` ("requests", "ingests").
    pub fn named(what: &'static str, total: usize, per_tenant: usize) -> Self {
        let total = total.max(1);
        Slots {
            what,
            total,
            per_tenant: per_tenant.clamp(1, total),
            global: Arc::new(Semaphore::new(total)),
            tenants: Mutex::default(),
        }
    }

    /// A slot for `tenant` (`None`: a caller not yet known, who counts
    /// against the process only), or the refusal.
    pub fn acquire(&self, tenant: Option<&TenantId>) -> Result<Permit, Refusal> {
        let tenant_permit = match tenant {
            Some(tenant) => {
                let semaphore = {
                    let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
                    if tenants.len() > 10_000 {
                        // Forget idle tenants (all their slots free).
                        let per_tenant = self.per_tenant;
                        tenants.retain(|_, s| s.available_permits() < per_tenant);
                    }
                    tenants
                        .entry(tenant.clone())
                        .or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant)))
                        .clone()
                };
                Some(semaphore.try_acquire_owned().map_err(|_| Refusal::Busy {
                    scope: Scope::Tenant,
                    what: self.what,
                    limit: self.per_tenant,
                })?)
            }
            None => None,
        };
        let global = Arc::clone(&self.global)
            .try_acquire_owned()
            .map_err(|_| Refusal::Busy {
                scope: Scope::Server,
                what: self.what,
                limit: self.total,
            })?;
        Ok(Permit {
            _global: global,
            _tenant: tenant_permit,
        })
    }

    /// Slots of the process held now.
    pub fn in_use(&self) -> usize {
        self.total - self.global.available_permits()
    }

    /// Slots of the process, and of one tenant.
    pub fn limits(&self) -> (usize, usize) {
        (self.total, self.per_tenant)
    }
}

/// Settings of [`Admission`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdmissionConfig {
    /// Per API key (`--rate-limit`, `--rate-burst`).
    pub key_rate: RateLimit,
    /// Per tenant, over all its keys (`--tenant-rate-limit`).
    pub tenant_rate: RateLimit,
    /// Requests in progress in the process (`--max-concurrent`).
    pub max_concurrent: usize,
    /// Requests in progress for one tenant (`--max-concurrent-per-tenant`).
    pub max_concurrent_per_tenant: usize,
    /// Ingests in progress in the process (`--max-concurrent-ingests`); each
    /// holds its rows in memory.
    pub max_concurrent_ingests: usize,
    /// Ingests in progress for one tenant.
    pub max_concurrent_ingests_per_tenant: usize,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            key_rate: RateLimit::default(),
            tenant_rate: RateLimit {
                per_second: 400.0,
                burst: 800.0,
            },
            max_concurrent: 64,
            max_concurrent_per_tenant: 32,
            max_concurrent_ingests: 4,
            max_concurrent_ingests_per_tenant: 2,
        }
    }
}

/// What was admitted and refused, for `/metrics`.
#[derive(Debug, Default)]
pub struct AdmissionCounts {
    pub admitted: AtomicU64,
    pub rate_limited: AtomicU64,
    pub busy: AtomicU64,
}

/// Rate limits and slots of one process, shared by its servers.
pub struct Admission {
    config: AdmissionConfig,
    keys: RateLimiter,
    tenants: RateLimiter,
    /// Requests in progress.
    pub requests: Slots,
    /// Ingests in progress (inside request slots).
    pub ingests: Slots,
    pub counts: AdmissionCounts,
}

impl Admission {
    pub fn new(config: AdmissionConfig) -> Self {
        Admission {
            keys: RateLimiter::new(config.key_rate),
            tenants: RateLimiter::new(config.tenant_rate),
            requests: Slots::named(
                "requests",
                config.max_concurrent,
                config.max_concurrent_per_tenant,
            ),
            ingests: Slots::named(
                "ingests",
                config.max_concurrent_ingests,
                config.max_concurrent_ingests_per_tenant,
            ),
            counts: AdmissionCounts::default(),
            config,
        }
    }

    pub fn config(&self) -> &AdmissionConfig {
        &self.config
    }

    /// Takes a token from the key's and the tenant's buckets.
    pub fn check_rate(&self, key_id: &str, tenant: &TenantId) -> Result<(), Refusal> {
        let refused = |scope, limiter: &RateLimiter, retry_after| Refusal::RateLimited {
            scope,
            per_second: limiter.limit().per_second,
            retry_after,
        };
        let checked = self
            .keys
            .check(key_id)
            .map_err(|wait| refused(Scope::Key, &self.keys, wait))
            .and_then(|()| {
                self.tenants
                    .check(tenant.as_str())
                    .map_err(|wait| refused(Scope::Tenant, &self.tenants, wait))
            });
        self.count(checked)
    }

    /// A request slot for `tenant` (`None`: not yet authenticated).
    pub fn admit(&self, tenant: Option<&TenantId>) -> Result<Permit, Refusal> {
        self.count(self.requests.acquire(tenant))
    }

    /// An ingest slot for `tenant`.
    pub fn admit_ingest(&self, tenant: &TenantId) -> Result<Permit, Refusal> {
        self.count(self.ingests.acquire(Some(tenant)))
    }

    fn count<T>(&self, result: Result<T, Refusal>) -> Result<T, Refusal> {
        let counter = match &result {
            Ok(_) => &self.counts.admitted,
            Err(Refusal::RateLimited { .. }) => &self.counts.rate_limited,
            Err(Refusal::Busy { .. }) => &self.counts.busy,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }
}

impl Admission {
    /// The counts and slots in the Prometheus text format (HTTP and Flight
    /// SQL share them: one admission per process).
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# HELP gyrus_admission_total Requests admitted and refused (rate limits, busy slots), HTTP and Flight SQL.\n\
             # TYPE gyrus_admission_total counter\n",
        );
        for (outcome, value) in [
            ("admitted", &self.counts.admitted),
            ("rate_limited", &self.counts.rate_limited),
            ("busy", &self.counts.busy),
        ] {
            out.push_str(&format!(
                "gyrus_admission_total{{outcome=\"{outcome}\"}} {}\n",
                value.load(Ordering::Relaxed)
            ));
        }
        out.push_str(
            "# HELP gyrus_slots_in_use Request and ingest slots held now.\n\
             # TYPE gyrus_slots_in_use gauge\n",
        );
        for slots in [&self.requests, &self.ingests] {
            out.push_str(&format!(
                "gyrus_slots_in_use{{kind=\"{}\"}} {}\n",
                slots.what,
                slots.in_use()
            ));
        }
        out
    }
}

impl Default for Admission {
    fn default() -> Self {
        Admission::new(AdmissionConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_says_when_to_retry() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 0.5,
            burst: 3.0,
        });
        for _ in 0..3 {
            assert_eq!(limiter.check("k1"), Ok(()));
        }
        assert_eq!(limiter.check("k1"), Err(2));
        // Another key has its own bucket.
        assert_eq!(limiter.check("k2"), Ok(()));
        let off = RateLimiter::new(RateLimit::OFF);
        assert!((0..1000).all(|_| off.check("k").is_ok()));
    }

    #[test]
    fn a_tenant_over_its_rate_is_refused_whatever_key_it_uses() {
        let admission = Admission::new(AdmissionConfig {
            key_rate: RateLimit {
                per_second: 1.0,
                burst: 10.0,
            },
            tenant_rate: RateLimit {
                per_second: 1.0,
                burst: 15.0,
            },
            ..AdmissionConfig::default()
        });
        let acme = TenantId::new("acme").unwrap();
        let globex = TenantId::new("globex").unwrap();
        let mut refused = None;
        for i in 0..20 {
            let key = format!("k{}", i % 4);
            if let Err(r) = admission.check_rate(&key, &acme) {
                refused = Some(r);
                break;
            }
        }
        assert!(
            matches!(
                refused,
                Some(Refusal::RateLimited {
                    scope: Scope::Tenant,
                    ..
                })
            ),
            "{refused:?}"
        );
        assert!(admission.check_rate("g1", &globex).is_ok());
        assert!(admission.counts.rate_limited.load(Ordering::Relaxed) >= 1);
        let text = admission.render();
        assert!(
            text.contains("gyrus_admission_total{outcome=\"rate_limited\"} "),
            "{text}"
        );
        assert!(
            !text.contains("gyrus_admission_total{outcome=\"rate_limited\"} 0\n"),
            "{text}"
        );
    }

    #[test]
    fn one_tenant_cannot_take_every_slot() {
        let slots = Slots::new(4, 2);
        let acme = TenantId::new("acme").unwrap();
        let globex = TenantId::new("globex").unwrap();
        let held: Vec<_> = (0..2)
            .map(|_| slots.acquire(Some(&acme)).unwrap())
            .collect();
        let err = slots.acquire(Some(&acme)).unwrap_err();
        assert_eq!(
            err,
            Refusal::Busy {
                scope: Scope::Tenant,
                what: "requests",
                limit: 2
            }
        );
        assert!(err.to_string().contains("this tenant"), "{err}");
        let g1 = slots.acquire(Some(&globex)).unwrap();
        let _anon = slots.acquire(None).unwrap();
        // The process is full now.
        let err = slots.acquire(Some(&globex)).unwrap_err();
        assert!(
            matches!(
                err,
                Refusal::Busy {
                    scope: Scope::Server,
                    ..
                }
            ),
            "{err:?}"
        );
        drop(held);
        drop(g1);
        assert!(slots.acquire(Some(&acme)).is_ok());
    }
}
