//! API keys: one tenant and one role each, stored hashed in `_system/api_keys`.
//!
//! A key reads `gyr_<id>_<secret>`: `id` is public (12 hex digits, used to
//! list and revoke), `secret` is 256 random bits shown once at creation.
//! Only SHA-256 of the secret is stored; a presented key is checked by
//! comparing hashes in constant time. The table is an append-only log of
//! `created` and `revoked` events, so every change is one atomic commit.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use rand::RngExt as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{EngineError, Result};
use crate::schema::timestamp_utc;
use crate::store::{Store, TenantId};
use crate::system_table::{SystemRecord, SystemTable};

const TABLE: &str = "api_keys";

/// Where a tenant's keys are, for erasing and one-tenant snapshots.
pub const TENANT_ROWS: crate::lifecycle::ByTenantColumn = crate::lifecycle::ByTenantColumn {
    table: TABLE,
    column: "tenant_id",
};
const PREFIX: &str = "gyr_";

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// SQL and predictions.
    Reader,
    /// Reader, plus ingest.
    Writer,
    /// Writer, plus keys, connectors and retraining.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Admin => "admin",
        }
    }

    /// Whether this role includes everything `needed` may do.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }

    /// [`EngineError::Forbidden`] unless this role includes `needed`; every
    /// server answers a too-small key with this one message.
    pub fn require(self, needed: Role) -> Result<()> {
        if self.allows(needed) {
            Ok(())
        } else {
            Err(EngineError::Forbidden(format!(
                "this {self} key may not do this; it needs a {needed} key"
            )))
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Role {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "reader" => Ok(Role::Reader),
            "writer" => Ok(Role::Writer),
            "admin" => Ok(Role::Admin),
            other => Err(EngineError::InvalidRole(other.to_string())),
        }
    }
}

/// A key as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub tenant: TenantId,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A freshly created key with its secret, which is never shown again.
#[derive(Clone)]
pub struct NewKey {
    pub key: ApiKey,
    /// The full key to present: `gyr_<id>_<secret>`.
    pub secret: String,
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey")
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// One row of `_system/api_keys`: a key created (with its hash) or revoked.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyEvent {
    key_id: String,
    tenant_id: String,
    role: Role,
    secret_sha256: Option<String>,
    event: KeyEventKind,
    at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum KeyEventKind {
    Created,
    Revoked,
}

impl SystemRecord for KeyEvent {
    fn schema() -> SchemaRef {
        static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
            Arc::new(Schema::new(vec![
                Field::new("key_id", DataType::Utf8, false),
                Field::new("tenant_id", DataType::Utf8, false),
                Field::new("role", DataType::Utf8, false),
                Field::new("secret_sha256", DataType::Utf8, true),
                Field::new("event", DataType::Utf8, false),
                Field::new("at", timestamp_utc(), false),
            ]))
        });
        SCHEMA.clone()
    }
}

/// The stored record of a key, with its hash.
#[derive(Clone)]
struct KeyRecord {
    key: ApiKey,
    secret_sha256: [u8; 32],
}

impl KeyRecord {
    /// The key, if `secret` is its secret and it is not revoked (constant time).
    fn verify(&self, secret: &str) -> Option<ApiKey> {
        let matches: bool = self.secret_sha256.ct_eq(&hash_secret(secret)).into();
        (matches && self.key.revoked_at.is_none()).then(|| self.key.clone())
    }
}

/// Splits `gyr_<id>_<secret>` into its id and secret.
fn split_key(presented: &str) -> Option<(&str, &str)> {
    presented
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once('_'))
}

/// How a [`KeyRing`] keeps its copy of the key table fresh.
#[derive(Debug, Clone, Copy)]
pub struct KeyRingConfig {
    /// Reread the key table when the copy is older than this: the longest a
    /// revoked key keeps working on a server.
    pub max_age: Duration,
    /// An unknown key id rereads the table (a key created a moment ago), but
    /// not more often than this, so unknown keys cannot hammer storage.
    pub min_reload_interval: Duration,
}

impl Default for KeyRingConfig {
    fn default() -> Self {
        KeyRingConfig {
            max_age: Duration::from_secs(10),
            min_reload_interval: Duration::from_millis(250),
        }
    }
}

/// The key table, cached for servers: authenticating a request costs a hash
/// and a map lookup, not a table scan.
pub struct KeyRing {
    store: Store,
    config: KeyRingConfig,
    cached: tokio::sync::Mutex<Option<CachedKeys>>,
}

struct CachedKeys {
    records: Arc<BTreeMap<String, KeyRecord>>,
    loaded_at: Instant,
}

impl KeyRing {
    pub fn new(store: Store, config: KeyRingConfig) -> Self {
        KeyRing {
            store,
            config,
            cached: Default::default(),
        }
    }

    /// The live key a presented `gyr_<id>_<secret>` belongs to, if any.
    pub async fn authenticate(&self, presented: &str) -> Result<Option<ApiKey>> {
        let Some((id, secret)) = split_key(presented) else {
            return Ok(None);
        };
        Ok(self.record(id).await?.and_then(|r| r.verify(secret)))
    }

    /// Basic auth: `user` is a key id (with or without `gyr_`) or a tenant;
    /// `password` is the key's secret, or the whole key.
    pub async fn authenticate_basic(&self, user: &str, password: &str) -> Result<Option<ApiKey>> {
        let secret = match split_key(password) {
            Some((id, _)) => {
                let key = self.authenticate(password).await?;
                let named = user == id || user.strip_prefix(PREFIX) == Some(id);
                return Ok(key.filter(|k| named || k.tenant.as_str() == user));
            }
            None => password,
        };
        let id = user.strip_prefix(PREFIX).unwrap_or(user);
        // A tenant name: whichever of its live keys has this secret.
        let by_tenant = |records: &BTreeMap<String, KeyRecord>| {
            records
                .values()
                .filter(|r| r.key.tenant.as_str() == user)
                .find_map(|r| r.verify(secret))
        };
        let records = self.records(false).await?;
        if let Some(record) = records.get(id) {
            return Ok(record.verify(secret));
        }
        if let Some(key) = by_tenant(&records) {
            return Ok(Some(key));
        }
        // Neither known yet: a key created a moment ago, by id or tenant.
        if let Some(record) = self.record(id).await? {
            return Ok(record.verify(secret));
        }
        let records = self.records(false).await?;
        Ok(by_tenant(&records))
    }

    /// Drops the cached copy, so that the next request rereads the key table:
    /// a key revoked on this server stops working at once.
    pub async fn forget(&self) {
        *self.cached.lock().await = None;
    }

    /// Whether the key with this id exists and is not revoked (as of the cached copy).
    pub async fn is_live(&self, id: &str) -> Result<bool> {
        Ok(self
            .record(id)
            .await?
            .is_some_and(|r| r.key.revoked_at.is_none()))
    }

    async fn record(&self, id: &str) -> Result<Option<KeyRecord>> {
        let records = self.records(false).await?;
        if let Some(found) = records.get(id) {
            return Ok(Some(found.clone()));
        }
        // Unknown: perhaps created a moment ago, so reread the table, but at
        // most once per interval. Unknown ids are refused at once rather than
        // made to wait, so that they cannot tie up the server's request slots.
        Ok(self.records(true).await?.get(id).cloned())
    }

    /// The cached records and their age, reread first when stale.
    async fn records(&self, missing_key: bool) -> Result<Arc<BTreeMap<String, KeyRecord>>> {
        let mut cached = self.cached.lock().await;
        let stale = match &*cached {
            None => true,
            Some(c) => {
                let age = c.loaded_at.elapsed();
                age >= self.config.max_age
                    || (missing_key && age >= self.config.min_reload_interval)
            }
        };
        if stale {
            *cached = Some(CachedKeys {
                records: Arc::new(self.store.key_records().await?),
                loaded_at: Instant::now(),
            });
        }
        Ok(cached
            .as_ref()
            .map(|c| c.records.clone())
            .unwrap_or_default())
    }
}

/// Live keys one tenant may hold: every key is checked on each request's
/// cache refresh, and a tenant minting keys must not grow that without bound.
pub const MAX_KEYS_PER_TENANT: usize = 1_000;

fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

impl Store {
    /// Creates a key for `tenant` with `role`; the secret is in the result
    /// only. A tenant holds at most [`MAX_KEYS_PER_TENANT`] live keys.
    pub async fn create_key(&self, tenant: &TenantId, role: Role) -> Result<NewKey> {
        let live = self
            .list_keys()
            .await?
            .iter()
            .filter(|k| &k.tenant == tenant && k.revoked_at.is_none())
            .count();
        if live >= MAX_KEYS_PER_TENANT {
            return Err(EngineError::TooLarge {
                what: format!("tenant {tenant} has {live} live API keys"),
                limit: format!("{MAX_KEYS_PER_TENANT} keys"),
                setting: "fixed; revoke keys no longer used",
            });
        }
        // The thread's generator is not Send: done with it before any await.
        let (id, secret) = {
            let mut rng = rand::rng();
            (
                hex::encode(rng.random::<[u8; 6]>()),
                hex::encode(rng.random::<[u8; 32]>()),
            )
        };
        let now = Utc::now();
        let key = ApiKey {
            id: id.clone(),
            tenant: tenant.clone(),
            role,
            created_at: now,
            revoked_at: None,
        };
        let hash = hex::encode(hash_secret(&secret));
        self.append_key_event(&key, Some(&hash), KeyEventKind::Created, now)
            .await?;
        tracing::info!(key_id = %id, tenant = %tenant, role = %role, "created API key");
        Ok(NewKey {
            key,
            secret: format!("{PREFIX}{id}_{secret}"),
        })
    }

    /// Every key, revoked ones included, oldest first.
    pub async fn list_keys(&self) -> Result<Vec<ApiKey>> {
        let mut keys: Vec<ApiKey> = self
            .key_records()
            .await?
            .into_values()
            .map(|r| r.key)
            .collect();
        keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(keys)
    }

    /// Revokes a key by id; revoking twice is harmless.
    pub async fn revoke_key(&self, id: &str) -> Result<ApiKey> {
        self.revoke(id, None).await
    }

    /// Revokes a key of `tenant`; another tenant's key is not found, as if
    /// it did not exist.
    pub async fn revoke_tenant_key(&self, tenant: &TenantId, id: &str) -> Result<ApiKey> {
        self.revoke(id, Some(tenant)).await
    }

    async fn revoke(&self, id: &str, tenant: Option<&TenantId>) -> Result<ApiKey> {
        let records = self.key_records().await?;
        let mut key = records
            .get(id)
            .map(|r| r.key.clone())
            .filter(|k| tenant.is_none_or(|t| k.tenant == *t))
            .ok_or_else(|| EngineError::KeyNotFound(id.to_string()))?;
        if key.revoked_at.is_none() {
            let now = Utc::now();
            self.append_key_event(&key, None, KeyEventKind::Revoked, now)
                .await?;
            key.revoked_at = Some(now);
            tracing::info!(key_id = %id, "revoked API key");
        }
        Ok(key)
    }

    /// The live key a presented secret belongs to, if any. Reads the key
    /// table each time; servers use a [`KeyRing`].
    pub async fn authenticate(&self, presented: &str) -> Result<Option<ApiKey>> {
        let Some((id, secret)) = split_key(presented) else {
            return Ok(None);
        };
        Ok(self
            .key_records()
            .await?
            .get(id)
            .and_then(|record| record.verify(secret)))
    }

    fn key_events(&self) -> SystemTable<KeyEvent> {
        SystemTable::new(self, TABLE)
    }

    async fn append_key_event(
        &self,
        key: &ApiKey,
        hash: Option<&str>,
        event: KeyEventKind,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let event = KeyEvent {
            key_id: key.id.clone(),
            tenant_id: key.tenant.to_string(),
            role: key.role,
            secret_sha256: hash.map(str::to_string),
            event,
            at,
        };
        self.key_events().append(&[event]).await?;
        Ok(())
    }

    async fn key_records(&self) -> Result<BTreeMap<String, KeyRecord>> {
        let events = self.key_events().rows().await?;
        let mut records = BTreeMap::new();
        for event in events.iter().filter(|e| e.event == KeyEventKind::Created) {
            let mut hash = [0u8; 32];
            let valid = event
                .secret_sha256
                .as_ref()
                .is_some_and(|h| hex::decode_to_slice(h, &mut hash).is_ok());
            if !valid {
                return Err(EngineError::Internal(format!(
                    "api key {} has no valid hash",
                    event.key_id
                )));
            }
            let key = ApiKey {
                id: event.key_id.clone(),
                tenant: TenantId::new(&event.tenant_id)?,
                role: event.role,
                created_at: event.at,
                revoked_at: None,
            };
            records.insert(
                key.id.clone(),
                KeyRecord {
                    key,
                    secret_sha256: hash,
                },
            );
        }
        for event in events.iter().filter(|e| e.event == KeyEventKind::Revoked) {
            if let Some(record) = records.get_mut(&event.key_id) {
                let when = event.at;
                record.key.revoked_at = Some(record.key.revoked_at.map_or(when, |w| w.min(when)));
            }
        }
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_authenticate_until_revoked_and_are_stored_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
        let acme = TenantId::new("acme").unwrap();
        let created = store.create_key(&acme, Role::Writer).await.unwrap();
        assert!(created.secret.starts_with("gyr_"));
        let found = store.authenticate(&created.secret).await.unwrap().unwrap();
        assert_eq!((found.tenant.as_str(), found.role), ("acme", Role::Writer));

        // A wrong secret with the right id, a garbage key: nothing.
        let (id_part, _) = created.secret.rsplit_once('_').unwrap();
        let forged = format!("{id_part}_{}", "0".repeat(64));
        assert!(store.authenticate(&forged).await.unwrap().is_none());
        assert!(store.authenticate("nonsense").await.unwrap().is_none());

        // The secret never reaches storage.
        let secret_part = created.secret.rsplit_once('_').unwrap().1;
        for entry in walk(dir.path()) {
            let bytes = std::fs::read(&entry).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(secret_part),
                "secret found in {}",
                entry.display()
            );
        }

        let listed = store.list_keys().await.unwrap();
        assert_eq!(listed.len(), 1);
        store.revoke_key(&created.key.id).await.unwrap();
        assert!(store.authenticate(&created.secret).await.unwrap().is_none());
        assert!(store.list_keys().await.unwrap()[0].revoked_at.is_some());
        assert!(matches!(
            store.revoke_key("nope").await,
            Err(EngineError::KeyNotFound(_))
        ));
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
        out
    }

    #[tokio::test]
    async fn the_key_ring_caches_and_takes_basic_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
        let acme = TenantId::new("acme").unwrap();
        let ring = KeyRing::new(
            store.clone(),
            KeyRingConfig {
                max_age: Duration::from_secs(3600),
                min_reload_interval: Duration::ZERO,
            },
        );
        assert!(
            ring.authenticate("gyr_000000000000_00")
                .await
                .unwrap()
                .is_none()
        );
        // Created after the ring's first read: an unknown id rereads the table.
        let created = store.create_key(&acme, Role::Reader).await.unwrap();
        let (_, secret) = split_key(&created.secret).unwrap();
        let id = created.key.id.as_str();
        assert_eq!(
            ring.authenticate(&created.secret)
                .await
                .unwrap()
                .unwrap()
                .id,
            id
        );
        for (user, password) in [
            (id, secret),
            (&format!("gyr_{id}") as &str, secret),
            ("acme", secret),
            ("acme", created.secret.as_str()),
            (id, created.secret.as_str()),
        ] {
            let found = ring.authenticate_basic(user, password).await.unwrap();
            assert_eq!(found.map(|k| k.id), Some(id.to_string()), "{user}");
        }
        for (user, password) in [
            ("globex", secret),
            ("globex", created.secret.as_str()),
            ("acme", "0"),
            (id, "0"),
        ] {
            assert!(
                ring.authenticate_basic(user, password)
                    .await
                    .unwrap()
                    .is_none(),
                "{user}:{password}"
            );
        }
        // The cached copy is an hour old at most here: revocation shows after max_age.
        store.revoke_key(id).await.unwrap();
        assert!(ring.is_live(id).await.unwrap(), "still cached");
        let fresh = KeyRing::new(store, KeyRingConfig::default());
        assert!(!fresh.is_live(id).await.unwrap());
    }

    #[test]
    fn roles_nest() {
        assert!(Role::Admin.allows(Role::Writer) && Role::Writer.allows(Role::Reader));
        assert!(!Role::Reader.allows(Role::Writer));
        assert!("owner".parse::<Role>().is_err());
    }
}
