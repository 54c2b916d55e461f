//! Rollups: day-grain aggregates of the data tables, kept by every write.
//!
//! A rollup holds, per day and per combination of the dimensions dashboards
//! group by, the row count and the sum, minimum and maximum of every measure
//! (and the count of values of a measure that may be null). It is a Delta
//! table of its own under `tenants/<tenant>/_rollups/<name>/`, so it is
//! backed up, restored and erased with the tenant; clients never see it.
//!
//! **Agreement.** Two Delta tables cannot share one commit, so a rollup is
//! *stamped* instead: each of its commits records, as a Delta application
//! transaction, the version of the base table it reflects. A snapshot uses a
//! rollup only if its stamp is the base table's version, or if every base
//! commit since the stamp changed no data (compaction, vacuum). A write that
//! is killed between its base commit and its rollup commit therefore leaves a
//! rollup that is simply not used: queries read the base table until the next
//! write or `gyrus optimize` rebuilds it. A rollup can never answer for a
//! version of the base table it disagrees with.
//!
//! **Maintenance**, in the write path ([`Store::write`]), right after the base
//! commit: an append adds the aggregate of its own rows (a key may then have
//! several partial rows: queries re-aggregate); a slice or whole-table
//! replacement replaces the same slice of the rollup; anything else, or a
//! rollup that missed a commit, is rebuilt from the base table. A rollup
//! commit is only made on top of the exact state it read (no automatic
//! rebase), so concurrent writers cannot interleave partial updates. Once
//! appends leave more than a few small files, the write compacts them into
//! files of a bounded size (a commit that changes no data, stamp kept).
//!
//! **Layout.** Rows are written in 1,024-row pages; the campaign rollup's
//! by month, then campaign ([`RollupDef::cluster`]), so that one campaign's
//! series reads its own pages.
//!
//! **Queries** are answered from the smallest rollup that covers them by the
//! optimizer rule in [`rewrite`].

pub mod rewrite;

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{MemTable, TableProvider};
use datafusion::functions::datetime::expr_fn::date_trunc;
use datafusion::functions_aggregate::expr_fn::{count, max, min, sum};
use datafusion::prelude::{DataFrame, Expr, SessionContext, col, lit};
use deltalake_core::DeltaTable;
use deltalake_core::kernel::Transaction;
use deltalake_core::kernel::transaction::CommitProperties;
use deltalake_core::protocol::SaveMode;
use url::Url;

use crate::error::{EngineError, Result};
use crate::schema::CanonicalTable;
use crate::store::{LogMark, Store, TenantId};
use crate::write::{
    Slice, WriteMode, cast_to_schema, input_plan, is_conflict, writer_properties_with,
};

pub use rewrite::RollupRule;

/// The application id under which a rollup commit records the base version.
const STAMP: &str = "gyrus-rollup-base";
/// The column holding the number of base rows a rollup row stands for.
pub const ROWS: &str = "rows";
/// Base commits after a stamp that are checked for data changes before a
/// rollup is given up on until it is rebuilt.
const MAX_COMMITS_CHECKED: u64 = 32;
/// Rows per Parquet row group of a rollup: a few months of a campaign
/// rollup at the `large` scale. Skipping is done finer, by page (below):
/// every row group a query touches costs reads of its own, so fewer and
/// larger ones made one campaign's series faster (measured: 16k-row groups
/// read 20 of them for a year and a half of one campaign).
const ROW_GROUP_ROWS: usize = 64 * 1024;
/// Rows per Parquet data page of a rollup. Rows are laid out by month, then
/// entity ([`RollupDef::cluster`]), so a page holds one month of an entity
/// or two: the page index skips both by date and by entity.
const PAGE_ROWS: usize = 1024;
/// Small files (below [`FILE_BYTES`]) a rollup may have before a write
/// compacts them.
const MAX_FILES: usize = 4;
/// The size compaction grows a rollup file to. Files this large are left
/// alone, so one compaction rewrites about this much at most, however large
/// the rollup: merging a whole rollup on every fourth append cost 2–5 s per
/// append once campaign-level data (one rollup row per table row) reached
/// 1M rows.
const FILE_BYTES: u64 = 8 << 20;
/// Rollup commits tried when other writers keep committing first.
const ATTEMPTS: usize = 5;

/// One rollup: which table it aggregates, over which dimensions.
#[derive(Debug)]
pub struct RollupDef {
    /// Its name (a folder under `_rollups/`, and the table `EXPLAIN` shows).
    pub name: &'static str,
    pub base: CanonicalTable,
    /// Group keys, the day column first.
    pub dims: &'static [&'static str],
    /// How rows are laid out for lookups of one entity: by month, then by
    /// these columns, then by the dimensions. Empty: by the dimensions (day
    /// first). A rollup's row groups then hold about a month each (date
    /// windows skip the others), and inside one, an entity's rows are
    /// neighbours (one campaign's series reads a page or two per month).
    pub cluster: &'static [&'static str],
    /// Additive measures: each gets `sum_`, `min_`, `max_` columns (and
    /// `count_` when it may be null).
    pub measures: &'static [&'static str],
}

const AD_MEASURES: &[&str] = &[
    "impressions",
    "clicks",
    "spend",
    "conversions",
    "conversion_value",
    "video_views",
];

/// Every rollup, the smaller of two over one table first: the rewrite uses
/// the first that covers a query.
pub static ROLLUPS: [RollupDef; 3] = [
    RollupDef {
        name: "ad_performance_by_account_day",
        base: CanonicalTable::AdPerformance,
        dims: &["date", "platform", "account_id", "channel", "currency"],
        cluster: &[],
        measures: AD_MEASURES,
    },
    RollupDef {
        name: "ad_performance_by_campaign_day",
        base: CanonicalTable::AdPerformance,
        dims: &[
            "date",
            "platform",
            "account_id",
            "campaign_id",
            "campaign_name",
            "channel",
            "currency",
        ],
        cluster: &["campaign_id"],
        measures: AD_MEASURES,
    },
    RollupDef {
        name: "web_sessions_by_source_day",
        base: CanonicalTable::WebSessions,
        dims: &["date", "property_id", "source", "medium", "currency"],
        cluster: &[],
        measures: &[
            "sessions",
            "users",
            "new_users",
            "engaged_sessions",
            "conversions",
            "revenue",
        ],
    },
];

impl RollupDef {
    /// The rollups of `table`, smallest first.
    pub fn of(table: CanonicalTable) -> impl Iterator<Item = &'static RollupDef> {
        ROLLUPS.iter().filter(move |r| r.base == table)
    }

    /// Whether `column` of the base table is one of the rollup's dimensions.
    pub fn is_dim(&self, column: &str) -> bool {
        self.dims.contains(&column)
    }

    /// Whether `column` of the base table is one of the rollup's measures.
    pub fn is_measure(&self, column: &str) -> bool {
        self.measures.contains(&column)
    }

    /// Whether the base table's `column` may be null.
    fn nullable(&self, column: &str) -> bool {
        self.base
            .def()
            .columns
            .iter()
            .any(|c| c.name == column && c.nullable)
    }

    /// The rollup column holding `kind` (`sum`, `min`, `max`, `count`) of `measure`.
    pub fn column(kind: &str, measure: &str) -> String {
        format!("{kind}_{measure}")
    }

    /// The column counting the values of `measure`: its own count when it
    /// may be null, else the row count.
    pub fn count_column(&self, measure: &str) -> String {
        if self.nullable(measure) {
            Self::column("count", measure)
        } else {
            ROWS.to_string()
        }
    }

    /// The rows of the rollup of `frame` (rows of the base table), in the
    /// order of its dimensions.
    fn aggregate(&self, frame: DataFrame) -> Result<DataFrame> {
        let mut aggregates = vec![count(lit(1)).alias(ROWS)];
        for &m in self.measures {
            aggregates.push(sum(col(m)).alias(Self::column("sum", m)));
            aggregates.push(min(col(m)).alias(Self::column("min", m)));
            aggregates.push(max(col(m)).alias(Self::column("max", m)));
            if self.nullable(m) {
                aggregates.push(count(col(m)).alias(Self::column("count", m)));
            }
        }
        self.grouped(frame, aggregates)
    }

    /// The rows of this rollup from rows of a finer one over the same table
    /// (whose dimensions include these): sums of sums and counts, minimums
    /// of minimums, maximums of maximums.
    fn reaggregate(&self, finer: DataFrame) -> Result<DataFrame> {
        let mut aggregates = vec![sum(col(ROWS)).alias(ROWS)];
        for &m in self.measures {
            for (kind, f) in [("sum", sum as fn(Expr) -> Expr), ("min", min), ("max", max)] {
                let c = Self::column(kind, m);
                aggregates.push(f(col(&c)).alias(c));
            }
            if self.nullable(m) {
                let c = Self::column("count", m);
                aggregates.push(sum(col(&c)).alias(c));
            }
        }
        self.grouped(finer, aggregates)
    }

    /// `aggregates` of `frame` by the rollup's dimensions, in the order of
    /// its layout ([`RollupDef::cluster`]).
    fn grouped(&self, frame: DataFrame, aggregates: Vec<Expr>) -> Result<DataFrame> {
        let group = self.dims.iter().map(|d| col(*d)).collect::<Vec<_>>();
        Ok(frame.aggregate(group, aggregates)?.sort(self.layout())?)
    }

    /// The order rows are written in.
    fn layout(&self) -> Vec<datafusion::logical_expr::SortExpr> {
        let mut order = Vec::new();
        if !self.cluster.is_empty() {
            let month = date_trunc(lit("month"), col(self.dims[0]));
            order.push(month.sort(true, false));
        }
        order.extend(
            self.cluster
                .iter()
                .chain(self.dims.iter().filter(|d| !self.cluster.contains(d)))
                .map(|d| col(*d).sort(true, false)),
        );
        order
    }

    /// The rollup's Arrow schema: what [`RollupDef::aggregate`] makes.
    pub fn schema(&self) -> SchemaRef {
        static SCHEMAS: LazyLock<Vec<std::result::Result<SchemaRef, String>>> =
            LazyLock::new(|| {
                ROLLUPS
                    .iter()
                    .map(|def| {
                        let ctx = SessionContext::new();
                        let empty = MemTable::try_new(def.base.schema(), vec![vec![]])
                            .map_err(|e| e.to_string())?;
                        let frame = ctx.read_table(Arc::new(empty)).map_err(|e| e.to_string())?;
                        let rows = def.aggregate(frame).map_err(|e| e.to_string())?;
                        Ok(Arc::new(rows.schema().as_arrow().clone()))
                    })
                    .collect()
            });
        let index = ROLLUPS
            .iter()
            .position(|r| std::ptr::eq(r, self))
            .unwrap_or_default();
        match &SCHEMAS[index] {
            Ok(schema) => schema.clone(),
            // The definitions are constants checked by the tests.
            Err(e) => panic!("rollup {}: {e}", self.name),
        }
    }
}

/// A rollup usable at one snapshot: it agrees with its base table there.
#[derive(Clone)]
pub struct Rollup {
    def: &'static RollupDef,
    delta: DeltaTable,
    /// The base table's provider in the snapshot: scans of it may be rewritten.
    base: Arc<dyn TableProvider>,
    provider: Arc<dyn TableProvider>,
}

impl std::fmt::Debug for Rollup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rollup")
            .field("name", &self.def.name)
            .field("version", &self.delta.version())
            .finish()
    }
}

impl Rollup {
    pub fn def(&self) -> &'static RollupDef {
        self.def
    }

    /// The rollup's Delta table at the snapshot.
    pub fn delta(&self) -> &DeltaTable {
        &self.delta
    }
}

/// The base version a rollup's newest commit reflects.
async fn stamp(rollup: &DeltaTable) -> Result<Option<u64>> {
    let version = rollup
        .snapshot()?
        .transaction_version(rollup.log_store().as_ref(), STAMP)
        .await?;
    Ok(version.and_then(|v| u64::try_from(v).ok()))
}

/// Whether a rollup stamped `stamp` agrees with `base` at `version`: the
/// same version, or no base commit since the stamp changed data.
async fn agrees(base: &DeltaTable, stamp: Option<u64>, version: u64) -> Result<bool> {
    // Only single commits of the base table are read: `base` need not be loaded.
    let Some(stamp) = stamp else {
        return Ok(false);
    };
    if stamp == version {
        return Ok(true);
    }
    if stamp > version || version - stamp > MAX_COMMITS_CHECKED {
        return Ok(false);
    }
    for v in stamp + 1..=version {
        let Some(commit) = base.log_store().read_commit_entry(v).await? else {
            return Ok(false);
        };
        if changes_data(&commit) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether a Delta commit adds or removes data (compaction does not: its
/// files are marked `dataChange: false`) or changes the table's schema.
pub(crate) fn changes_data(commit: &[u8]) -> bool {
    commit
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .any(|line| {
            let Ok(action) = serde_json::from_slice::<serde_json::Value>(line) else {
                return true;
            };
            action.get("metaData").is_some()
                || ["add", "remove", "cdc"].iter().any(|kind| {
                    action
                        .get(kind)
                        .is_some_and(|a| a["dataChange"].as_bool().unwrap_or(true))
                })
        })
}

impl Store {
    /// Where a tenant's rollup lives.
    pub fn rollup_url(&self, tenant: &TenantId, def: &RollupDef) -> Url {
        let mut url = self.tenant_url(tenant);
        url.set_path(&format!("{}_rollups/{}/", url.path(), def.name));
        url
    }

    /// The rollups of `table` that agree with `base` (its snapshot, served by
    /// `provider`). A rollup that cannot be read is left out, not an error:
    /// queries then read the base table. Each rollup log read, used or not,
    /// is marked in `marks`, so that a later change to it is seen.
    pub(crate) async fn usable_rollups(
        &self,
        tenant: &TenantId,
        table: CanonicalTable,
        base: &DeltaTable,
        provider: &Arc<dyn TableProvider>,
        marks: &mut Vec<LogMark>,
    ) -> Result<Vec<Rollup>> {
        let mut usable = Vec::new();
        let Some(version) = base.version() else {
            return Ok(usable);
        };
        for def in RollupDef::of(table) {
            let url = self.rollup_url(tenant, def);
            let found = async {
                let delta = self.load(&url).await?;
                marks.push(
                    self.mark(&url, delta.as_ref().and_then(DeltaTable::version))
                        .await,
                );
                let Some(delta) = delta else {
                    return Ok::<_, EngineError>(None);
                };
                if !agrees(base, stamp(&delta).await?, version).await? {
                    return Ok(None);
                }
                let rollup_provider = crate::scan::provider(&delta).await?;
                Ok(Some(Rollup {
                    def,
                    delta,
                    base: provider.clone(),
                    provider: rollup_provider,
                }))
            };
            match found.await {
                Ok(Some(rollup)) => usable.push(rollup),
                Ok(None) => {
                    tracing::debug!(tenant = %tenant, rollup = def.name, "rollup behind its table; not used")
                }
                Err(e) => {
                    marks.push(LogMark::Unreadable);
                    tracing::warn!(tenant = %tenant, rollup = def.name, error = %e, "rollup unreadable; not used")
                }
            }
        }
        Ok(usable)
    }

    /// Brings the rollups of `table` up to its version `version`, which the
    /// write of `batch` (rows as committed) with `mode` just made; `own` is
    /// what [`rollups_of_rows`] made of the batch, if it could. Failures are
    /// logged, not returned: the write itself is committed, and a rollup that
    /// did not follow is not used until it is rebuilt.
    pub(crate) async fn maintain_rollups(
        &self,
        tenant: &TenantId,
        table: CanonicalTable,
        mode: &WriteMode,
        batch: &RecordBatch,
        own: Result<Vec<(&'static RollupDef, Vec<RecordBatch>)>>,
        version: u64,
    ) {
        let own = own
            .inspect_err(|e| tracing::warn!(tenant = %tenant, error = %e, "rollup rows of the write not computed"))
            .unwrap_or_default();
        for def in RollupDef::of(table) {
            let rows = own
                .iter()
                .find(|(d, _)| std::ptr::eq(*d, def))
                .map(|(_, rows)| rows.as_slice());
            if let Err(e) = self
                .maintain_rollup(tenant, def, mode, batch, rows, version)
                .await
            {
                tracing::warn!(tenant = %tenant, rollup = def.name, error = %e, "rollup not updated; queries read the table until it is rebuilt");
            }
        }
    }

    async fn maintain_rollup(
        &self,
        tenant: &TenantId,
        def: &'static RollupDef,
        mode: &WriteMode,
        batch: &RecordBatch,
        own: Option<&[RecordBatch]>,
        version: u64,
    ) -> Result<()> {
        let url = self.rollup_url(tenant, def);
        for _ in 0..ATTEMPTS {
            let rollup = self.load_or_create(&url, def.name, &def.schema()).await?;
            let stamp = stamp(&rollup).await?;
            if stamp.is_some_and(|s| s >= version) {
                return Ok(());
            }
            let base_url = self.table_url(tenant, def.base);
            let log = self.unloaded(&base_url)?;
            let follows = version > 0 && agrees(&log, stamp, version - 1).await?;
            let (rows, replace, stamp) = if follows {
                self.rollup_change(tenant, def, mode, batch, own, version)
                    .await?
            } else {
                let Some(base) = self.load(&base_url).await? else {
                    return Ok(());
                };
                let latest = base.version().unwrap_or(0);
                (
                    self.rollup_rows(def, &base, None).await?,
                    Some(lit(true)),
                    latest,
                )
            };
            match commit_rollup(rollup, def, rows, replace, stamp).await {
                Ok(committed) => {
                    // The write is in the rollup; compaction only merges files.
                    if let Err(e) = compact_rollup(committed).await {
                        tracing::warn!(tenant = %tenant, rollup = def.name, error = %e, "rollup files not compacted; the next write tries again");
                    }
                    return Ok(());
                }
                Err(EngineError::Delta(e)) if is_conflict(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(EngineError::Conflict { attempts: ATTEMPTS })
    }

    /// The rollup rows one write changes, the predicate of the rollup rows
    /// they replace (`None`: they are added) and the stamp.
    async fn rollup_change(
        &self,
        tenant: &TenantId,
        def: &'static RollupDef,
        mode: &WriteMode,
        batch: &RecordBatch,
        own: Option<&[RecordBatch]>,
        version: u64,
    ) -> Result<(Vec<RecordBatch>, Option<Expr>, u64)> {
        let of_batch = || async {
            if let Some(rows) = own {
                return Ok(rows.to_vec());
            }
            let ctx = SessionContext::new();
            def.aggregate(ctx.read_batch(batch.clone())?)?
                .collect()
                .await
                .map_err(EngineError::from)
        };
        Ok(match mode {
            // Appends add partial rows (a key may then have several, which
            // queries add up); files are compacted after the commit.
            WriteMode::Append => (of_batch().await?, None, version),
            WriteMode::ReplaceAll => (of_batch().await?, Some(lit(true)), version),
            WriteMode::ReplaceSlice(slice) if slice.equals.iter().all(|(c, _)| def.is_dim(c)) => {
                (of_batch().await?, Some(slice.predicate(def.base)), version)
            }
            // The slice names a column the rollup does not keep: recompute
            // the wider region it lies in from the table as committed.
            WriteMode::ReplaceSlice(slice) => {
                let region = Slice {
                    equals: slice
                        .equals
                        .iter()
                        .filter(|(c, _)| def.is_dim(c))
                        .cloned()
                        .collect(),
                    from: slice.from,
                    to: slice.to,
                };
                let predicate = region.predicate(def.base);
                let base = self.committed(tenant, def.base, version).await?;
                let rows = self
                    .rollup_rows(def, &base, Some(predicate.clone()))
                    .await?;
                (rows, Some(predicate), version)
            }
            WriteMode::Upsert => {
                let base = self.committed(tenant, def.base, version).await?;
                (
                    self.rollup_rows(def, &base, None).await?,
                    Some(lit(true)),
                    version,
                )
            }
        })
    }

    /// A tenant's table at `version`.
    async fn committed(
        &self,
        tenant: &TenantId,
        table: CanonicalTable,
        version: u64,
    ) -> Result<DeltaTable> {
        self.load_version(&self.table_url(tenant, table), version)
            .await?
            .ok_or_else(|| EngineError::Internal(format!("{table} has no version {version}")))
    }

    /// The rollup rows of the rows of `base` matching `filter`.
    async fn rollup_rows(
        &self,
        def: &RollupDef,
        base: &DeltaTable,
        filter: Option<Expr>,
    ) -> Result<Vec<RecordBatch>> {
        let mut frame = self.frame_of(base).await?;
        if let Some(filter) = filter {
            frame = frame.filter(filter)?;
        }
        Ok(def.aggregate(frame)?.collect().await?)
    }

    /// Rebuilds every rollup of a tenant from its base table as it is now
    /// (merging the partial rows appends leave, and repairing a rollup a
    /// killed write left behind). Returns the rollups rebuilt with their
    /// rows.
    pub async fn rebuild_rollups(&self, tenant: &TenantId) -> Result<Vec<(String, usize)>> {
        let mut rebuilt = Vec::new();
        // The finest rollup of each table at the version read: the coarser
        // ones are re-aggregated from it instead of scanning the table again.
        let mut finest: Vec<(CanonicalTable, Option<u64>, Vec<RecordBatch>)> = Vec::new();
        for def in &ROLLUPS {
            let Some(base) = self.table(tenant, def.base).await? else {
                continue;
            };
            let url = self.rollup_url(tenant, def);
            let mut attempts = 0;
            loop {
                attempts += 1;
                let rollup = self.load_or_create(&url, def.name, &def.schema()).await?;
                let base = match attempts {
                    1 => base.clone(),
                    _ => self.table(tenant, def.base).await?.unwrap_or(base.clone()),
                };
                let stamp = base.version().unwrap_or(0);
                let rows = self.rebuilt_rows(def, &base, &mut finest).await?;
                let count = rows.iter().map(RecordBatch::num_rows).sum();
                match commit_rollup(rollup, def, rows, Some(lit(true)), stamp).await {
                    Ok(_) => {
                        rebuilt.push((def.name.to_string(), count));
                        break;
                    }
                    Err(EngineError::Delta(e)) if is_conflict(&e) && attempts < ATTEMPTS => {
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if !rebuilt.is_empty() {
            self.changed(tenant);
        }
        Ok(rebuilt)
    }

    /// The rows of `def` over all of `base`: from the finest rollup of the
    /// same table at the same version in `finest` (aggregated from `base`
    /// and kept there on first use).
    async fn rebuilt_rows(
        &self,
        def: &'static RollupDef,
        base: &DeltaTable,
        finest: &mut Vec<(CanonicalTable, Option<u64>, Vec<RecordBatch>)>,
    ) -> Result<Vec<RecordBatch>> {
        let Some(finest_def) = RollupDef::of(def.base).max_by_key(|d| d.dims.len()) else {
            return self.rollup_rows(def, base, None).await;
        };
        let version = base.version();
        let known = finest
            .iter()
            .position(|(table, at, _)| *table == def.base && *at == version);
        let index = match known {
            Some(index) => index,
            None => {
                let rows = self.rollup_rows(finest_def, base, None).await?;
                finest.retain(|(table, _, _)| *table != def.base);
                finest.push((def.base, version, rows));
                finest.len() - 1
            }
        };
        let fine = finest[index].2.clone();
        if std::ptr::eq(def, finest_def) {
            return Ok(fine);
        }
        let ctx = SessionContext::new();
        Ok(def.reaggregate(ctx.read_batches(fine)?)?.collect().await?)
    }
}

/// The rollup rows of a write's own rows, for every rollup of `table` (none
/// for an upsert, whose change is not its rows alone): the finest rollup
/// aggregated from the rows, the coarser ones from it. Computed while the
/// write's own commit encodes its Parquet, so a write pays little for them.
pub(crate) async fn rollups_of_rows(
    table: CanonicalTable,
    mode: &WriteMode,
    batch: &RecordBatch,
) -> Result<Vec<(&'static RollupDef, Vec<RecordBatch>)>> {
    let defs = RollupDef::of(table).collect::<Vec<_>>();
    let Some(finest) = defs.iter().max_by_key(|d| d.dims.len()) else {
        return Ok(Vec::new());
    };
    if matches!(mode, WriteMode::Upsert) || batch.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let ctx = SessionContext::new();
    let fine = finest
        .aggregate(ctx.read_batch(batch.clone())?)?
        .collect()
        .await?;
    let mut all = Vec::with_capacity(defs.len());
    for def in &defs {
        let rows = if std::ptr::eq(*def, *finest) {
            fine.clone()
        } else {
            let frame = ctx.read_batches(fine.clone())?;
            def.reaggregate(frame)?.collect().await?
        };
        all.push((*def, rows));
    }
    Ok(all)
}

/// Rollup rows with exactly the rollup's schema.
fn conform_rows(def: &RollupDef, rows: &[RecordBatch]) -> Result<Vec<RecordBatch>> {
    let schema = def.schema();
    rows.iter()
        .map(|batch| cast_to_schema(&schema, batch))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| EngineError::Internal(format!("rollup {}: {e}", def.name)))
}

/// Commits rollup rows on top of exactly the rollup state read (a concurrent
/// commit fails it instead of being merged), stamped with the base version.
async fn commit_rollup(
    rollup: DeltaTable,
    def: &RollupDef,
    rows: Vec<RecordBatch>,
    replace: Option<Expr>,
    stamp: u64,
) -> Result<DeltaTable> {
    let schema = def.schema();
    let batch = concat_batches(&schema, &conform_rows(def, &rows)?)
        .map_err(|e| EngineError::Internal(format!("rollup {}: {e}", def.name)))?;
    let commit = CommitProperties::default()
        .with_application_transaction(Transaction::new(STAMP, stamp as i64))
        .with_max_retries(0);
    let mut builder = rollup
        .write(vec![])
        .with_input_plan(input_plan(&batch)?)
        .with_writer_properties(writer_properties_with(ROW_GROUP_ROWS, Some(PAGE_ROWS)))
        .with_commit_properties(commit)
        .with_save_mode(SaveMode::Append);
    if let Some(predicate) = replace {
        builder = builder
            .with_save_mode(SaveMode::Overwrite)
            .with_replace_where(predicate);
    }
    Ok(builder.await?)
}

/// Merges a rollup's small files once there are more than [`MAX_FILES`]
/// of them, into files of up to [`FILE_BYTES`] (Delta's bin-packing
/// compaction: `dataChange: false`, the stamp unchanged). Files already that
/// large are not rewritten, which bounds the cost of one compaction.
async fn compact_rollup(rollup: DeltaTable) -> Result<()> {
    let small = rollup
        .snapshot()?
        .log_data()
        .iter()
        .filter(|file| u64::try_from(file.size()).is_ok_and(|size| size < FILE_BYTES))
        .count();
    if small <= MAX_FILES {
        return Ok(());
    }
    let target = std::num::NonZeroU64::new(FILE_BYTES).unwrap_or(std::num::NonZeroU64::MIN);
    rollup
        .optimize()
        .with_target_size(target)
        .with_writer_properties(writer_properties_with(ROW_GROUP_ROWS, Some(PAGE_ROWS)))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rollup_has_a_schema_and_names_real_columns() {
        for def in &ROLLUPS {
            let schema = def.schema();
            for column in def.dims.iter().chain(def.measures) {
                assert!(
                    def.base.def().columns.iter().any(|c| c.name == *column),
                    "{}: {column}",
                    def.name
                );
            }
            assert_eq!(schema.field(def.dims.len()).name(), ROWS);
        }
    }

    #[test]
    fn compaction_changes_no_data_and_appends_do() {
        let compaction = br#"{"add":{"path":"a","dataChange":false}}
{"remove":{"path":"b","dataChange":false}}
{"commitInfo":{"operation":"OPTIMIZE"}}"#;
        assert!(!changes_data(compaction));
        let append = br#"{"add":{"path":"a","dataChange":true}}
{"commitInfo":{}}"#;
        assert!(changes_data(append));
        assert!(!changes_data(
            br#"{"commitInfo":{"operation":"VACUUM END"}}"#
        ));
        assert!(changes_data(b"not json"));
    }
}
