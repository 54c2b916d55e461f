//! One tenant running many CPU-bound queries does not hold back another
//! tenant's query: each busy tenant has a lane of its own, and a tenant's
//! work beyond its first runs at background priority (`gyrus_engine::exec`).
//! The figures (p99 idle against loaded) are in `benches/fairness.py`; this
//! test keeps the order of events: the other tenant is answered while every
//! one of the flood is still running.

use crate::common::*;
use gyrus_engine::schema::CanonicalTable;
use gyrus_engine::{SessionLimits, WriteRequest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_flooding_the_cores_leaves_another_answered() {
    let (_dir, store) = temp_store().await;
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    for t in [&acme, &globex] {
        let rows = rows(t.as_str(), "c1", day(2026, 1, 1), 5, 2, 1);
        store
            .write(
                t,
                WriteRequest::append(CanonicalTable::AdPerformance, vec![batch(&rows)]),
            )
            .await
            .unwrap();
    }
    let limits = SessionLimits::default();
    // Each of these runs for minutes on this machine (far more in a debug
    // build); they are aborted at the end.
    let heavy = "SELECT count(*) FROM range(100000000000) WHERE value % 7 = 3";
    let mut flood = Vec::new();
    for _ in 0..6 {
        let session = store.session(&acme, &limits).await.unwrap();
        flood.push(tokio::spawn(async move { session.query(heavy).await }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        flood.iter().all(|q| !q.is_finished()),
        "the flood is running"
    );

    for _ in 0..3 {
        let answer = scalar(&store, &globex, "SELECT sum(clicks) FROM ad_performance").await;
        assert!(!answer.is_empty());
    }
    assert!(
        flood.iter().all(|q| !q.is_finished()),
        "globex was answered only after acme's flood ended"
    );
    for q in &flood {
        q.abort();
    }
}
