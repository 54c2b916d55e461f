//! Helpers the models' integration tests share.

use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use gyrus_engine::session::SessionLimits;
use gyrus_engine::{Store, TenantId};

/// The rows of a query of a tenant's tables, every value as text.
pub async fn query(store: &Store, tenant: &TenantId, sql: &str) -> Vec<Vec<String>> {
    let session = store
        .session(tenant, &SessionLimits::default())
        .await
        .unwrap();
    let mut rows = Vec::new();
    for batch in session.query(sql).await.unwrap() {
        let columns: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| cast(c, &DataType::Utf8).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            rows.push(
                columns
                    .iter()
                    .map(|c| c.as_string::<i32>().value(row).to_string())
                    .collect(),
            );
        }
    }
    rows
}
