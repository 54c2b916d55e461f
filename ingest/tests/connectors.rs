//! Every connector against its platform's fake (`tests/fake`): a full sync,
//! an incremental sync, a restatement, 20% injected faults, and syncs killed
//! at random points and resumed must all land exactly the rows the fake's
//! data says, and no credential may appear in the logs.

#[path = "fake/mod.rs"]
mod fake;
/// The fake's own checks against SPEC.md, in this binary to save a link.
#[path = "fake/selftest.rs"]
mod fake_selftest;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fake::{Fake, FakeConfig};
use gyrus_engine::datafusion::arrow::array::RecordBatch;
use gyrus_engine::datafusion::arrow::util::pretty::pretty_format_batches;
use gyrus_engine::store::{Store, TenantId};
use gyrus_engine::write::prepare;
use gyrus_engine::{SessionLimits, TenantSession};
use gyrus_ingest::connectors::registry::{Connectors, NewConnector, RunStatus};
use gyrus_ingest::connectors::rows::Rows;
use gyrus_ingest::connectors::{
    Connector, ConnectorConfig, Credentials, PlatformId, SyncError, SyncOptions, SyncReport, sync,
};
use gyrus_ingest::http::{CallGuards, HttpPolicy};
use gyrus_ingest::secrets::SecretKey;
use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng};

const TENANT: &str = "acme";

/// Varies the faults drawn and the kill points: `GYRUS_TEST_SEED=3 cargo
/// nextest run -p gyrus-ingest --test connectors` (0 when unset).
fn seed() -> u64 {
    std::env::var("GYRUS_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Fast retries: the fake's faults are quick to recover from.
/// A connector service's limiters and breakers, one per sync here (the
/// policy keeps breakers from opening).
fn guards() -> CallGuards {
    CallGuards::default()
}

fn policy() -> HttpPolicy {
    HttpPolicy {
        timeout: Duration::from_millis(700),
        attempts: 12,
        backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(100),
        max_wait: Duration::from_secs(5),
        requests_per_second: 100_000.0,
        breaker_failures: 1_000,
        breaker_cooldown: Duration::from_secs(1),
    }
}

/// The platform called `name`.
fn platform(name: &str) -> PlatformId {
    name.parse().expect("a registered platform")
}

struct Harness {
    platform: PlatformId,
    fake: Fake,
    store: Store,
    connector: Connector,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn new(platform: PlatformId) -> Harness {
        Self::with(
            platform,
            FakeConfig {
                stall: Duration::from_millis(1200),
                ..FakeConfig::default()
            },
        )
        .await
    }

    async fn with(platform: PlatformId, config: FakeConfig) -> Harness {
        let start = config.start;
        let fake = Fake::start(config).await;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
        let credentials = fake.credential_map(platform.name());
        // Small pages, so that every sync pages.
        let mut settings: std::collections::BTreeMap<String, String> =
            [("page_size".to_string(), "40".to_string())].into();
        if platform.name() == "meta_ads" {
            settings.insert("poll_interval_ms".into(), "5".into());
        }
        let connector = Connector::new(
            ConnectorConfig {
                id: format!("c_{}", platform.name()),
                tenant: TENANT.into(),
                platform,
                account: fake.account(platform.name()),
                base_url: Some(fake.url()),
                auth_url: Some(fake.url()),
                start_date: start,
                lookback_days: 30,
                schedule_minutes: 0,
                settings,
            },
            Credentials(credentials),
        );
        Harness {
            platform,
            fake,
            store,
            connector,
            _dir: dir,
        }
    }

    fn options(&self) -> SyncOptions {
        SyncOptions {
            today: Some(self.fake.today()),
            full: false,
            http: policy(),
        }
    }

    async fn sync(&self) -> SyncReport {
        sync(&self.store, &self.connector, &self.options(), &guards())
            .await
            .unwrap_or_else(|e| panic!("{} sync failed: {e}", self.platform))
    }

    /// The connector's table as landed, in the table's sort order.
    async fn landed(&self) -> RecordBatch {
        let table = self.platform.table();
        let tenant = TenantId::new(TENANT).unwrap();
        let tables = self.store.tenant_tables(&tenant).await.unwrap();
        let session = TenantSession::new(&tables, &SessionLimits::default()).unwrap();
        let batches = session
            .query(&format!("SELECT * FROM {}", table.name()))
            .await
            .unwrap();
        prepare(table, &batches).unwrap()
    }

    /// What the fake's data says the table must hold.
    fn expected(&self) -> RecordBatch {
        let table = self.platform.table();
        let mut rows = Rows::new(table);
        for row in self.fake.expected(self.platform.name()) {
            assert!(
                rows.insert(row.as_object().unwrap().clone()),
                "the fake repeats a row"
            );
        }
        prepare(table, &[rows.into_batch().unwrap()]).unwrap()
    }

    async fn assert_exact(&self, what: &str) {
        let (landed, expected) = (self.landed().await, self.expected());
        assert!(
            expected.num_rows() > 0,
            "the fake has no {} data",
            self.platform
        );
        if landed != expected {
            let show = |b: &RecordBatch| {
                let n = b.num_rows().min(5);
                pretty_format_batches(&[b.slice(0, n)]).unwrap().to_string()
            };
            let first_difference = (0..landed.num_rows().min(expected.num_rows()))
                .find(|&i| landed.slice(i, 1) != expected.slice(i, 1));
            let detail = first_difference
                .map(|i| {
                    format!(
                        "first difference at row {i}:\nlanded\n{}\nexpected\n{}",
                        show(&landed.slice(i, 1)),
                        show(&expected.slice(i, 1))
                    )
                })
                .unwrap_or_default();
            panic!(
                "{} {what}: landed {} rows, expected {}\n{detail}\nlanded starts\n{}\nexpected starts\n{}",
                self.platform,
                landed.num_rows(),
                expected.num_rows(),
                show(&landed),
                show(&expected)
            );
        }
    }

    /// Starts a sync and kills it after `requests` more requests to the
    /// fake or `millis` milliseconds, whichever comes first; true when it
    /// finished before the kill.
    async fn killed_sync(&self, requests: usize, millis: u64) -> bool {
        let store = self.store.clone();
        let connector = self.connector.clone();
        let options = self.options();
        let task = tokio::spawn(async move { sync(&store, &connector, &options, &guards()).await });
        let start = self.fake.request_count();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(millis);
        loop {
            if task.is_finished() {
                let outcome = task.await.unwrap();
                outcome.unwrap_or_else(|e| panic!("{} sync failed: {e}", self.platform));
                return true;
            }
            if self.fake.request_count() >= start + requests
                || tokio::time::Instant::now() >= deadline
            {
                task.abort();
                let _ = task.await;
                return false;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

async fn full(platform: PlatformId) {
    let h = Harness::new(platform).await;
    let report = h.sync().await;
    assert!(report.rows > 0 && !report.resumed);
    h.assert_exact("full sync").await;
    // A second sync with nothing new changes nothing.
    h.sync().await;
    h.assert_exact("repeated sync").await;
}

async fn incremental(platform: PlatformId) {
    let h = Harness::new(platform).await;
    let first = h.sync().await;
    let before = h.fake.today();
    h.fake.advance(6);
    let second = h.sync().await;
    h.assert_exact("incremental sync").await;
    assert!(
        second.rows < first.rows,
        "{platform}: the incremental sync read {} rows, the full one {}",
        second.rows,
        first.rows
    );
    if let Some(from) = second.from {
        // Windowed: from the cursor minus the lookback, not from the start.
        assert_eq!(from, before - chrono::Days::new(29), "{platform}");
        assert_eq!(second.to, Some(h.fake.today()));
    }
}

async fn restatement(platform: PlatformId) {
    let h = Harness::new(platform).await;
    h.sync().await;
    let before = h.expected();
    h.fake.restate();
    assert_ne!(
        before,
        h.expected(),
        "{platform}: restate() changed nothing"
    );
    h.sync().await;
    h.assert_exact("sync after restatement").await;
}

async fn faults(platform: PlatformId) {
    let mut h = Harness::new(platform).await;
    // Smaller pages and windows: more requests to fault.
    let settings = &mut h.connector.config.settings;
    settings.insert("page_size".into(), "15".into());
    settings.insert("window_days".into(), "10".into());
    let requests = h.fake.request_count();
    h.fake.set_faults(0.2, 11 + 100 * seed());
    h.sync().await;
    h.fake.advance(3);
    h.fake.restate();
    h.sync().await;
    // And a full re-read, under other draws.
    h.fake.set_faults(0.2, 12 + 100 * seed());
    let mut options = h.options();
    options.full = true;
    sync(&h.store, &h.connector, &options, &guards())
        .await
        .unwrap();
    let injected: usize = h.fake.faults().values().sum();
    let requests = h.fake.request_count() - requests;
    h.fake.set_faults(0.0, 0);
    h.assert_exact("syncs under 20% faults").await;
    // The draws vary with the seed; the note's table sums them.
    eprintln!(
        "{platform}: {injected} faults in {requests} requests: {:?}",
        h.fake.faults()
    );
    assert!(injected >= 1, "{platform}: no fault in {requests} requests");
}

async fn kill_and_resume(platform: PlatformId) {
    let h = Harness::new(platform).await;
    let mut rng = StdRng::seed_from_u64(
        PlatformId::all().position(|p| p == platform).unwrap_or(0) as u64 + 1 + 1000 * seed(),
    );
    let mut kills = 0;
    // Kill the first sync a few times, at random requests or instants.
    for _ in 0..4 {
        let (requests, millis) = (rng.random_range(1..8), rng.random_range(2..300));
        if h.killed_sync(requests, millis).await {
            break;
        }
        kills += 1;
    }
    h.sync().await;
    h.assert_exact("killed full syncs, resumed").await;
    // And an incremental one over a restatement.
    h.fake.advance(4);
    h.fake.restate();
    for _ in 0..3 {
        let (requests, millis) = (rng.random_range(1..5), rng.random_range(2..200));
        if h.killed_sync(requests, millis).await {
            break;
        }
        kills += 1;
    }
    h.sync().await;
    h.assert_exact("killed incremental syncs, resumed").await;
    assert!(
        kills >= 2,
        "{platform}: only {kills} syncs were killed before they finished"
    );
}

/// A writer into a shared buffer, for capturing logs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn secrets_stay_out_of_logs(platform: PlatformId) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let h = Harness::new(platform).await;
    h.fake.set_faults(0.3, 5 + 100 * seed());
    h.sync().await;
    h.fake.set_faults(0.0, 0);
    let debug = format!("{:?}", h.connector);
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("retrying") || logs.contains("window replaced") || logs.contains("upserted")
    );
    for secret in h.fake.secrets() {
        assert!(
            !logs.contains(&secret),
            "{platform}: a credential is in the logs"
        );
        assert!(
            !debug.contains(&secret),
            "{platform}: a credential is in the connector's Debug"
        );
    }
}

macro_rules! connector_tests {
    ($($name:ident => $platform:expr),* $(,)?) => {
        $(
            mod $name {
                use super::*;

                #[tokio::test]
                async fn full_sync() {
                    full($platform).await;
                }

                #[tokio::test]
                async fn incremental_sync() {
                    incremental($platform).await;
                }

                #[tokio::test]
                async fn restatement_sync() {
                    restatement($platform).await;
                }

                #[tokio::test]
                async fn faults_sync() {
                    faults($platform).await;
                }

                #[tokio::test]
                async fn kill_and_resume_sync() {
                    kill_and_resume($platform).await;
                }

                #[tokio::test]
                async fn credentials_never_logged() {
                    secrets_stay_out_of_logs($platform).await;
                }
            }
        )*
    };
}

connector_tests! {
    google_ads => platform("google_ads"),
    youtube_ads => platform("youtube_ads"),
    meta_ads => platform("meta_ads"),
    linkedin_ads => platform("linkedin_ads"),
    tiktok_ads => platform("tiktok_ads"),
    ga4 => platform("ga4"),
    shopify => platform("shopify"),
    stripe => platform("stripe"),
    hubspot => platform("hubspot"),
    salesforce => platform("salesforce"),
    gohighlevel => platform("gohighlevel"),
}

/// The fake's GoHighLevel connector added to a registry (a new one per
/// call, as a new process would have), and its id.
async fn registered(h: &Harness) -> String {
    let config = &h.connector.config;
    registry(h)
        .add(
            &TenantId::new(TENANT).unwrap(),
            NewConnector {
                platform: platform("gohighlevel"),
                account: config.account.clone(),
                credentials: h.connector.credentials.clone(),
                base_url: config.base_url.clone(),
                auth_url: config.auth_url.clone(),
                start_date: Some(config.start_date),
                lookback_days: None,
                schedule_minutes: Some(0),
                settings: config.settings.clone(),
            },
        )
        .await
        .unwrap()
        .id
}

fn registry(h: &Harness) -> Connectors {
    Connectors::new(
        h.store.clone(),
        Some(SecretKey::from_bytes(&[9; 32]).unwrap()),
    )
}

/// Each window replaces the rows its connector owns (ads: its platform and
/// account; orders: its source), so a tenant cannot have two connectors
/// owning the same rows; different accounts, or YouTube beside Google Ads
/// on one customer, are different rows.
#[tokio::test]
async fn two_connectors_owning_the_same_rows_are_refused() {
    let h = Harness::new(platform("google_ads")).await;
    let connectors = registry(&h);
    let tenant = TenantId::new(TENANT).unwrap();
    let add = |name: &'static str, account: &'static str| {
        let (connectors, tenant) = (&connectors, &tenant);
        let credentials = Credentials(h.fake.credential_map(name));
        async move {
            connectors
                .add(
                    tenant,
                    NewConnector {
                        platform: platform(name),
                        account: account.into(),
                        credentials,
                        base_url: None,
                        auth_url: None,
                        start_date: None,
                        lookback_days: None,
                        schedule_minutes: Some(0),
                        settings: Default::default(),
                    },
                )
                .await
        }
    };
    add("google_ads", "111").await.unwrap();
    add("youtube_ads", "111").await.unwrap();
    add("google_ads", "222").await.unwrap();
    add("shopify", "shop-a").await.unwrap();
    add("hubspot", "1").await.unwrap();
    add("hubspot", "1").await.unwrap();
    for (name, account) in [("google_ads", "111"), ("shopify", "shop-b")] {
        let refused = add(name, account).await.unwrap_err().to_string();
        assert!(
            refused.contains("for these rows already") && refused.contains("one per tenant"),
            "{name}: {refused}"
        );
    }
    assert_eq!(connectors.list(Some(&tenant)).await.unwrap().len(), 6);
}

/// GoHighLevel's refresh tokens are single-use: the registry stores each new
/// one, sealed, so that the next sync (another process, perhaps) has it, and
/// the token the connector was added with stops working.
#[tokio::test]
async fn rotated_refresh_tokens_are_stored() {
    let h = Harness::new(platform("gohighlevel")).await;
    let id = registered(&h).await;
    let options = h.options();
    for _ in 0..2 {
        let run = registry(&h)
            .sync(None, &id, "manual", &options)
            .await
            .unwrap();
        assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    }
    h.assert_exact("syncs with rotating refresh tokens").await;
    assert_eq!(
        h.fake.refresh_grants(),
        (2, 0),
        "(grants, with a spent token)"
    );
    // The token the connector was added with is spent.
    let stale = sync(
        &h.store,
        &Connector::new(h.connector.config.clone(), h.connector.credentials.clone()),
        &options,
        &guards(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(stale.contains("refresh token was refused"), "{stale}");
}

/// The fake's GoHighLevel connector registered and a sync of it started
/// (as another process would) and held by the fake: its token was granted,
/// its first data request waits until `h.fake.hold(false)`.
async fn held_sync(
    h: &Harness,
) -> (
    String,
    SyncOptions,
    tokio::task::JoinHandle<Result<gyrus_ingest::connectors::registry::Run, SyncError>>,
) {
    let id = registered(h).await;
    let options = h.options();
    h.fake.hold(true);
    let task = {
        let (registry, id, options) = (registry(h), id.clone(), options.clone());
        tokio::spawn(async move { registry.sync(None, &id, "manual", &options).await })
    };
    while h.fake.refresh_grants().0 == 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    (id, options, task)
}

/// A process killed mid-sync, after the platform rotated the refresh token,
/// has stored the new one: the next sync presents it, not the spent one.
#[tokio::test]
async fn rotated_refresh_tokens_survive_a_killed_sync() {
    let h = Harness::new(platform("gohighlevel")).await;
    let (id, options, task) = held_sync(&h).await;
    // The sync is killed while its first data request waits.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!task.is_finished(), "the held sync finished");
    task.abort();
    let _ = task.await;
    h.fake.hold(false);
    let run = registry(&h)
        .sync(None, &id, "manual", &options)
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    h.assert_exact("a sync after a killed one").await;
    assert_eq!(
        h.fake.refresh_grants(),
        (2, 0),
        "(grants, with a spent token)"
    );
}

/// A sync is exclusive across processes: while one registry (a process)
/// syncs a connector, another on the same store sees it `running` (not
/// interrupted) and is refused a second sync of it.
#[tokio::test]
async fn a_sync_in_another_process_is_seen_running_and_not_run_twice() {
    let h = Harness::new(platform("gohighlevel")).await;
    let (id, options, task) = held_sync(&h).await;
    let other = registry(&h);
    let seen = other.status(None, &id).await.unwrap().last_run.unwrap();
    assert_eq!(seen.status, RunStatus::Running, "{seen:?}");
    let refused = other.sync(None, &id, "manual", &options).await.unwrap_err();
    assert!(matches!(refused, SyncError::Busy(_)), "{refused}");
    assert!(matches!(
        other.remove(None, &id).await.unwrap_err(),
        SyncError::Busy(_)
    ));
    h.fake.hold(false);
    let run = task.await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let last = other.status(None, &id).await.unwrap().last_run.unwrap();
    assert_eq!(
        (last.run_id, last.status),
        (run.run_id, RunStatus::Succeeded)
    );
    // Released at its end: the other process syncs at once.
    let again = other.sync(None, &id, "manual", &options).await.unwrap();
    assert_eq!(again.status, RunStatus::Succeeded, "{:?}", again.error);
}
