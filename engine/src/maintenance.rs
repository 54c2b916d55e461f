//! Table statistics, compaction (`optimize`) and removal of unreferenced files (`vacuum`).

use std::future::IntoFuture as _;
use std::time::Duration;

use tracing::Instrument as _;

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
}

/// What `optimize` did to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptimizeReport {
    pub table: CanonicalTable,
    pub files_removed: u64,
    pub files_added: u64,
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
            };
            if let Some(delta) = self.table(tenant, table).await? {
                entry.version = delta.version();
                for file in delta.snapshot()?.log_data().iter() {
                    entry.files += 1;
                    entry.bytes += file.size().max(0) as u64;
                    entry.rows += file.num_records().unwrap_or(0) as u64;
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

    /// Compacts small files of each of a tenant's tables into large ones.
    pub async fn optimize(&self, tenant: &TenantId) -> Result<Vec<OptimizeReport>> {
        let mut reports = Vec::new();
        for table in CanonicalTable::ALL {
            let Some(delta) = self.table(tenant, table).await? else {
                continue;
            };
            let span = tracing::info_span!("optimize", tenant = %tenant, table = %table);
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
            self.changed(tenant);
            reports.push(OptimizeReport {
                table,
                files_removed: metrics.num_files_removed,
                files_added: metrics.num_files_added,
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
        let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(7));
        for table in CanonicalTable::ALL {
            let Some(delta) = self.table(tenant, table).await? else {
                continue;
            };
            let span = tracing::info_span!("vacuum", tenant = %tenant, table = %table);
            let (_, metrics) = delta
                .vacuum()
                .with_retention_period(retention)
                .with_enforce_retention_duration(false)
                .into_future()
                .instrument(span.clone())
                .await?;
            let _guard = span.enter();
            tracing::info!(files_deleted = metrics.files_deleted.len(), "vacuumed");
            self.changed(tenant);
            reports.push(VacuumReport {
                table,
                files_deleted: metrics.files_deleted.len(),
            });
        }
        Ok(reports)
    }
}
