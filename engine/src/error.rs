//! The one error type of the engine; every message says what to do next.

use datafusion::error::DataFusionError;
use deltalake_core::DeltaTableError;

use crate::validate::ValidationError;

/// Result alias for the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Everything that can go wrong in the store, the sessions and the key registry.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("unknown table `{name}`; the canonical tables are: {}", known.join(", "))]
    UnknownTable {
        name: String,
        known: Vec<&'static str>,
    },

    #[error("invalid tenant id `{tenant}`: {reason}")]
    InvalidTenant {
        tenant: String,
        reason: &'static str,
    },

    #[error("invalid data root `{root}`: {reason}")]
    InvalidRoot { root: String, reason: String },

    #[error(transparent)]
    Validation(#[from] ValidationError),

    #[error("invalid slice: {0}")]
    InvalidSlice(String),

    #[error(
        "only read-only queries are allowed (SELECT, WITH, EXPLAIN, SHOW TABLES, DESCRIBE); rejected: {0}"
    )]
    ReadOnly(String),

    #[error("query failed: {0}")]
    Query(String),

    #[error("query exceeded its memory limit of {limit_mb} MiB: {detail}")]
    MemoryLimit { limit_mb: usize, detail: String },

    #[error("{what}, more than the bound of {limit} ({setting}); make the request smaller")]
    TooLarge {
        what: String,
        limit: String,
        /// The flag (or setting) an operator raises the bound with.
        setting: &'static str,
    },

    #[error("query exceeded its time limit of {seconds} s")]
    Timeout { seconds: u64 },

    #[error("{0}")]
    Forbidden(String),

    #[error("API key `{0}` not found")]
    KeyNotFound(String),

    #[error("invalid role `{0}`: use reader, writer or admin")]
    InvalidRole(String),

    #[error(
        "idempotency key `{key}` was first used for a different request; send a new key for new data"
    )]
    IdempotencyMismatch { key: String },

    #[error("the write conflicted with concurrent writers {attempts} times; retry it")]
    Conflict { attempts: usize },

    /// Work that holds a lease is running; the request must wait for it.
    #[error("{0}")]
    Busy(String),

    #[error("lease `{lease}` was taken over by another process after it expired here")]
    LeaseLost { lease: String },

    #[error("storage error: {0}")]
    Delta(#[from] DeltaTableError),

    #[error("object store error: {0}")]
    ObjectStore(#[from] object_store::Error),

    #[error("internal error: {0}")]
    Internal(String),
}

impl From<DataFusionError> for EngineError {
    fn from(err: DataFusionError) -> Self {
        classify(strip_context(err))
    }
}

/// The caller's fault (a query to fix) or the server's (storage, I/O, a bug):
/// the latter must not be answered as a bad query, nor show storage paths.
pub(crate) fn classify(err: DataFusionError) -> EngineError {
    match err {
        DataFusionError::ObjectStore(_)
        | DataFusionError::IoError(_)
        | DataFusionError::ParquetError(_)
        | DataFusionError::Internal(_) => EngineError::Internal(err.to_string()),
        // An engine error raised inside a query (a `system` table refusing a
        // key) keeps its meaning.
        DataFusionError::External(inner) => match inner.downcast::<EngineError>() {
            Ok(engine) => *engine,
            Err(other) => EngineError::Internal(DataFusionError::External(other).to_string()),
        },
        other => EngineError::Query(other.to_string()),
    }
}

/// DataFusion wraps errors in context layers; the innermost one is what a person can act on.
pub(crate) fn strip_context(err: DataFusionError) -> DataFusionError {
    match err {
        DataFusionError::Context(_, inner) => strip_context(*inner),
        DataFusionError::Shared(shared) => match std::sync::Arc::try_unwrap(shared) {
            Ok(inner) => strip_context(inner),
            Err(shared) => DataFusionError::Shared(shared),
        },
        other => other,
    }
}
