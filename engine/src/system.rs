//! The `system` schema: a tenant's operational state as read-only SQL tables,
//! the InfluxDB 3 way.
//!
//! Every session made for a caller ([`TenantSession::with_system`]) has a
//! `system` schema beside `public`. For an admin key its tables hold that
//! tenant's rows and no other's; for reader and writer keys reading one is
//! refused with a message that says an admin key is needed. A table is a
//! [`SystemView`]: a name, an Arrow schema, and the tenant's rows as they are
//! when a query scans it (nothing is read for tables a query does not name).
//!
//! The engine has three views — `system.queries` (this process's recent
//! queries, from the [`QueryLog`] every surface records into),
//! `system.api_keys` (no hashes) and `system.tables` — and the crates that own
//! other state register theirs (`system.model_runs` by the model registry,
//! `system.connectors` and `system.connector_runs` by the connectors).
//!
//! ```
//! # async fn run() -> gyrus_engine::Result<()> {
//! use gyrus_engine::system::{Asker, Surface, SystemCatalog};
//! use gyrus_engine::{Role, SessionLimits, Store, TenantId};
//!
//! let dir = std::env::temp_dir().join(format!("gyrus-doc-system-{}", std::process::id()));
//! let store = Store::open(dir.to_str().unwrap()).await?;
//! let system = SystemCatalog::new(&store);
//! let tenant = TenantId::new("acme")?;
//! let admin = Asker { surface: Surface::Cli, key_id: None, role: Role::Admin };
//! let session = store
//!     .session(&tenant, &SessionLimits::default())
//!     .await?
//!     .with_system(&system, admin)?;
//! let tables = session.query("SELECT table_name, rows FROM system.tables").await?;
//! assert_eq!(tables.iter().map(|b| b.num_rows()).sum::<usize>(), 10);
//! # std::fs::remove_dir_all(dir).ok();
//! # Ok(()) }
//! ```
//!
//! [`TenantSession::with_system`]: crate::TenantSession::with_system

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::keys::Role;
use crate::schema::timestamp_utc;
use crate::store::{Store, TenantId};
use crate::system_table::{SystemRecord, SystemTable};

/// The schema's name in every session.
pub const SCHEMA: &str = "system";

/// Where a query came from, as `system.queries` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Surface {
    Http,
    FlightSql,
    Cli,
}

impl Surface {
    pub fn as_str(self) -> &'static str {
        match self {
            Surface::Http => "http",
            Surface::FlightSql => "flight_sql",
            Surface::Cli => "cli",
        }
    }
}

/// Who asks: the surface, the key (none for the operator's CLI) and its role,
/// which decides whether the `system` tables may be read.
#[derive(Debug, Clone)]
pub struct Asker {
    pub surface: Surface,
    pub key_id: Option<String>,
    pub role: Role,
}

/// One table of the `system` schema.
#[async_trait]
pub trait SystemView: Send + Sync + 'static {
    /// Its name in the `system` schema.
    fn name(&self) -> &'static str;
    /// The schema of its rows.
    fn schema(&self) -> SchemaRef;
    /// `tenant`'s rows as they are now (no other tenant's).
    async fn rows(&self, tenant: &TenantId) -> Result<RecordBatch>;
}

/// Typed rows as one Arrow batch of `schema`, by their serde form: the one
/// place system rows become Arrow. Timestamps are written as RFC 3339
/// strings (chrono's serde form) and parsed into the schema's timestamp
/// columns; fields the schema lacks are an error, so a view's struct and its
/// schema cannot drift apart unnoticed.
pub fn to_batch<T: Serialize>(schema: &SchemaRef, rows: &[T]) -> Result<RecordBatch> {
    use datafusion::arrow::json::ReaderBuilder;
    let internal = |e: datafusion::arrow::error::ArrowError| {
        EngineError::Internal(format!("system rows as Arrow: {e}"))
    };
    let mut decoder = ReaderBuilder::new(schema.clone())
        .with_batch_size(rows.len().max(1))
        .with_strict_mode(true)
        .build_decoder()
        .map_err(internal)?;
    decoder.serialize(rows).map_err(internal)?;
    Ok(decoder
        .flush()
        .map_err(internal)?
        .unwrap_or_else(|| RecordBatch::new_empty(schema.clone())))
}

/// A JSON document as text, for the free-form columns of system tables
/// (metrics, parameters, settings).
pub fn json_text(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// The `system` tables a server offers, and the log its surfaces record
/// queries in. Clones of a [`crate::ServerCaches`] share one.
pub struct SystemCatalog {
    views: RwLock<BTreeMap<&'static str, Arc<dyn SystemView>>>,
    queries: Arc<QueryLog>,
}

impl fmt::Debug for SystemCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemCatalog")
            .field("views", &self.names())
            .finish()
    }
}

impl SystemCatalog {
    /// The engine's views (`queries`, `api_keys`, `tables`) over `store`.
    pub fn new(store: &Store) -> Self {
        let queries = Arc::new(QueryLog::persisted(store, QueryLog::DEFAULT_KEEP));
        let catalog = SystemCatalog {
            views: Default::default(),
            queries: queries.clone(),
        };
        catalog.register(queries);
        catalog.register(Arc::new(ApiKeysView(store.clone())));
        catalog.register(Arc::new(TablesView(store.clone())));
        catalog
    }

    /// Adds a view, or replaces the one of the same name.
    pub fn register(&self, view: Arc<dyn SystemView>) {
        self.views
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(view.name(), view);
    }

    /// The names of the views, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        self.views
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect()
    }

    /// The log queries are recorded in.
    pub fn queries(&self) -> &Arc<QueryLog> {
        &self.queries
    }

    /// The `system` schema of one session: the views for an admin; for
    /// anyone else a schema that lists nothing (catalog browsers show no
    /// tables the key cannot read) and refuses its tables by name.
    pub(crate) fn schema_for(
        &self,
        tenant: &TenantId,
        role: Role,
    ) -> Result<Arc<dyn SchemaProvider>> {
        let schema = MemorySchemaProvider::new();
        let views = self.views.read().unwrap_or_else(|e| e.into_inner());
        for view in views.values() {
            let provider = ViewProvider {
                view: view.clone(),
                tenant: tenant.clone(),
                role,
            };
            schema.register_table(view.name().to_string(), Arc::new(provider))?;
        }
        if role.allows(Role::Admin) {
            Ok(Arc::new(schema))
        } else {
            Ok(Arc::new(Unlisted(schema)))
        }
    }
}

/// A schema whose tables resolve by name but are not listed.
#[derive(Debug)]
struct Unlisted(MemorySchemaProvider);

#[async_trait]
impl SchemaProvider for Unlisted {
    fn table_names(&self) -> Vec<String> {
        Vec::new()
    }

    async fn table(&self, name: &str) -> datafusion::error::Result<Option<Arc<dyn TableProvider>>> {
        self.0.table(name).await
    }

    fn table_exist(&self, name: &str) -> bool {
        self.0.table_exist(name)
    }
}

/// A view scanned for one tenant, if the session's role may.
struct ViewProvider {
    view: Arc<dyn SystemView>,
    tenant: TenantId,
    role: Role,
}

impl fmt::Debug for ViewProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", SCHEMA, self.view.name())
    }
}

#[async_trait]
impl TableProvider for ViewProvider {
    fn schema(&self) -> SchemaRef {
        self.view.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        if !self.role.allows(Role::Admin) {
            return Err(DataFusionError::External(Box::new(EngineError::Forbidden(
                format!(
                    "`{SCHEMA}.{}` shows the tenant's operational state: it needs an admin key, and this is a {} key",
                    self.view.name(),
                    self.role
                ),
            ))));
        }
        let batch = self
            .view
            .rows(&self.tenant)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let exec =
            MemorySourceConfig::try_new_exec(&[vec![batch]], self.schema(), projection.cloned())?;
        Ok(exec)
    }
}

/// How a query ended, as `system.queries` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryStatus {
    Running,
    Ok,
    Error,
    /// Dropped before its end: the client went away, cancelled it, or asked
    /// for more rows than its format allows.
    Cancelled,
}

/// One query, as `system.queries` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryRecord {
    pub query_id: String,
    pub surface: Surface,
    pub key_id: Option<String>,
    /// The text, cut to [`QueryLog::TEXT_CHARS`] characters.
    pub sql: String,
    pub started_at: DateTime<Utc>,
    /// From planning to the end (so far, while running).
    pub duration_ms: f64,
    pub rows: u64,
    /// The in-memory size of the batches returned.
    pub bytes: u64,
    pub status: QueryStatus,
    pub error: Option<String>,
    #[serde(skip)]
    started: Option<Instant>,
}

/// The recent queries of each tenant, newest last.
///
/// In memory it holds this process's queries, at most `keep` per tenant (so
/// its memory is bounded by tenants × `keep` × [`QueryLog::TEXT_CHARS`]).
/// A log made with [`QueryLog::persisted`] also keeps every finished query
/// in the system table `_system/queries`, appended in batches by
/// [`QueryLog::flush`] (`gyrus serve` flushes every few seconds and when it
/// stops, `gyrus sql` after its query), so that `system.queries` shows the
/// queries of every process and outlives restarts. Stored queries are kept
/// for [`QueryLog::RETENTION`]; `gyrus vacuum` and the maintenance schedule
/// of `gyrus serve` expire older ones.
pub struct QueryLog {
    tenants: Mutex<HashMap<TenantId, VecDeque<QueryRecord>>>,
    keep: usize,
    stored: Option<SystemTable<StoredQuery>>,
    /// Finished queries not yet flushed, at most [`QueryLog::MAX_PENDING`].
    pending: Mutex<VecDeque<StoredQuery>>,
    /// Pending queries dropped since the last warning about them.
    dropped: std::sync::atomic::AtomicU64,
    /// Told when the pending queries reach [`QueryLog::FLUSH_AT`].
    filling: tokio::sync::Notify,
}

/// Where a tenant's stored queries are, for erasing and one-tenant snapshots.
pub const QUERY_ROWS: crate::lifecycle::ByTenantColumn = crate::lifecycle::ByTenantColumn {
    table: QueryLog::TABLE,
    column: "tenant_id",
};

/// A finished query as `_system/queries` holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredQuery {
    tenant_id: String,
    #[serde(flatten)]
    query: QueryRecord,
}

impl SystemRecord for StoredQuery {
    fn schema() -> SchemaRef {
        let mut fields = vec![Field::new("tenant_id", DataType::Utf8, false)];
        fields.extend(query_fields());
        schema_of(fields)
    }
}

fn query_fields() -> Vec<Field> {
    vec![
        Field::new("query_id", DataType::Utf8, false),
        Field::new("surface", DataType::Utf8, false),
        Field::new("key_id", DataType::Utf8, true),
        Field::new("sql", DataType::Utf8, false),
        Field::new("started_at", timestamp_utc(), false),
        Field::new("duration_ms", DataType::Float64, false),
        Field::new("rows", DataType::Int64, false),
        Field::new("bytes", DataType::Int64, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, true),
    ]
}

impl QueryLog {
    /// Queries kept per tenant unless said otherwise.
    pub const DEFAULT_KEEP: usize = 500;
    /// Characters of a query's text kept.
    pub const TEXT_CHARS: usize = 4096;
    /// Finished queries held for the next flush; beyond this the oldest are
    /// dropped (and counted in a warning), so that a store that cannot be
    /// written does not grow the server's memory.
    pub const MAX_PENDING: usize = 10_000;
    /// Pending queries at which [`QueryLog::filled`] wakes the flusher
    /// before its next turn: under a flood of queries the log is stored in
    /// time instead of dropping them.
    pub const FLUSH_AT: usize = Self::MAX_PENDING / 4;
    /// How long stored queries are kept.
    pub const RETENTION: chrono::Duration = chrono::Duration::days(7);
    /// The system table stored queries are in.
    pub const TABLE: &'static str = "queries";

    /// A log of this process's queries, in memory only.
    pub fn new(keep: usize) -> Self {
        QueryLog {
            tenants: Default::default(),
            keep: keep.max(1),
            stored: None,
            pending: Default::default(),
            dropped: Default::default(),
            filling: Default::default(),
        }
    }

    /// A log that also stores finished queries in `store` (see the type's docs).
    pub fn persisted(store: &Store, keep: usize) -> Self {
        QueryLog {
            stored: Some(SystemTable::new(store, Self::TABLE)),
            ..QueryLog::new(keep)
        }
    }

    /// Appends the finished queries not yet stored, in one commit; returns
    /// how many. On failure they stay pending for the next flush.
    pub async fn flush(&self) -> Result<usize> {
        let Some(stored) = &self.stored else {
            return Ok(0);
        };
        let dropped = self.dropped.swap(0, std::sync::atomic::Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "the query log could not be stored in time; the oldest queries were dropped"
            );
        }
        let batch: Vec<StoredQuery> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.drain(..).collect()
        };
        if batch.is_empty() {
            return Ok(0);
        }
        match stored.append(&batch).await {
            Ok(_) => Ok(batch.len()),
            Err(e) => {
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                for query in batch.into_iter().rev() {
                    pending.push_front(query);
                }
                self.trim_pending(&mut pending);
                Err(e)
            }
        }
    }

    /// Deletes stored queries older than [`QueryLog::RETENTION`]; returns how many.
    pub async fn expire(store: &Store) -> Result<u64> {
        SystemTable::<StoredQuery>::new(store, Self::TABLE)
            .expire("started_at", Utc::now() - Self::RETENTION)
            .await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, VecDeque<QueryRecord>>> {
        self.tenants.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a query as running from now; returns its id.
    pub fn begin(&self, tenant: &TenantId, asker: &Asker, sql: &str) -> String {
        self.begin_at(tenant, asker, sql, (Utc::now(), Instant::now()))
    }

    /// Records a query as running since `started` (when its planning began).
    pub fn begin_at(
        &self,
        tenant: &TenantId,
        asker: &Asker,
        sql: &str,
        started: (DateTime<Utc>, Instant),
    ) -> String {
        let query_id = uuid::Uuid::new_v4().to_string();
        let record = QueryRecord {
            query_id: query_id.clone(),
            surface: asker.surface,
            key_id: asker.key_id.clone(),
            sql: sql.chars().take(Self::TEXT_CHARS).collect(),
            started_at: started.0,
            duration_ms: 0.0,
            rows: 0,
            bytes: 0,
            status: QueryStatus::Running,
            error: None,
            started: Some(started.1),
        };
        let mut tenants = self.lock();
        let queries = tenants.entry(tenant.clone()).or_default();
        while queries.len() >= self.keep {
            queries.pop_front();
        }
        queries.push_back(record);
        query_id
    }

    /// Records how a running query ended. A query already pushed out of the
    /// log by newer ones is not recorded again.
    pub fn finish(
        &self,
        tenant: &TenantId,
        query_id: &str,
        status: QueryStatus,
        rows: u64,
        bytes: u64,
        error: Option<String>,
    ) {
        let mut tenants = self.lock();
        let Some(record) = tenants
            .get_mut(tenant)
            .and_then(|q| q.iter_mut().rev().find(|r| r.query_id == query_id))
        else {
            return;
        };
        if record.status != QueryStatus::Running {
            return;
        }
        record.status = status;
        record.rows = rows;
        record.bytes = bytes;
        record.error = error;
        record.duration_ms = duration_ms(record.started);
        if self.stored.is_some() {
            let finished = StoredQuery {
                tenant_id: tenant.to_string(),
                query: record.clone(),
            };
            drop(tenants);
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.push_back(finished);
            self.trim_pending(&mut pending);
            if pending.len() == Self::FLUSH_AT {
                self.filling.notify_one();
            }
        }
    }

    /// Waits until [`QueryLog::FLUSH_AT`] queries are pending (at once if
    /// that happened since the last wait).
    pub async fn filled(&self) {
        self.filling.notified().await;
    }

    /// Drops the oldest pending queries beyond [`QueryLog::MAX_PENDING`],
    /// counting them for the next flush's warning (one line, not one a
    /// query: a flood must not become a flood of log lines too).
    fn trim_pending(&self, pending: &mut VecDeque<StoredQuery>) {
        let over = pending.len().saturating_sub(QueryLog::MAX_PENDING);
        if over > 0 {
            pending.drain(..over);
            self.dropped
                .fetch_add(over as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The tenant's recorded queries, oldest first; running ones show their
    /// time so far.
    pub fn recent(&self, tenant: &TenantId) -> Vec<QueryRecord> {
        self.lock()
            .get(tenant)
            .map(|queries| {
                queries
                    .iter()
                    .map(|r| {
                        let mut r = r.clone();
                        if r.status == QueryStatus::Running {
                            r.duration_ms = duration_ms(r.started);
                        }
                        r
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn duration_ms(started: Option<Instant>) -> f64 {
    started.map_or(0.0, |s| s.elapsed().as_secs_f64() * 1e3)
}

fn schema_of(fields: Vec<Field>) -> SchemaRef {
    Arc::new(Schema::new(fields))
}

#[async_trait]
impl SystemView for QueryLog {
    fn name(&self) -> &'static str {
        "queries"
    }

    fn schema(&self) -> SchemaRef {
        schema_of(query_fields())
    }

    /// The tenant's newest `keep` queries: stored ones from every process,
    /// and this process's own (running ones too, and finished ones not yet
    /// flushed).
    async fn rows(&self, tenant: &TenantId) -> Result<RecordBatch> {
        let mut queries: BTreeMap<String, QueryRecord> = BTreeMap::new();
        if let Some(stored) = &self.stored {
            let mine =
                datafusion::prelude::col("tenant_id").eq(datafusion::prelude::lit(tenant.as_str()));
            for q in stored.find_newest(mine, "started_at", self.keep).await? {
                queries.insert(q.query.query_id.clone(), q.query);
            }
        }
        for q in self.recent(tenant) {
            queries.insert(q.query_id.clone(), q);
        }
        let mut queries: Vec<QueryRecord> = queries.into_values().collect();
        queries.sort_by_key(|q| q.started_at);
        let skip = queries.len().saturating_sub(self.keep);
        to_batch(&self.schema(), &queries[skip..])
    }
}

/// `system.api_keys`: the tenant's keys, revoked ones included; never a
/// secret or its hash.
struct ApiKeysView(Store);

#[derive(Serialize)]
struct KeyRow {
    key_id: String,
    role: &'static str,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

#[async_trait]
impl SystemView for ApiKeysView {
    fn name(&self) -> &'static str {
        "api_keys"
    }

    fn schema(&self) -> SchemaRef {
        schema_of(vec![
            Field::new("key_id", DataType::Utf8, false),
            Field::new("role", DataType::Utf8, false),
            Field::new("created_at", timestamp_utc(), false),
            Field::new("revoked_at", timestamp_utc(), true),
        ])
    }

    async fn rows(&self, tenant: &TenantId) -> Result<RecordBatch> {
        let rows: Vec<KeyRow> = self
            .0
            .list_keys()
            .await?
            .into_iter()
            .filter(|k| &k.tenant == tenant)
            .map(|k| KeyRow {
                key_id: k.id,
                role: k.role.as_str(),
                created_at: k.created_at,
                revoked_at: k.revoked_at,
            })
            .collect();
        to_batch(&self.schema(), &rows)
    }
}

/// `system.tables`: the tenant's canonical tables as stored now.
struct TablesView(Store);

#[derive(Serialize)]
struct TableRow {
    table_name: &'static str,
    version: Option<u64>,
    files: u64,
    bytes: u64,
    rows: u64,
    last_write: Option<DateTime<Utc>>,
}

#[async_trait]
impl SystemView for TablesView {
    fn name(&self) -> &'static str {
        "tables"
    }

    fn schema(&self) -> SchemaRef {
        schema_of(vec![
            Field::new("table_name", DataType::Utf8, false),
            Field::new("version", DataType::Int64, true),
            Field::new("files", DataType::Int64, false),
            Field::new("bytes", DataType::Int64, false),
            Field::new("rows", DataType::Int64, false),
            Field::new("last_write", timestamp_utc(), true),
        ])
    }

    async fn rows(&self, tenant: &TenantId) -> Result<RecordBatch> {
        let rows: Vec<TableRow> = self
            .0
            .table_stats(tenant)
            .await?
            .into_iter()
            .map(|s| TableRow {
                table_name: s.table.name(),
                version: s.version,
                files: s.files,
                bytes: s.bytes,
                rows: s.rows,
                last_write: s.last_write,
            })
            .collect();
        to_batch(&self.schema(), &rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `query_id`s and statuses a view's batch holds, in its order.
    fn ids_and_statuses(batch: &RecordBatch) -> Vec<(String, String)> {
        use datafusion::arrow::array::AsArray;
        let text = |name: &str| {
            batch
                .column_by_name(name)
                .unwrap()
                .as_string::<i32>()
                .clone()
        };
        let (ids, statuses) = (text("query_id"), text("status"));
        (0..batch.num_rows())
            .map(|i| (ids.value(i).to_string(), statuses.value(i).to_string()))
            .collect()
    }

    #[tokio::test]
    async fn finished_queries_are_stored_in_batches_and_read_by_every_process() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
        let (acme, globex) = (
            TenantId::new("acme").unwrap(),
            TenantId::new("globex").unwrap(),
        );
        let asker = Asker {
            surface: Surface::FlightSql,
            key_id: Some("k1".into()),
            role: Role::Admin,
        };
        let server = QueryLog::persisted(&store, 10);
        let done = server.begin(&acme, &asker, "SELECT 1");
        server.finish(&acme, &done, QueryStatus::Error, 0, 0, Some("boom".into()));
        let other = server.begin(&globex, &asker, "SELECT 'globex'");
        server.finish(&globex, &other, QueryStatus::Ok, 1, 8, None);
        let running = server.begin(&acme, &asker, "SELECT 2");
        assert_eq!(server.flush().await.unwrap(), 2, "the two finished ones");
        assert_eq!(server.flush().await.unwrap(), 0, "nothing twice");
        let table = SystemTable::<StoredQuery>::new(&store, QueryLog::TABLE);
        assert_eq!(table.rows().await.unwrap().len(), 2);

        // Another process over the same store: it sees the stored query of
        // acme (not globex's, not the other's running one), and its own.
        let cli = QueryLog::persisted(
            &Store::open(dir.path().to_str().unwrap()).await.unwrap(),
            10,
        );
        let mine = cli.begin(&acme, &asker, "SELECT 3");
        let seen = ids_and_statuses(&cli.rows(&acme).await.unwrap());
        assert_eq!(
            seen,
            [(done.clone(), "error".into()), (mine, "running".into())]
        );
        // The server itself shows the stored one once, and its running one.
        let seen = ids_and_statuses(&server.rows(&acme).await.unwrap());
        assert_eq!(seen, [(done, "error".into()), (running, "running".into())]);

        // Nothing is old enough to expire; the erase of a tenant finds its rows.
        assert_eq!(QueryLog::expire(&store).await.unwrap(), 0);
        let erase = crate::lifecycle::TenantRows::predicate(&QUERY_ROWS, &store, &globex)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(table.find(erase).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_flood_wakes_the_flusher_and_drops_are_counted_not_logged_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
        let acme = TenantId::new("acme").unwrap();
        let asker = Asker {
            surface: Surface::Http,
            key_id: None,
            role: Role::Reader,
        };
        let log = QueryLog::persisted(&store, 10);
        let finish_one = |log: &QueryLog| {
            let id = log.begin(&acme, &asker, "SELECT 1");
            log.finish(&acme, &id, QueryStatus::Ok, 1, 8, None);
        };
        for _ in 0..QueryLog::FLUSH_AT - 1 {
            finish_one(&log);
        }
        let early = tokio::time::timeout(std::time::Duration::from_millis(50), log.filled());
        assert!(early.await.is_err(), "not yet full enough to flush early");
        finish_one(&log);
        // The wake-up is kept for a flusher that was busy when it came.
        tokio::time::timeout(std::time::Duration::from_secs(5), log.filled())
            .await
            .expect("woken at FLUSH_AT pending queries");

        for _ in 0..QueryLog::MAX_PENDING {
            finish_one(&log);
        }
        let pending = log.pending.lock().unwrap().len();
        assert_eq!(pending, QueryLog::MAX_PENDING, "bounded");
        let dropped = log.dropped.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(dropped, QueryLog::FLUSH_AT as u64);
        assert_eq!(log.flush().await.unwrap(), QueryLog::MAX_PENDING);
        assert_eq!(
            log.dropped.load(std::sync::atomic::Ordering::Relaxed),
            0,
            "reported once, by the flush"
        );
    }
    #[test]
    fn the_log_keeps_the_newest_queries_per_tenant_and_records_their_end() {
        let log = QueryLog::new(2);
        let (acme, globex) = (
            TenantId::new("acme").unwrap(),
            TenantId::new("globex").unwrap(),
        );
        let asker = Asker {
            surface: Surface::Http,
            key_id: Some("k1".into()),
            role: Role::Reader,
        };
        let first = log.begin(&acme, &asker, "SELECT 1");
        let second = log.begin(&acme, &asker, "SELECT 2");
        log.finish(&acme, &second, QueryStatus::Ok, 1, 8, None);
        let third = log.begin(&acme, &asker, &"x".repeat(QueryLog::TEXT_CHARS + 10));
        log.begin(&globex, &asker, "SELECT 4");
        // The oldest went; finishing it now records nothing.
        log.finish(&acme, &first, QueryStatus::Ok, 1, 8, None);
        let recent = log.recent(&acme);
        assert_eq!(
            recent
                .iter()
                .map(|r| r.query_id.as_str())
                .collect::<Vec<_>>(),
            [second.as_str(), third.as_str()]
        );
        assert_eq!(recent[0].status, QueryStatus::Ok);
        assert_eq!(recent[0].rows, 1);
        assert_eq!(recent[1].status, QueryStatus::Running);
        assert_eq!(recent[1].sql.chars().count(), QueryLog::TEXT_CHARS);
        // A finished query is not finished twice.
        log.finish(
            &acme,
            &second,
            QueryStatus::Error,
            0,
            0,
            Some("late".into()),
        );
        assert_eq!(log.recent(&acme)[0].status, QueryStatus::Ok);
        assert_eq!(log.recent(&globex).len(), 1);
    }

    #[test]
    fn rows_become_a_batch_of_the_schema_and_unknown_fields_are_refused() {
        let log = QueryLog::new(4);
        let acme = TenantId::new("acme").unwrap();
        let asker = Asker {
            surface: Surface::Cli,
            key_id: None,
            role: Role::Admin,
        };
        let id = log.begin(&acme, &asker, "SELECT 1");
        log.finish(&acme, &id, QueryStatus::Error, 0, 0, Some("boom".into()));
        let batch = to_batch(&log.schema(), &log.recent(&acme)).unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.schema(), log.schema());
        let empty = to_batch::<QueryRecord>(&log.schema(), &[]).unwrap();
        assert_eq!(empty.num_rows(), 0);
        #[derive(Serialize)]
        struct Stray {
            nobody: u8,
        }
        assert!(to_batch(&log.schema(), &[Stray { nobody: 1 }]).is_err());
    }
}
