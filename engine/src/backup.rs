//! Consistent snapshots of the whole store or of one tenant: backup, restore
//! and a tenant's export.
//!
//! A snapshot is itself a store: the same layout (`tenants/<tenant>/<table>/`,
//! `_system/<name>/`), each table a Delta table holding exactly one version
//! of the original (its files at that version, and the log from the newest
//! checkpoint up to it), plus `backup.json`, written last, that lists every
//! table with its version, files, rows and bytes. So a backup can be opened
//! by `gyrus --data`, DuckDB or Spark as it is, and one without `backup.json`
//! is known to be unfinished.
//!
//! A one-tenant snapshot holds that tenant's folder and, under `_system/`,
//! only its rows of the shared system tables (its keys, model runs,
//! connectors: see [`crate::lifecycle::TenantRows`]). No snapshot holds the
//! stored query log (`_system/queries`): it is telemetry kept for a week.
//!
//! Files are copied as streams (bounded memory whatever their size), never
//! linked, so a backup on the same disk shares nothing with the original.
//!
//! ```no_run
//! # async fn run() -> gyrus_engine::Result<()> {
//! use gyrus_engine::Store;
//!
//! let store = Store::open("./gyrus-data").await?;
//! let target = Store::open("/backups/2026-12-07").await?;
//! let manifest = store.backup(&target, None, &[]).await?;
//! println!("{} tables", manifest.tables.len());
//!
//! let empty = Store::open("./restored").await?;
//! empty.restore(&target, &[]).await?;
//! # Ok(()) }
//! ```

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use datafusion::arrow::compute::concat_batches;
use futures::StreamExt as _;
use object_store::{ObjectStoreExt as _, WriteMultipart};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{EngineError, Result};
use crate::lifecycle::TenantRows;
use crate::store::{Store, TenantId};
use crate::write::Idempotency;

/// The name of a snapshot's manifest, at its root.
pub const MANIFEST: &str = "backup.json";
const FORMAT: u32 = 1;

/// What a snapshot holds: written last, so its presence means the snapshot
/// is complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// Unique per snapshot; a restore records it so that a second run of
    /// the same restore adds nothing twice.
    pub id: String,
    pub created_at: DateTime<Utc>,
    /// The one tenant it holds, or `None` for the whole store.
    pub tenant: Option<String>,
    pub tables: Vec<TableSnapshot>,
    /// Files in a tenant's folder beside its tables (a dataset's ground truth).
    pub files: Vec<String>,
}

/// One table as the snapshot holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSnapshot {
    /// Relative to the root, e.g. `tenants/acme/orders` or `_system/api_keys`.
    pub path: String,
    /// The Delta version the snapshot holds.
    pub version: u64,
    pub files: u64,
    pub rows: u64,
    pub bytes: u64,
    /// `true`: the tenant's rows of a shared system table, added to the
    /// target's table on restore (not copied as a table).
    #[serde(default)]
    pub tenant_rows: bool,
}

/// System tables no snapshot holds: the query log is a week of telemetry
/// that every query (a backup's own checks included) appends to, not data
/// or configuration to bring back. Erase still removes a tenant's rows.
const OUTSIDE_SNAPSHOTS: [&str; 1] = [crate::system::QueryLog::TABLE];

/// Why a snapshot at `other` and the store `store` cannot be copied between:
/// one is the other, or lies inside it (a backup inside the store would be
/// copied into itself; a store inside the backup folder would be part of
/// the snapshot it restores). `None` when they are apart.
fn overlap(store: &Store, other: &Store) -> Option<&'static str> {
    let (a, b) = (store.root(), other.root());
    if (a.scheme(), a.host_str(), a.port()) != (b.scheme(), b.host_str(), b.port()) {
        return None;
    }
    let (a, b) = (a.path(), b.path());
    if a == b {
        Some("it is the store itself")
    } else if b.starts_with(a) {
        Some("it lies inside the store")
    } else if a.starts_with(b) {
        Some("the store lies inside it")
    } else {
        None
    }
}

impl Store {
    /// Writes a consistent snapshot of the whole store (`tenant` `None`) or
    /// of one tenant into `target`, which must be empty. `owners` are the
    /// shared system tables that hold tenants' rows (for a one-tenant
    /// snapshot). Each table is copied at the version it had when its copy
    /// began; writes after that are not in the snapshot.
    pub async fn backup(
        &self,
        target: &Store,
        tenant: Option<&TenantId>,
        owners: &[&dyn TenantRows],
    ) -> Result<Manifest> {
        if let Some(reason) = overlap(self, target) {
            return Err(EngineError::InvalidRoot {
                root: target.root().to_string(),
                reason: format!("{reason}; write the backup outside the store it copies"),
            });
        }
        if target.holds_anything(&target.object_path("")?).await? {
            return Err(EngineError::InvalidRoot {
                root: target.root().to_string(),
                reason: "it is not empty; write each backup to a new folder or prefix".into(),
            });
        }
        let tenants = match tenant {
            Some(tenant) => {
                if !self
                    .holds_anything(&self.object_path(&format!("tenants/{tenant}/"))?)
                    .await?
                {
                    return Err(EngineError::Internal(format!(
                        "tenant {tenant} has nothing in this store"
                    )));
                }
                vec![tenant.clone()]
            }
            None => self.tenants().await?,
        };
        let mut manifest = Manifest {
            format: FORMAT,
            id: format!(
                "{}-{}",
                Utc::now().format("%Y%m%dT%H%M%S"),
                uuid::Uuid::new_v4().simple()
            ),
            created_at: Utc::now(),
            tenant: tenant.map(|t| t.to_string()),
            tables: Vec::new(),
            files: Vec::new(),
        };
        for tenant in &tenants {
            let (tables, files) = self.tenant_contents(tenant).await?;
            for relative in tables {
                if let Some(table) = copy_table(self, target, &relative, None).await? {
                    manifest.tables.push(table);
                }
            }
            for relative in files {
                copy_object(self, target, &relative).await?;
                manifest.files.push(relative);
            }
        }
        match tenant {
            None => {
                for (name, _) in self.system_tables().await? {
                    if OUTSIDE_SNAPSHOTS.contains(&name.as_str()) {
                        continue;
                    }
                    let relative = format!("_system/{name}");
                    if let Some(table) = copy_table(self, target, &relative, None).await? {
                        manifest.tables.push(table);
                    }
                }
            }
            Some(tenant) => {
                for owner in owners {
                    if OUTSIDE_SNAPSHOTS.contains(&owner.table()) {
                        continue;
                    }
                    if let Some(table) = copy_tenant_rows(self, target, *owner, tenant).await? {
                        manifest.tables.push(table);
                    }
                }
            }
        }
        let text = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        target
            .object_store()
            .put(&target.object_path(MANIFEST)?, text.into())
            .await?;
        tracing::info!(
            target = %target.root(),
            tables = manifest.tables.len(),
            tenant = manifest.tenant.as_deref().unwrap_or("all"),
            "backup written"
        );
        Ok(manifest)
    }

    /// Restores the snapshot in `source` into this store. A whole-store
    /// snapshot needs a store without tenants or system tables; a tenant's
    /// needs a store where that tenant has no tables. A restore that was
    /// interrupted can be run again: tables already restored whole are
    /// kept, and the tenant's system rows are added once.
    ///
    /// A tenant's snapshot adds only rows of that tenant to the shared
    /// system tables, as `owners` find them: a snapshot altered to carry
    /// another tenant's keys or tables is refused.
    pub async fn restore(&self, source: &Store, owners: &[&dyn TenantRows]) -> Result<Manifest> {
        if let Some(reason) = overlap(self, source) {
            return Err(EngineError::InvalidRoot {
                root: source.root().to_string(),
                reason: format!("{reason}; restore from a snapshot outside the store"),
            });
        }
        let manifest = read_manifest(source).await?;
        if let Some(tenant) = &manifest.tenant {
            let tenant = TenantId::new(tenant.as_str())?;
            let own = format!("tenants/{tenant}/");
            for table in &manifest.tables {
                let path = format!("{}/", table.path);
                let fits = if table.tenant_rows {
                    owners
                        .iter()
                        .any(|o| path == format!("_system/{}/", o.table()))
                } else {
                    path.starts_with(&own)
                };
                if !fits {
                    return Err(EngineError::InvalidRoot {
                        root: source.root().to_string(),
                        reason: format!(
                            "it is a snapshot of tenant {tenant} but holds {}",
                            table.path
                        ),
                    });
                }
            }
            if manifest.files.iter().any(|f| !f.starts_with(&own)) {
                return Err(EngineError::InvalidRoot {
                    root: source.root().to_string(),
                    reason: format!("it is a snapshot of tenant {tenant} but holds other files"),
                });
            }
        }
        // Refuse before anything is written.
        let mut todo = Vec::new();
        for table in &manifest.tables {
            if table.tenant_rows {
                todo.push(table);
                continue;
            }
            let existing = match self.load(&self.url_of(&table.path)?).await {
                Ok(None) => {
                    todo.push(table);
                    continue;
                }
                Ok(Some(existing)) => Some(existing),
                // Not loadable: perhaps a copy this restore began and was
                // stopped in (a log without its first commit), judged below.
                Err(_) => None,
            };
            if let Some(existing) = &existing {
                // Restored whole by an earlier run of this restore: keep it.
                let mut original = source
                    .load(&source.url_of(&table.path)?)
                    .await?
                    .ok_or_else(|| unfinished(source))?;
                original.load_version(table.version).await?;
                if existing.version() == Some(table.version)
                    && file_names(existing)? == file_names(&original)?
                {
                    continue;
                }
            }
            // Cut short by a kill: everything there is one of the snapshot's
            // own objects, so copying the table again finishes it.
            if self.holds_only_copies_of(source, &table.path).await? {
                tracing::info!(table = %table.path, "finishing an interrupted restore of this table");
                todo.push(table);
                continue;
            }
            return Err(EngineError::InvalidRoot {
                root: self.root().to_string(),
                reason: format!(
                    "it already has {} ({}); restore into an empty store{}",
                    table.path,
                    existing
                        .as_ref()
                        .and_then(|e| e.version())
                        .map_or("a table that does not load".to_string(), |v| format!(
                            "version {v}"
                        )),
                    match &manifest.tenant {
                        Some(t) => format!(", or erase tenant {t} first"),
                        None => String::new(),
                    }
                ),
            });
        }
        for table in todo {
            if table.tenant_rows {
                let (Some(tenant), Some(owner)) = (
                    &manifest.tenant,
                    owners
                        .iter()
                        .find(|o| table.path == format!("_system/{}", o.table())),
                ) else {
                    return Err(unfinished(source));
                };
                let tenant = TenantId::new(tenant.as_str())?;
                add_tenant_rows(source, self, table, *owner, &tenant, &manifest.id).await?;
            } else {
                copy_table(source, self, &table.path, Some(table.version)).await?;
            }
        }
        for relative in &manifest.files {
            copy_object(source, self, relative).await?;
        }
        let tenants: BTreeSet<&str> = manifest
            .tables
            .iter()
            .filter_map(|t| t.path.strip_prefix("tenants/"))
            .filter_map(|rest| rest.split('/').next())
            .collect();
        for tenant in tenants {
            if let Ok(tenant) = TenantId::new(tenant) {
                self.changed(&tenant);
            }
        }
        tracing::info!(
            source = %source.root(),
            tables = manifest.tables.len(),
            "backup restored"
        );
        Ok(manifest)
    }

    /// The tables (folders that are Delta tables) and loose files of a
    /// tenant's folder, relative to the root.
    async fn tenant_contents(&self, tenant: &TenantId) -> Result<(Vec<String>, Vec<String>)> {
        let folder = format!("tenants/{tenant}");
        let listing = self
            .object_store()
            .list_with_delimiter(Some(&self.object_path(&folder)?))
            .await?;
        let mut tables = Vec::new();
        for name in listing.common_prefixes.iter().filter_map(|p| p.filename()) {
            tables.push(format!("{folder}/{name}"));
        }
        let files = listing
            .objects
            .iter()
            .filter_map(|o| o.location.filename())
            .map(|name| format!("{folder}/{name}"))
            .collect();
        tables.sort();
        Ok((tables, files))
    }

    /// The URL of a table given relative to the root.
    /// Whether every object under the folder `relative` is an object of the
    /// same name and size in `source` (and there is one at least): what a
    /// restore from `source` leaves when it is stopped part way through a
    /// table.
    async fn holds_only_copies_of(&self, source: &Store, relative: &str) -> Result<bool> {
        let root = self.object_path("")?;
        let folder = self.object_path(&format!("{}/", relative.trim_end_matches('/')))?;
        let mut listing = self.object_store().list(Some(&folder));
        let mut any = false;
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            let Some(inner) = meta
                .location
                .as_ref()
                .strip_prefix(root.as_ref())
                .map(|r| r.trim_start_matches('/'))
            else {
                return Ok(false);
            };
            match source
                .object_store()
                .head(&source.object_path(inner)?)
                .await
            {
                Ok(original) if original.size == meta.size => any = true,
                Ok(_) | Err(object_store::Error::NotFound { .. }) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(any)
    }

    fn url_of(&self, relative: &str) -> Result<Url> {
        let relative = relative.trim_end_matches('/');
        if relative
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(EngineError::Internal(format!(
                "`{relative}` is not a path inside the store"
            )));
        }
        let mut url = self.root().clone();
        url.set_path(&format!("{}{relative}/", self.root().path()));
        Ok(url)
    }
}

fn unfinished(source: &Store) -> EngineError {
    EngineError::InvalidRoot {
        root: source.root().to_string(),
        reason: "the backup is damaged: a table its manifest lists is missing".into(),
    }
}

async fn read_manifest(source: &Store) -> Result<Manifest> {
    let path = source.object_path(MANIFEST)?;
    let bytes = match source.object_store().get(&path).await {
        Ok(found) => found.bytes().await?,
        Err(object_store::Error::NotFound { .. }) => {
            return Err(EngineError::InvalidRoot {
                root: source.root().to_string(),
                reason: format!(
                    "it has no {MANIFEST}: it is not a Gyrus backup, or its backup did not finish"
                ),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| EngineError::InvalidRoot {
            root: source.root().to_string(),
            reason: format!("its {MANIFEST} does not read: {e}"),
        })?;
    if manifest.format != FORMAT {
        return Err(EngineError::InvalidRoot {
            root: source.root().to_string(),
            reason: format!(
                "its {MANIFEST} has format {}; this Gyrus reads format {FORMAT}",
                manifest.format
            ),
        });
    }
    for table in &manifest.tables {
        source.url_of(&table.path)?;
    }
    for file in &manifest.files {
        source.url_of(file)?;
    }
    Ok(manifest)
}

/// The data files of a table's loaded version, by their path in the table.
fn file_names(table: &deltalake_core::DeltaTable) -> Result<BTreeSet<String>> {
    Ok(table
        .snapshot()?
        .log_data()
        .iter()
        .map(|f| f.path().to_string())
        .collect())
}

/// Copies the table at `relative` from `from` to `to` as it is at `version`
/// (its newest when `None`): its data files first, then its log from the
/// newest checkpoint up to that version, newest first. A copy cut short is
/// not a table that loads (the Delta kernel refuses a log without its first
/// entry); restore recognises it by its objects and copies it again. `None`
/// when `relative` holds no table.
async fn copy_table(
    from: &Store,
    to: &Store,
    relative: &str,
    version: Option<u64>,
) -> Result<Option<TableSnapshot>> {
    let url = from.url_of(relative)?;
    let Some(mut delta) = from.load(&url).await? else {
        return Ok(None);
    };
    if let Some(version) = version {
        delta.load_version(version).await?;
    }
    let version = delta.version().unwrap_or(0);
    let (mut files, mut rows, mut bytes) = (0, 0, 0);
    for file in delta.snapshot()?.log_data().iter() {
        files += 1;
        rows += file.num_records().unwrap_or(0) as u64;
        bytes += file.size().max(0) as u64;
        copy_object(from, to, &format!("{relative}/{}", file.path())).await?;
    }
    let log = format!("{relative}/_delta_log/");
    let listing = from
        .object_store()
        .list_with_delimiter(Some(&from.object_path(&log)?))
        .await?;
    let mut entries: Vec<(u64, bool, String)> = listing
        .objects
        .iter()
        .filter_map(|o| o.location.filename())
        .filter_map(|name| {
            let (number, rest) = name.split_once('.')?;
            let number: u64 = number.parse().ok()?;
            let checkpoint = rest.starts_with("checkpoint.") && rest.ends_with(".parquet");
            (number <= version && (rest == "json" || checkpoint))
                .then(|| (number, checkpoint, name.to_string()))
        })
        .collect();
    let since = entries
        .iter()
        .filter(|(_, checkpoint, _)| *checkpoint)
        .map(|(n, _, _)| *n)
        .max();
    // From the checkpoint (not the commit at its version) onwards, or every
    // commit when there is no checkpoint.
    entries.retain(|(n, checkpoint, _)| match since {
        Some(since) => *n > since || (*n == since && *checkpoint),
        None => true,
    });
    // Newest first: until the oldest entry (commit 0 or the checkpoint) is
    // there, the copy does not load at an older version that looks whole.
    entries.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, _, name) in entries {
        copy_object(from, to, &format!("{log}{name}")).await?;
    }
    tracing::info!(table = relative, version, files, "table copied");
    Ok(Some(TableSnapshot {
        path: relative.to_string(),
        version,
        files,
        rows,
        bytes,
        tenant_rows: false,
    }))
}

/// Writes `tenant`'s rows of one shared system table into the snapshot, as a
/// table of their own.
async fn copy_tenant_rows(
    from: &Store,
    to: &Store,
    owner: &dyn TenantRows,
    tenant: &TenantId,
) -> Result<Option<TableSnapshot>> {
    let name = owner.table();
    let Some(predicate) = owner.predicate(from, tenant).await? else {
        return Ok(None);
    };
    let Some(delta) = from.load(&from.system_url(name)).await? else {
        return Ok(None);
    };
    let version = delta.version().unwrap_or(0);
    let batches = from.scan_table(&delta, &[], Some(predicate)).await?;
    let Some(schema) = batches.first().map(|b| b.schema()) else {
        return Ok(None);
    };
    let batch = concat_batches(&schema, &batches)
        .map_err(|e| EngineError::Internal(format!("{name}: {e}")))?;
    let rows = batch.num_rows() as u64;
    if rows == 0 {
        return Ok(None);
    }
    to.commit(&to.system_url(name), name, &schema, batch, None, None)
        .await?;
    let (mut files, mut bytes) = (0, 0);
    if let Some(copy) = to.load(&to.system_url(name)).await? {
        for file in copy.snapshot()?.log_data().iter() {
            files += 1;
            bytes += file.size().max(0) as u64;
        }
    }
    Ok(Some(TableSnapshot {
        path: format!("_system/{name}"),
        version,
        files,
        rows,
        bytes,
        tenant_rows: true,
    }))
}

/// Adds a snapshot's rows of `tenant` in a shared system table to this
/// store's table, once per snapshot; rows of anyone else are not added.
async fn add_tenant_rows(
    from: &Store,
    to: &Store,
    table: &TableSnapshot,
    owner: &dyn TenantRows,
    tenant: &TenantId,
    id: &str,
) -> Result<()> {
    let name = table
        .path
        .strip_prefix("_system/")
        .ok_or_else(|| unfinished(from))?;
    let delta = from
        .load(&from.system_url(name))
        .await?
        .ok_or_else(|| unfinished(from))?;
    let Some(predicate) = owner.predicate(from, tenant).await? else {
        return Ok(());
    };
    let batches = from.scan_table(&delta, &[], Some(predicate)).await?;
    let Some(schema) = batches.first().map(|b| b.schema()) else {
        return Ok(());
    };
    let batch = concat_batches(&schema, &batches)
        .map_err(|e| EngineError::Internal(format!("{name}: {e}")))?;
    let key = format!("restore-{id}");
    to.commit(
        &to.system_url(name),
        name,
        &schema,
        batch,
        Some(Idempotency {
            key: &key,
            fingerprint: None,
        }),
        None,
    )
    .await?;
    Ok(())
}

/// Copies one object as a stream (a multipart upload, so memory stays
/// bounded for any size); the copy appears whole or not at all.
async fn copy_object(from: &Store, to: &Store, relative: &str) -> Result<u64> {
    let source = from.object_path(relative)?;
    let target = to.object_path(relative)?;
    let mut stream = from.object_store().get(&source).await?.into_stream();
    let upload = to.object_store().put_multipart(&target).await?;
    let mut writer = WriteMultipart::new(upload);
    let mut copied = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                writer.abort().await?;
                return Err(e.into());
            }
        };
        copied += chunk.len() as u64;
        writer.wait_for_capacity(4).await?;
        writer.put(chunk);
    }
    writer.finish().await?;
    Ok(copied)
}
