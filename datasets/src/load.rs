//! Loading a generated dataset into a tenant, one idempotent write per chunk.

use gyrus_engine::datafusion::arrow::array::RecordBatch;
use gyrus_engine::schema::CanonicalTable;
use gyrus_engine::{Store, TenantId, WriteRequest};

use crate::Dataset;

/// The file beside a tenant's tables that holds the dataset's ground truth.
pub const GROUND_TRUTH_FILE: &str = "ground_truth.json";

/// One write the loader is about to make, for progress reporting.
#[derive(Debug, Clone)]
pub struct LoadStep {
    pub table: CanonicalTable,
    pub rows: usize,
    /// 1-based index of this write among all writes of the load.
    pub index: usize,
    pub of: usize,
}

/// Rows written per table; replays of an earlier load write nothing.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub rows_written: Vec<(CanonicalTable, usize)>,
    pub writes_skipped: usize,
}

impl Dataset {
    /// The writes a load makes, in order.
    fn writes(&self) -> Vec<(CanonicalTable, &RecordBatch)> {
        let mut writes: Vec<_> = self
            .ad_performance
            .iter()
            .map(|b| (CanonicalTable::AdPerformance, b))
            .collect();
        writes.push((CanonicalTable::WebSessions, &self.web_sessions));
        writes.push((CanonicalTable::Customers, &self.customers));
        writes.push((CanonicalTable::Orders, &self.orders));
        writes.push((CanonicalTable::CrmDeals, &self.crm_deals));
        writes
    }

    /// Writes every table into `tenant` and the ground truth beside them.
    ///
    /// Each write carries an idempotency key derived from the generator's
    /// config, so loading the same dataset twice leaves the tables as they were.
    pub async fn load(
        &self,
        store: &Store,
        tenant: &TenantId,
        mut on_step: impl FnMut(&LoadStep),
    ) -> gyrus_engine::Result<LoadReport> {
        let writes = self.writes();
        let mut report = LoadReport::default();
        let t = &self.truth;
        for (i, (table, batch)) in writes.iter().enumerate() {
            let step = LoadStep {
                table: *table,
                rows: batch.num_rows(),
                index: i + 1,
                of: writes.len(),
            };
            on_step(&step);
            let key = format!(
                "dataset:{}:{}:{}:{}:{i}",
                t.seed,
                t.scale,
                t.end_date,
                table.name()
            );
            let request =
                WriteRequest::append(*table, vec![(*batch).clone()]).with_idempotency_key(key);
            let outcome = store.write(tenant, request).await?;
            if outcome.already_applied {
                report.writes_skipped += 1;
            } else {
                match report.rows_written.iter_mut().find(|(t, _)| t == table) {
                    Some((_, rows)) => *rows += outcome.rows,
                    None => report.rows_written.push((*table, outcome.rows)),
                }
            }
        }
        let truth = serde_json::to_vec_pretty(&self.truth)
            .map_err(|e| gyrus_engine::EngineError::Internal(e.to_string()))?;
        store
            .put_tenant_file(tenant, GROUND_TRUTH_FILE, truth)
            .await?;
        Ok(report)
    }
}
