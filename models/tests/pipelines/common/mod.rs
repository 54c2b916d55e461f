//! Helpers the models' integration tests share.

use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use gyrus_engine::session::SessionLimits;
use gyrus_engine::{Store, TenantId};
use gyrus_models::FamilyId;
use gyrus_models::Status;
use gyrus_models::pipeline::{Silent, TrainOptions, train};

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

/// The first value of a query's first row, as text.
pub async fn scalar(store: &Store, tenant: &TenantId, sql: &str) -> String {
    query(store, tenant, sql)
        .await
        .swap_remove(0)
        .swap_remove(0)
}

/// Training options for one family, every tenant.
pub fn only(family: FamilyId) -> TrainOptions {
    TrainOptions {
        families: vec![family],
        ..TrainOptions::default()
    }
}

/// Trains with `options` made strict (a tolerance below 1 makes an equal
/// score count as worse) and asserts the run is rejected and says the
/// serving model stays.
pub async fn assert_a_worse_run_is_rejected(store: &Store, options: TrainOptions) {
    let strict = TrainOptions {
        worse_tolerance: 0.5,
        ..options
    };
    let reports = train(store, &strict, std::sync::Arc::new(Silent))
        .await
        .unwrap();
    assert_eq!(reports[0].status, Status::Rejected, "{reports:?}");
    assert!(
        reports[0]
            .message
            .as_deref()
            .unwrap()
            .contains("keeps serving")
    );
}
