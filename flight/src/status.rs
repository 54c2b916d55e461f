//! Engine errors as gRPC statuses, in one place.

use gyrus_engine::EngineError;
use tonic::Status;

/// The status a client sees for an engine error; the message is the engine's,
/// which names what to change. Storage failures are logged in full and
/// reported without internals.
pub fn engine_status(err: EngineError) -> Status {
    match err {
        EngineError::Query(_)
        | EngineError::Validation(_)
        | EngineError::InvalidSlice(_)
        | EngineError::InvalidTenant { .. }
        | EngineError::InvalidRole(_)
        | EngineError::TooLarge { .. }
        | EngineError::IdempotencyMismatch { .. } => Status::invalid_argument(err.to_string()),
        EngineError::ReadOnly(_) | EngineError::Forbidden(_) => {
            Status::permission_denied(err.to_string())
        }
        EngineError::UnknownTable { .. } | EngineError::KeyNotFound(_) => {
            Status::not_found(err.to_string())
        }
        EngineError::MemoryLimit { .. } => Status::resource_exhausted(err.to_string()),
        EngineError::Timeout { .. } => Status::deadline_exceeded(err.to_string()),
        EngineError::Conflict { .. } | EngineError::LeaseLost { .. } => {
            Status::aborted(err.to_string())
        }
        EngineError::Busy(_) => Status::unavailable(err.to_string()),
        EngineError::InvalidRoot { .. }
        | EngineError::Delta(_)
        | EngineError::ObjectStore(_)
        | EngineError::Internal(_) => {
            tracing::error!(error = %err, "storage error");
            Status::internal("storage error; the server log has the details")
        }
    }
}

/// An Arrow error while building a response: a bug or corrupt data, not the caller's fault.
pub fn arrow_status(err: gyrus_engine::datafusion::arrow::error::ArrowError) -> Status {
    tracing::error!(error = %err, "arrow error");
    Status::internal(err.to_string())
}

/// `RESOURCE_EXHAUSTED` for a refused admission (over a rate, slots full),
/// with the seconds to wait in `retry-after` (as HTTP's header).
pub fn refusal_status(refusal: gyrus_engine::admission::Refusal) -> Status {
    let mut status = Status::resource_exhausted(refusal.to_string());
    if let Ok(value) = refusal.retry_after().to_string().parse() {
        status.metadata_mut().insert("retry-after", value);
    }
    status
}
