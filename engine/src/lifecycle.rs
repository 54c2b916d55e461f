//! A tenant's life in the store as a whole: where its rows are, and erasing
//! all of them.
//!
//! A tenant's tables live under its own prefix (`tenants/<tenant>/`), but
//! its API keys, model runs and connectors are rows of system tables shared
//! with every other tenant. Each owner of such a table says how to find one
//! tenant's rows ([`TenantRows`]); erasing ([`Store::erase_tenant`]) and the
//! one-tenant snapshots of [`crate::backup`] go through that list, so a
//! capability that adds a system table adds one entry and both follow.
//!
//! ```no_run
//! # async fn run() -> gyrus_engine::Result<()> {
//! use gyrus_engine::lifecycle::{ByTenantColumn, TenantRows};
//! use gyrus_engine::{Store, TenantId};
//!
//! let store = Store::open("./gyrus-data").await?;
//! let owners: Vec<&dyn TenantRows> = vec![&gyrus_engine::keys::TENANT_ROWS];
//! let report = store.erase_tenant(&TenantId::new("acme")?, &owners).await?;
//! for removed in &report.removed {
//!     println!("{}: {} rows, {} files", removed.what, removed.rows, removed.objects);
//! }
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;

use datafusion::prelude::{Expr, col, lit};
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path;

use crate::error::{EngineError, Result};
use crate::store::{Store, TenantId};

/// A system table (under `_system/`) that holds rows of many tenants, and
/// how to tell one tenant's rows.
#[async_trait::async_trait]
pub trait TenantRows: Send + Sync {
    /// The system table's name under `_system/`.
    fn table(&self) -> &str;

    /// The predicate that selects `tenant`'s rows, or `None` when it has
    /// none. Computed once, before anything is erased: an owner may read
    /// other tables to find them (a connector's cursors are keyed by the
    /// connector, not by the tenant).
    async fn predicate(&self, store: &Store, tenant: &TenantId) -> Result<Option<Expr>>;
}

/// The rows whose `column` holds the tenant's id (API keys, the model registry).
#[derive(Debug, Clone, Copy)]
pub struct ByTenantColumn {
    pub table: &'static str,
    pub column: &'static str,
}

#[async_trait::async_trait]
impl TenantRows for ByTenantColumn {
    fn table(&self) -> &str {
        self.table
    }

    async fn predicate(&self, _: &Store, tenant: &TenantId) -> Result<Option<Expr>> {
        Ok(Some(col(self.column).eq(lit(tenant.as_str()))))
    }
}

/// What erasing a tenant removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EraseReport {
    /// One line per place: `tenants/acme/orders`, `_system/api_keys`, …
    pub removed: Vec<Removed>,
}

/// What was removed from one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// The place, relative to the root.
    pub what: String,
    /// Rows of a shared system table that were the tenant's.
    pub rows: u64,
    /// Files deleted (a table's data and log files, a lease's links).
    pub objects: u64,
    pub bytes: u64,
}

impl EraseReport {
    /// Whether the tenant had nothing in the store.
    pub fn is_empty(&self) -> bool {
        self.removed.iter().all(|r| r.rows == 0 && r.objects == 0)
    }
}

/// Delete attempts before a conflict with concurrent writers is reported.
const DELETE_ATTEMPTS: usize = 5;

impl Store {
    /// Removes everything of `tenant`: its rows of every shared system table
    /// in `owners` (in that order; put the keys first, so access ends
    /// first), the files those rows were in, its leases and claims, and its
    /// folder with every table in it. Refused with [`EngineError::Busy`]
    /// while work holds one of its leases (a training run, a sync), which
    /// would write its tables again. Each step can be run again: a second
    /// erase after an interruption finishes the job, and erasing a tenant
    /// with nothing left reports nothing.
    ///
    /// The tenant's rows leave the shared tables' data files at once (the
    /// rewritten files replace them and the old ones are deleted); the
    /// tables' transaction logs still name the tenant id in their delete
    /// predicates and file statistics until Delta's log retention drops them.
    pub async fn erase_tenant(
        &self,
        tenant: &TenantId,
        owners: &[&dyn TenantRows],
    ) -> Result<EraseReport> {
        // Work running for the tenant (a training run, a sync) would write
        // its tables again: it ends first.
        let running = self.live_leases_of(tenant).await?;
        if !running.is_empty() {
            return Err(EngineError::Busy(format!(
                "tenant {tenant} has work running ({}); stop it or wait for it to end, then erase again",
                running.join(", ")
            )));
        }
        // Every predicate first: one may depend on rows another owner erases.
        let mut predicates = Vec::new();
        for owner in owners {
            predicates.push((
                owner.table().to_string(),
                owner.predicate(self, tenant).await?,
            ));
        }
        let mut report = EraseReport::default();
        for (table, predicate) in predicates {
            let Some(predicate) = predicate else { continue };
            let rows = self.delete_system_rows(&table, predicate).await?;
            if rows == 0 {
                continue;
            }
            // The rewritten files no longer hold the rows; the old ones still
            // do until they are deleted.
            if let Some(delta) = self.load(&self.system_url(&table)).await? {
                let span = tracing::info_span!("vacuum", table = %format!("_system.{table}"));
                crate::maintenance::sweep(delta, std::time::Duration::ZERO, span).await?;
            }
            report.removed.push(Removed {
                what: format!("_system/{table}"),
                rows,
                objects: 0,
                bytes: 0,
            });
        }
        for kind in ["leases", "claims"] {
            let (objects, bytes) = self.remove_coordination(kind, tenant).await?;
            if objects > 0 {
                report.removed.push(Removed {
                    what: format!("_system/{kind}"),
                    rows: 0,
                    objects,
                    bytes,
                });
            }
        }
        let relative = format!("tenants/{tenant}/");
        let folder = self.object_path(&relative)?;
        let mut places: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for meta in self.list_all(&folder).await? {
            let relative: Vec<_> = meta
                .location
                .prefix_match(&folder)
                .map(|parts| parts.map(|p| p.as_ref().to_string()).collect())
                .unwrap_or_default();
            // A table's files count under the table; loose files under the tenant.
            let place = match relative.as_slice() {
                [table, _, ..] => format!("tenants/{tenant}/{table}"),
                _ => format!("tenants/{tenant}"),
            };
            let entry = places.entry(place).or_default();
            entry.0 += 1;
            entry.1 += meta.size;
        }
        self.remove_prefix(&relative).await?;
        for (what, (objects, bytes)) in places {
            report.removed.push(Removed {
                what,
                rows: 0,
                objects,
                bytes,
            });
        }
        self.changed(tenant);
        tracing::info!(
            tenant = %tenant,
            places = report.removed.len(),
            "tenant erased"
        );
        Ok(report)
    }

    /// Deletes the rows of the system table `table` that match `predicate`,
    /// in one commit (retried on conflicts); returns how many rows. The files
    /// that held them stay until a vacuum.
    pub(crate) async fn delete_system_rows(&self, table: &str, predicate: Expr) -> Result<u64> {
        let Some(mut delta) = self.load(&self.system_url(table)).await? else {
            return Ok(0);
        };
        // Counted before: Delta's delete metrics leave the count unknown
        // when whole files go by their statistics alone.
        let rows = self
            .scan_table(&delta, &[], Some(predicate.clone()))
            .await?
            .iter()
            .map(|b| b.num_rows() as u64)
            .sum::<u64>();
        if rows == 0 {
            return Ok(0);
        }
        let mut attempts = 0;
        loop {
            attempts += 1;
            match delta
                .clone()
                .delete()
                .with_predicate(predicate.clone())
                .await
            {
                Ok(_) => return Ok(rows),
                Err(err) if crate::write::is_conflict(&err) && attempts < DELETE_ATTEMPTS => {
                    tracing::warn!(table, attempt = attempts, "delete conflicted; retrying");
                    delta = self
                        .load(&self.system_url(table))
                        .await?
                        .ok_or_else(|| EngineError::Internal(format!("{table} disappeared")))?;
                }
                Err(err) if crate::write::is_conflict(&err) => {
                    return Err(EngineError::Conflict { attempts });
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Deletes `tenant`'s leases or claims (`_system/<kind>/<name>/<tenant>/…`);
    /// returns the objects and bytes deleted.
    async fn remove_coordination(&self, kind: &str, tenant: &TenantId) -> Result<(u64, u64)> {
        let folder = self.object_path(&format!("_system/{kind}/"))?;
        let listing = self
            .object_store()
            .list_with_delimiter(Some(&folder))
            .await?;
        let (mut objects, mut bytes) = (0, 0);
        for name in listing.common_prefixes.iter().filter_map(|p| p.filename()) {
            let relative = format!("_system/{kind}/{name}/{tenant}/");
            let found = self.list_all(&self.object_path(&relative)?).await?;
            objects += found.len() as u64;
            bytes += found.iter().map(|m| m.size).sum::<u64>();
            self.remove_prefix(&relative).await?;
        }
        Ok((objects, bytes))
    }

    /// The leases of `tenant` (`<kind>/<tenant>/…`) someone holds now, as
    /// `name held by holder`.
    async fn live_leases_of(&self, tenant: &TenantId) -> Result<Vec<String>> {
        let folder = self.object_path("_system/leases/")?;
        let mut names = std::collections::BTreeSet::new();
        for meta in self.list_all(&folder).await? {
            let Some(parts) = meta.location.prefix_match(&folder) else {
                continue;
            };
            let mut parts: Vec<String> = parts.map(|p| p.as_ref().to_string()).collect();
            parts.pop(); // the link
            if parts.get(1).map(String::as_str) == Some(tenant.as_str()) {
                names.insert(parts);
            }
        }
        let now = chrono::Utc::now();
        let mut live = Vec::new();
        for parts in names {
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            if let Some(state) = self.lease_state(&parts).await?
                && state.is_live(now)
            {
                live.push(format!("{} held by {}", parts.join("/"), state.holder));
            }
        }
        Ok(live)
    }

    /// Every object under `prefix`.
    pub(crate) async fn list_all(&self, prefix: &Path) -> Result<Vec<object_store::ObjectMeta>> {
        Ok(self.object_store().list(Some(prefix)).try_collect().await?)
    }

    /// Deletes every object under `relative` (a folder of the root, ending
    /// in `/`) and, for a local root, the folder itself, which an object
    /// store no longer sees once it is empty but a person listing files does.
    pub(crate) async fn remove_prefix(&self, relative: &str) -> Result<()> {
        let store = self.object_store();
        let locations = store
            .list(Some(&self.object_path(relative)?))
            .map_ok(|meta| meta.location)
            .boxed();
        store
            .delete_stream(locations)
            .try_for_each(|_| async { Ok(()) })
            .await?;
        if let Ok(root) = self.root().to_file_path() {
            let folder = root.join(relative.trim_end_matches('/'));
            match tokio::fs::remove_dir_all(&folder).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(EngineError::Internal(format!(
                        "cannot remove {}: {e}",
                        folder.display()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Whether anything at all is stored under `prefix`.
    pub(crate) async fn holds_anything(&self, prefix: &Path) -> Result<bool> {
        Ok(self
            .object_store()
            .list(Some(prefix))
            .next()
            .await
            .transpose()?
            .is_some())
    }
}
