//! SQL sessions scoped to one tenant: its canonical tables and nothing else.
//!
//! A [`TenantSession`] holds a DataFusion context whose catalog contains the
//! tenant's ten canonical tables (empty placeholders for tables never
//! written) and `information_schema`. No other tenant, no `_system`, no URL
//! tables, no file-reading functions. Client SQL passes [`check_read_only`]
//! and DataFusion's own DDL/DML/statement switches (both must agree), runs
//! under a memory pool that spills or fails cleanly, and under a time limit.
//!
//! ```no_run
//! # async fn run() -> gyrus_engine::Result<()> {
//! use gyrus_engine::{SessionLimits, Store, TenantId};
//!
//! let store = Store::open("./gyrus-data").await?;
//! let session = store.session(&TenantId::new("acme")?, &SessionLimits::default()).await?;
//! let batches = session.query("SELECT platform, sum(spend) FROM ad_performance GROUP BY 1").await?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemTable, MemoryCatalogProvider,
    MemoryCatalogProviderList, MemorySchemaProvider, SchemaProvider, TableProvider,
};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionState;
use datafusion::execution::{SessionStateBuilder, TaskContext};
use datafusion::logical_expr::LogicalPlan;
use datafusion::optimizer::{Optimizer, OptimizerRule};
use datafusion::prelude::{DataFrame, SQLOptions, SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParserBuilder, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use datafusion::sql::sqlparser::dialect::{GenericDialect, dialect_from_str};

use deltalake_core::DeltaTable;
use tracing::Instrument as _;

use crate::budget::ProcessBudget;
use crate::error::{EngineError, Result, strip_context};
use crate::exec::Lane;
use crate::rollup::{Rollup, RollupRule};
use crate::schema::CanonicalTable;
use crate::shape::{SqlBounds, check_shape};
use crate::store::{LogMark, Store, TenantId};
use crate::system::{Asker, QueryLog, QueryStatus, SystemCatalog};

/// The catalog and schema client SQL sees.
pub const CATALOG: &str = "gyrus";
pub const SCHEMA: &str = "public";

/// Bounds on one query.
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// Memory the query's operators may hold before spilling or failing.
    pub memory_bytes: usize,
    /// Wall time from planning to the last batch.
    pub timeout: Duration,
    /// Parallelism of a query (defaults to the number of cores).
    pub target_partitions: usize,
    /// Length and depth of client SQL, checked before parsing.
    pub sql: SqlBounds,
    /// The memory and spill space all queries of the process share (clones
    /// of one `SessionLimits` share one budget).
    pub budget: ProcessBudget,
    /// Answer aggregates from rollups where they cover them ([`crate::rollup`]);
    /// off only to compare against the base tables.
    pub rollups: bool,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            memory_bytes: 2 << 30,
            timeout: Duration::from_secs(300),
            target_partitions: crate::exec::cores(),
            sql: SqlBounds::default(),
            budget: ProcessBudget::default(),
            rollups: true,
        }
    }
}

/// A DataFusion session holding one tenant's tables.
pub struct TenantSession {
    tenant: TenantId,
    /// The snapshot's context for this kind of session, shared.
    ctx: SessionContext,
    /// The context's state, shared: statements are planned with it by
    /// reference, never copied.
    state: Arc<SessionState>,
    /// What the context's plans run with, shared.
    task: Arc<TaskContext>,
    /// This session's own runtime: its memory pool and spill space.
    runtime: Arc<datafusion::execution::runtime_env::RuntimeEnv>,
    contexts: Arc<Contexts>,
    limits: SessionLimits,
    errors: ErrorMap,
    /// Set for sessions made for a caller: their queries go to the log
    /// (shared with the planning that runs on the query lane).
    observer: Option<Arc<Observer>>,
}

/// Records the client queries of a session in the process's [`QueryLog`]:
/// [`TenantSession::plan`] notes the text and the time; the query enters
/// the log when it fails or when its physical plan is made (so a query
/// reading `system.queries` sees itself running); the [`QueryStream`] that
/// runs it records its end (ok, error, or cancelled when dropped early). A
/// statement only described (a prepared statement's schema) is not a query
/// run and is not recorded; one planned and never fetched ends cancelled.
/// Every surface that plans and executes through a session is recorded the
/// same way.
struct Observer {
    log: Arc<QueryLog>,
    tenant: TenantId,
    asker: Asker,
    stage: std::sync::Mutex<Stage>,
}

#[derive(Default)]
enum Stage {
    #[default]
    Idle,
    /// Planned, not yet in the log: the text and when planning began.
    Planned {
        sql: String,
        started: (chrono::DateTime<chrono::Utc>, Instant),
    },
    /// In the log as running, not yet started.
    Entered(String),
}

impl Observer {
    fn stage(&self) -> std::sync::MutexGuard<'_, Stage> {
        self.stage.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn begin(&self, sql: &str) {
        let earlier = std::mem::replace(
            &mut *self.stage(),
            Stage::Planned {
                sql: sql.to_string(),
                started: (chrono::Utc::now(), Instant::now()),
            },
        );
        self.abandon(earlier);
    }

    /// The planned query's id in the log, entering it as running if it is
    /// not there yet (`None` when nothing was planned).
    fn enter(&self) -> Option<String> {
        let mut stage = self.stage();
        let id = match std::mem::take(&mut *stage) {
            Stage::Idle => return None,
            Stage::Planned { sql, started } => {
                self.log.begin_at(&self.tenant, &self.asker, &sql, started)
            }
            Stage::Entered(id) => id,
        };
        *stage = Stage::Entered(id.clone());
        Some(id)
    }

    /// The planned query's id, entered in the log and no longer pending.
    fn take(&self) -> Option<String> {
        let id = self.enter()?;
        *self.stage() = Stage::Idle;
        Some(id)
    }

    fn failed(&self, error: &EngineError) {
        if let Some(id) = self.take() {
            let message = Some(error.to_string());
            self.log
                .finish(&self.tenant, &id, QueryStatus::Error, 0, 0, message);
        }
    }

    /// A query in the log that will not run ends cancelled.
    fn abandon(&self, stage: Stage) {
        if let Stage::Entered(id) = stage {
            self.log
                .finish(&self.tenant, &id, QueryStatus::Cancelled, 0, 0, None);
        }
    }

    /// The record the stream of the planned query ends.
    fn start(&self) -> Option<Recording> {
        let query_id = self.take()?;
        Some(Recording {
            log: self.log.clone(),
            tenant: self.tenant.clone(),
            query_id,
            rows: 0,
            bytes: 0,
            ended: false,
        })
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        let stage = std::mem::take(&mut *self.stage());
        self.abandon(stage);
    }
}

/// A running query's entry in the log, ended by its stream.
struct Recording {
    log: Arc<QueryLog>,
    tenant: TenantId,
    query_id: String,
    rows: u64,
    bytes: u64,
    ended: bool,
}

impl Recording {
    fn end(&mut self, status: QueryStatus, error: Option<String>) {
        self.ended = true;
        self.log.finish(
            &self.tenant,
            &self.query_id,
            status,
            self.rows,
            self.bytes,
            error,
        );
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if !self.ended {
            self.end(QueryStatus::Cancelled, None);
        }
    }
}

/// Turns a session's DataFusion errors into the engine's: memory limits
/// become [`EngineError::MemoryLimit`], and storage locations are replaced by
/// table names, so that plans and errors never show where data is stored.
#[derive(Clone)]
struct ErrorMap {
    /// Where the tables are stored (URL and path forms) and the table names
    /// they become in what clients see, longest first.
    locations: Arc<[(String, String)]>,
    memory_bytes: usize,
}

impl ErrorMap {
    fn scrub(&self, text: &str) -> String {
        let mut text = text.to_string();
        for (from, to) in self.locations.iter() {
            if text.contains(from.as_str()) {
                text = text.replace(from.as_str(), to);
            }
        }
        text
    }

    /// `batch` with every storage location in its text replaced.
    fn scrub_batch(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
        use datafusion::arrow::datatypes::DataType;
        let columns = batch
            .columns()
            .iter()
            .map(|column| -> ArrayRef {
                match column.data_type() {
                    DataType::Utf8 => Arc::new(
                        column
                            .as_string::<i32>()
                            .iter()
                            .map(|v| v.map(|v| self.scrub(v)))
                            .collect::<StringArray>(),
                    ),
                    _ => column.clone(),
                }
            })
            .collect();
        RecordBatch::try_new(batch.schema(), columns)
            .map_err(|e| EngineError::Internal(e.to_string()))
    }

    fn map(&self, err: DataFusionError) -> EngineError {
        match strip_context(err) {
            DataFusionError::ResourcesExhausted(detail) => EngineError::MemoryLimit {
                limit_mb: self.memory_bytes >> 20,
                detail,
            },
            other => match crate::error::classify(other) {
                EngineError::Query(message) => EngineError::Query(self.scrub(&message)),
                classified => classified,
            },
        }
    }
}

/// When a request's query work must end. Planning, execution and reading
/// the batches all count against one deadline, made once per request by
/// [`TenantSession::deadline`]; every surface (HTTP, Flight SQL, the CLI)
/// bounds its work with it, so the time limit is written in one place.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: tokio::time::Instant,
    limit: Duration,
}

impl Deadline {
    /// `limit` from now.
    pub fn after(limit: Duration) -> Self {
        Deadline {
            at: tokio::time::Instant::now() + limit,
            limit,
        }
    }

    /// `work`, or [`EngineError::Timeout`] if the deadline comes first
    /// (dropping `work` stops it).
    pub async fn bound<T>(&self, work: impl std::future::Future<Output = T>) -> Result<T> {
        tokio::time::timeout_at(self.at, work)
            .await
            .map_err(|_| self.exceeded())
    }

    /// The error of a query that ran past the deadline.
    pub fn exceeded(&self) -> EngineError {
        EngineError::Timeout {
            seconds: self.limit.as_secs(),
        }
    }
}

/// A running query's batches, read under its [`Deadline`]: past it the
/// stream yields [`EngineError::Timeout`] and ends; an error ends it too.
/// Dropping it stops the query.
pub struct QueryStream {
    batches: datafusion::execution::SendableRecordBatchStream,
    deadline: Deadline,
    errors: ErrorMap,
    done: bool,
    recording: Option<Recording>,
}

impl QueryStream {
    /// The schema of every batch.
    pub fn schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        self.batches.schema()
    }

    /// The next batch, the error that ends the stream, or `None` at its end.
    pub async fn next(&mut self) -> Option<Result<RecordBatch>> {
        use futures::StreamExt as _;
        if self.done {
            return None;
        }
        let item = match self.deadline.bound(self.batches.next()).await {
            Ok(None) => None,
            Ok(Some(Ok(batch))) => {
                if let Some(recording) = &mut self.recording {
                    recording.rows += batch.num_rows() as u64;
                    recording.bytes += batch.get_array_memory_size() as u64;
                }
                return Some(Ok(batch));
            }
            Ok(Some(Err(e))) => Some(Err(self.errors.map(e))),
            Err(timeout) => Some(Err(timeout)),
        };
        self.done = true;
        if let Some(recording) = &mut self.recording {
            match &item {
                None => recording.end(QueryStatus::Ok, None),
                Some(Err(e)) => recording.end(QueryStatus::Error, Some(e.to_string())),
                Some(Ok(_)) => {}
            }
        }
        item
    }

    /// The batches as a `Stream`, for bodies that are streamed out.
    pub fn into_stream(self) -> impl futures::Stream<Item = Result<RecordBatch>> + Send {
        futures::stream::unfold(self, |mut query| async move {
            let item = query.next().await?;
            Some((item, query))
        })
    }

    /// Every batch, under the deadline.
    pub async fn collect(mut self) -> Result<Vec<RecordBatch>> {
        let mut batches = Vec::new();
        while let Some(batch) = self.next().await {
            batches.push(batch?);
        }
        Ok(batches)
    }
}

/// A snapshot of one tenant's ten tables: the expensive part of a session
/// (reading ten Delta logs and building a DataFusion state), done once and
/// shared by many sessions.
pub struct TenantTables {
    tenant: TenantId,
    tables: Vec<LoadedTable>,
    loaded_at: Instant,
    /// Every Delta log read (the tables' and their rollups'), as read.
    marks: Vec<LogMark>,
    /// Each stored table's location (URL, path and object-store forms) and
    /// the name sessions show instead, longest first.
    locations: Arc<[(String, String)]>,
    /// The rollups that agree with their base table at this snapshot's version.
    rollups: Vec<Rollup>,
    contexts: Arc<Contexts>,
}

/// The DataFusion contexts of one snapshot, one per kind of session (the
/// role that reads `system`, the parallelism, rollups on or off), each made
/// on first use and shared by every session of its kind: planning a query
/// builds no function registry, catalog or optimizer. A session adds only
/// its runtime (memory pool, spill space), used when its plan runs.
struct Contexts {
    /// Configuration, functions, optimizer rules (with the rollup rewrite
    /// over the snapshot's rollups), the object stores of the tables and
    /// their metadata caches.
    template: SessionState,
    /// The schema client SQL sees: the ten tables.
    schema: Arc<dyn SchemaProvider>,
    /// Each context with its state and what its plans run with.
    made: std::sync::Mutex<HashMap<ContextKey, Made>>,
}

/// One kind of session's context, its state (the same, kept apart so that
/// planning borrows it instead of copying it out of the context) and what
/// its plans run with.
#[derive(Clone)]
struct Made {
    ctx: SessionContext,
    state: Arc<SessionState>,
    task: Arc<TaskContext>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ContextKey {
    /// The role `system` is shown for; `None`: no `system` schema.
    role: Option<crate::keys::Role>,
    /// Which catalog's `system` schema (its address; 0 for none).
    system: usize,
    partitions: usize,
    rollups: bool,
}

impl Contexts {
    fn get(&self, key: ContextKey, system: Option<(&SystemCatalog, &TenantId)>) -> Result<Made> {
        let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(made) = made.get(&key) {
            return Ok(made.clone());
        }
        let config = self
            .template
            .config()
            .clone()
            .with_target_partitions(key.partitions)
            .with_create_default_catalog_and_schema(false);
        let catalog = MemoryCatalogProvider::new();
        catalog.register_schema(SCHEMA, self.schema.clone())?;
        if let (Some(role), Some((system, tenant))) = (key.role, system) {
            catalog.register_schema(crate::system::SCHEMA, system.schema_for(tenant, role)?)?;
        }
        let catalogs = MemoryCatalogProviderList::new();
        catalogs.register_catalog(CATALOG.to_string(), Arc::new(catalog));
        let mut state = SessionStateBuilder::new_from_existing(self.template.clone())
            .with_config(config)
            .with_catalog_list(Arc::new(catalogs));
        if !key.rollups {
            state = state.with_optimizer_rules(Optimizer::new().rules);
        }
        let state = state.build();
        let task = state.task_ctx();
        let new = Made {
            ctx: SessionContext::new_with_state(state.clone()),
            state: Arc::new(state),
            task,
        };
        made.insert(key, new.clone());
        Ok(new)
    }
}

struct LoadedTable {
    table: CanonicalTable,
    /// `None` for a table never written: an empty placeholder is served.
    delta: Option<DeltaTable>,
    provider: Arc<dyn TableProvider>,
}

impl TenantTables {
    /// The tenant these tables belong to.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// When the snapshot was read.
    pub fn loaded_at(&self) -> Instant {
        self.loaded_at
    }

    /// The Delta version of every table in the snapshot (`None`: never
    /// written), recorded with a model so it is known what data it saw.
    pub fn versions(&self) -> Vec<(CanonicalTable, Option<u64>)> {
        self.tables
            .iter()
            .map(|t| (t.table, t.delta.as_ref().and_then(|d| d.version())))
            .collect()
    }

    /// The Delta versions of `inputs` by table name, as a model records the
    /// data it read (`None` for a table never written).
    pub fn versions_of(
        &self,
        inputs: &[CanonicalTable],
    ) -> std::collections::BTreeMap<String, Option<u64>> {
        self.versions()
            .into_iter()
            .filter(|(table, _)| inputs.contains(table))
            .map(|(table, version)| (table.name().to_string(), version))
            .collect()
    }

    /// Every canonical table with its provider, in [`CanonicalTable::ALL`] order.
    pub fn providers(&self) -> impl Iterator<Item = (CanonicalTable, &Arc<dyn TableProvider>)> {
        self.tables.iter().map(|t| (t.table, &t.provider))
    }

    /// The rollups that queries of this snapshot may be answered from (those
    /// that agree with their base table at its version here).
    pub fn rollups(&self) -> &[Rollup] {
        &self.rollups
    }
}

/// Footers and page indexes of Parquet files kept per snapshot, so that a
/// dashboard's repeated queries do not reread them.
const SNAPSHOT_METADATA_CACHE_BYTES: usize = 16 << 20;

impl Store {
    /// Reads the current snapshot of every canonical table of `tenant`, the
    /// rollups that agree with it, and builds the state its sessions share.
    pub async fn tenant_tables(&self, tenant: &TenantId) -> Result<TenantTables> {
        let mut tables = Vec::with_capacity(CanonicalTable::ALL.len());
        let mut marks = Vec::new();
        for table in CanonicalTable::ALL {
            let delta = self.table(tenant, table).await?;
            marks.push(
                self.mark(
                    &self.table_url(tenant, table),
                    delta.as_ref().and_then(DeltaTable::version),
                )
                .await,
            );
            let loaded = match delta {
                Some(delta) => LoadedTable {
                    table,
                    provider: crate::scan::provider(&delta).await?,
                    delta: Some(delta),
                },
                None => LoadedTable {
                    table,
                    delta: None,
                    provider: Arc::new(MemTable::try_new(table.schema(), vec![vec![]])?),
                },
            };
            tables.push(loaded);
        }
        let mut rollups = Vec::new();
        for loaded in &tables {
            if let Some(delta) = &loaded.delta {
                rollups.extend(
                    self.usable_rollups(tenant, loaded.table, delta, &loaded.provider, &mut marks)
                        .await?,
                );
            }
        }
        let mut locations = Vec::new();
        let stored = tables
            .iter()
            .filter_map(|t| Some((t.delta.as_ref()?, t.table.name())))
            .chain(rollups.iter().map(|r| (r.delta(), r.def().name)));
        for (delta, name) in stored {
            let url = delta.table_url();
            let shown = format!("{name}/");
            let path = url.path().trim_end_matches('/').to_string() + "/";
            // Object store paths have no leading slash.
            let relative = path.trim_start_matches('/').to_string();
            let url = url.as_str().trim_end_matches('/').to_string() + "/";
            for form in [url, path, relative] {
                if form.len() > 1 {
                    locations.push((form, shown.clone()));
                }
            }
        }
        // Longest first, so a URL is replaced before the path inside it.
        locations.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
        let schema = Arc::new(MemorySchemaProvider::new());
        for loaded in &tables {
            schema.register_table(loaded.table.name().to_string(), loaded.provider.clone())?;
        }
        let runtime = RuntimeEnvBuilder::new()
            .with_metadata_cache_limit(SNAPSHOT_METADATA_CACHE_BYTES)
            .build_arc()?;
        let mut rules: Vec<Arc<dyn OptimizerRule + Send + Sync>> =
            vec![Arc::new(RollupRule::new(rollups.clone()))];
        rules.extend(Optimizer::new().rules);
        let template = SessionStateBuilder::new_from_existing(base_state()?)
            .with_catalog_list(Arc::new(MemoryCatalogProviderList::new()))
            .with_runtime_env(runtime)
            .with_optimizer_rules(rules)
            .build();
        // The object stores go into the runtime, which every session shares.
        let deltas = tables
            .iter()
            .filter_map(|t| t.delta.as_ref())
            .chain(rollups.iter().map(Rollup::delta));
        for delta in deltas {
            delta.update_datafusion_session(&template)?;
        }
        Ok(TenantTables {
            tenant: tenant.clone(),
            tables,
            loaded_at: Instant::now(),
            marks,
            locations: locations.into(),
            rollups,
            contexts: Arc::new(Contexts {
                template,
                schema,
                made: Default::default(),
            }),
        })
    }

    /// Opens a read-only SQL session over `tenant`'s tables as they are now.
    pub async fn session(
        &self,
        tenant: &TenantId,
        limits: &SessionLimits,
    ) -> Result<TenantSession> {
        TenantSession::new(&self.tenant_tables(tenant).await?, limits)
    }
}

/// The key and table caches and the admission limits of a server. Clones
/// share them, so that the servers of one process (Flight SQL and HTTP) see
/// each other's writes and key revocations at once, and a tenant's rate and
/// slots are counted once over both.
#[derive(Clone)]
pub struct ServerCaches {
    pub keys: Arc<crate::keys::KeyRing>,
    pub tables: Arc<TableCache>,
    pub admission: Arc<crate::admission::Admission>,
    /// The `system` tables and the log of the servers' queries.
    pub system: Arc<SystemCatalog>,
}

impl ServerCaches {
    pub fn new(
        store: &Store,
        keys: crate::keys::KeyRingConfig,
        catalog_max_age: Duration,
        admission: crate::admission::AdmissionConfig,
    ) -> Self {
        ServerCaches {
            keys: Arc::new(crate::keys::KeyRing::new(store.clone(), keys)),
            tables: Arc::new(TableCache::new(store.clone(), catalog_max_age)),
            admission: Arc::new(crate::admission::Admission::new(admission)),
            system: Arc::new(SystemCatalog::new(store)),
        }
    }
}

impl std::fmt::Debug for ServerCaches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerCaches")
    }
}

/// Tenant snapshots shared between requests. A snapshot older than
/// `max_age` is checked against storage (two `HEAD`s per Delta log it read)
/// and kept if no log moved, else read again; one this process changed the
/// tenant's tables since ([`Store::write_epoch`]: every write through the
/// store counts, so no writer has to remember the cache) is read again at
/// once. Servers use it so that a query does not read ten Delta logs first,
/// and a dashboard opened after a pause finds its snapshot, its plans'
/// contexts and its Parquet footers where it left them; the price is that
/// writes by *other* processes show up after `max_age`.
///
/// One task checks or rereads a tenant at a time. While it does, other
/// requests keep using the snapshot it checks (unless this process wrote
/// since, when they wait for the new one), so an expiring snapshot does not
/// make every request in flight read the Delta logs at once.
pub struct TableCache {
    store: Store,
    max_age: Duration,
    entries: tokio::sync::Mutex<HashMap<TenantId, CacheEntry>>,
}

#[derive(Default)]
struct CacheEntry {
    tables: Option<Cached>,
    /// Held by the one task checking or rereading this tenant.
    reloading: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Clone)]
struct Cached {
    tables: Arc<TenantTables>,
    /// The store's write epoch read before loading it: a reread that began
    /// before a write is stale as soon as it lands.
    epoch: u64,
    /// When storage last agreed with it.
    checked: Instant,
}

impl TableCache {
    pub fn new(store: Store, max_age: Duration) -> Self {
        TableCache {
            store,
            max_age,
            entries: Default::default(),
        }
    }

    /// The cached snapshot, and the tenant's reload lock.
    async fn entry(&self, tenant: &TenantId) -> (Option<Cached>, Arc<tokio::sync::Mutex<()>>) {
        let mut entries = self.entries.lock().await;
        let entry = entries.entry(tenant.clone()).or_default();
        (entry.tables.clone(), entry.reloading.clone())
    }

    async fn put(&self, tenant: &TenantId, cached: Cached) {
        let mut entries = self.entries.lock().await;
        entries.entry(tenant.clone()).or_default().tables = Some(cached);
    }

    /// The snapshot if no write came after it and it is young enough.
    fn fresh(&self, cached: &Option<Cached>, epoch: u64) -> Option<Arc<TenantTables>> {
        cached
            .as_ref()
            .filter(|c| c.epoch == epoch && c.checked.elapsed() < self.max_age)
            .map(|c| c.tables.clone())
    }

    /// Whether every Delta log `tables` read is as it was (an error reading
    /// one counts as moved).
    async fn unmoved(&self, tables: &TenantTables) -> bool {
        let checks = tables.marks.iter().map(|mark| self.store.unmoved(mark));
        futures::future::join_all(checks)
            .await
            .into_iter()
            .all(|unmoved| unmoved.unwrap_or(false))
    }

    /// The tenant's tables: the cached snapshot while young, still so after
    /// a check when old, read again when storage moved or this process wrote
    /// to the tenant since.
    pub async fn get(&self, tenant: &TenantId) -> Result<Arc<TenantTables>> {
        let epoch = self.store.write_epoch(tenant);
        let (cached, reloading) = self.entry(tenant).await;
        if let Some(fresh) = self.fresh(&cached, epoch) {
            return Ok(fresh);
        }
        let _reloading = match (reloading.try_lock(), cached) {
            (Ok(guard), _) => guard,
            // Another task is checking an expired snapshot: it serves
            // meanwhile, unless a write came after it.
            (Err(_), Some(stale)) if stale.epoch == epoch => return Ok(stale.tables),
            (Err(_), _) => reloading.lock().await,
        };
        // Checked or reread by the task that held the lock before us?
        let epoch = self.store.write_epoch(tenant);
        let (cached, _) = self.entry(tenant).await;
        if let Some(fresh) = self.fresh(&cached, epoch) {
            return Ok(fresh);
        }
        if let Some(old) = cached.filter(|c| c.epoch == epoch) {
            let checked = Instant::now();
            if self.unmoved(&old.tables).await {
                let tables = old.tables.clone();
                self.put(tenant, Cached { checked, ..old }).await;
                return Ok(tables);
            }
        }
        // Loaded outside the map's lock: one slow tenant does not hold up the others.
        let checked = Instant::now();
        let tables = Arc::new(self.store.tenant_tables(tenant).await?);
        self.put(
            tenant,
            Cached {
                tables: tables.clone(),
                epoch,
                checked,
            },
        )
        .await;
        Ok(tables)
    }

    /// A session over the tenant's cached tables.
    pub async fn session(
        &self,
        tenant: &TenantId,
        limits: &SessionLimits,
    ) -> Result<TenantSession> {
        TenantSession::new(&*self.get(tenant).await?, limits)
    }
}

/// The session settings every query starts from, read once per process (a
/// session is made per request). Operators may tune DataFusion with its
/// standard DATAFUSION_* variables; clients cannot, SET is refused.
fn base_config() -> Result<SessionConfig> {
    static BASE: std::sync::LazyLock<std::result::Result<SessionConfig, String>> =
        std::sync::LazyLock::new(|| {
            let mut config = SessionConfig::from_env()
                .map_err(|e| e.to_string())?
                .with_information_schema(true)
                .with_default_catalog_and_schema(CATALOG, SCHEMA);
            // Delta scans read Parquet: evaluate filters while decoding,
            // unless the operator said otherwise.
            if std::env::var_os("DATAFUSION_EXECUTION_PARQUET_PUSHDOWN_FILTERS").is_none() {
                config.options_mut().execution.parquet.pushdown_filters = true;
                config.options_mut().execution.parquet.reorder_filters = true;
            }
            Ok(config)
        });
    BASE.clone()
        .map_err(|e| EngineError::Internal(format!("DATAFUSION_* settings: {e}")))
}

/// The state every snapshot's sessions start from, built once per process:
/// the configuration, DataFusion's functions and the bounded ones that
/// replace some of them ([`crate::functions`]).
fn base_state() -> Result<SessionState> {
    static BASE: std::sync::LazyLock<std::result::Result<SessionState, String>> =
        std::sync::LazyLock::new(|| {
            let config = base_config().map_err(|e| e.to_string())?;
            let ctx = SessionContext::new_with_config(config);
            crate::functions::register_bounded(&ctx);
            Ok(ctx.state())
        });
    BASE.clone().map_err(EngineError::Internal)
}

impl TenantSession {
    /// A session over a snapshot of the tenant's tables, with its own memory
    /// pool; everything else is the snapshot's, shared.
    pub fn new(tables: &TenantTables, limits: &SessionLimits) -> Result<Self> {
        let contexts = tables.contexts.clone();
        let mut runtime = RuntimeEnvBuilder::from_runtime_env(contexts.template.runtime_env())
            .with_memory_pool(limits.budget.query_pool(limits.memory_bytes));
        runtime.disk_manager = Some(limits.budget.disk());
        let runtime = runtime.build_arc()?;
        let Made { ctx, state, task } = contexts.get(Self::key(None, None, limits), None)?;
        Ok(TenantSession {
            tenant: tables.tenant.clone(),
            ctx,
            state,
            task,
            runtime,
            contexts,
            limits: limits.clone(),
            errors: ErrorMap {
                locations: tables.locations.clone(),
                memory_bytes: limits.memory_bytes,
            },
            observer: None,
        })
    }

    /// The session as `asker` sees it: with the `system` schema (readable
    /// by admin keys only, see [`crate::system`]), and its client queries
    /// recorded in the catalog's query log for `system.queries`.
    pub fn with_system(mut self, system: &SystemCatalog, asker: Asker) -> Result<Self> {
        let key = Self::key(Some(asker.role), Some(system), &self.limits);
        Made {
            ctx: self.ctx,
            state: self.state,
            task: self.task,
        } = self.contexts.get(key, Some((system, &self.tenant)))?;
        self.observer = Some(Arc::new(Observer {
            log: system.queries().clone(),
            tenant: self.tenant.clone(),
            asker,
            stage: Default::default(),
        }));
        Ok(self)
    }

    fn key(
        role: Option<crate::keys::Role>,
        system: Option<&SystemCatalog>,
        limits: &SessionLimits,
    ) -> ContextKey {
        ContextKey {
            role,
            system: system.map_or(0, |s| std::ptr::from_ref(s) as usize),
            partitions: limits.target_partitions.max(1),
            rollups: limits.rollups,
        }
    }

    /// What a plan of this session runs with: the context's configuration,
    /// and the session's own memory pool and spill space. Without the
    /// function registry: a physical plan holds the functions it calls, and
    /// only decoding a serialized plan looks functions up by name, which no
    /// query here does; copying the registry's four maps cost more than
    /// running `SELECT 1`.
    fn task_ctx(&self) -> Arc<TaskContext> {
        let shared = &self.task;
        Arc::new(TaskContext::new(
            None,
            shared.session_id(),
            shared.session_config().clone(),
            HashMap::new(),
            HashMap::new(),
            HashMap::new(),
            HashMap::new(),
            self.runtime.clone(),
        ))
    }

    /// The tenant this session belongs to.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The underlying DataFusion context (for servers that stream results).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Plans client SQL after the read-only checks; runs nothing.
    ///
    /// The statement's shape is bounded first ([`check_shape`]); parsing and
    /// planning run on the tenant's query lane ([`crate::exec`]) within the
    /// session's time limit. To run a statement, [`TenantSession::stream`]
    /// plans and starts it in one hand-off to the lane.
    pub async fn plan(&self, sql: &str) -> Result<DataFrame> {
        let (plan, state) = self
            .planned_on_lane(sql, |session| session.logical(sql, None))
            .await?;
        Ok(DataFrame::new(SessionState::clone(&state), plan))
    }

    /// Plans client SQL and starts it: parsing, the read-only checks,
    /// planning, `refine` (binding parameters, paging) and the first batch
    /// all run in one task on the tenant's query lane, and the caller is
    /// woken once, with the first batch or the error. The stream's batches
    /// are read under `deadline`, which planning counts against too.
    ///
    /// This is the path of every surface that runs a statement as soon as it
    /// is planned (HTTP, the CLI); Flight SQL plans with
    /// [`TenantSession::prepare`] and runs the plan when its ticket is
    /// fetched.
    pub async fn stream(
        &self,
        sql: &str,
        deadline: Deadline,
        refine: Option<Refine>,
    ) -> Result<QueryStream> {
        if let Some(observer) = &self.observer {
            observer.begin(sql);
        }
        let started = async {
            let planning = self.physical(sql, refine)?;
            let task = self.task_ctx();
            Lane::of(&self.tenant)
                .run(async move { Ok((planning.await?, task)) })
                .await
        };
        let started = deadline.bound(started).await.and_then(|s| s);
        self.stream_of(started, deadline)
    }

    /// Plans client SQL to the end (physical plan included), `refine`
    /// applied, in one task on the tenant's query lane within the session's
    /// time limit; [`TenantSession::execute_plan`] runs it.
    pub async fn prepare(
        &self,
        sql: &str,
        refine: Option<Refine>,
    ) -> Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        self.planned_on_lane(sql, |session| session.physical(sql, refine))
            .await
    }

    /// `sql` noted in the log, the work `planning` makes of it run on the
    /// tenant's query lane within the session's time limit, and a failure
    /// recorded.
    async fn planned_on_lane<T, F>(
        &self,
        sql: &str,
        planning: impl FnOnce(&Self) -> Result<F>,
    ) -> Result<T>
    where
        F: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        if let Some(observer) = &self.observer {
            observer.begin(sql);
        }
        let planned = async { Lane::of(&self.tenant).offload(planning(self)?).await? };
        let planned = self.within_limit(planned).await.and_then(|p| p);
        if let (Err(e), Some(observer)) = (&planned, &self.observer) {
            observer.failed(e);
        }
        planned
    }

    /// The work of planning `sql` logically, to run on the query lane: the
    /// shape bound, one parse, the read-only checks, planning with the
    /// shared state (borrowed, not copied) and `refine`.
    fn logical(
        &self,
        sql: &str,
        refine: Option<Refine>,
    ) -> Result<
        impl Future<Output = Result<(LogicalPlan, Arc<SessionState>)>> + Send + 'static + use<>,
    > {
        check_shape(sql, &self.limits.sql)?;
        let state = self.state.clone();
        let errors = self.errors.clone();
        let sql = sql.to_string();
        Ok(async move {
            let statement = read_only_statement(&sql, &state)?;
            let plan = state
                .statement_to_plan(statement)
                .await
                .and_then(|plan| {
                    read_only_options().verify_plan(&plan)?;
                    Ok(plan)
                })
                .map_err(|e| errors.map(e))?;
            let plan = match refine {
                Some(refine) => refine(plan, &state)?,
                None => plan,
            };
            Ok((plan, state))
        })
    }

    /// The work of planning `sql` to a physical plan, to run on the query
    /// lane: [`TenantSession::logical`], then the log entry (so that a query
    /// of `system.queries` sees itself running), then physical planning.
    /// EXPLAIN runs here, and its text names tables, not where they are
    /// stored.
    fn physical(
        &self,
        sql: &str,
        refine: Option<Refine>,
    ) -> Result<
        impl Future<Output = Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>>>
        + Send
        + 'static
        + use<>,
    > {
        let logical = self.logical(sql, refine)?;
        let observer = self.observer.clone();
        let errors = self.errors.clone();
        let task = self.task_ctx();
        Ok(async move {
            let (plan, state) = logical.await?;
            if let Some(observer) = &observer {
                observer.enter();
            }
            physical_plan(&state, &plan, &errors, task).await
        })
    }

    /// `text` with every storage location replaced by its table's name.
    pub fn scrub(&self, text: &str) -> String {
        self.errors.scrub(text)
    }

    /// A deadline of the session's time limit from now: one per request,
    /// covering its planning, execution and reading.
    pub fn deadline(&self) -> Deadline {
        Deadline::after(self.limits.timeout)
    }

    /// `work` within the session's time limit.
    async fn within_limit<T>(&self, work: impl std::future::Future<Output = T>) -> Result<T> {
        self.deadline().bound(work).await
    }

    /// Plans `df` and starts it on the tenant's query lane in one hand-off
    /// (as [`TenantSession::stream`]); its batches are read under
    /// `deadline`, which planning counts against too.
    pub async fn execute(&self, df: DataFrame, deadline: Deadline) -> Result<QueryStream> {
        let observer = self.observer.clone();
        let errors = self.errors.clone();
        let task = self.task_ctx();
        let planning = async move {
            if let Some(observer) = &observer {
                observer.enter();
            }
            let (state, plan) = df.into_parts();
            let plan = physical_plan(&state, &plan, &errors, task.clone()).await?;
            Ok((plan, task))
        };
        let started = deadline
            .bound(Lane::of(&self.tenant).run(planning))
            .await
            .and_then(|s| s);
        self.stream_of(started, deadline)
    }

    /// The stream of a query started on the lane, recorded in the log; or
    /// its error, recorded too.
    fn stream_of(
        &self,
        started: Result<datafusion::execution::SendableRecordBatchStream>,
        deadline: Deadline,
    ) -> Result<QueryStream> {
        match started {
            Ok(batches) => Ok(QueryStream {
                batches,
                deadline,
                errors: self.errors.clone(),
                done: false,
                recording: self.observer.as_ref().and_then(|o| o.start()),
            }),
            Err(e) => {
                if let Some(observer) = &self.observer {
                    observer.failed(&e);
                }
                Err(e)
            }
        }
    }

    /// Starts a physical plan made by [`TenantSession::prepare`] on the
    /// tenant's query lane; its batches are read under `deadline`.
    pub fn execute_plan(
        &self,
        plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
        deadline: Deadline,
    ) -> Result<QueryStream> {
        let mut recording = self.observer.as_ref().and_then(|o| o.start());
        let batches = match Lane::of(&self.tenant).execute(plan, self.task_ctx()) {
            Ok(batches) => batches,
            Err(e) => {
                if let Some(recording) = &mut recording {
                    recording.end(QueryStatus::Error, Some(e.to_string()));
                }
                return Err(e);
            }
        };
        Ok(QueryStream {
            batches,
            deadline,
            errors: self.errors.clone(),
            done: false,
            recording,
        })
    }

    /// Runs `df` to the end on the tenant's query lane, within the time limit.
    pub async fn collect(&self, df: DataFrame) -> Result<Vec<RecordBatch>> {
        let deadline = self.deadline();
        self.execute(df, deadline).await?.collect().await
    }

    /// Runs client SQL and collects the result, within the session's limits.
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let span = tracing::info_span!("query", tenant = %self.tenant, sql = %truncate(sql, 200));
        async {
            let started = Instant::now();
            let batches = self
                .stream(sql, self.deadline(), None)
                .await?
                .collect()
                .await?;
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            tracing::info!(
                rows,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "query finished"
            );
            Ok(batches)
        }
        .instrument(span)
        .await
    }

    /// The limits this session runs under.
    pub fn limits(&self) -> &SessionLimits {
        &self.limits
    }

    /// Turns a DataFusion error of this session into the engine's (memory
    /// limits become [`EngineError::MemoryLimit`], storage locations table
    /// names).
    pub fn map_error(&self, err: DataFusionError) -> EngineError {
        self.errors.map(err)
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// What a caller does to a statement after it is planned and before it
/// runs (binds parameters, pages it), on the query lane, with the state it
/// was planned with.
pub type Refine = Box<dyn FnOnce(LogicalPlan, &SessionState) -> Result<LogicalPlan> + Send>;

/// Accepts exactly one read-only statement: a query, `EXPLAIN` of one,
/// `SHOW TABLES`, `SHOW COLUMNS` or `DESCRIBE`. Everything else — DDL, DML,
/// `COPY`, `CREATE EXTERNAL TABLE`, `SET`, `RESET`, transactions, several
/// statements — is refused before planning.
pub fn check_read_only(sql: &str) -> Result<()> {
    let defaults = datafusion::config::SqlParserOptions::default();
    parse_read_only(sql, &GenericDialect {}, defaults.recursion_limit.get()).map(drop)
}

/// `sql` parsed once, with the dialect and nesting bound of `state`'s
/// configuration, if it is one read-only statement ([`check_read_only`]).
fn read_only_statement(sql: &str, state: &SessionState) -> Result<DfStatement> {
    let parser = &state.config_options().sql_parser;
    let dialect = dialect_from_str(parser.dialect)
        .ok_or_else(|| EngineError::Internal(format!("unknown SQL dialect {}", parser.dialect)))?;
    parse_read_only(sql, dialect.as_ref(), parser.recursion_limit.get())
}

fn parse_read_only(
    sql: &str,
    dialect: &dyn datafusion::sql::sqlparser::dialect::Dialect,
    recursion_limit: usize,
) -> Result<DfStatement> {
    let mut parser = DFParserBuilder::new(sql)
        .with_dialect(dialect)
        .with_recursion_limit(recursion_limit)
        .build()
        .map_err(|e| EngineError::Query(e.to_string()))?;
    let mut statements = parser
        .parse_statements()
        .map_err(|e| EngineError::Query(strip_context(e).to_string()))?;
    match statements.len() {
        0 => return Err(EngineError::Query("empty query".into())),
        1 => {}
        n => {
            return Err(EngineError::ReadOnly(format!(
                "{n} statements; send one at a time"
            )));
        }
    }
    let statement = statements
        .pop_front()
        .ok_or_else(|| EngineError::Query("empty query".into()))?;
    check_statement(&statement)?;
    Ok(statement)
}

/// DataFusion's own switches for client SQL, checked on every plan beside
/// [`check_read_only`]: no DDL, no DML, no statements.
fn read_only_options() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// The physical plan of a checked logical plan, made with `state`. EXPLAIN
/// and EXPLAIN ANALYZE run here (with `task`) and their text names tables,
/// not where they are stored.
async fn physical_plan(
    state: &SessionState,
    plan: &LogicalPlan,
    errors: &ErrorMap,
    task: Arc<TaskContext>,
) -> Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
    let physical = state
        .create_physical_plan(plan)
        .await
        .map_err(|e| errors.map(e))?;
    if !matches!(plan, LogicalPlan::Explain(_) | LogicalPlan::Analyze(_)) {
        return Ok(physical);
    }
    let schema = physical.schema();
    let batches = datafusion::physical_plan::collect(physical, task)
        .await
        .map_err(|e| errors.map(e))?;
    let scrubbed = batches
        .iter()
        .map(|batch| errors.scrub_batch(batch))
        .collect::<Result<Vec<_>>>()?;
    Ok(MemorySourceConfig::try_new_exec(&[scrubbed], schema, None)?)
}

fn check_statement(statement: &DfStatement) -> Result<()> {
    match statement {
        DfStatement::Statement(inner) => match inner.as_ref() {
            SqlStatement::Query(_)
            | SqlStatement::ShowTables { .. }
            | SqlStatement::ShowColumns { .. }
            | SqlStatement::ExplainTable { .. } => Ok(()),
            SqlStatement::Explain { statement, .. } => {
                check_statement(&DfStatement::Statement(statement.clone()))
            }
            other => Err(EngineError::ReadOnly(first_words(&other.to_string()))),
        },
        DfStatement::Explain(explain) => check_statement(&explain.statement),
        DfStatement::CreateExternalTable(_) => {
            Err(EngineError::ReadOnly("CREATE EXTERNAL TABLE".into()))
        }
        DfStatement::CopyTo(_) => Err(EngineError::ReadOnly("COPY".into())),
        DfStatement::Reset(_) => Err(EngineError::ReadOnly("RESET".into())),
    }
}

fn first_words(sql: &str) -> String {
    sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_pass_and_everything_else_is_refused() {
        for ok in [
            "SELECT 1",
            "with t as (select 1 as x) select * from t",
            "EXPLAIN SELECT 1",
            "SHOW TABLES",
            "SHOW COLUMNS FROM ad_performance",
            "DESCRIBE ad_performance",
        ] {
            check_read_only(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "CREATE TABLE t AS SELECT 1",
            "create external table t stored as parquet location '/etc'",
            "INSERT INTO ad_performance VALUES (1)",
            "DELETE FROM ad_performance",
            "UPDATE ad_performance SET clicks = 0",
            "DROP TABLE ad_performance",
            "COPY (SELECT 1) TO '/tmp/x.csv'",
            "SET datafusion.execution.batch_size = 1",
            "RESET datafusion.execution.batch_size",
            "CREATE VIEW v AS SELECT 1",
            "SELECT 1; DROP TABLE ad_performance",
            "EXPLAIN CREATE TABLE t AS SELECT 1",
            "EXPLAIN COPY (SELECT 1) TO '/tmp/x.csv'",
            "BEGIN",
        ] {
            assert!(check_read_only(bad).is_err(), "{bad} was accepted");
        }
    }
}
