//! Errors of the model families, the registry and the pipelines.

use gyrus_engine::EngineError;

pub type Result<T, E = ModelError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Reading or writing tables failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A request a caller can correct (bad horizon, unknown metric, …).
    #[error("{0}")]
    Invalid(String),
    /// No trained model of this family serves the tenant yet.
    #[error(
        "no {family} model has been trained for tenant `{tenant}` yet; run `gyrus train --family {family}`"
    )]
    NoModel { tenant: String, family: String },
    /// A stored model or registry row could not be read back.
    #[error("model registry: {0}")]
    Registry(String),
}

impl From<datafusion::error::DataFusionError> for ModelError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        ModelError::Engine(e.into())
    }
}

impl From<datafusion::arrow::error::ArrowError> for ModelError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        ModelError::Engine(EngineError::Internal(e.to_string()))
    }
}
