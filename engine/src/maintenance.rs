//! Table statistics, compaction (`optimize`) and removal of unreferenced files (`vacuum`).

use std::future::IntoFuture as _;
use std::time::Duration;

use tracing::Instrument as _;

use deltalake_core::DeltaTable;

use crate::error::Result;
use crate::schema::CanonicalTable;
use crate::store::{Store, TenantId};

/// The state of one table, as `gyrus tables` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableStats {
    pub table: CanonicalTable,
    /// `None` when the table was never written.
    pub version: Option<u64>,
    pub rows: u64,
    pub files: u64,
    pub bytes: u64,
    /// When the newest of its current files was written (`None`: no files).
    pub last_write: Option<chrono::DateTime<chrono::Utc>>,
}

/// What `optimize` did to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptimizeReport {
    pub table: CanonicalTable,
    pub files_removed: u64,
    pub files_added: u64,
}

/// What `optimize_system` or `vacuum_system` did to one system table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemReport {
    /// The table's name under `_system/`.
    pub name: String,
    pub files_removed: u64,
    pub files_added: u64,
    pub files_deleted: usize,
    /// Rows past their retention deleted first (the query log's).
    pub rows_expired: u64,
}

/// What `vacuum` did to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VacuumReport {
    pub table: CanonicalTable,
    pub files_deleted: usize,
}

impl Store {
    /// Rows, files, bytes and Delta version of each of a tenant's tables.
    pub async fn table_stats(&self, tenant: &TenantId) -> Result<Vec<TableStats>> {
        let mut stats = Vec::new();
        for table in CanonicalTable::ALL {
            let mut entry = TableStats {
                table,
                version: None,
                rows: 0,
                files: 0,
                bytes: 0,
                last_write: None,
            };
            if let Some(delta) = self.table(tenant, table).await? {
                entry.version = delta.version();
                for file in delta.snapshot()?.log_data().iter() {
                    entry.files += 1;
                    entry.bytes += file.size().max(0) as u64;
                    entry.rows += file.num_records().unwrap_or(0) as u64;
                    let written = chrono::DateTime::from_timestamp_millis(file.modification_time());
                    entry.last_write = entry.last_write.max(written);
                }
            }
            stats.push(entry);
        }
        Ok(stats)
    }

    /// URLs of the Parquet files of a table's current version: what another
    /// engine (DuckDB, Spark, Polars) reads to see the same rows.
    pub async fn data_files(
        &self,
        tenant: &TenantId,
        table: CanonicalTable,
    ) -> Result<Vec<url::Url>> {
        let Some(delta) = self.table(tenant, table).await? else {
            return Ok(Vec::new());
        };
        let root = self.table_url(tenant, table);
        let mut files = Vec::new();
        for file in delta.snapshot()?.log_data().iter() {
            let url = root
                .join(&file.path())
                .map_err(|e| crate::EngineError::Internal(format!("file {}: {e}", file.path())))?;
            files.push(url);
        }
        Ok(files)
    }

    /// Compacts small files of each of a tenant's tables into large ones;
    /// tables whose entities are looked up one at a time are rewritten in
    /// their lookup layout instead ([`crate::layout`]).
    pub async fn optimize(&self, tenant: &TenantId) -> Result<Vec<OptimizeReport>> {
        let mut reports = Vec::new();
        for table in CanonicalTable::ALL {
            let Some(delta) = self.table(tenant, table).await? else {
                continue;
            };
            let span = tracing::info_span!("optimize", tenant = %tenant, table = %table);
            let (files_removed, files_added) = match crate::layout::Layout::of(table) {
                Some(layout) => layout.apply(delta, span).await?,
                None => compact(delta, span).await?,
            };
            self.changed(tenant);
            reports.push(OptimizeReport {
                table,
                files_removed,
                files_added,
            });
        }
        Ok(reports)
    }

    /// The system tables under `_system/` that are Delta tables (keys, the
    /// model registry, connector journals; not the lease and claim objects).
    pub async fn system_tables(&self) -> Result<Vec<(String, DeltaTable)>> {
        let listing = self
            .object_store()
            .list_with_delimiter(Some(&self.object_path("_system")?))
            .await?;
        let mut tables = Vec::new();
        for name in listing.common_prefixes.iter().filter_map(|p| p.filename()) {
            if let Some(delta) = self.load(&self.system_url(name)).await? {
                tables.push((name.to_string(), delta));
            }
        }
        tables.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(tables)
    }

    /// Compacts the system tables, which grow by one small commit per event
    /// (a key made, a run recorded, a sync's progress), shared by all tenants.
    pub async fn optimize_system(&self) -> Result<Vec<SystemReport>> {
        let mut reports = Vec::new();
        for (name, delta) in self.system_tables().await? {
            let span = tracing::info_span!("optimize", table = %format!("_system.{name}"));
            let (files_removed, files_added) = compact(delta, span).await?;
            reports.push(SystemReport {
                name,
                files_removed,
                files_added,
                files_deleted: 0,
                rows_expired: 0,
            });
        }
        Ok(reports)
    }

    /// Deletes stored queries past [`QueryLog::RETENTION`], then the files
    /// of system tables no version newer than `retention` references
    /// (compacted journals; removed connectors' sealed credentials; expired
    /// queries).
    ///
    /// [`QueryLog::RETENTION`]: crate::system::QueryLog::RETENTION
    pub async fn vacuum_system(&self, retention: Duration) -> Result<Vec<SystemReport>> {
        let expired = crate::system::QueryLog::expire(self).await?;
        let mut reports = Vec::new();
        for (name, delta) in self.system_tables().await? {
            let span = tracing::info_span!("vacuum", table = %format!("_system.{name}"));
            let files_deleted = sweep(delta, retention, span).await?;
            let rows_expired = if name == crate::system::QueryLog::TABLE {
                expired
            } else {
                0
            };
            reports.push(SystemReport {
                name,
                files_removed: 0,
                files_added: 0,
                files_deleted,
                rows_expired,
            });
        }
        Ok(reports)
    }

    /// Deletes files no version newer than `retention` references.
    ///
    /// Readers holding an older snapshot may fail after this; the Delta
    /// default retention is 7 days, and shorter periods are the caller's call.
    pub async fn vacuum(
        &self,
        tenant: &TenantId,
        retention: Duration,
    ) -> Result<Vec<VacuumReport>> {
        let mut reports = Vec::new();
        for table in CanonicalTable::ALL {
            let Some(delta) = self.table(tenant, table).await? else {
                continue;
            };
            let span = tracing::info_span!("vacuum", tenant = %tenant, table = %table);
            let files_deleted = sweep(delta, retention, span).await?;
            self.changed(tenant);
            reports.push(VacuumReport {
                table,
                files_deleted,
            });
        }
        Ok(reports)
    }
}

/// Compacts one table's small files; returns (files removed, files added).
async fn compact(delta: DeltaTable, span: tracing::Span) -> Result<(u64, u64)> {
    let (_, metrics) = delta
        .optimize()
        .with_writer_properties(crate::write::writer_properties())
        .into_future()
        .instrument(span.clone())
        .await?;
    let _guard = span.enter();
    tracing::info!(
        files_removed = metrics.num_files_removed,
        files_added = metrics.num_files_added,
        "optimized"
    );
    Ok((metrics.num_files_removed, metrics.num_files_added))
}

/// Deletes one table's files no version newer than `retention` references;
/// returns how many.
pub(crate) async fn sweep(
    delta: DeltaTable,
    retention: Duration,
    span: tracing::Span,
) -> Result<usize> {
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(7));
    let (_, metrics) = delta
        .vacuum()
        .with_retention_period(retention)
        .with_enforce_retention_duration(false)
        .into_future()
        .instrument(span.clone())
        .await?;
    let _guard = span.enter();
    tracing::info!(files_deleted = metrics.files_deleted.len(), "vacuumed");
    Ok(metrics.files_deleted.len())
}
