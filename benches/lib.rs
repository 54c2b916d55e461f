//! Shared pieces of the benchmarks and the comparison harness.

use std::sync::Arc;

use gyrus_datasets::{GeneratorConfig, Scale, generate};
use gyrus_engine::datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray};
use gyrus_engine::datafusion::arrow::compute::concat_batches;
use gyrus_engine::schema::CanonicalTable;

/// About `rows` rows of realistic `ad_performance` data in one batch: the
/// medium dataset, repeated under distinct account ids until large enough.
pub fn ad_rows(rows: usize) -> RecordBatch {
    let data = generate(&GeneratorConfig::new(42, Scale::Medium));
    let schema = CanonicalTable::AdPerformance.schema();
    let base = concat_batches(&schema, &data.ad_performance).expect("one schema");
    let account = schema.index_of("account_id").expect("canonical column");
    let mut copies = Vec::new();
    let mut total = 0;
    let mut copy = 0;
    while total < rows {
        let mut columns: Vec<ArrayRef> = base.columns().to_vec();
        let accounts = base.column(account).as_string::<i32>();
        columns[account] = Arc::new(
            accounts
                .iter()
                .map(|a| a.map(|a| format!("{a}-r{copy}")))
                .collect::<StringArray>(),
        );
        let batch = RecordBatch::try_new(schema.clone(), columns).expect("same columns");
        let take = (rows - total).min(batch.num_rows());
        copies.push(batch.slice(0, take));
        total += take;
        copy += 1;
    }
    concat_batches(&schema, &copies).expect("one schema")
}
