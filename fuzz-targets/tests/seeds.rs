//! Writes the seed inputs of `fuzz/corpus/` (run once, by hand, then commit;
//! the fuzzers grow the corpora from them):
//!
//! ```text
//! cargo test -p gyrus-fuzz-targets --test seeds -- --ignored
//! ```

use std::path::{Path, PathBuf};

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::sql::{
    Any, CommandGetTables, CommandPreparedStatementQuery, CommandStatementIngest,
    CommandStatementQuery, ProstMessageExt as _, TicketStatementQuery,
};
use base64::Engine as _;
use datafusion::arrow::array::RecordBatch;
use futures::StreamExt as _;
use gyrus_engine::schema::CanonicalTable;
use gyrus_ingest::Format;
use prost::Message as _;

const ROWS: &str = r#"{"platform":"google_ads","account_id":"a1","campaign_id":"c1","campaign_name":"Spring","channel":"search","date":"2026-03-01","impressions":1000,"clicks":40,"spend":"12.50","currency":"USD","conversions":3,"conversion_value":"90.00"}
{"platform":"meta_ads","account_id":"a2","campaign_id":"c2","campaign_name":"Retarget","channel":"social","date":"2026-03-02","impressions":500,"clicks":9,"spend":"4.10","currency":"EUR","conversions":1,"conversion_value":"20.00"}
"#;

fn dir(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(target: &str, name: &str, data: &[u8]) {
    std::fs::write(dir(target).join(format!("seed-{name}")), data).unwrap();
}

fn batches() -> Vec<RecordBatch> {
    gyrus_ingest::read(
        CanonicalTable::AdPerformance,
        Format::JsonLines,
        "seed",
        ROWS.into(),
    )
    .unwrap()
}

fn prefixed(pick: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![pick];
    out.extend_from_slice(body);
    out
}

#[test]
#[ignore = "writes the seed corpora; run by hand"]
fn write_seeds() {
    let sql = [
        "SELECT 1",
        "SELECT platform, sum(spend) AS spend FROM ad_performance GROUP BY 1 ORDER BY 2 DESC",
        "SELECT date_trunc('week', date) AS w, avg(clicks) FROM ad_performance WHERE date >= DATE '2026-01-01' GROUP BY 1 ORDER BY 1 LIMIT 5",
        "SELECT campaign_id, rank() OVER (PARTITION BY platform ORDER BY clicks DESC) FROM ad_performance",
        "WITH t AS (SELECT 1 AS a) SELECT * FROM t UNION ALL SELECT 2",
        "SELECT a.campaign_id FROM ad_performance a JOIN ad_performance b ON a.campaign_id = b.campaign_id",
        "SELECT repeat('x', 10), lpad('a', 5, 'b'), levenshtein('kitten', 'sitting')",
        "SELECT * FROM generate_series(1, 10)",
        "SELECT range(5), array_repeat(1, 3), regexp_replace('abc', 'b', 'x')",
        "SELECT 1 IN (1, 2, 3), CAST('2026-01-01' AS DATE) + INTERVAL '1 day'",
        "EXPLAIN SELECT count(*) FROM ad_performance",
        "INSERT INTO ad_performance VALUES (1)",
        "SELECT * FROM information_schema.tables",
        "SELECT (((1 + 2) * 3) - 4) / NULLIF(0, 0)",
        "SELECT concat('a', 'b'), upper('x'), substr('hello', 2, 3), to_timestamp('2026-01-01T00:00:00Z')",
    ];
    for (i, s) in sql.iter().enumerate() {
        write("sql", &i.to_string(), s.as_bytes());
    }

    let params = [
        "SELECT ? + 1\0[1]",
        "SELECT count(*) FROM ad_performance WHERE date >= ? AND clicks > $2\0[\"2026-01-01\", 3]",
        "SELECT $1\0[null]",
        "SELECT ?, ?\0[true, 1.5]",
        "SELECT campaign_id FROM ad_performance WHERE platform = $1\0[\"google_ads\"]",
    ];
    for (i, s) in params.iter().enumerate() {
        write("params", &i.to_string(), s.as_bytes());
    }

    // Upload: pick 0..4 is ad_performance as CSV, NDJSON, Parquet, Arrow IPC.
    let batches = batches();
    let mut csv = Vec::new();
    {
        let mut writer = datafusion::arrow::csv::Writer::new(&mut csv);
        for b in &batches {
            writer.write(b).unwrap();
        }
    }
    write("upload", "csv", &prefixed(0, &csv));
    write("upload", "ndjson", &prefixed(1, ROWS.as_bytes()));
    let mut parquet = Vec::new();
    {
        let mut writer = datafusion::parquet::arrow::ArrowWriter::try_new(
            &mut parquet,
            batches[0].schema(),
            None,
        )
        .unwrap();
        for b in &batches {
            writer.write(b).unwrap();
        }
        writer.close().unwrap();
    }
    write("upload", "parquet", &prefixed(2, &parquet));
    let mut ipc = Vec::new();
    {
        let mut writer =
            datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut ipc, &batches[0].schema())
                .unwrap();
        for b in &batches {
            writer.write(b).unwrap();
        }
        writer.finish().unwrap();
    }
    write("upload", "ipc", &prefixed(3, &ipc));
    write(
        "upload",
        "orders-ndjson",
        &prefixed(9, br#"{"order_id":"o1","customer_id":"u1","ordered_at":"2026-03-01T10:00:00Z","revenue":"10.00","currency":"USD","source":"shopify"}"#),
    );

    // Flight: the FlightData messages of a DoPut, each length-prefixed.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let messages: Vec<_> = runtime.block_on(
        FlightDataEncoderBuilder::new()
            .build(futures::stream::iter(batches.clone().into_iter().map(Ok)))
            .collect::<Vec<_>>(),
    );
    let mut stream = Vec::new();
    for message in messages {
        let bytes = message.unwrap().encode_to_vec();
        stream.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        stream.extend_from_slice(&bytes);
    }
    write("flight_stream", "ad_performance", &stream);

    let commands: Vec<(&str, Any)> = vec![
        (
            "ingest",
            CommandStatementIngest {
                table: "ad_performance".into(),
                options: [("gyrus.idempotency_key".to_string(), "k1".to_string())].into(),
                ..Default::default()
            }
            .as_any(),
        ),
        (
            "query",
            CommandStatementQuery {
                query: "SELECT 1".into(),
                transaction_id: None,
            }
            .as_any(),
        ),
        (
            "prepared",
            CommandPreparedStatementQuery {
                prepared_statement_handle: vec![7; 16].into(),
            }
            .as_any(),
        ),
        (
            "ticket",
            TicketStatementQuery {
                statement_handle: vec![9; 16].into(),
            }
            .as_any(),
        ),
        (
            "tables",
            CommandGetTables {
                catalog: Some("gyrus".into()),
                include_schema: true,
                ..Default::default()
            }
            .as_any(),
        ),
    ];
    for (name, any) in commands {
        write("flight_command", name, &any.encode_to_vec());
    }

    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    write(
        "cursor",
        "id",
        format!("{}\0id", b64(r#"["id","k2","k2"]"#)).as_bytes(),
    );
    write(
        "cursor",
        "desc",
        format!("{}\0-n", b64(r#"["-n",1,"k4"]"#)).as_bytes(),
    );
    write("cursor", "garbage", b"%%%\0id");

    for (i, platform) in gyrus_ingest::connectors::PlatformId::all().enumerate() {
        write(
            "connector_answer",
            platform.name(),
            &prefixed(i as u8, b"{}"),
        );
    }
    write(
        "connector_answer",
        "google_ads-page",
        &prefixed(0, br#"[{"results":[{"campaign":{"id":"1","name":"C","advertisingChannelType":"SEARCH"},"segments":{"date":"2026-03-01"},"metrics":{"impressions":"10","clicks":"1","costMicros":"1000000","conversions":1.0,"conversionsValue":2.5}}]}]"#),
    );
    write(
        "connector_answer",
        "meta-page",
        &prefixed(1, br#"{"data":[{"campaign_id":"1","campaign_name":"C","date_start":"2026-03-01","impressions":"10","clicks":"1","spend":"1.00","account_currency":"USD","actions":[{"action_type":"purchase","value":"1"}]}],"paging":{}}"#),
    );

    let settings = [
        (
            "full",
            "data = \"/srv/gyrus\"\nlog_format = \"json\"\nlog_level = \"info\"\n[query]\nmemory_limit_mb = 512\ntimeout_secs = 30\nmax_sql_kb = 64\nmax_sql_depth = 200\nmax_in_list = 1000\nmemory_budget_mb = 4096\n",
        ),
        ("data", "data = \"s3://bucket/prefix\"\n"),
        (
            "huge",
            "[query]\ntimeout_secs = 9223372036854775807\nmemory_limit_mb = 9223372036854775807\n",
        ),
        ("unknown", "dta = 1\n"),
    ];
    for (name, text) in settings {
        write("settings", name, text.as_bytes());
    }
}
