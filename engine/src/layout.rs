//! Layout for lookups: how `gyrus optimize` lays out a table whose entities
//! (a campaign, an ad group, an ad, a customer) are looked up one at a time.
//!
//! Writes sort each batch by time first (`TableDef::sort_key`), so date
//! windows skip files and row groups, but every row group then holds every
//! entity of its days: one ad group's series reads the whole date window.
//! A laid-out table is instead sorted by **week, then entity, then time**,
//! in small data pages with statistics and a page index:
//!
//! - row groups still hold about a week each (at the `large` scale), so date
//!   windows skip as before, at the grain of a week;
//! - inside a week, one entity's rows are neighbours, so the page index lets
//!   a lookup of one campaign, ad group or ad read a page or two per week.
//!
//! Bloom filters would not add to this: every row group holds every entity
//! of its week, so a filter per row group would answer "maybe" for any id.
//!
//! The rewrite is one Delta commit that changes no data (`OPTIMIZE`, files
//! added and removed with `dataChange: false`), so readers, rollups (whose
//! stamps stay valid across it) and idempotency keys are unaffected. It is
//! marked in the commit (`gyrus.layout`), so a table already laid out and
//! not written since is left alone. Rows are sorted a week at a time, in
//! memory bounded by [`SORT_MEMORY`] (a week that needs more spills to disk).
//!
//! ```
//! use gyrus_engine::layout::Layout;
//! use gyrus_engine::schema::CanonicalTable;
//!
//! let ads = Layout::of(CanonicalTable::AdPerformance).unwrap();
//! assert_eq!(ads.entities(), ["campaign_id", "ad_group_id", "ad_id"]);
//! assert!(Layout::of(CanonicalTable::WebSessions).is_none());
//! ```

use std::future::IntoFuture as _;
use std::num::NonZeroU64;

use chrono::{Datelike as _, Days, NaiveDate};
use datafusion::arrow::array::{Array as _, AsArray as _};
use datafusion::arrow::datatypes::{DataType, Date32Type, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::functions::datetime::expr_fn::date_trunc;
use datafusion::functions_aggregate::expr_fn::{max, min};
use datafusion::logical_expr::SortExpr;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext, cast, col, lit};
use deltalake_core::DeltaTable;
use deltalake_core::datafile::writer::{DeltaWriter, WriterConfig};
use deltalake_core::kernel::Action;
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake_core::protocol::DeltaOperation;
use deltalake_core::table::config::TablePropertiesExt as _;
use futures::StreamExt as _;
use tracing::Instrument as _;

use crate::error::{EngineError, Result};
use crate::schema::CanonicalTable;
use crate::write::{cast_to_schema, writer_properties_with};

/// The commit metadata key that marks a laid-out table.
const MARK: &str = "gyrus.layout";
/// Memory the sort may hold before it spills to disk.
pub const SORT_MEMORY: usize = 512 << 20;
/// Size of the files written (a table of 87 MB, `large`, becomes two).
const FILE_BYTES: u64 = 64 << 20;
/// Rows per row group: about a week of `ad_performance` at `large`.
const ROW_GROUP_ROWS: usize = 128 * 1024;
/// Rows per data page: one entity's week fills part of one.
const PAGE_ROWS: usize = 2048;
/// Commits looked back through for the mark.
const LOOK_BACK: u64 = 32;

/// The lookup layout of one table.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    table: CanonicalTable,
    entities: &'static [&'static str],
}

impl Layout {
    /// The layout of `table`, if its entities are looked up one at a time.
    pub fn of(table: CanonicalTable) -> Option<Layout> {
        let entities: &'static [&'static str] = match table {
            CanonicalTable::AdPerformance => &["campaign_id", "ad_group_id", "ad_id"],
            CanonicalTable::Orders => &["customer_id"],
            _ => return None,
        };
        Some(Layout { table, entities })
    }

    /// The entity columns rows are grouped by inside each week, coarsest first.
    pub fn entities(&self) -> &'static [&'static str] {
        self.entities
    }

    /// What the commit mark records: the order rows are in.
    fn spec(&self) -> String {
        let time = self.table.def().time_column;
        format!("week({time}),{},{time}", self.entities.join(","))
    }

    /// The order rows are written in: week, entities, time, then the rest
    /// of the sort key (so that the order is total and the rewrite is
    /// reproducible).
    fn order(&self) -> Vec<SortExpr> {
        let def = self.table.def();
        let time = def.time_column;
        let mut order = vec![date_trunc(lit("week"), col(time)).sort(true, false)];
        let mut seen: Vec<&str> = Vec::new();
        for column in self
            .entities
            .iter()
            .chain([&time])
            .chain(def.sort_key.iter())
        {
            if !seen.contains(column) {
                seen.push(column);
                order.push(col(*column).sort(true, false));
            }
        }
        order
    }

    /// Rewrites `delta` in this layout, unless it is laid out already and
    /// unchanged since; returns (files removed, files added).
    pub async fn apply(&self, delta: DeltaTable, span: tracing::Span) -> Result<(u64, u64)> {
        let state = delta.snapshot()?.clone();
        if state.log_data().num_files() == 0 || self.laid_out(&delta).await? {
            return Ok((0, 0));
        }
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(SORT_MEMORY, 1.0)
            .build_arc()?;
        let ctx = SessionContext::new_with_config_rt(SessionConfig::new(), runtime);
        delta.update_datafusion_session(&ctx.state())?;
        let schema = self.table.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let frame = ctx
            .read_table(crate::scan::provider(&delta).await?)?
            .select_columns(&names)?;
        let time = self.table.def().time_column;
        let time_type = schema
            .field_with_name(time)
            .map_err(|e| EngineError::Internal(e.to_string()))?
            .data_type()
            .clone();
        let config = WriterConfig::new(
            schema.clone(),
            Vec::new(),
            Some(writer_properties_with(ROW_GROUP_ROWS, Some(PAGE_ROWS))),
            NonZeroU64::new(FILE_BYTES),
            None,
            state.table_config().num_indexed_cols(),
            state
                .table_config()
                .data_skipping_stats_columns
                .as_ref()
                .map(|columns| columns.iter().map(ToString::to_string).collect()),
        );
        let mut writer = DeltaWriter::new(delta.object_store(), config);
        let mut rows = 0u64;
        // Week by week: each is sorted in memory on its own (a week of the
        // `large` demo is ~110k rows), and the weeks in order make the
        // whole order. Each week's scan skips the files and row groups of
        // other weeks by their statistics.
        let (first, last) = time_range(&frame, time).await?;
        let mut week = first - Days::new(u64::from(first.weekday().num_days_from_monday()));
        while week <= last {
            let next = week + Days::new(7);
            let this_week = col(time)
                .gt_eq(lit(bound(week, &time_type)?))
                .and(col(time).lt(lit(bound(next, &time_type)?)));
            let mut batches = frame
                .clone()
                .filter(this_week)?
                .sort(self.order())?
                .execute_stream()
                .instrument(span.clone())
                .await?;
            while let Some(batch) = batches.next().await {
                let batch = cast_to_schema(&schema, &batch?).map_err(|e| {
                    EngineError::Internal(format!("laying out {}: {e}", self.table))
                })?;
                rows += batch.num_rows() as u64;
                writer.write(&batch).await?;
            }
            week = next;
        }
        let adds = writer.close().await?;
        // Nothing is committed unless every row was written once.
        let expected: u64 = state
            .log_data()
            .iter()
            .map(|f| f.num_records().map_or(u64::MAX, |n| n as u64))
            .fold(0u64, u64::saturating_add);
        if expected != u64::MAX && rows != expected {
            return Err(EngineError::Internal(format!(
                "laying out {}: wrote {rows} rows of {expected}; nothing committed",
                self.table
            )));
        }
        let added = adds.len() as u64;
        let mut actions: Vec<Action> = adds
            .into_iter()
            .map(|mut add| {
                add.data_change = false;
                Action::Add(add)
            })
            .collect();
        let removed: Vec<Action> = state
            .log_data()
            .iter()
            .map(|file| Action::Remove(file.remove_action(false)))
            .collect();
        let removed_count = removed.len() as u64;
        actions.extend(removed);
        let properties = CommitProperties::default()
            .with_metadata([(MARK.to_string(), serde_json::Value::String(self.spec()))]);
        CommitBuilder::from(properties)
            .with_actions(actions)
            .build(
                Some(&state),
                delta.log_store(),
                DeltaOperation::Optimize {
                    predicate: None,
                    target_size: FILE_BYTES as i64,
                },
            )
            .into_future()
            .instrument(span.clone())
            .await?;
        let _guard = span.enter();
        tracing::info!(
            rows,
            files_removed = removed_count,
            files_added = added,
            layout = %self.spec(),
            "laid out for lookups"
        );
        Ok((removed_count, added))
    }

    /// Whether the newest commit that wrote data or laid the table out was
    /// this layout (compaction and vacuum commits in between change nothing).
    async fn laid_out(&self, delta: &DeltaTable) -> Result<bool> {
        let Some(latest) = delta.version() else {
            return Ok(false);
        };
        let spec = self.spec();
        let store = delta.log_store();
        for version in (latest.saturating_sub(LOOK_BACK)..=latest).rev() {
            let Some(commit) = store.read_commit_entry(version).await? else {
                return Ok(false);
            };
            if marked(&commit, &spec) {
                return Ok(true);
            }
            if crate::rollup::changes_data(&commit) {
                return Ok(false);
            }
        }
        Ok(false)
    }
}

/// The first and last day of the time column `time` in `frame` (not empty).
async fn time_range(frame: &DataFrame, time: &str) -> Result<(NaiveDate, NaiveDate)> {
    let day = cast(col(time), DataType::Date32);
    let batches = frame
        .clone()
        .aggregate(
            vec![],
            vec![min(day.clone()).alias("first"), max(day).alias("last")],
        )?
        .collect()
        .await?;
    let read = |name: &str| -> Option<NaiveDate> {
        let batch = batches.first()?;
        let days = batch
            .column_by_name(name)?
            .as_primitive_opt::<Date32Type>()?;
        (!days.is_null(0))
            .then(|| NaiveDate::from_num_days_from_ce_opt(days.value(0) + EPOCH_CE_DAYS))
            .flatten()
    };
    match (read("first"), read("last")) {
        (Some(first), Some(last)) => Ok((first, last)),
        _ => Err(EngineError::Internal("laying out: no time range".into())),
    }
}

/// Days from 0001-01-01 (CE) to 1970-01-01.
const EPOCH_CE_DAYS: i32 = 719_163;

/// Midnight UTC of `day` as a value of the time column's type.
fn bound(day: NaiveDate, time_type: &DataType) -> Result<ScalarValue> {
    let days = day.num_days_from_ce() - EPOCH_CE_DAYS;
    match time_type {
        DataType::Date32 => Ok(ScalarValue::Date32(Some(days))),
        DataType::Timestamp(TimeUnit::Microsecond, zone) => Ok(ScalarValue::TimestampMicrosecond(
            Some(i64::from(days) * 86_400_000_000),
            zone.clone(),
        )),
        other => Err(EngineError::Internal(format!(
            "laying out: a time column of type {other}"
        ))),
    }
}

/// Whether a commit's `commitInfo` carries the layout mark `spec`.
fn marked(commit: &[u8], spec: &str) -> bool {
    commit
        .split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
        .any(|action| action["commitInfo"][MARK].as_str() == Some(spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_is_marked_only_by_its_own_layout() {
        let spec = Layout::of(CanonicalTable::AdPerformance).unwrap().spec();
        assert_eq!(spec, "week(date),campaign_id,ad_group_id,ad_id,date");
        let commit = format!(
            "{{\"commitInfo\":{{\"operation\":\"OPTIMIZE\",\"{MARK}\":\"{spec}\"}}}}\n{{\"remove\":{{\"path\":\"a\",\"dataChange\":false}}}}\n"
        );
        assert!(marked(commit.as_bytes(), &spec));
        assert!(!marked(commit.as_bytes(), "week(date),campaign_id,date"));
        assert!(!marked(
            b"{\"commitInfo\":{\"operation\":\"OPTIMIZE\"}}\n",
            &spec
        ));
    }

    #[test]
    fn the_order_is_total_and_starts_with_the_week() {
        let layout = Layout::of(CanonicalTable::AdPerformance).unwrap();
        let order: Vec<String> = layout.order().iter().map(|s| s.expr.to_string()).collect();
        assert!(order[0].contains("date_trunc"), "{order:?}");
        let columns: Vec<&str> = order[1..].iter().map(String::as_str).collect();
        assert_eq!(
            columns,
            [
                "campaign_id",
                "ad_group_id",
                "ad_id",
                "date",
                "platform",
                "account_id"
            ]
        );
    }
}
