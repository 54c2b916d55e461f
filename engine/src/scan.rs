//! Reading a Delta table as one snapshot saw it.
//!
//! deltalake's table provider replays the snapshot's file actions through
//! Delta Kernel and parses their JSON statistics again for every query it
//! plans: on a dashboard's small queries that was a third of the time. A
//! [`SnapshotScan`] does that once, when the snapshot is read: it keeps the
//! files as DataFusion [`PartitionedFile`]s with their row counts, and the
//! per-file minima, maxima and null counts as columns ([`FileStats`]). A
//! query's scan is then the pruning of those files by its filters and
//! DataFusion's own Parquet scan over the rest (row groups, pages and bloom
//! filters are pruned there, with the footers cached per snapshot).
//!
//! Only what the engine writes is read this way: tables of reader version 1
//! (no deletion vectors, no column mapping) without partition columns. Any
//! other table is given deltalake's provider ([`provider`] decides).
//!
//! ```no_run
//! # async fn f(delta: deltalake_core::DeltaTable) -> gyrus_engine::Result<()> {
//! let provider = gyrus_engine::scan::provider(&delta).await?;
//! println!("{} columns", provider.schema().fields().len());
//! # Ok(()) }
//! ```

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::stats::Precision;
use datafusion::common::{Column, DFSchema, ScalarValue, Statistics};
use datafusion::datasource::TableProvider;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::ParquetFileReaderFactory;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::parquet::arrow::arrow_reader::ArrowReaderOptions;
use datafusion::parquet::arrow::async_reader::AsyncFileReader;
use datafusion::parquet::errors::Result as ParquetResult;
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::physical_optimizer::pruning::{PruningPredicate, PruningPredicateBuilder};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use deltalake_core::DeltaTable;
use futures::future::BoxFuture;
use object_store::path::Path;

use crate::{EngineError, Result};

/// The provider that reads `delta` at its loaded version: a
/// [`SnapshotScan`] when the table is one the engine writes, else
/// deltalake's own.
pub async fn provider(delta: &DeltaTable) -> Result<Arc<dyn TableProvider>> {
    match SnapshotScan::try_new(delta)? {
        Some(scan) => Ok(Arc::new(scan)),
        None => Ok(delta.table_provider().await?),
    }
}

/// A Delta table's files at one version, scanned by DataFusion's Parquet
/// reader; see the [module docs](self).
#[derive(Debug)]
pub struct SnapshotScan {
    schema: SchemaRef,
    store: ObjectStoreUrl,
    files: Vec<PartitionedFile>,
    stats: FileStats,
}

impl SnapshotScan {
    /// The scan of `delta` as loaded, or `None` if the table uses Delta
    /// features this reader leaves to deltalake (reader version above 1,
    /// partition columns, files named by absolute URLs).
    pub fn try_new(delta: &DeltaTable) -> Result<Option<Self>> {
        let state = delta.snapshot()?;
        if state.protocol().min_reader_version() != 1
            || !state.metadata().partition_columns().is_empty()
        {
            return Ok(None);
        }
        let schema = viewed(&state.snapshot().arrow_schema());
        let url = delta.table_url();
        let store = ObjectStoreUrl::parse(&url[..url::Position::BeforePath])?;
        let root = Path::from_url_path(url.path())
            .map_err(|e| EngineError::Internal(format!("table path {}: {e}", url.path())))?;
        let log = state.log_data();
        let mut files = Vec::with_capacity(log.num_files());
        let mut rows = Vec::with_capacity(log.num_files());
        for file in log.iter() {
            if file.path().contains("://") {
                // A file outside the table's folder (a shallow clone's).
                return Ok(None);
            }
            let location = Path::from_iter(root.parts().chain(file.object_store_path().parts()));
            let size = u64::try_from(file.size()).unwrap_or(0);
            let mut statistics = Statistics::new_unknown(&schema);
            statistics.total_byte_size = Precision::Inexact(size as usize);
            let count = file.num_records();
            if let Some(count) = count {
                statistics.num_rows = Precision::Exact(count);
            }
            rows.push(count.map(|n| n as u64));
            files.push(PartitionedFile::new(location, size).with_statistics(Arc::new(statistics)));
        }
        let stats = FileStats::of(&log, &schema, UInt64Array::from(rows));
        Ok(Some(SnapshotScan {
            schema,
            store,
            files,
            stats,
        }))
    }

    /// The files left after pruning by `predicate` (all of them without one).
    fn kept(&self, predicate: Option<&PruningPredicate>) -> Vec<PartitionedFile> {
        let keep = predicate.and_then(|p| match p.prune(&self.stats) {
            Ok(keep) => Some(keep),
            Err(e) => {
                tracing::debug!(error = %e, "file pruning skipped");
                None
            }
        });
        match keep {
            Some(keep) => self
                .files
                .iter()
                .zip(keep)
                .filter(|(_, keep)| *keep)
                .map(|(file, _)| file.clone())
                .collect(),
            None => self.files.clone(),
        }
    }
}

#[async_trait]
impl TableProvider for SnapshotScan {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        // Used to skip files, row groups and rows, and applied again above.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        session: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let predicate = match conjunction(filters.iter().cloned()) {
            Some(expr) => {
                let df_schema = DFSchema::try_from(self.schema.as_ref().clone())?;
                session.create_physical_expr(expr, &df_schema).ok()
            }
            None => None,
        };
        let pruning = predicate.as_ref().and_then(|p| {
            PruningPredicateBuilder::new()
                .with_file_schema(self.schema.clone())
                .with_max_in_list_size(
                    session
                        .config()
                        .options()
                        .execution
                        .parquet
                        .max_in_list_size,
                )
                .build(p.clone())
        });
        let files = self.kept(pruning.as_deref());
        if files.is_empty() {
            let schema = match projection {
                Some(columns) => Arc::new(self.schema.project(columns)?),
                None => self.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        let mut statistics = Statistics::new_unknown(&self.schema);
        statistics.num_rows = Precision::Exact(0);
        statistics.total_byte_size = Precision::Exact(0);
        for file in &files {
            if let Some(s) = &file.statistics {
                statistics.num_rows = statistics.num_rows.add(&s.num_rows);
                statistics.total_byte_size = statistics.total_byte_size.add(&s.total_byte_size);
            }
        }

        let runtime = session.runtime_env();
        let reader = IndexedReaders(CachedParquetFileReaderFactory::new(
            runtime.object_store(&self.store)?,
            runtime.cache_manager.get_file_metadata_cache(),
        ));
        let mut source = ParquetSource::new(self.schema.clone())
            .with_table_parquet_options(session.table_options().parquet.clone())
            .with_parquet_file_reader_factory(Arc::new(reader));
        if let Some(predicate) = predicate {
            source = source.with_predicate(predicate);
        }
        let partitions = session.config().target_partitions().max(1);
        let config = FileScanConfigBuilder::new(self.store.clone(), Arc::new(source))
            .with_file_groups(FileGroup::new(files).split_files(partitions))
            .with_statistics(statistics)
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

/// Readers whose footers are cached with their page indexes. DataFusion's
/// Parquet opener asks for a footer without the page index and loads the
/// index itself afterwards, so the cache would keep footers only and every
/// query would read and decode the page index again; these readers ask the
/// cache for both, once per file and snapshot.
#[derive(Debug)]
struct IndexedReaders(CachedParquetFileReaderFactory);

impl ParquetFileReaderFactory for IndexedReaders {
    fn create_reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> datafusion::error::Result<Box<dyn AsyncFileReader + Send>> {
        let reader = self
            .0
            .create_reader(partition_index, file, metadata_size_hint, metrics)?;
        Ok(Box::new(Indexed(reader)))
    }
}

struct Indexed(Box<dyn AsyncFileReader + Send>);

impl AsyncFileReader for Indexed {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, ParquetResult<Bytes>> {
        self.0.get_bytes(range)
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, ParquetResult<Vec<Bytes>>> {
        self.0.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        _: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, ParquetResult<Arc<ParquetMetaData>>> {
        // No options: the cache's own policy, which keeps the page index.
        // (The engine writes no encrypted files, the options' other use.)
        self.0.get_metadata(None)
    }
}

/// `schema` with strings and binaries as views, as deltalake's provider
/// shows them (so that answers keep their types whichever reads the table).
fn viewed(schema: &SchemaRef) -> SchemaRef {
    let fields = schema.fields().iter().map(|f| {
        let viewed = match f.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 => DataType::Utf8View,
            DataType::Binary | DataType::LargeBinary => DataType::BinaryView,
            _ => return f.clone(),
        };
        Arc::new(f.as_ref().clone().with_data_type(viewed))
    });
    Arc::new(Schema::new_with_metadata(
        fields.collect::<Vec<_>>(),
        schema.metadata().clone(),
    ))
}

/// Per-file statistics from the Delta log, one row per file, read once per
/// snapshot for [`PruningPredicate`]. Columns whose logged bounds are not
/// safe bounds are left out: Delta truncates timestamps to milliseconds,
/// so a logged maximum can lie below the true one.
#[derive(Debug)]
struct FileStats {
    files: usize,
    rows: ArrayRef,
    columns: HashMap<String, ColumnStats>,
}

#[derive(Debug)]
struct ColumnStats {
    min: Option<ArrayRef>,
    max: Option<ArrayRef>,
    nulls: Option<ArrayRef>,
}

impl FileStats {
    /// The statistics of `log`'s files, whose row counts are `rows`.
    fn of(log: &impl PruningStatistics, schema: &SchemaRef, rows: UInt64Array) -> Self {
        let files = rows.len();
        let sized = |a: Option<ArrayRef>| a.filter(|a| a.len() == files);
        let columns = schema
            .fields()
            .iter()
            .filter(|f| {
                !matches!(
                    f.data_type(),
                    DataType::Timestamp(..) | DataType::BinaryView
                )
            })
            .map(|f| {
                let column = Column::new_unqualified(f.name());
                let stats = ColumnStats {
                    min: sized(log.min_values(&column)),
                    max: sized(log.max_values(&column)),
                    nulls: sized(log.null_counts(&column)),
                };
                (f.name().clone(), stats)
            })
            .collect();
        FileStats {
            files,
            rows: Arc::new(rows),
            columns,
        }
    }
}

impl PruningStatistics for FileStats {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.columns.get(&column.name)?.min.clone()
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.columns.get(&column.name)?.max.clone()
    }

    fn num_containers(&self) -> usize {
        self.files
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        self.columns.get(&column.name)?.nulls.clone()
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        Some(self.rows.clone())
    }

    fn contained(&self, _: &Column, _: &HashSet<ScalarValue>) -> Option<BooleanArray> {
        None
    }
}
