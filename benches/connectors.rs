//! Rows per second a connector lands against its platform's fake, at full
//! speed: a full sync into an empty store (HTTP, JSON parsing, canonical
//! rows, validation, one Delta commit per 30-day window), no faults.
//!
//! `cargo bench --workspace --bench connectors`

#[path = "../ingest/tests/fake/mod.rs"]
mod fake;

use std::collections::BTreeMap;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fake::{Fake, FakeConfig};
use gyrus_engine::Store;
use gyrus_ingest::connectors::{
    Connector, ConnectorConfig, Credentials, PlatformId, SyncOptions, sync,
};
use gyrus_ingest::http::HttpPolicy;

fn connector(fake: &Fake, platform: PlatformId, start: chrono::NaiveDate) -> Connector {
    let credentials = fake.credential_map(platform.name());
    Connector::new(
        ConnectorConfig {
            id: format!("bench_{}", platform.name()),
            tenant: "acme".into(),
            platform,
            account: fake.account(platform.name()),
            base_url: Some(fake.url()),
            auth_url: Some(fake.url()),
            start_date: start,
            lookback_days: 30,
            schedule_minutes: 0,
            settings: BTreeMap::new(),
        },
        Credentials(credentials),
    )
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut group = c.benchmark_group("connector full sync");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    for (name, scale) in [("google_ads", 25), ("stripe", 10)] {
        let platform: PlatformId = name.parse().expect("a platform");
        let config = FakeConfig {
            scale,
            ..FakeConfig::default()
        };
        let start = config.start;
        let fake = runtime.block_on(Fake::start(config));
        let connector = connector(&fake, platform, start);
        let options = SyncOptions {
            today: Some(fake.today()),
            full: true,
            http: HttpPolicy {
                requests_per_second: 1e6,
                ..HttpPolicy::default()
            },
        };
        let guards = gyrus_ingest::http::CallGuards::default();
        let rows = fake.expected(platform.name()).len();
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_function(format!("{platform} ({rows} rows)"), |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let dir = tempfile::tempdir().expect("a temporary directory");
                    let store = runtime
                        .block_on(Store::open(dir.path().to_str().expect("a UTF-8 path")))
                        .expect("a store");
                    let started = std::time::Instant::now();
                    let report = runtime
                        .block_on(sync(&store, &connector, &options, &guards))
                        .expect("the sync succeeds");
                    total += started.elapsed();
                    assert_eq!(report.rows, rows, "every row landed");
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
