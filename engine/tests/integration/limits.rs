//! Per-query bounds: memory (spill or a clear error, never an OOM kill) and time.

use std::time::Duration;

use crate::common::*;
use gyrus_engine::{EngineError, SessionLimits};

#[tokio::test]
async fn a_query_over_its_memory_limit_fails_cleanly() {
    let (_dir, store) = temp_store().await;
    let limits = SessionLimits {
        memory_bytes: 1 << 20,
        ..SessionLimits::default()
    };
    let session = store.session(&tenant("acme"), &limits).await.unwrap();
    // array_agg keeps every value in memory and cannot spill.
    let err = session
        .query("SELECT array_agg(value) FROM generate_series(1, 5000000)")
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::MemoryLimit { limit_mb: 1, .. }),
        "{err}"
    );
    // The same session still answers small queries.
    assert!(session.query("SELECT 1").await.is_ok());
}

#[tokio::test]
async fn a_query_over_its_time_limit_is_cancelled() {
    let (_dir, store) = temp_store().await;
    let limits = SessionLimits {
        timeout: Duration::from_millis(300),
        ..SessionLimits::default()
    };
    let session = store.session(&tenant("acme"), &limits).await.unwrap();
    let err = session
        .query("SELECT sum(value) FROM generate_series(1, 100000000000)")
        .await
        .unwrap_err();
    // Running to completion would take hours; the error means it was cancelled.
    assert!(matches!(err, EngineError::Timeout { .. }), "{err}");
}
