//! The one pipeline loop every family runs through: tenants beyond one
//! batch, a tenant without data beside one with data, progress that adds
//! up, and a config refused before anything is read.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use gyrus_datasets::{GeneratorConfig, Scale, generate};
use gyrus_engine::{Store, TenantId};
use gyrus_models::pipeline::{Progress, TrainOptions, train};
use gyrus_models::{FamilyId, Registry, Status};

use crate::common::only;

/// Counts what a run reports.
#[derive(Default)]
struct Counted {
    starts: AtomicUsize,
    added: AtomicUsize,
    advanced: AtomicUsize,
}

impl Progress for Counted {
    fn start(&self, _: FamilyId) {
        self.starts.fetch_add(1, Ordering::Relaxed);
    }
    fn add(&self, units: usize) {
        self.added.fetch_add(units, Ordering::Relaxed);
    }
    fn advance(&self) {
        self.advanced.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tenant_of_several_batches_gets_its_own_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
    // The tenant with data comes last, in the second batch of tenants.
    let mut tenants: Vec<TenantId> = (0..20)
        .map(|i| TenantId::new(format!("empty{i:02}")).unwrap())
        .collect();
    let acme = TenantId::new("acme").unwrap();
    generate(&GeneratorConfig::for_tenant("acme", Scale::Small))
        .load(&store, &acme, |_| {})
        .await
        .unwrap();
    tenants.push(acme.clone());
    let progress = Arc::new(Counted::default());
    let options = TrainOptions {
        tenants: Some(tenants.clone()),
        ..only(FamilyId::Memory)
    };
    let reports = train(&store, &options, progress.clone()).await.unwrap();

    assert_eq!(reports.len(), tenants.len());
    let names: Vec<&str> = reports.iter().map(|r| r.tenant.as_str()).collect();
    let wanted: Vec<&str> = tenants.iter().map(TenantId::as_str).collect();
    assert_eq!(names, wanted, "one report per tenant, in order");
    for report in &reports[..20] {
        assert_eq!(report.status, Status::Failed, "{report:?}");
        assert_eq!(report.version, 1);
    }
    let last = &reports[20];
    assert_eq!(last.status, Status::Good, "{last:?}");
    assert!(last.rows_written > 0);
    assert_eq!(progress.starts.load(Ordering::Relaxed), 1);
    assert_eq!(
        progress.added.load(Ordering::Relaxed),
        progress.advanced.load(Ordering::Relaxed),
        "every unit read is advanced once"
    );
    assert_eq!(progress.added.load(Ordering::Relaxed), tenants.len());
    let registry = Registry::new(store.clone());
    assert!(
        registry
            .serving_entry(&acme, FamilyId::Memory)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_config_out_of_bounds_is_refused_before_anything_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
    let tenant = TenantId::new("acme").unwrap();
    let mut options = TrainOptions {
        tenants: Some(vec![tenant.clone()]),
        ..only(FamilyId::Oracle)
    };
    options.oracle.horizon = 0;
    let refused = train(&store, &options, Arc::new(Counted::default()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("horizon must be between 1 and 365"),
        "{refused}"
    );
    assert!(options.check(FamilyId::Oracle).is_err());
    // Nothing was recorded for the tenant.
    let registry = Registry::new(store.clone());
    assert!(
        registry
            .entries(Some(&tenant), Some(FamilyId::Oracle))
            .await
            .unwrap()
            .is_empty()
    );
}
