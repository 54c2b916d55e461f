//! What every handler gets: the store, the cached keys and tables, the limits.

use std::sync::Arc;
use std::time::Duration;

use gyrus_engine::{KeyRing, KeyRingConfig, SessionLimits, Store, TableCache};

/// Settings of the HTTP API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Memory and time per query.
    pub limits: SessionLimits,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Most rows a JSON result may carry (CSV and Arrow stream any size).
    pub json_row_cap: usize,
    pub keys: KeyRingConfig,
    pub catalog_max_age: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            limits: SessionLimits::default(),
            max_body_bytes: 64 << 20,
            json_row_cap: 100_000,
            keys: KeyRingConfig::default(),
            catalog_max_age: Duration::from_secs(2),
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
}

impl AppState {
    pub fn new(store: Store, config: ApiConfig) -> Self {
        AppState {
            keys: Arc::new(KeyRing::new(store.clone(), config.keys)),
            tables: Arc::new(TableCache::new(store.clone(), config.catalog_max_age)),
            store,
            config: Arc::new(config),
        }
    }
}
