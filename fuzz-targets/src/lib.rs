//! What each fuzz target does with one input: every parser of outside bytes,
//! reached the way a request reaches it.
//!
//! The coverage-guided fuzzers in `fuzz/` (cargo-fuzz, nightly, sanitizers:
//! `scripts/fuzz.sh`) call these; `tests/replay.rs` runs every committed
//! corpus and crash input through them on the stable toolchain, so a crash
//! once found stays fixed. An input may be refused with an error; it must
//! never panic, overflow a stack or hang.
//!
//! ```
//! // Any bytes at all: refused or answered, never a panic.
//! gyrus_fuzz_targets::run("cursor", b"not a cursor");
//! gyrus_fuzz_targets::run("upload", &[0, b'{', b'}']);
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arrow_flight::FlightData;
use arrow_flight::sql::{Any, Command};
use bytes::Bytes;
use datafusion::arrow::datatypes::Schema;
use datafusion::scalar::ScalarValue;
use gyrus_api::pagination::{ListQuery, ListSpec};
use gyrus_engine::schema::CanonicalTable;
use gyrus_engine::shape::SqlBounds;
use gyrus_engine::{Role, SessionLimits, Store, TenantId, TenantSession, WriteRequest};
use gyrus_flight::auth::Identity;
use gyrus_flight::ingest::{IngestTarget, read_batches};
use gyrus_flight::prepared::PreparedStatements;
use gyrus_ingest::Format;
use gyrus_ingest::connectors::{
    Connector, ConnectorConfig, Credentials, PlatformId, SyncOptions, sync,
};
use gyrus_ingest::http::HttpPolicy;
use prost::Message as _;

/// What a target does with one input.
pub type Target = fn(&[u8]);

/// The targets by name (`fuzz/fuzz_targets/<name>.rs`, `fuzz/corpus/<name>/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("sql", sql),
    ("params", params),
    ("upload", upload),
    ("flight_stream", flight_stream),
    ("flight_command", flight_command),
    ("cursor", cursor),
    ("connector_answer", connector_answer),
    ("settings", settings),
];

/// Runs the target called `name` on `data`.
///
/// # Panics
/// On an unknown name (a programming error, not an input).
pub fn run(name: &str, data: &[u8]) {
    let target = TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no fuzz target {name}"));
    (target.1)(data)
}

/// Small limits, so that an input the bounds let through still finishes fast.
fn limits() -> SessionLimits {
    SessionLimits {
        memory_bytes: 64 << 20,
        timeout: Duration::from_secs(2),
        target_partitions: 1,
        sql: SqlBounds::default(),
        ..SessionLimits::default()
    }
}

/// The runtime the targets drive async code on (the engine runs queries on
/// its own query runtime, as in the server).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_stack_size(16 << 20)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// A few `ad_performance` rows, as a client would upload them.
const ROWS: &str = r#"{"platform":"google_ads","account_id":"a1","campaign_id":"c1","campaign_name":"Spring","channel":"search","date":"2026-03-01","impressions":1000,"clicks":40,"spend":"12.50","currency":"USD","conversions":3,"conversion_value":"90.00"}
{"platform":"meta_ads","account_id":"a2","campaign_id":"c2","campaign_name":"Retarget","channel":"social","date":"2026-03-02","impressions":500,"clicks":9,"spend":"4.10","currency":"EUR","conversions":1,"conversion_value":"20.00"}
"#;

struct World {
    _dir: tempfile::TempDir,
    session: TenantSession,
}

/// An empty store in a temporary folder, removed when the folder is
/// dropped.
async fn temporary_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let store = Store::open(&dir.path().display().to_string())
        .await
        .expect("a store");
    (dir, store)
}

/// A store with one tenant holding a few rows, and a session over it.
fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        runtime().block_on(async {
            let (dir, store) = temporary_store().await;
            let tenant = TenantId::new("fuzz").expect("a tenant id");
            let table = CanonicalTable::AdPerformance;
            let batches = gyrus_ingest::read(table, Format::JsonLines, "seed", ROWS.into())
                .expect("seed rows");
            store
                .write(&tenant, WriteRequest::append(table, batches))
                .await
                .expect("seed write");
            let session = store.session(&tenant, &limits()).await.expect("a session");
            World { _dir: dir, session }
        })
    })
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// Client SQL as `POST /api/v1/sql` and Flight SQL take it: shape bounds,
/// the read-only check, planning, execution under the session's limits.
pub fn sql(data: &[u8]) {
    let world = world();
    let sql = text(data);
    let _ = runtime().block_on(world.session.query(&sql));
}

/// SQL with `?`/`$n` placeholders and JSON parameter values (`sql\0[values]`),
/// bound as the HTTP API binds them.
pub fn params(data: &[u8]) {
    let (sql, values) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b"[]"[..]),
    };
    let Ok(serde_json::Value::Array(values)) = serde_json::from_slice(values) else {
        return;
    };
    let world = world();
    let sql = text(sql);
    let _ = runtime().block_on(async {
        let numbered = gyrus_engine::params::number_placeholders(&sql)?;
        let values: Vec<ScalarValue> = values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| gyrus_api::routes::sql::parameter(v, i + 1).ok())
            .collect();
        let binder = gyrus_engine::params::binder(values);
        let session = &world.session;
        session
            .stream(&numbered, session.deadline(), Some(binder))
            .await?
            .collect()
            .await
    });
}

/// An upload body: the first byte picks the table and the format (CSV,
/// NDJSON, Parquet, Arrow IPC stream), the rest is the body. Whatever
/// decodes is then checked against the table as a write would check it.
pub fn upload(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let formats = [
        Format::Csv,
        Format::JsonLines,
        Format::Parquet,
        Format::ArrowStream,
    ];
    let table = CanonicalTable::ALL[(pick as usize >> 2) % CanonicalTable::ALL.len()];
    let format = formats[pick as usize % formats.len()];
    let Ok(batches) = gyrus_ingest::read(table, format, "fuzz", Bytes::copy_from_slice(body))
    else {
        return;
    };
    for batch in &batches {
        if let Ok(conformed) = gyrus_engine::validate::conform(table, batch, 0) {
            let _ = gyrus_engine::validate::check_rows(table, &conformed, 0);
        }
    }
}

/// Splits `data` into length-prefixed (u16, little-endian) pieces.
fn pieces(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 2 {
        let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        let end = (2 + len).min(rest.len());
        out.push(&rest[2..end]);
        rest = &rest[end..];
    }
    out
}

/// A Flight DoPut stream: FlightData messages (each a length-prefixed
/// protobuf), decoded to batches under an ingest byte limit, then checked
/// against `ad_performance` and, as bound parameters, as Flight binds them.
pub fn flight_stream(data: &[u8]) {
    let messages: Vec<Result<FlightData, tonic::Status>> = pieces(data)
        .into_iter()
        .filter_map(|piece| FlightData::decode(piece).ok())
        .map(Ok)
        .collect();
    let stream = futures::stream::iter(messages);
    let Ok(batches) = runtime().block_on(read_batches(stream, 1 << 20)) else {
        return;
    };
    let table = CanonicalTable::AdPerformance;
    let world = world();
    for batch in &batches {
        let _ = gyrus_engine::validate::conform(table, batch, 0);
        // As parameters of `SELECT $1, ..`: one row at a time.
        let placeholders = (1..=batch.num_columns().min(16))
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        if placeholders.is_empty() || batch.num_rows() == 0 {
            continue;
        }
        // The first row, bound as Flight SQL binds a prepared statement's rows.
        let row = batch
            .project(&(0..batch.num_columns().min(16)).collect::<Vec<_>>())
            .map(|b| b.slice(0, 1));
        let Ok(row) = row else { continue };
        let bind: gyrus_engine::Refine =
            Box::new(move |plan, _| gyrus_flight::prepared::bind_rows(plan, &row));
        let session = &world.session;
        let _ = runtime().block_on(async {
            session
                .stream(
                    &format!("SELECT {placeholders}"),
                    session.deadline(),
                    Some(bind),
                )
                .await?
                .collect()
                .await
        });
    }
}

fn identity(key_id: &str) -> Identity {
    Identity {
        key_id: key_id.into(),
        tenant: TenantId::new("fuzz").expect("a tenant id"),
        role: Role::Writer,
    }
}

/// A Flight SQL command or ticket (`Any` as a client sends it in a
/// descriptor or ticket): ingest commands are checked as DoPut checks them,
/// statement and prepared-statement handles are looked up as another key's
/// and as their owner's. A forged handle must never reach another key's
/// statement.
pub fn flight_command(data: &[u8]) {
    let Ok(any) = Any::decode(data) else {
        return;
    };
    let Ok(command) = Command::try_from(any) else {
        return;
    };
    let owner = identity("owner");
    let other = identity("other");
    let prepared = PreparedStatements::new(4);
    let schema = Arc::new(Schema::empty());
    let handle = prepared
        .insert(&owner, "SELECT 1".into(), schema)
        .expect("room for one statement");
    let headers = tonic::metadata::MetadataMap::new();
    let forged = |h: &[u8]| {
        assert!(
            h == handle.as_slice() || prepared.get(&owner, h).is_err(),
            "a forged handle resolved"
        );
        assert!(
            prepared.get(&other, h).is_err(),
            "another key's handle resolved"
        );
    };
    match command {
        Command::CommandStatementIngest(cmd) => {
            let _ = IngestTarget::from_command(&cmd, &headers);
        }
        Command::CommandPreparedStatementQuery(cmd) => forged(&cmd.prepared_statement_handle),
        Command::CommandPreparedStatementUpdate(cmd) => forged(&cmd.prepared_statement_handle),
        Command::ActionClosePreparedStatementRequest(cmd) => {
            let _ = prepared.close(&other, &cmd.prepared_statement_handle);
            assert!(
                prepared.get(&owner, &handle).is_ok(),
                "another key closed it"
            );
        }
        Command::TicketStatementQuery(ticket) => forged(&ticket.statement_handle),
        other => {
            // Every other command round-trips through its `Any`.
            let _ = other.into_any().encode_to_vec();
        }
    }
}

/// A list cursor and sort as a client sends them back (`cursor\0sort`).
pub fn cursor(data: &[u8]) {
    #[derive(serde::Serialize)]
    struct Item {
        id: String,
        n: i64,
    }
    const SPEC: ListSpec = ListSpec {
        id: "id",
        sortable: &["id", "n"],
        filterable: &["n"],
        default_sort: "id",
    };
    let text = text(data);
    let (cursor, sort) = text.split_once('\0').unwrap_or((&text, ""));
    let query = ListQuery {
        limit: 3,
        cursor: Some(cursor.to_string()),
        sort: (!sort.is_empty()).then(|| sort.to_string()),
        filters: Vec::new(),
    };
    let items = (0..7)
        .map(|i| Item {
            id: format!("k{i}"),
            n: i % 3,
        })
        .collect::<Vec<_>>();
    let _ = query.page(items, &SPEC);
}

/// A platform's answer: the first byte picks the platform and the HTTP
/// status, the rest is the body every data call gets (token calls get a
/// token). The connector syncs one day from a local server answering that,
/// into a store of its own: a sync keeps state (how far it got, tables it
/// wrote), and an input must do the same whatever ran before it, or a crash
/// found by fuzzing could not be replayed alone; a shared store would also
/// grow a Delta log with every input and slow each one down.
pub fn connector_answer(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let count = PlatformId::all().len();
    let Some(platform) = PlatformId::all().nth(pick as usize % count) else {
        return;
    };
    let statuses = [200, 200, 200, 200, 400, 401, 403, 404];
    let status = statuses[(pick as usize / count) % statuses.len()];
    let body = body.to_vec();
    runtime().block_on(async {
        let (_dir, store) = temporary_store().await;
        let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:0").await else {
            return;
        };
        let Ok(address) = listener.local_addr() else {
            return;
        };
        let server = tokio::spawn(answer_all(listener, status, body));
        let base = format!("http://{address}");
        let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap_or_default();
        let config = ConnectorConfig {
            id: "fuzz".into(),
            tenant: "fuzz".into(),
            platform,
            account: "1234567890".into(),
            base_url: Some(base.clone()),
            auth_url: Some(base),
            start_date: day,
            lookback_days: 1,
            schedule_minutes: 0,
            settings: BTreeMap::new(),
        };
        let credentials = Credentials(
            platform
                .credential_fields()
                .iter()
                .map(|f| (f.to_string(), format!("fuzz-{f}")))
                .collect(),
        );
        let options = SyncOptions {
            today: Some(day),
            full: true,
            http: HttpPolicy {
                timeout: Duration::from_secs(2),
                attempts: 1,
                backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(1),
                max_wait: Duration::from_millis(1),
                requests_per_second: 1000.0,
                breaker_failures: u32::MAX,
                breaker_cooldown: Duration::from_millis(1),
            },
        };
        let connector = Connector::new(config, credentials);
        let guards = gyrus_ingest::http::CallGuards::default();
        let synced = sync(&store, &connector, &options, &guards);
        let _ = tokio::time::timeout(Duration::from_secs(10), synced).await;
        server.abort();
    });
}

/// `gyrus.toml` as the binary reads it: parsed, then resolved into query
/// limits (a value too large for memory or time must be an error, never an
/// overflow). The process memory budget is left alone: it is set once per
/// process, and the replay tests share theirs.
pub fn settings(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut file) = gyrus::settings::FileSettings::parse(text) else {
        return;
    };
    file.query.memory_budget_mb = None;
    let global = gyrus::cli::GlobalArgs::default();
    let settings = gyrus::settings::Settings::from_file(&global, file);
    if let Ok(limits) = settings.limits(&gyrus::cli::QueryLimitArgs::default()) {
        assert!(limits.memory_bytes > 0 && !limits.timeout.is_zero());
    }
}

/// Answers every request on `listener`: token calls with a token, the rest
/// with `status` and `body`.
async fn answer_all(listener: tokio::net::TcpListener, status: u16, body: Vec<u8>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    const TOKEN: &[u8] =
        br#"{"access_token":"fuzz-token","expires_in":3600,"token_type":"Bearer"}"#;
    while let Ok((mut socket, _)) = listener.accept().await {
        let body = body.clone();
        tokio::spawn(async move {
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 1 << 16 {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let first = head.split(|b| *b == b'\n').next().unwrap_or_default();
            let is_token = first.windows(5).any(|w| w == b"token");
            let (status, body) = if is_token {
                (200, TOKEN.to_vec())
            } else {
                (status, body)
            };
            let reply = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = socket.write_all(reply.as_bytes()).await;
            let _ = socket.write_all(&body).await;
            let _ = socket.shutdown().await;
        });
    }
}
