//! Exclusive work across processes: claims and leases kept in the store.
//!
//! Both rest on one primitive every object store offers: create an object
//! only if it does not exist (an `O_EXCL` link on a local folder, a
//! conditional put on S3). Of two processes creating the same name, exactly
//! one succeeds, whichever machine they run on.
//!
//! - A **claim** is one such object under `_system/claims/`: the registry
//!   claims each model version before using it, so two runs can never both
//!   be version 7.
//! - A **lease** names a piece of work (a tenant × family training, a
//!   connector's sync) and is a numbered chain of claims under
//!   `_system/leases/<name>/`: link *n* says who holds the lease and until
//!   when. Taking a free or expired lease, renewing it and releasing it each
//!   create link *n + 1*, so a holder that slept past its expiry finds its
//!   renewal refused once another process took over. A holder that dies
//!   (SIGKILL, a lost machine) simply stops renewing: the lease expires and
//!   the next process takes it.
//!
//! ```no_run
//! # async fn run() -> gyrus_engine::Result<()> {
//! use std::time::Duration;
//! use gyrus_engine::{Store, lease::Taken};
//!
//! let store = Store::open("./gyrus-data").await?;
//! match store.take_lease(&["train", "acme", "oracle"], Duration::from_secs(60)).await? {
//!     Taken::Held(lease) => {
//!         // … the work; the lease renews itself meanwhile …
//!         lease.release().await?;
//!     }
//!     Taken::Busy(other) => println!("{} runs it until {}", other.holder, other.expires_at),
//! }
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt as _;
use object_store::path::Path;
use object_store::{ObjectStoreExt as _, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::store::Store;

/// The default time a lease lasts without renewal.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

/// Links of a lease's chain kept behind the newest (older ones are deleted).
const LINKS_KEPT: u64 = 2;

/// One link of a lease's chain: who holds it and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseState {
    /// The holding process (`host:pid:nonce`).
    pub holder: String,
    /// When the lease ends unless renewed.
    pub expires_at: DateTime<Utc>,
    /// Given back before its expiry.
    pub released: bool,
}

impl LeaseState {
    /// Whether the lease still binds others at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        !self.released && self.expires_at > now
    }
}

/// What taking a lease gave.
pub enum Taken {
    /// This process holds it until [`Lease::release`] or its drop.
    Held(Lease),
    /// Another process holds it.
    Busy(LeaseState),
}

/// A lease this process holds. A background task renews it every third of
/// its time to live. [`Lease::release`] frees it at once; dropping it (work
/// that failed or was cancelled) stops the renewals and frees it in the
/// background. Only a process that dies leaves it to expire.
pub struct Lease {
    inner: Arc<LeaseInner>,
    renewer: tokio::task::JoinHandle<()>,
}

struct LeaseInner {
    store: Store,
    name: String,
    holder: String,
    ttl: Duration,
    /// The newest link this holder created.
    link: std::sync::Mutex<u64>,
    lost: AtomicBool,
    /// Given back (by `release` or the drop).
    released: AtomicBool,
}

impl Store {
    /// Creates `_system/claims/<parts…>` unless it exists: `true` when this
    /// call created it, `false` when someone had already claimed it.
    pub async fn claim(&self, parts: &[&str], note: &str) -> Result<bool> {
        let path = self.system_path("claims", parts)?;
        self.create_once(&path, note.as_bytes().to_vec()).await
    }

    /// Takes the lease named by `parts` for `ttl` if it is free, expired or
    /// released.
    pub async fn take_lease(&self, parts: &[&str], ttl: Duration) -> Result<Taken> {
        let name = lease_name(parts)?;
        let holder = holder_id();
        // Two rounds: a lost race against another taker is read again once.
        for _ in 0..2 {
            let newest = self.newest_link(&name).await?;
            let next = match &newest {
                Some((_, state)) if state.is_live(Utc::now()) => {
                    return Ok(Taken::Busy(state.clone()));
                }
                Some((n, _)) => n + 1,
                None => 0,
            };
            let state = LeaseState {
                holder: holder.clone(),
                expires_at: Utc::now() + ttl,
                released: false,
            };
            if self.put_link(&name, next, &state).await? {
                let inner = Arc::new(LeaseInner {
                    store: self.clone(),
                    name,
                    holder,
                    ttl,
                    link: std::sync::Mutex::new(next),
                    lost: AtomicBool::new(false),
                    released: AtomicBool::new(false),
                });
                inner.prune(next).await;
                let renewer = tokio::spawn(renew_until_dropped(inner.clone()));
                tracing::debug!(lease = %inner.name, link = next, "lease taken");
                return Ok(Taken::Held(Lease { inner, renewer }));
            }
        }
        match self.newest_link(&name).await? {
            Some((_, state)) => Ok(Taken::Busy(state)),
            None => Err(EngineError::Internal(format!(
                "lease {name}: its links vanished while it was taken"
            ))),
        }
    }

    /// The lease's newest state, if it was ever taken.
    pub async fn lease_state(&self, parts: &[&str]) -> Result<Option<LeaseState>> {
        let name = lease_name(parts)?;
        Ok(self.newest_link(&name).await?.map(|(_, state)| state))
    }

    fn system_path(&self, kind: &str, parts: &[&str]) -> Result<Path> {
        let name = lease_name(parts)?;
        self.object_path(&format!("_system/{kind}/{name}"))
    }

    fn link_path(&self, name: &str, link: u64) -> Result<Path> {
        self.system_path("leases", &[name, &format!("{link:020}.json")])
    }

    /// Creates `path` unless it exists.
    async fn create_once(&self, path: &Path, bytes: Vec<u8>) -> Result<bool> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .object_store()
            .put_opts(path, PutPayload::from(bytes), options)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn put_link(&self, name: &str, link: u64, state: &LeaseState) -> Result<bool> {
        let bytes = serde_json::to_vec(state).map_err(|e| EngineError::Internal(e.to_string()))?;
        self.create_once(&self.link_path(name, link)?, bytes).await
    }

    /// The highest-numbered link of a lease and what it says.
    async fn newest_link(&self, name: &str) -> Result<Option<(u64, LeaseState)>> {
        let links = self.links(name).await?;
        let Some(&newest) = links.last() else {
            return Ok(None);
        };
        let path = self.link_path(name, newest)?;
        let bytes = match self.object_store().get(&path).await {
            Ok(got) => got.bytes().await?,
            // Pruned between the listing and the read: a newer link exists.
            Err(object_store::Error::NotFound { .. }) => {
                return Box::pin(self.newest_link(name)).await;
            }
            Err(e) => return Err(e.into()),
        };
        let state: LeaseState = serde_json::from_slice(&bytes).map_err(|e| {
            EngineError::Internal(format!("lease {name} link {newest} does not read: {e}"))
        })?;
        Ok(Some((newest, state)))
    }

    /// The numbers of a lease's links, ascending.
    async fn links(&self, name: &str) -> Result<Vec<u64>> {
        let prefix = self.system_path("leases", &[name])?;
        let objects: Vec<_> = self
            .object_store()
            .list(Some(&prefix))
            .try_collect()
            .await?;
        let mut links: Vec<u64> = objects
            .iter()
            .filter_map(|o| o.location.filename()?.strip_suffix(".json")?.parse().ok())
            .collect();
        links.sort_unstable();
        Ok(links)
    }
}

impl Lease {
    /// Whether another process took the lease over (this holder slept past
    /// its expiry): work done under it must not be published.
    pub fn is_lost(&self) -> bool {
        self.inner.lost.load(Ordering::SeqCst)
    }

    /// Who holds it (this process).
    pub fn holder(&self) -> &str {
        &self.inner.holder
    }

    /// Frees the lease now, so that the next taker need not wait for it to expire.
    pub async fn release(self) -> Result<()> {
        self.renewer.abort();
        self.inner.released.store(true, Ordering::SeqCst);
        self.inner.extend(true).await
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
        if self.inner.released.swap(true, Ordering::SeqCst) || self.is_lost() {
            return;
        }
        // Outside a runtime (a process ending) the lease expires instead.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let inner = self.inner.clone();
            runtime.spawn(async move {
                if let Err(e) = inner.extend(true).await {
                    tracing::warn!(lease = %inner.name, error = %e, "a dropped lease was not released");
                }
            });
        }
    }
}

impl LeaseInner {
    /// Adds the next link: renewed for another `ttl`, or released.
    async fn extend(&self, released: bool) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(EngineError::LeaseLost {
                lease: self.name.clone(),
            });
        }
        let next = *self.link.lock().unwrap_or_else(|e| e.into_inner()) + 1;
        let state = LeaseState {
            holder: self.holder.clone(),
            expires_at: Utc::now() + self.ttl,
            released,
        };
        if self.store.put_link(&self.name, next, &state).await? {
            *self.link.lock().unwrap_or_else(|e| e.into_inner()) = next;
            self.prune(next).await;
            Ok(())
        } else {
            self.lost.store(true, Ordering::SeqCst);
            tracing::warn!(lease = %self.name, "lease taken over by another process");
            Err(EngineError::LeaseLost {
                lease: self.name.clone(),
            })
        }
    }

    /// Deletes links older than the last few (best effort: a failure only
    /// leaves small files behind).
    async fn prune(&self, newest: u64) {
        let Ok(links) = self.store.links(&self.name).await else {
            return;
        };
        for link in links.into_iter().filter(|&l| l + LINKS_KEPT <= newest) {
            if let Ok(path) = self.store.link_path(&self.name, link) {
                let _ = self.store.object_store().delete(&path).await;
            }
        }
    }
}

async fn renew_until_dropped(inner: Arc<LeaseInner>) {
    let every = (inner.ttl / 3).max(Duration::from_millis(50));
    loop {
        tokio::time::sleep(every).await;
        match inner.extend(false).await {
            Ok(()) => {}
            Err(EngineError::LeaseLost { .. }) => return,
            // The store is unreachable for now: try again at the next beat;
            // if it stays so, the lease expires and may be taken over.
            Err(e) => tracing::warn!(lease = %inner.name, error = %e, "lease renewal failed"),
        }
    }
}

/// Joins a lease's or claim's name from parts that are each one safe path
/// segment (tenant ids, family names, connector ids).
fn lease_name(parts: &[&str]) -> Result<String> {
    let safe = |p: &str| {
        !p.is_empty()
            && p.len() <= 128
            && !p.starts_with('.')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
            && !p.split('/').any(|s| s.is_empty() || s.starts_with('.'))
    };
    if parts.is_empty() || !parts.iter().all(|p| safe(p)) {
        return Err(EngineError::Internal(format!(
            "`{}` is not a valid lease or claim name",
            parts.join("/")
        )));
    }
    Ok(parts.join("/"))
}

/// This process, told apart from another on the same or another machine.
fn holder_id() -> String {
    static ID: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
        format!(
            "{host}:{}:{:08x}",
            std::process::id(),
            rand::random::<u32>()
        )
    });
    ID.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn a_claim_is_won_once() {
        let (_dir, store) = store().await;
        assert!(store.claim(&["v", "acme", "7"], "a").await.unwrap());
        assert!(!store.claim(&["v", "acme", "7"], "b").await.unwrap());
        assert!(store.claim(&["v", "acme", "8"], "b").await.unwrap());
        for bad in [&["..", "x"][..], &["a/../b"], &[""], &[".hidden"], &[]] {
            assert!(store.claim(bad, "x").await.is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn a_lease_is_exclusive_until_released_or_expired() {
        let (_dir, store) = store().await;
        // Long enough that a renewal lands in time on a busy machine.
        let ttl = Duration::from_secs(1);
        let Taken::Held(first) = store.take_lease(&["train", "acme"], ttl).await.unwrap() else {
            panic!("a free lease must be taken");
        };
        // Held (and renewed past its first expiry): refused to others.
        tokio::time::sleep(ttl * 2).await;
        assert!(matches!(
            store.take_lease(&["train", "acme"], ttl).await.unwrap(),
            Taken::Busy(_)
        ));
        // Another name is free.
        assert!(matches!(
            store.take_lease(&["train", "globex"], ttl).await.unwrap(),
            Taken::Held(_)
        ));
        first.release().await.unwrap();
        let Taken::Held(second) = store.take_lease(&["train", "acme"], ttl).await.unwrap() else {
            panic!("a released lease must be taken at once");
        };
        // Dropped (cancelled work): released in the background, long
        // before it would expire.
        drop(second);
        let dropped = std::time::Instant::now();
        loop {
            match store
                .take_lease(&["train", "acme"], ttl * 30)
                .await
                .unwrap()
            {
                Taken::Held(_) => break,
                Taken::Busy(_) => assert!(dropped.elapsed() < ttl * 10, "never released"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Old links are pruned.
        assert!(store.links("train/acme").await.unwrap().len() <= LINKS_KEPT as usize + 1);
    }

    #[tokio::test]
    async fn a_holder_that_slept_past_its_expiry_finds_it_lost() {
        let (_dir, store) = store().await;
        let ttl = Duration::from_millis(200);
        let Taken::Held(sleeper) = store.take_lease(&["sync", "c1"], ttl).await.unwrap() else {
            panic!("free");
        };
        // Its renewals stop as if the process were paused.
        sleeper.renewer.abort();
        tokio::time::sleep(ttl + Duration::from_millis(100)).await;
        let Taken::Held(_usurper) = store.take_lease(&["sync", "c1"], ttl).await.unwrap() else {
            panic!("an expired lease must be taken over");
        };
        let err = sleeper.inner.extend(false).await.unwrap_err();
        assert!(matches!(err, EngineError::LeaseLost { .. }), "{err}");
        assert!(sleeper.is_lost());
        assert!(sleeper.release().await.is_err());
    }
}
