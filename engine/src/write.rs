//! Atomic, idempotent writes to a tenant's canonical tables.
//!
//! A write is validated whole, sorted by the table's sort key (time, then
//! entity) and committed as one Delta transaction. An idempotency key is
//! recorded in the same commit as a Delta application transaction (`txn`
//! action), so a replayed key finds it and changes nothing, and two writers
//! racing with one key conflict instead of both landing. A slice replacement
//! removes the rows of a slice and adds the new ones in that one commit.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Date32Type, TimestampMicrosecondType};
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::catalog::MemTable;
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::prelude::{Expr, col, lit};
use datafusion::scalar::ScalarValue;
use deltalake_core::DeltaTable;
use deltalake_core::DeltaTableError;
use deltalake_core::kernel::Transaction;
use deltalake_core::kernel::transaction::{CommitProperties, TransactionError};
use deltalake_core::protocol::SaveMode;
use sha2::{Digest, Sha256};
use tracing::Instrument as _;
use url::Url;

use crate::day::date_to_day;
use crate::error::{EngineError, Result};
use crate::schema::CanonicalTable;
use crate::store::{Store, TenantId};
use crate::validate::{ValidationError, check_rows, conform};

/// Rows per Parquet row group: small enough that date and entity filters skip
/// row groups inside a file, large enough to compress well.
const ROW_GROUP_ROWS: usize = 128 * 1024;
/// How often a write is retried when concurrent writers conflict with it.
const CONFLICT_ATTEMPTS: usize = 5;

/// What a write does to the table.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteMode {
    /// Add the rows.
    Append,
    /// Replace every row of the slice with the rows of the write, atomically.
    ReplaceSlice(Slice),
    /// Replace the whole table with the rows of the write, atomically (a
    /// model's output table, rewritten by each training run).
    ReplaceAll,
    /// Insert or update by natural key: every row whose key is among the
    /// write's keys is replaced by the write's row, atomically (CRM records
    /// modified since the last sync). Tables with a one-column key only.
    Upsert,
}

/// A slice of a table: equality on some of its slice columns and an inclusive
/// range of days on its time column, e.g. one platform account's month.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    pub equals: Vec<(String, String)>,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl fmt::Display for Slice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (column, value) in &self.equals {
            write!(f, "{column}={value:?} ")?;
        }
        write!(f, "{}..={}", self.from, self.to)
    }
}

impl Slice {
    fn check(&self, table: CanonicalTable) -> Result<()> {
        let def = table.def();
        if self.from > self.to {
            return Err(EngineError::InvalidSlice(format!(
                "it starts ({}) after it ends ({})",
                self.from, self.to
            )));
        }
        for (column, _) in &self.equals {
            if !def.slice_columns.contains(&column.as_str()) {
                return Err(EngineError::InvalidSlice(format!(
                    "{table} slices by {} (and a range of {}); `{column}` is not one of them",
                    def.slice_columns.join(", "),
                    def.time_column
                )));
            }
        }
        Ok(())
    }

    /// Bounds of the slice on the time column, as scalars of its type: [lo, hi).
    fn bounds(&self, table: CanonicalTable) -> (ScalarValue, ScalarValue, i64, i64) {
        let (lo, hi) = (
            i64::from(date_to_day(self.from)),
            i64::from(date_to_day(self.to)) + 1,
        );
        let def = table.def();
        let time_type = def
            .columns
            .iter()
            .find(|c| c.name == def.time_column)
            .map(|c| c.data_type.clone());
        match time_type {
            Some(DataType::Date32) => (
                ScalarValue::Date32(Some(lo as i32)),
                ScalarValue::Date32(Some(hi as i32)),
                lo,
                hi,
            ),
            _ => {
                const MICROS_PER_DAY: i64 = 86_400_000_000;
                let (lo, hi) = (lo * MICROS_PER_DAY, hi * MICROS_PER_DAY);
                (
                    ScalarValue::TimestampMicrosecond(Some(lo), Some("UTC".into())),
                    ScalarValue::TimestampMicrosecond(Some(hi), Some("UTC".into())),
                    lo,
                    hi,
                )
            }
        }
    }

    /// The slice as a predicate over the table.
    pub fn predicate(&self, table: CanonicalTable) -> Expr {
        let time = table.def().time_column;
        let (lo, hi, _, _) = self.bounds(table);
        self.equals.iter().fold(
            col(time).gt_eq(lit(lo)).and(col(time).lt(lit(hi))),
            |acc, (column, value)| acc.and(col(column.as_str()).eq(lit(value.as_str()))),
        )
    }

    /// Every row of the write must lie inside the slice it replaces.
    fn check_rows(
        &self,
        table: CanonicalTable,
        batch: &RecordBatch,
    ) -> Result<(), ValidationError> {
        let def = table.def();
        let (_, _, lo, hi) = self.bounds(table);
        let time = batch
            .column_by_name(def.time_column)
            .expect("conformed batch");
        let outside_time: Box<dyn Fn(usize) -> bool> = match time.data_type() {
            DataType::Date32 => {
                let values = time.as_primitive::<Date32Type>().clone();
                Box::new(move |i| !(lo..hi).contains(&(values.value(i) as i64)))
            }
            _ => {
                let values = time.as_primitive::<TimestampMicrosecondType>().clone();
                Box::new(move |i| !(lo..hi).contains(&values.value(i)))
            }
        };
        let equals: Vec<(&str, &datafusion::arrow::array::StringArray)> = self
            .equals
            .iter()
            .map(|(c, v)| {
                let array = batch.column_by_name(c).expect("checked slice column");
                (v.as_str(), array.as_string::<i32>())
            })
            .collect();
        let mut count = 0;
        let mut first = Vec::new();
        for i in 0..batch.num_rows() {
            let outside =
                outside_time(i) || equals.iter().any(|(v, a)| a.is_null(i) || a.value(i) != *v);
            if outside {
                count += 1;
                if first.len() < 5 {
                    first.push((i + 1, describe_row(batch, def.natural_key, i)));
                }
            }
        }
        if count == 0 {
            return Ok(());
        }
        Err(ValidationError {
            table: table.name().to_string(),
            column: None,
            problem: format!("row lies outside the slice being replaced ({self})"),
            count,
            first_rows: first,
        })
    }
}

/// One write to one canonical table.
#[derive(Debug, Clone)]
pub struct WriteRequest {
    pub table: CanonicalTable,
    pub batches: Vec<RecordBatch>,
    /// A repeated key changes nothing; `None` writes unconditionally. The
    /// engine keeps a fingerprint of the write (its table, mode and rows, see
    /// [`fingerprint`]) with the key: a replay that carries anything else is
    /// refused with [`EngineError::IdempotencyMismatch`], whichever surface
    /// (HTTP, Flight SQL, CLI, connectors) it came through.
    pub idempotency_key: Option<String>,
    pub mode: WriteMode,
}

impl WriteRequest {
    /// An append of `batches` to `table`.
    pub fn append(table: CanonicalTable, batches: Vec<RecordBatch>) -> Self {
        WriteRequest {
            table,
            batches,
            idempotency_key: None,
            mode: WriteMode::Append,
        }
    }

    /// Sets the idempotency key.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Makes the write replace the whole table.
    pub fn replacing_all(mut self) -> Self {
        self.mode = WriteMode::ReplaceAll;
        self
    }

    /// Makes the write replace `slice`.
    pub fn replacing(mut self, slice: Slice) -> Self {
        self.mode = WriteMode::ReplaceSlice(slice);
        self
    }

    /// Makes the write an upsert by the table's natural key.
    pub fn upserting(mut self) -> Self {
        self.mode = WriteMode::Upsert;
        self
    }
}

/// The predicate of an upsert: the table's key is one of the batch's keys.
/// `None` for an empty batch (nothing to replace or add).
fn upsert_predicate(table: CanonicalTable, batch: &RecordBatch) -> Result<Option<Expr>> {
    let [key] = table.def().natural_key else {
        return Err(EngineError::InvalidSlice(format!(
            "{table} has a key of several columns ({}); upserts need a one-column key",
            table.def().natural_key.join(", ")
        )));
    };
    if batch.num_rows() == 0 {
        return Ok(None);
    }
    let keys = batch
        .column_by_name(key)
        .expect("conformed batch")
        .as_string::<i32>();
    let values: Vec<Expr> = keys.iter().flatten().map(lit).collect();
    Ok(Some(col(*key).in_list(values, false)))
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Rows the write carried. For a replay: the rows of the first write.
    pub rows: usize,
    /// The table's Delta version the write committed. For a replay: the
    /// version of the first write, so a replay answers what the first did.
    pub version: u64,
    /// True when the idempotency key had been applied before: nothing changed.
    pub already_applied: bool,
}

/// Validates and sorts the batches of a write into one batch in the table's
/// sort order. Nothing is written; errors name the column and first rows.
pub fn prepare(table: CanonicalTable, batches: &[RecordBatch]) -> Result<RecordBatch> {
    let mut conformed = Vec::with_capacity(batches.len());
    let mut offset = 0;
    for batch in batches {
        let batch = conform(table, batch, offset)?;
        check_rows(table, &batch, offset)?;
        offset += batch.num_rows();
        conformed.push(batch);
    }
    let batch = concat_batches(&table.schema(), &conformed)
        .map_err(|e| EngineError::Internal(e.to_string()))?;
    sort_and_check_keys(table, batch)
}

fn key_rows(batch: &RecordBatch, columns: &[&str]) -> Result<Rows> {
    let arrays: Vec<ArrayRef> = columns
        .iter()
        .map(|c| batch.column_by_name(c).cloned().expect("conformed batch"))
        .collect();
    let fields = arrays
        .iter()
        .map(|a| SortField::new(a.data_type().clone()))
        .collect();
    let converter = RowConverter::new(fields).map_err(|e| EngineError::Internal(e.to_string()))?;
    converter
        .convert_columns(&arrays)
        .map_err(|e| EngineError::Internal(e.to_string()))
}

fn sort_and_check_keys(table: CanonicalTable, batch: RecordBatch) -> Result<RecordBatch> {
    let def = table.def();
    if batch.num_rows() == 0 {
        return Ok(batch);
    }
    let rows = key_rows(&batch, def.sort_key)?;
    let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
    if !order
        .windows(2)
        .all(|w| rows.row(w[0] as usize) <= rows.row(w[1] as usize))
    {
        order.sort_unstable_by(|&a, &b| rows.row(a as usize).cmp(&rows.row(b as usize)));
    }
    // When the sort key is exactly the natural key, duplicates are neighbours.
    let same_columns = def.sort_key.len() == def.natural_key.len();
    let mut duplicates = 0;
    let mut examples = Vec::new();
    let mut report = |row: usize| {
        duplicates += 1;
        if examples.len() < 5 {
            examples.push(describe_row(&batch, def.natural_key, row));
        }
    };
    if same_columns {
        for w in order.windows(2) {
            if rows.row(w[0] as usize) == rows.row(w[1] as usize) {
                report(w[1] as usize);
            }
        }
    } else {
        let keys = key_rows(&batch, def.natural_key)?;
        let mut seen = HashSet::with_capacity(batch.num_rows());
        for i in 0..batch.num_rows() {
            if !seen.insert(keys.row(i)) {
                report(i);
            }
        }
    }
    if duplicates > 0 {
        return Err(ValidationError::duplicate_keys(table, duplicates, examples).into());
    }
    if order.iter().enumerate().all(|(i, &o)| i as u32 == o) {
        return Ok(batch);
    }
    take_record_batch(&batch, &UInt32Array::from(order))
        .map_err(|e| EngineError::Internal(e.to_string()))
}

/// Renders the named columns of one row, e.g. `campaign_id=c1, date=2026-01-01`.
fn describe_row(batch: &RecordBatch, columns: &[&str], row: usize) -> String {
    columns
        .iter()
        .filter_map(|c| {
            let array = batch.column_by_name(c)?;
            let formatter = ArrayFormatter::try_new(
                array.as_ref(),
                &FormatOptions::default().with_null("null"),
            )
            .ok()?;
            Some(format!("{c}={}", formatter.value(row)))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The one fingerprint rule of a write, whatever surface it came from: the
/// table, the mode and the rows after validation and sorting, so the same rows
/// sent as CSV, NDJSON, Parquet or Arrow, in any order or batching, match, and
/// anything else does not.
pub fn fingerprint(table: CanonicalTable, mode: &WriteMode, batch: &RecordBatch) -> Result<String> {
    let internal = |e: datafusion::arrow::error::ArrowError| EngineError::Internal(e.to_string());
    let mut hash = Sha256::new();
    hash.update(table.name());
    hash.update(format!("{mode:?}"));
    let fields = batch
        .schema()
        .fields()
        .iter()
        .map(|f| SortField::new(f.data_type().clone()))
        .collect();
    let converter = RowConverter::new(fields).map_err(internal)?;
    let rows = converter
        .convert_columns(batch.columns())
        .map_err(internal)?;
    for row in rows.iter() {
        let bytes = row.as_ref();
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    }
    Ok(hex::encode(hash.finalize()))
}

/// The Delta application id that records an idempotency key.
fn app_id(key: &str) -> String {
    format!(
        "gyrus-write-{}",
        hex::encode(&Sha256::digest(key.as_bytes())[..16])
    )
}

/// Parquet settings for every file Gyrus writes: zstd, statistics per page,
/// row groups small enough to skip.
pub fn writer_properties() -> WriterProperties {
    writer_properties_with(ROW_GROUP_ROWS, None)
}

/// [`writer_properties`] with row groups of `rows` rows and, if given, data
/// pages of about `page_rows` rows (rollups, whose rows stand for many, use
/// smaller ones so that date windows and lookups skip more).
pub(crate) fn writer_properties_with(rows: usize, page_rows: Option<usize>) -> WriterProperties {
    let builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(rows));
    match page_rows {
        Some(page_rows) => builder.set_data_page_row_count_limit(page_rows),
        None => builder,
    }
    .build()
}

/// `batch` with exactly `schema`'s column types (scans of Delta tables
/// read strings as views; sums of sums are wider decimals).
pub(crate) fn cast_to_schema(
    schema: &datafusion::arrow::datatypes::SchemaRef,
    batch: &RecordBatch,
) -> std::result::Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| datafusion::arrow::compute::cast(column, field.data_type()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns)
}

/// The rows as a single-partition scan. deltalake merges the partitions of
/// an unpartitioned write into one writer in arrival order, so more than one
/// partition would interleave the sorted rows; one keeps each file in (date,
/// entity) order, and scanning and encoding still overlap.
pub(crate) fn input_plan(batch: &RecordBatch) -> Result<LogicalPlan> {
    let table = MemTable::try_new(batch.schema(), vec![vec![batch.clone()]])?;
    Ok(LogicalPlanBuilder::scan("input", provider_as_source(Arc::new(table)), None)?.build()?)
}

async fn key_applied(table: &DeltaTable, app_id: &str) -> Result<bool> {
    Ok(table
        .snapshot()?
        .transaction_version(table.log_store().as_ref(), app_id)
        .await?
        .is_some())
}

/// A write's idempotency key and the fingerprint of what it carried.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Idempotency<'a> {
    pub key: &'a str,
    pub fingerprint: Option<&'a str>,
}

/// The commit that applied an idempotency key, as the commit log records it.
#[derive(Debug)]
struct FirstWrite {
    version: u64,
    rows: Option<usize>,
    fingerprint: Option<String>,
}

/// Finds the commit whose `txn` action carries `app_id`, newest first. Only
/// replays pay for this walk. `None` when log cleanup has removed it.
async fn first_write(table: &DeltaTable, app_id: &str) -> Result<Option<FirstWrite>> {
    let store = table.log_store();
    let newest = table.version().unwrap_or(0);
    for version in (0..=newest).rev() {
        let Some(bytes) = store.read_commit_entry(version).await? else {
            break;
        };
        let mut applied = false;
        let mut info = None;
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let Ok(action) = serde_json::from_slice::<serde_json::Value>(line) else {
                continue;
            };
            if action["txn"]["appId"].as_str() == Some(app_id) {
                applied = true;
            }
            if action.get("commitInfo").is_some() {
                info = Some(action["commitInfo"].clone());
            }
        }
        if applied {
            let info = info.unwrap_or_default();
            return Ok(Some(FirstWrite {
                version,
                rows: info["gyrus.rows"].as_u64().map(|r| r as usize),
                fingerprint: info["gyrus.fingerprint"].as_str().map(str::to_string),
            }));
        }
    }
    Ok(None)
}

/// The answer to a replayed idempotency key: what the first write did.
async fn replay_outcome(
    table: &DeltaTable,
    app_id: &str,
    key: &str,
    fingerprint: Option<&str>,
    rows: usize,
) -> Result<WriteOutcome> {
    let first = first_write(table, app_id).await?;
    if let (Some(first), Some(sent)) = (&first, fingerprint)
        && first
            .fingerprint
            .as_deref()
            .is_some_and(|kept| kept != sent)
    {
        return Err(EngineError::IdempotencyMismatch {
            key: key.to_string(),
        });
    }
    Ok(WriteOutcome {
        rows: first.as_ref().and_then(|f| f.rows).unwrap_or(rows),
        version: first.map_or(table.version().unwrap_or(0), |f| f.version),
        already_applied: true,
    })
}

pub(crate) fn is_conflict(err: &DeltaTableError) -> bool {
    matches!(
        err,
        DeltaTableError::Transaction {
            source: TransactionError::CommitConflict(_)
                | TransactionError::MaxCommitAttempts(_)
                | TransactionError::VersionAlreadyExists(_)
        }
    ) || matches!(err, DeltaTableError::VersionAlreadyExists(_))
}

impl Store {
    /// Validates, sorts and commits one write atomically.
    ///
    /// With an idempotency key that was applied before, nothing changes and
    /// the outcome says `already_applied`. On a validation error nothing is
    /// written.
    ///
    /// The work (validation, sorting, encoding) runs on the tenant's query
    /// lane ([`crate::exec`]), so that one tenant's large writes take their
    /// share of the cores and no more.
    ///
    /// Every cache of the tenant's tables in this process sees the write at
    /// once ([`Store::write_epoch`]): callers have nothing to invalidate.
    pub async fn write(&self, tenant: &TenantId, request: WriteRequest) -> Result<WriteOutcome> {
        let span = tracing::info_span!("write", tenant = %tenant, table = %request.table, rows = tracing::field::Empty);
        let store = self.clone();
        let owner = tenant.clone();
        let outcome = crate::exec::Lane::of(tenant)
            .offload(async move {
                store
                    .write_in_span(&owner, request, span.clone())
                    .instrument(span)
                    .await
            })
            .await;
        // Unless the write was refused before any commit (bad rows), cached
        // snapshots are stale: a failure after the commit began may still
        // have committed. Refusals leave them be, so a flood of bad writes
        // does not make every query reread the tenant's Delta logs.
        let refused = matches!(
            &outcome,
            Ok(Err(EngineError::Validation(_)
                | EngineError::InvalidSlice(_)
                | EngineError::TooLarge { .. }
                | EngineError::IdempotencyMismatch { .. }))
        );
        if !refused {
            self.changed(tenant);
        }
        outcome?
    }

    async fn write_in_span(
        &self,
        tenant: &TenantId,
        request: WriteRequest,
        span: tracing::Span,
    ) -> Result<WriteOutcome> {
        let table = request.table;
        let started = Instant::now();
        if let WriteMode::ReplaceSlice(slice) = &request.mode {
            slice.check(table)?;
        }
        let batch = prepare(table, &request.batches)?;
        if let WriteMode::ReplaceSlice(slice) = &request.mode {
            slice.check_rows(table, &batch)?;
        }
        let rows = batch.num_rows();
        span.record("rows", rows);
        let fingerprint = match &request.idempotency_key {
            Some(_) => Some(fingerprint(table, &request.mode, &batch)?),
            None => None,
        };
        let url = self.table_url(tenant, table);
        let replace_where = match &request.mode {
            WriteMode::Append => None,
            WriteMode::ReplaceSlice(slice) => Some(slice.predicate(table)),
            WriteMode::ReplaceAll => Some(lit(true)),
            WriteMode::Upsert => upsert_predicate(table, &batch)?,
        };
        let schema = table.schema();
        let commit = self.commit(
            &url,
            table.name(),
            &schema,
            batch.clone(),
            request.idempotency_key.as_deref().map(|key| Idempotency {
                key,
                fingerprint: fingerprint.as_deref(),
            }),
            replace_where,
        );
        // The rollups' share of the write is aggregated while the commit
        // encodes the rows, and committed after it ([`crate::rollup`]).
        let (outcome, own) = tokio::join!(
            commit,
            crate::rollup::rollups_of_rows(table, &request.mode, &batch)
        );
        let outcome = outcome?;
        if !outcome.already_applied {
            self.maintain_rollups(tenant, table, &request.mode, &batch, own, outcome.version)
                .await;
        }
        tracing::info!(
            rows,
            version = outcome.version,
            already_applied = outcome.already_applied,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "write committed"
        );
        Ok(outcome)
    }

    /// Appends `batch` to the system table `name` (under `_system/`), creating
    /// it with `schema` when missing, in one commit; returns the version.
    /// For the stores that are not canonical tables: the model registry,
    /// connector state.
    pub async fn append_system(
        &self,
        name: &str,
        schema: &datafusion::arrow::datatypes::SchemaRef,
        batch: RecordBatch,
    ) -> Result<u64> {
        let outcome = self
            .commit(&self.system_url(name), name, schema, batch, None, None)
            .await?;
        Ok(outcome.version)
    }

    /// Reads the rows of the system table `name` that match `filter`, with
    /// only `columns` (all when empty). A table never written has no rows.
    pub async fn scan_system(
        &self,
        name: &str,
        columns: &[&str],
        filter: Option<Expr>,
    ) -> Result<Vec<RecordBatch>> {
        let Some(table) = self.load(&self.system_url(name)).await? else {
            return Ok(Vec::new());
        };
        self.scan_table(&table, columns, filter).await
    }

    /// Reads the rows of a loaded table (at its loaded version) that match
    /// `filter`, with only `columns` (all when empty).
    pub(crate) async fn scan_table(
        &self,
        table: &DeltaTable,
        columns: &[&str],
        filter: Option<Expr>,
    ) -> Result<Vec<RecordBatch>> {
        let mut frame = self.frame_of(table).await?;
        if let Some(filter) = filter {
            frame = frame.filter(filter)?;
        }
        if !columns.is_empty() {
            frame = frame.select_columns(columns)?;
        }
        Ok(frame.collect().await?)
    }

    /// A loaded table (at its loaded version) as a DataFrame, for scans.
    pub(crate) async fn frame_of(
        &self,
        table: &DeltaTable,
    ) -> Result<datafusion::prelude::DataFrame> {
        let ctx = datafusion::prelude::SessionContext::new();
        table.update_datafusion_session(&ctx.state())?;
        Ok(ctx.read_table(crate::scan::provider(table).await?)?)
    }

    /// Commits one validated, sorted batch to the Delta table at `url`.
    pub(crate) async fn commit(
        &self,
        url: &Url,
        name: &str,
        schema: &datafusion::arrow::datatypes::SchemaRef,
        batch: RecordBatch,
        idempotency: Option<Idempotency<'_>>,
        replace_where: Option<Expr>,
    ) -> Result<WriteOutcome> {
        let rows = batch.num_rows();
        let idempotency_key = idempotency.map(|i| i.key);
        let fingerprint = idempotency.and_then(|i| i.fingerprint);
        let app_id = idempotency_key.map(app_id);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let table = self.load_or_create(url, name, schema).await?;
            if let (Some(app_id), Some(key)) = (&app_id, idempotency_key)
                && key_applied(&table, app_id).await?
            {
                return replay_outcome(&table, app_id, key, fingerprint, rows).await;
            }
            if rows == 0 && replace_where.is_none() {
                return Ok(WriteOutcome {
                    rows,
                    version: table.version().unwrap_or(0),
                    already_applied: false,
                });
            }
            let mut commit = CommitProperties::default();
            if let (Some(app_id), Some(key)) = (&app_id, idempotency_key) {
                commit = commit
                    .with_application_transaction(Transaction::new(app_id, 1))
                    .with_metadata(
                        [
                            ("gyrus.idempotency_key", serde_json::json!(key)),
                            ("gyrus.rows", serde_json::json!(rows)),
                            ("gyrus.fingerprint", serde_json::json!(fingerprint)),
                        ]
                        .map(|(k, v)| (k.to_string(), v)),
                    );
            }
            let mut builder = table
                .write(vec![])
                .with_input_plan(input_plan(&batch)?)
                .with_writer_properties(writer_properties())
                .with_commit_properties(commit)
                .with_save_mode(SaveMode::Append);
            if let Some(predicate) = &replace_where {
                builder = builder
                    .with_save_mode(SaveMode::Overwrite)
                    .with_replace_where(predicate.clone());
            }
            match builder.await {
                Ok(table) => {
                    return Ok(WriteOutcome {
                        rows,
                        version: table.version().unwrap_or(0),
                        already_applied: false,
                    });
                }
                Err(err) if is_conflict(&err) && attempts < CONFLICT_ATTEMPTS => {
                    tracing::warn!(attempt = attempts, error = %err, "write conflicted; retrying");
                    continue;
                }
                Err(err) if is_conflict(&err) => return Err(EngineError::Conflict { attempts }),
                Err(err) => return Err(err.into()),
            }
        }
    }
}
