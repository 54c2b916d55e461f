//! Crash safety: a writer process killed with SIGKILL at random moments loses
//! no acknowledged batch, duplicates none, and never leaves half a batch.
//!
//! The test re-runs its own binary as the writer (the ignored test
//! `crash_writer`, selected by name), so no helper binary is needed.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use gyrus_engine::datafusion::arrow::array::{AsArray, Int64Array};
use gyrus_engine::datafusion::arrow::compute::cast;
use gyrus_engine::datafusion::arrow::datatypes::DataType;
use gyrus_engine::schema::CanonicalTable;
use gyrus_engine::{SessionLimits, WriteRequest};
use rand::RngExt as _;

const KILLS: usize = 60;
const BATCH_ROWS: usize = 120;
const DIR_VAR: &str = "GYRUS_CRASH_DIR";
const START_VAR: &str = "GYRUS_CRASH_START";

/// Batch `i`: BATCH_ROWS rows, all with campaign id `batch-<i>`.
fn batch_rows(i: u64) -> Vec<AdRow> {
    rows(
        "acct",
        &format!("batch-{i:06}"),
        day(2026, 1, 1),
        12,
        BATCH_ROWS / 12,
        3,
    )
}

/// The writer: writes batches from `START_VAR` on, printing each id once its write returned.
#[tokio::test]
#[ignore = "run by crash_test_loses_nothing as a child process"]
async fn crash_writer() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let start: u64 = std::env::var(START_VAR).unwrap().parse().unwrap();
    let store = gyrus_engine::Store::open(&dir).await.unwrap();
    let acme = tenant("acme");
    for i in start.. {
        let request =
            WriteRequest::append(CanonicalTable::AdPerformance, vec![batch(&batch_rows(i))])
                .with_idempotency_key(format!("batch-{i}"));
        store.write(&acme, request).await.unwrap();
        println!("ACK {i}");
    }
}

#[test]
fn crash_test_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rng();
    let mut acked: Vec<u64> = Vec::new();
    for _ in 0..KILLS {
        // Resume after the last acknowledged batch; the one in flight at the kill is sent
        // again with the same idempotency key, so if it had landed it must not land twice.
        let start = acked.last().map_or(0, |last| last + 1);
        let mut child = Command::new(&exe)
            .args([
                "crash::crash_writer",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_VAR, dir.path())
            .env(START_VAR, start.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                // libtest may print `test crash_writer ... ` on the same line as the first ACK.
                .filter_map(|line| {
                    line.split("ACK ")
                        .nth(1)
                        .and_then(|n| n.trim().parse::<u64>().ok())
                })
                .collect::<Vec<u64>>()
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(50..800)));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        acked.extend(reader.join().unwrap());
    }
    assert!(
        acked.len() >= KILLS / 2,
        "the writer made too little progress to test anything: {}",
        acked.len()
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = gyrus_engine::Store::open(dir.path().to_str().unwrap()).await.unwrap();
        let session = store.session(&tenant("acme"), &SessionLimits::default()).await.unwrap();
        let sql = "SELECT campaign_id, count(*) AS n, sum(clicks) AS clicks FROM ad_performance GROUP BY campaign_id ORDER BY campaign_id";
        let batches = session.query(sql).await.unwrap();
        // Each write updated the rollups after its commit, and kills fell
        // between the two as well: whatever the rollups hold, the answer
        // through them is the table's.
        let base = store
            .session(&tenant("acme"), &SessionLimits { rollups: false, ..SessionLimits::default() })
            .await
            .unwrap();
        let from_table = base.query(sql).await.unwrap();
        let text = |batches: &[gyrus_engine::datafusion::arrow::array::RecordBatch]| {
            gyrus_engine::datafusion::arrow::util::pretty::pretty_format_batches(batches)
                .unwrap()
                .to_string()
        };
        assert_eq!(text(&batches), text(&from_table), "rollups and table disagree after kills");
        let mut counts = std::collections::BTreeMap::new();
        for b in &batches {
            let ids = cast(b.column(0), &DataType::Utf8).unwrap();
            let ids = ids.as_string::<i32>();
            let n = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
            for r in 0..b.num_rows() {
                let id: u64 = ids.value(r).trim_start_matches("batch-").parse().unwrap();
                counts.insert(id, n.value(r) as usize);
            }
        }
        let lost: Vec<_> = acked.iter().filter(|i| !counts.contains_key(i)).collect();
        let partial: Vec<_> = counts.iter().filter(|(_, n)| **n % BATCH_ROWS != 0).collect();
        let duplicated: Vec<_> = counts.iter().filter(|(_, n)| **n > BATCH_ROWS).collect();
        eprintln!(
            "crash test: {KILLS} kills, {} batches acknowledged, {} in the table, lost {}, partial {}, duplicated {}",
            acked.len(),
            counts.len(),
            lost.len(),
            partial.len(),
            duplicated.len()
        );
        assert!(lost.is_empty(), "acknowledged batches lost: {lost:?}");
        assert!(partial.is_empty(), "half batches visible: {partial:?}");
        assert!(duplicated.is_empty(), "batches duplicated: {duplicated:?}");
        // Only the batch in flight at the last kill may have landed unacknowledged.
        assert!(counts.len() <= acked.len() + 1, "{} batches landed, {} acknowledged", counts.len(), acked.len());
    });
}
