//! What every handler gets: the store, the cached keys and tables, the limits
//! and the metrics.

use std::sync::Arc;

use gyrus_models::memory::MemoryModel;
use gyrus_models::oracle::OracleModel;
use gyrus_models::reflexes::ReflexesModel;
use gyrus_models::{Registry, ServingCache};
use std::time::Duration;

use gyrus_engine::admission::{Admission, AdmissionConfig};
use gyrus_engine::lifecycle::TenantRows;
use gyrus_engine::system::SystemCatalog;
use gyrus_engine::{KeyRing, KeyRingConfig, ServerCaches, SessionLimits, Store, TableCache};
use gyrus_ingest::connectors::registry::Connectors;

use crate::metrics::Metrics;

/// Settings of the HTTP API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Memory and time per query.
    pub limits: SessionLimits,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Most rows a JSON result may carry (CSV and Arrow stream any size).
    pub json_row_cap: usize,
    /// Most bytes (of Arrow data) a JSON result may carry.
    pub json_byte_cap: usize,
    /// Rates per key and tenant, requests and ingests in progress in the
    /// process and per tenant (shared with Flight SQL when the caches are):
    /// past them 429 or 503 with `Retry-After`, ingests before their bodies
    /// are read.
    pub admission: AdmissionConfig,
    /// Longest wait for a response's headers.
    pub request_timeout: Duration,
    pub keys: KeyRingConfig,
    pub catalog_max_age: Duration,
    /// Whether tenant admins may point a connector at another base or token
    /// URL. Off by default: a URL of the admin's choosing would make the
    /// server call hosts inside its own network.
    pub allow_connector_urls: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            limits: SessionLimits::default(),
            max_body_bytes: 64 << 20,
            json_row_cap: 100_000,
            json_byte_cap: 32 << 20,
            admission: AdmissionConfig::default(),
            request_timeout: Duration::from_secs(120),
            keys: KeyRingConfig::default(),
            catalog_max_age: Duration::from_secs(2),
            allow_connector_urls: false,
        }
    }
}

/// Shared by all requests; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub keys: Arc<KeyRing>,
    pub tables: Arc<TableCache>,
    pub config: Arc<ApiConfig>,
    pub metrics: Arc<Metrics>,
    /// Rate limits and slots, per key, tenant and process.
    pub admission: Arc<Admission>,
    /// Each tenant's serving ORACLE model, read from the registry.
    pub oracle: Arc<ServingCache<OracleModel>>,
    /// Each tenant's serving MEMORY model.
    pub memory: Arc<ServingCache<MemoryModel>>,
    /// Each tenant's serving REFLEXES curves.
    pub reflexes: Arc<ServingCache<ReflexesModel>>,
    /// The platform connectors (shared with the sync scheduler).
    pub connectors: Arc<Connectors>,
    /// The `system` tables admins query, and the log of queries.
    pub system: Arc<SystemCatalog>,
}

/// Adds the views other crates own — `system.model_runs`,
/// `system.connectors`, `system.connector_runs` — to the engine's.
pub fn add_system_views(system: &SystemCatalog, store: &Store) {
    system.register(std::sync::Arc::new(gyrus_models::registry::ModelRunsView(
        Registry::new(store.clone()),
    )));
    system.register(gyrus_ingest::connectors::system::ConnectorsView::new(
        store.clone(),
    ));
    system.register(gyrus_ingest::connectors::system::ConnectorRunsView::new(
        store.clone(),
    ));
}

/// The shared system tables that hold tenants' rows, in the order a
/// tenant is erased: its keys first, so that its access ends first.
pub fn tenant_rows() -> Vec<&'static dyn TenantRows> {
    let connectors = &gyrus_ingest::connectors::registry::TENANT_ROWS;
    vec![
        &gyrus_engine::keys::TENANT_ROWS,
        &connectors[0],
        &connectors[1],
        &connectors[2],
        &gyrus_models::registry::TENANT_ROWS,
        &gyrus_engine::system::QUERY_ROWS,
    ]
}

impl AppState {
    /// State with its own key and table caches.
    pub fn new(store: Store, config: ApiConfig) -> Self {
        let caches = ServerCaches::new(
            &store,
            config.keys,
            config.catalog_max_age,
            config.admission,
        );
        Self::sharing(store, caches, config)
    }

    /// State using caches shared with another server in the process (Flight
    /// SQL), so that a key revoked or a table written through one is seen by
    /// the other at once.
    pub fn sharing(store: Store, caches: ServerCaches, config: ApiConfig) -> Self {
        let registry = Registry::new(store.clone());
        let oracle = Arc::new(ServingCache::new(registry.clone(), config.catalog_max_age));
        let memory = Arc::new(ServingCache::new(registry.clone(), config.catalog_max_age));
        let reflexes = Arc::new(ServingCache::new(registry, config.catalog_max_age));
        add_system_views(&caches.system, &store);
        AppState {
            keys: caches.keys,
            tables: caches.tables,
            metrics: Arc::default(),
            admission: caches.admission,
            system: caches.system,
            oracle,
            memory,
            reflexes,
            connectors: Arc::new(Connectors::new(store.clone(), None)),
            store,
            config: Arc::new(config),
        }
    }

    /// Uses `connectors` (with its credential key) for the connector routes;
    /// without it they answer 503.
    pub fn with_connectors(mut self, connectors: Arc<Connectors>) -> Self {
        self.connectors = connectors;
        self
    }
}
