//! CURIOSITY end to end: synthetic data in a real Delta store, `train`, the
//! registry, the `insights` table and its deduplication across runs.

use std::sync::Arc;

use gyrus_datasets::{GeneratorConfig, Scale, generate};
use gyrus_engine::{Store, TenantId};
use gyrus_models::pipeline::{Silent, TrainOptions, train};

use crate::common::{only, query};
use gyrus_models::{FamilyId, Status};

fn curiosity_only() -> TrainOptions {
    only(FamilyId::Curiosity)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn train_writes_every_kind_of_insight_once_and_keeps_first_detection() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
    let tenant = TenantId::new("acme").unwrap();
    let data = generate(&GeneratorConfig::for_tenant("acme", Scale::Medium));
    data.load(&store, &tenant, |_| {}).await.unwrap();

    let first = train(&store, &curiosity_only(), Arc::new(Silent))
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].status, Status::Good, "{:?}", first[0]);
    assert!(first[0].units > 100, "{:?}", first[0]);
    // The run is scored by the events it finds when they are injected into
    // its own data: on clean data it finds (nearly) all of them.
    let score = first[0]
        .score
        .expect("a medium tenant has series to inject into");
    assert!(score <= 0.2, "{:?}", first[0].metrics);
    assert!(first[0].metrics["quality"]["injected"].as_u64().unwrap() >= 20);
    let kinds = query(
        &store,
        &tenant,
        "SELECT kind, count(*) FROM insights GROUP BY kind ORDER BY kind",
    )
    .await;
    let names: Vec<&str> = kinds.iter().map(|k| k[0].as_str()).collect();
    assert_eq!(
        names,
        ["anomaly", "benchmark", "changepoint", "mover", "segment"],
        "{kinds:?}"
    );
    // Every insight explains itself with a number.
    let bare = query(
        &store,
        &tenant,
        "SELECT explanation FROM insights WHERE NOT regexp_like(explanation, '[0-9]')",
    )
    .await;
    assert!(bare.is_empty(), "{bare:?}");
    let before = query(
        &store,
        &tenant,
        "SELECT insight_id, CAST(detected_at AS VARCHAR) FROM insights ORDER BY insight_id",
    )
    .await;
    let unique = query(
        &store,
        &tenant,
        "SELECT count(DISTINCT insight_id) FROM insights",
    )
    .await;
    assert_eq!(unique[0][0], before.len().to_string());

    // A second run over the same data finds the same insights: no
    // duplicates, and each keeps the time it was first detected.
    let second = train(&store, &curiosity_only(), Arc::new(Silent))
        .await
        .unwrap();
    assert_eq!(second[0].status, Status::Good);
    assert_eq!(second[0].version, 2);
    let after = query(
        &store,
        &tenant,
        "SELECT insight_id, CAST(detected_at AS VARCHAR) FROM insights ORDER BY insight_id",
    )
    .await;
    assert_eq!(before, after);
    let versions = query(
        &store,
        &tenant,
        "SELECT DISTINCT model_version FROM insights",
    )
    .await;
    assert_eq!(versions, vec![vec!["curiosity-v2".to_string()]]);
}
