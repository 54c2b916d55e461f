//! ORACLE end to end: synthetic data in a real Delta store, `train`, the
//! registry, the `forecasts` table, and the serving model kept when a run
//! fails or scores worse.

use std::sync::Arc;

use gyrus_datasets::{GeneratorConfig, Scale, generate};
use gyrus_engine::{Store, TenantId};
use gyrus_models::oracle::{Metric, OracleModel};
use gyrus_models::pipeline::{Silent, TrainOptions, train};
use gyrus_models::{FamilyId, Registry, Status};

use crate::common::{assert_a_worse_run_is_rejected, only, scalar};

fn oracle_only() -> TrainOptions {
    only(FamilyId::Oracle)
}

async fn store_with(tenants: &[&str]) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
    for tenant in tenants {
        let data = generate(&GeneratorConfig::for_tenant(tenant, Scale::Small));
        data.load(&store, &TenantId::new(*tenant).unwrap(), |_| {})
            .await
            .unwrap();
    }
    (dir, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn train_writes_forecasts_and_registers_a_serving_model() {
    let (_dir, store) = store_with(&["acme", "globex"]).await;
    let reports = train(&store, &oracle_only(), Arc::new(Silent))
        .await
        .unwrap();
    assert_eq!(reports.len(), 2);
    for report in &reports {
        assert_eq!(report.status, Status::Good, "{report:?}");
        assert!(report.units > 30, "{report:?}");
        assert!(report.rows_written > 0);
    }
    let acme = TenantId::new("acme").unwrap();
    // 28 days × 2 levels for each forecast and ratio series.
    let rows: usize = scalar(&store, &acme, "SELECT COUNT(*) FROM forecasts")
        .await
        .parse()
        .unwrap();
    assert_eq!(rows, reports[0].rows_written);
    let levels = scalar(
        &store,
        &acme,
        "SELECT COUNT(DISTINCT interval_level) FROM forecasts",
    )
    .await;
    assert_eq!(levels, "2");
    // Ratios are there, derived from their parts.
    let cpa = scalar(
        &store,
        &acme,
        "SELECT COUNT(*) FROM forecasts WHERE metric = 'cpa' AND model = 'ratio(spend/conversions)'",
    )
    .await;
    assert_ne!(cpa, "0");
    // Forecasts start the day after the data ends and never go below zero.
    let first = scalar(
        &store,
        &acme,
        "SELECT CAST(MIN(date) AS VARCHAR) FROM forecasts",
    )
    .await;
    assert_eq!(first, "2026-11-01");
    let negative = scalar(
        &store,
        &acme,
        "SELECT COUNT(*) FROM forecasts WHERE yhat < 0 OR yhat_lower < 0",
    )
    .await;
    assert_eq!(negative, "0");

    // The registry holds the model; it reads back and forecasts.
    let registry = Registry::new(store.clone());
    let (entry, model) = registry
        .serving::<OracleModel>(&acme)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.version, 1);
    assert_eq!(entry.status, Status::Good);
    assert!(
        entry
            .input_versions
            .get("ad_performance")
            .copied()
            .flatten()
            .is_some()
    );
    assert!(entry.metrics.get("holdout_mase").is_some());
    let spend = model.forecast(Metric::Spend, "campaign", None, 7, &[0.8]);
    assert!(!spend.is_empty());
    assert_eq!(spend[0].points.len(), 7);

    // A second run is version 2 and serves; version 1 stays readable.
    train(&store, &oracle_only(), Arc::new(Silent))
        .await
        .unwrap();
    let serving = registry
        .serving_entry(&acme, FamilyId::Oracle)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(serving.version, 2);
    assert!(
        registry
            .load::<OracleModel>(&acme, 1)
            .await
            .unwrap()
            .is_some()
    );
    let version = scalar(&store, &acme, "SELECT MIN(model_version) FROM forecasts").await;
    assert_eq!(
        version, "oracle-v2",
        "the table holds only the serving version"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worse_or_failed_run_leaves_the_serving_model_in_place() {
    let (_dir, store) = store_with(&["acme"]).await;
    let acme = TenantId::new("acme").unwrap();
    train(&store, &oracle_only(), Arc::new(Silent))
        .await
        .unwrap();
    let before = scalar(&store, &acme, "SELECT COUNT(*) FROM forecasts").await;

    // Worse: a tolerance below 1 makes any equal score count as worse.
    assert_a_worse_run_is_rejected(&store, oracle_only()).await;

    // Failed: a tenant with no data at all.
    let empty = TenantId::new("empty").unwrap();
    let only_empty = TrainOptions {
        tenants: Some(vec![empty.clone()]),
        ..oracle_only()
    };
    let reports = train(&store, &only_empty, Arc::new(Silent)).await.unwrap();
    assert_eq!(reports[0].status, Status::Failed);

    let registry = Registry::new(store.clone());
    let serving = registry
        .serving_entry(&acme, FamilyId::Oracle)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(serving.version, 1);
    let entries = registry
        .entries(Some(&acme), Some(FamilyId::Oracle))
        .await
        .unwrap();
    assert_eq!(
        entries.iter().map(|e| e.status).collect::<Vec<_>>(),
        vec![Status::Good, Status::Rejected]
    );
    assert_eq!(
        scalar(&store, &acme, "SELECT COUNT(*) FROM forecasts").await,
        before
    );
    assert_eq!(
        scalar(&store, &acme, "SELECT MIN(model_version) FROM forecasts").await,
        "oracle-v1"
    );
    assert!(
        registry
            .serving::<OracleModel>(&empty)
            .await
            .unwrap()
            .is_none()
    );
}

/// The bar: on held-back synthetic days, the nominal 80% interval
/// covers between 75% and 85%. Pooled over six generated tenants (their
/// seeds differ), stopped series excluded; 28 days held back per series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intervals_cover_held_back_days_as_nominal() {
    let tenants = ["acme", "globex", "initech", "umbrella", "hooli", "stark"];
    let (_dir, store) = store_with(&tenants).await;
    let reports = train(&store, &oracle_only(), Arc::new(Silent))
        .await
        .unwrap();
    let registry = Registry::new(store.clone());
    let (mut covered80, mut covered95, mut points) = (0.0, 0.0, 0.0);
    for report in reports {
        let tenant = TenantId::new(report.tenant).unwrap();
        let entry = registry
            .serving_entry(&tenant, FamilyId::Oracle)
            .await
            .unwrap()
            .unwrap();
        let m = &entry.metrics;
        let n = m["holdout_points"].as_f64().unwrap();
        covered80 += m["holdout_coverage"]["0.8"].as_f64().unwrap() * n;
        covered95 += m["holdout_coverage"]["0.95"].as_f64().unwrap() * n;
        points += n;
    }
    let (c80, c95) = (covered80 / points, covered95 / points);
    println!("held-back coverage over {points} days: 80% -> {c80:.3}, 95% -> {c95:.3}");
    assert!(
        (0.75..=0.85).contains(&c80),
        "80% interval covered {c80:.3}"
    );
    assert!(
        (0.88..=0.99).contains(&c95),
        "95% interval covered {c95:.3}"
    );
}
