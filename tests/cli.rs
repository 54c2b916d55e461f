//! End-to-end tests of the `gyrus` binary: every command, its output and its exit codes.

#[path = "../ingest/tests/fake/mod.rs"]
mod fake;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use gyrus_engine::datafusion::arrow::array::{
    Date32Array, Decimal128Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use gyrus_engine::datafusion::parquet::arrow::ArrowWriter;
use gyrus_engine::schema::CanonicalTable;

fn command(data: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gyrus"));
    command
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("GYRUS_DATA")
        .env_remove("GYRUS_SECRET_KEY");
    command
}

fn gyrus(data: &Path, args: &[&str]) -> Output {
    command(data, args).output().expect("gyrus runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        stderr(&out),
        stdout(&out)
    );
    assert!(!stderr(&out).contains("panicked"));
    stdout(&out)
}

fn fails(out: Output, code: i32, needle: &str) -> String {
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {err}",
        stdout(&out)
    );
    assert!(err.contains(needle), "`{needle}` not in: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// `gyrus ingest` of one file into acme's ad_performance.
fn ingest(data: &Path, file: &str) -> Output {
    gyrus(
        data,
        &[
            "ingest",
            "--tenant",
            "acme",
            "--table",
            "ad_performance",
            file,
        ],
    )
}

const HEADER: &str = "platform,account_id,campaign_id,campaign_name,ad_group_id,ad_id,channel,date,impressions,clicks,spend,currency,conversions,conversion_value";

fn csv_rows(account: &str, days: std::ops::RangeInclusive<u32>, clicks: i64) -> String {
    let mut text = format!("{HEADER}\n");
    for d in days {
        text.push_str(&format!(
            "google_ads,{account},c1,Brand,g1,ad1,search,2026-01-{d:02},100,{clicks},12.50,USD,1.5,40.00\n"
        ));
    }
    text
}

#[test]
fn demo_loads_three_tenants_and_prints_a_working_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(gyrus(
        dir.path(),
        &["demo", "--no-serve", "--scale", "small"],
    ));
    for tenant in ["acme", "globex", "initech"] {
        assert!(out.contains(&format!("{tenant}: ")), "{out}");
    }
    let key = out
        .lines()
        .rev()
        .find(|l| l.starts_with("gyr_"))
        .expect("a key")
        .to_string();
    assert!(out.contains("gyrus sql --tenant acme"), "{out}");
    let keys = ok(gyrus(dir.path(), &["keys", "list"]));
    let id = key.trim_start_matches("gyr_").split('_').next().unwrap();
    assert!(
        keys.contains(id) && keys.contains("admin") && keys.contains("acme"),
        "{keys}"
    );
    // The ground truth sits beside the data.
    let truth = std::fs::read_to_string(dir.path().join("tenants/acme/ground_truth.json")).unwrap();
    assert!(truth.contains("\"anomalies\"") && truth.contains("\"bgnbd\""));
    // Running it again loads nothing twice.
    let again = ok(gyrus(
        dir.path(),
        &["demo", "--no-serve", "--tenants", "acme"],
    ));
    assert!(again.contains("already loaded"), "{again}");
    let count = ok(gyrus(
        dir.path(),
        &[
            "sql",
            "--tenant",
            "acme",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM orders",
        ],
    ));
    let first_count = count.lines().nth(1).unwrap().parse::<u64>().unwrap();
    assert!(first_count > 500, "{count}");
}

#[test]
fn sql_prints_table_csv_and_json_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ads.csv");
    std::fs::write(&file, csv_rows("a1", 1..=3, 7)).unwrap();
    ok(gyrus(
        dir.path(),
        &[
            "ingest",
            "--tenant",
            "acme",
            "--table",
            "ad_performance",
            file.to_str().unwrap(),
        ],
    ));
    let sql = "SELECT account_id, sum(clicks) AS clicks FROM ad_performance GROUP BY account_id";
    let table = ok(gyrus(dir.path(), &["sql", "--tenant", "acme", sql]));
    assert!(
        table.contains("| a1 ") && table.contains("21") && table.contains("1 row"),
        "{table}"
    );
    let csv = ok(gyrus(
        dir.path(),
        &["sql", "--tenant", "acme", "--format", "csv", sql],
    ));
    assert_eq!(csv.trim(), "account_id,clicks\na1,21");
    let json = ok(gyrus(
        dir.path(),
        &["sql", "--tenant", "acme", "--format", "json", sql],
    ));
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed[0]["clicks"], 21);

    fails(
        gyrus(
            dir.path(),
            &["sql", "--tenant", "acme", "DELETE FROM ad_performance"],
        ),
        1,
        "read-only",
    );
    fails(
        gyrus(dir.path(), &["sql", "--tenant", "acme", "SELEC 1"]),
        1,
        "error",
    );
    fails(
        gyrus(dir.path(), &["sql", "--tenant", "../globex", "SELECT 1"]),
        1,
        "invalid tenant id",
    );
    fails(
        gyrus(
            dir.path(),
            &["sql", "--tenant", "acme", "SELECT * FROM nope"],
        ),
        1,
        "nope",
    );
    fails(gyrus(dir.path(), &["sql", "SELECT 1"]), 2, "--tenant");

    // Every process's queries are stored: a later `gyrus sql` reads the
    // earlier ones in `system.queries`, acme's only.
    let logged = ok(tenant_csv(
        dir.path(),
        "acme",
        &format!(
            "SELECT count(*) FILTER (WHERE sql = '{sql}' AND status = 'ok' AND surface = 'cli') AS ok, \
             count(*) FILTER (WHERE sql = 'SELECT * FROM nope' AND status = 'error') AS failed \
             FROM system.queries"
        ),
    ));
    assert_eq!(logged.trim(), "ok,failed\n3,1");
    let other = ok(tenant_csv(
        dir.path(),
        "globex",
        "SELECT count(*) AS n FROM system.queries",
    ));
    assert_eq!(other.trim(), "n\n1", "globex's own query only");
}

fn parquet_file(path: &Path) {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    let date = (chrono::NaiveDate::from_ymd_opt(2026, 2, 1).unwrap() - epoch).num_days() as i32;
    let text = |v: &str| Arc::new(StringArray::from(vec![v, v])) as _;
    let money = || {
        Arc::new(
            Decimal128Array::from(vec![1_000_000, 2_000_000])
                .with_precision_and_scale(18, 6)
                .unwrap(),
        ) as _
    };
    let batch = RecordBatch::try_new(
        CanonicalTable::AdPerformance.schema(),
        vec![
            text("meta_ads"),
            text("m1"),
            text("mc"),
            text("Meta"),
            Arc::new(StringArray::from(vec![Some("g"), Some("g")])),
            Arc::new(StringArray::from(vec![Some("x"), Some("y")])),
            text("social"),
            Arc::new(Date32Array::from(vec![date, date])),
            Arc::new(Int64Array::from(vec![10, 20])),
            Arc::new(Int64Array::from(vec![1, 2])),
            money(),
            text("EUR"),
            Arc::new(Float64Array::from(vec![0.0, 1.0])),
            money(),
            Arc::new(Int64Array::from(vec![None, None])),
        ],
    )
    .unwrap();
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

#[test]
fn ingest_reads_three_formats_replays_nothing_and_replaces_slices() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let csv = d.join("jan.csv");
    std::fs::write(&csv, csv_rows("a1", 1..=31, 5)).unwrap();
    let jsonl = d.join("more.jsonl");
    std::fs::write(
        &jsonl,
        r#"{"platform":"tiktok_ads","account_id":"t1","campaign_id":"tc","campaign_name":"T","channel":"video","date":"2026-01-05","impressions":5,"clicks":1,"spend":"1.25","currency":"USD","conversions":0,"conversion_value":"0","video_views":3}"#,
    )
    .unwrap();
    let parquet = d.join("meta.parquet");
    parquet_file(&parquet);
    let all_three = [
        "ingest",
        "--tenant",
        "acme",
        "--table",
        "ad_performance",
        csv.to_str().unwrap(),
        jsonl.to_str().unwrap(),
        parquet.to_str().unwrap(),
    ];
    let wrote = ok(gyrus(d, &all_three));
    assert!(wrote.contains("wrote 34 rows"), "{wrote}");
    let replay = ok(gyrus(d, &all_three));
    assert!(replay.contains("already ingested"), "{replay}");
    // A key of the caller's: once per content, as over HTTP and Flight SQL
    // (the one rule is the engine's).
    let keyed = |file: &Path| {
        gyrus(
            d,
            &[
                "ingest",
                "--tenant",
                "globex",
                "--table",
                "ad_performance",
                "--idempotency-key",
                "feb-load",
                file.to_str().unwrap(),
            ],
        )
    };
    let feb = d.join("feb.csv");
    std::fs::write(
        &feb,
        csv_rows("a9", 1..=3, 5).replace("2026-01-", "2026-02-"),
    )
    .unwrap();
    assert!(ok(keyed(&feb)).contains("wrote 3 rows"));
    assert!(ok(keyed(&feb)).contains("already ingested"));
    let other = d.join("feb-other.csv");
    std::fs::write(
        &other,
        csv_rows("a9", 1..=2, 7).replace("2026-01-", "2026-02-"),
    )
    .unwrap();
    fails(keyed(&other), 1, "was first used for a different request");
    let kept = ok(gyrus(
        d,
        &[
            "sql",
            "--tenant",
            "globex",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM ad_performance WHERE account_id = 'a9'",
        ],
    ));
    assert_eq!(kept.lines().nth(1), Some("3"), "{kept}");
    // Restate the second half of January for a1 only.
    let restated = d.join("restated.csv");
    std::fs::write(&restated, csv_rows("a1", 16..=31, 50)).unwrap();
    ok(gyrus(
        d,
        &[
            "ingest",
            "--tenant",
            "acme",
            "--table",
            "ad_performance",
            "--replace-from",
            "2026-01-16",
            "--replace-to",
            "2026-01-31",
            "--match",
            "platform=google_ads",
            "--match",
            "account_id=a1",
            restated.to_str().unwrap(),
        ],
    ));
    let sums = ok(gyrus(
        d,
        &[
            "sql",
            "--tenant",
            "acme",
            "--format",
            "csv",
            "SELECT platform, sum(clicks) AS c, count(*) AS n FROM ad_performance GROUP BY platform ORDER BY platform",
        ],
    ));
    assert_eq!(
        sums.trim(),
        "platform,c,n\ngoogle_ads,875,31\nmeta_ads,3,2\ntiktok_ads,1,1",
        "{sums}"
    );

    let tables = ok(gyrus(d, &["tables", "--tenant", "acme"]));
    let line = tables
        .lines()
        .find(|l| l.starts_with("ad_performance"))
        .unwrap();
    assert!(line.split_whitespace().nth(1) == Some("34"), "{tables}");
}

#[test]
fn bad_files_are_refused_with_the_row_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bad = d.join("bad.csv");
    let mut text = csv_rows("a1", 1..=3, 5);
    text.push_str("google_ads,a1,c1,Brand,g1,ad1,search,2026-01-09,100,-3,12.50,USD,1.5,40.00\n");
    std::fs::write(&bad, text).unwrap();
    fails(
        ingest(d, bad.to_str().unwrap()),
        65,
        "ad_performance.clicks: value is negative in 1 row; first: row 4 (-3)",
    );
    let unparsable = d.join("unparsable.csv");
    std::fs::write(
        &unparsable,
        format!("{HEADER}\ngoogle_ads,a1,c1,Brand,g1,ad1,search,yesterday,1,1,1,USD,1,1\n"),
    )
    .unwrap();
    fails(
        ingest(d, unparsable.to_str().unwrap()),
        65,
        "unparsable.csv",
    );
    fails(
        gyrus(
            d,
            &[
                "ingest",
                "--tenant",
                "acme",
                "--table",
                "ads",
                bad.to_str().unwrap(),
            ],
        ),
        1,
        "the canonical tables are",
    );
    fails(ingest(d, "missing.csv"), 65, "cannot open");
    let tables = ok(gyrus(d, &["tables", "--tenant", "acme"]));
    let line = tables
        .lines()
        .find(|l| l.starts_with("ad_performance"))
        .unwrap();
    assert!(
        line.ends_with('-'),
        "a failed ingest left a table behind: {tables}"
    );
}

#[test]
fn keys_are_created_listed_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let created = ok(gyrus(
        d,
        &["keys", "create", "--tenant", "acme", "--role", "reader"],
    ));
    let secret = created.lines().last().unwrap();
    assert!(secret.starts_with("gyr_") && secret.len() > 70, "{created}");
    let id = secret.trim_start_matches("gyr_").split('_').next().unwrap();
    let listed = ok(gyrus(d, &["keys", "list"]));
    assert!(
        listed.contains(id)
            && listed.contains("active")
            && !listed.contains(secret.rsplit('_').next().unwrap()),
        "{listed}"
    );
    ok(gyrus(d, &["keys", "revoke", id]));
    assert!(ok(gyrus(d, &["keys", "list"])).contains("revoked"));
    fails(
        gyrus(d, &["keys", "revoke", "000000000000"]),
        1,
        "not found",
    );
    fails(
        gyrus(
            d,
            &["keys", "create", "--tenant", "acme", "--role", "owner"],
        ),
        1,
        "invalid role `owner`",
    );
}

#[test]
fn optimize_compacts_and_vacuum_deletes_unreferenced_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for day in 1..=4 {
        let file = d.join(format!("day{day}.csv"));
        std::fs::write(&file, csv_rows("a1", day..=day, 5)).unwrap();
        ok(ingest(d, file.to_str().unwrap()));
    }
    let optimized = ok(gyrus(d, &["optimize", "--tenant", "acme"]));
    assert!(
        optimized.contains("acme.ad_performance: 4 files compacted into 1"),
        "{optimized}"
    );
    let vacuumed = ok(gyrus(
        d,
        &["vacuum", "--tenant", "acme", "--retention-hours", "0"],
    ));
    assert!(
        vacuumed.contains("acme.ad_performance: 4 files deleted"),
        "{vacuumed}"
    );
    let csv = ok(gyrus(
        d,
        &[
            "sql",
            "--tenant",
            "acme",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM ad_performance",
        ],
    ));
    assert_eq!(csv.trim(), "n\n4");

    // The system tables grow by one small commit per event (here, a key
    // made); the whole deployment's optimize and vacuum compact them too,
    // and what they hold stays.
    let mut ids = Vec::new();
    for role in ["reader", "writer", "admin"] {
        let created = ok(gyrus(
            d,
            &["keys", "create", "--tenant", "acme", "--role", role],
        ));
        let secret = created.lines().last().unwrap().to_string();
        ids.push(
            secret
                .trim_start_matches("gyr_")
                .split('_')
                .next()
                .unwrap()
                .to_string(),
        );
    }
    let optimized = ok(gyrus(d, &["optimize"]));
    assert!(
        optimized.contains("_system.api_keys: 3 files compacted into 1"),
        "{optimized}"
    );
    let vacuumed = ok(gyrus(d, &["vacuum", "--retention-hours", "0"]));
    assert!(
        vacuumed.contains("_system.api_keys: 3 files deleted"),
        "{vacuumed}"
    );
    let listed = ok(gyrus(d, &["keys", "list"]));
    for id in &ids {
        assert!(listed.contains(id.as_str()), "{listed}");
    }
    let keys = ok(gyrus(
        d,
        &[
            "sql",
            "--tenant",
            "acme",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM system.api_keys",
        ],
    ));
    assert_eq!(keys.trim(), "n\n3");
}

#[test]
fn settings_come_from_env_and_gyrus_toml() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("elsewhere");
    std::fs::write(
        dir.path().join("gyrus.toml"),
        format!(
            "data = {:?}\n[query]\ntimeout_secs = 30\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    let run = |envs: &[(&str, &str)], args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gyrus"));
        cmd.current_dir(dir.path())
            .args(args)
            .env_remove("GYRUS_DATA");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    ok(run(
        &[],
        &["keys", "create", "--tenant", "acme", "--role", "admin"],
    ));
    assert!(
        data.join("_system/api_keys").exists(),
        "gyrus.toml's data root was not used"
    );
    let other = dir.path().join("from-env");
    ok(run(
        &[("GYRUS_DATA", other.to_str().unwrap())],
        &["keys", "create", "--tenant", "acme", "--role", "admin"],
    ));
    assert!(
        other.join("_system/api_keys").exists(),
        "GYRUS_DATA was not used"
    );
    std::fs::write(dir.path().join("gyrus.toml"), "dta = 1\n").unwrap();
    fails(run(&[], &["keys", "list"]), 2, "invalid settings file");
    // Values too large to mean anything are refused by name, not wrapped.
    for (setting, needle) in [
        (
            "memory_limit_mb",
            "MB is more memory than this machine can address",
        ),
        ("timeout_secs", "over the longest query time limit"),
    ] {
        std::fs::write(
            dir.path().join("gyrus.toml"),
            format!("[query]\n{setting} = 9223372036854775807\n"),
        )
        .unwrap();
        let err = fails(
            run(&[], &["sql", "--tenant", "acme", "SELECT 1"]),
            1,
            needle,
        );
        assert!(err.contains(setting), "{err}");
    }
    // JSON logs carry the query span with its row count.
    std::fs::remove_file(dir.path().join("gyrus.toml")).unwrap();
    let out = run(
        &[("GYRUS_DATA", other.to_str().unwrap())],
        &[
            "--log-format",
            "json",
            "--log-level",
            "info",
            "sql",
            "--tenant",
            "acme",
            "SELECT 1",
        ],
    );
    let logs = stderr(&out);
    assert!(
        logs.lines()
            .any(|l| l.contains("\"query finished\"") && l.contains("\"rows\":1")),
        "{logs}"
    );
}

/// `gyrus sql` over acme's tables, as CSV.
fn csv_query(data: &Path, sql: &str) -> Output {
    tenant_csv(data, "acme", sql)
}

/// `gyrus sql --tenant <tenant> --format csv <sql>`.
fn tenant_csv(data: &Path, tenant: &str, sql: &str) -> Output {
    gyrus(data, &["sql", "--tenant", tenant, "--format", "csv", sql])
}

#[test]
fn train_writes_forecasts_records_versions_and_refuses_bad_families() {
    let dir = tempfile::tempdir().unwrap();
    ok(gyrus(
        dir.path(),
        &["demo", "--no-serve", "--no-train", "--tenants", "acme"],
    ));
    let none = ok(csv_query(dir.path(), "SELECT count(*) AS n FROM forecasts"));
    assert_eq!(none.lines().nth(1), Some("0"), "--no-train trained: {none}");
    let out = ok(gyrus(
        dir.path(),
        &["train", "--tenant", "acme", "--horizon", "14"],
    ));
    assert!(out.contains("acme") && out.contains("good"), "{out}");
    assert!(out.contains("series/s"), "{out}");
    let days = ok(csv_query(
        dir.path(),
        "SELECT count(DISTINCT date) AS d, min(model_version) AS v FROM forecasts",
    ));
    assert_eq!(days.lines().nth(1), Some("14,oracle-v1"), "{days}");
    // CURIOSITY and MEMORY train beside ORACLE by default.
    assert!(
        out.contains("curiosity") && out.contains("series scanned"),
        "{out}"
    );
    let insights = ok(csv_query(
        dir.path(),
        "SELECT count(*) > 0 AS some, min(model_version) AS v FROM insights",
    ));
    assert_eq!(
        insights.lines().nth(1),
        Some("true,curiosity-v1"),
        "{insights}"
    );
    // Every paying customer is scored.
    assert!(
        out.contains("memory") && out.contains("customers and open deals"),
        "{out}"
    );
    let scores = ok(csv_query(
        dir.path(),
        "SELECT count(*) = (SELECT count(DISTINCT customer_id) FROM orders WHERE status = 'paid') AS all_scored, \
         min(model_version) AS v FROM customer_scores",
    ));
    assert_eq!(scores.lines().nth(1), Some("true,memory-v1"), "{scores}");
    // REFLEXES fits curves and writes its automatic plan: today's spend, reallocated.
    assert!(
        out.contains("reflexes") && out.contains("response curves"),
        "{out}"
    );
    let plan = ok(csv_query(
        dir.path(),
        "SELECT count(*) > 0 AS some, abs(sum(recommended_spend) - sum(current_spend)) < 0.01 AS same_total, \
         min(model_version) AS v FROM budget_plans WHERE plan_id = 'automatic'",
    ));
    assert_eq!(plan.lines().nth(1), Some("true,true,reflexes-v1"), "{plan}");
    // JSON lines for scripts; the second run is version 2.
    let json = ok(gyrus(dir.path(), &["train", "--tenant", "acme", "--json"]));
    let report: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(report["version"], 2);
    assert_eq!(report["status"], "good");
    assert_eq!(report["family"], "oracle");

    fails(
        gyrus(dir.path(), &["train", "--family", "astrology"]),
        1,
        "unknown model family",
    );
    fails(
        gyrus(
            dir.path(),
            &["train", "--family", "curiosity", "--anomaly-alpha", "0.5"],
        ),
        1,
        "--anomaly-alpha",
    );
    fails(
        gyrus(dir.path(), &["train", "--monthly-discount-rate", "1.5"]),
        1,
        "--monthly-discount-rate",
    );
    fails(
        gyrus(dir.path(), &["train", "--horizon", "0"]),
        1,
        "--horizon",
    );
    // A tenant without data: the run is recorded as failed and the exit code says so.
    fails(
        gyrus(dir.path(), &["train", "--tenant", "nobody"]),
        1,
        "no data",
    );
}

/// Exclusive training across processes: two `gyrus train` runs of the same
/// tenant and family started together, three times over, never share a
/// version; each either trains or reports that the other holds the lease;
/// and the forecasts come from one model, the newest good one.
#[test]
fn two_processes_training_one_tenant_get_distinct_versions_and_one_serving_model() {
    let dir = tempfile::tempdir().unwrap();
    ok(gyrus(
        dir.path(),
        &["demo", "--no-serve", "--no-train", "--tenants", "acme"],
    ));
    let args = [
        "train",
        "--tenant",
        "acme",
        "--family",
        "oracle",
        "--horizon",
        "7",
        "--json",
    ];
    let mut reports: Vec<serde_json::Value> = Vec::new();
    for _ in 0..3 {
        let children: Vec<_> = (0..2)
            .map(|_| {
                command(dir.path(), &args)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = ok(child.wait_with_output().unwrap());
            for line in out.lines() {
                reports.push(serde_json::from_str(line).unwrap());
            }
        }
    }
    assert_eq!(reports.len(), 6, "{reports:?}");
    let mut versions: Vec<u64> = Vec::new();
    for r in &reports {
        match r["status"].as_str().unwrap() {
            "skipped" => assert!(
                r["message"].as_str().unwrap().contains("another process"),
                "{r}"
            ),
            "good" => versions.push(r["version"].as_u64().unwrap()),
            other => panic!("a concurrent run ended {other}: {r}"),
        }
    }
    let trained = versions.len();
    versions.sort_unstable();
    versions.dedup();
    assert_eq!(
        versions.len(),
        trained,
        "a version was given twice: {reports:?}"
    );
    assert!(trained >= 3, "each round trains at least once: {reports:?}");
    let newest = versions.last().unwrap();
    let serving = ok(csv_query(
        dir.path(),
        "SELECT count(DISTINCT model_version) AS n, min(model_version) AS v FROM forecasts",
    ));
    assert_eq!(
        serving.lines().nth(1),
        Some(format!("1,oracle-v{newest}").as_str()),
        "{serving}"
    );
    // The operator's CLI reads the registry as SQL: every recorded run,
    // the newest serving.
    let runs = ok(csv_query(
        dir.path(),
        "SELECT count(*) AS runs, count(*) FILTER (WHERE serving) AS serving, \
         max(run_id) FILTER (WHERE serving) AS serving_run FROM system.model_runs",
    ));
    assert_eq!(
        runs.lines().nth(1),
        Some(format!("{trained},1,oracle-v{newest}").as_str()),
        "{runs}"
    );
}

#[test]
fn serve_trains_tenants_that_have_no_model_on_its_schedule() {
    let dir = tempfile::tempdir().unwrap();
    ok(gyrus(
        dir.path(),
        &["demo", "--no-serve", "--no-train", "--tenants", "acme"],
    ));
    let mut server = Command::new(env!("CARGO_BIN_EXE_gyrus"))
        .arg("--data")
        .arg(dir.path())
        .args([
            "serve",
            "--flight-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--retrain-every",
            "24h",
        ])
        .env_remove("GYRUS_DATA")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut rows = String::new();
    for _ in 0..120 {
        std::thread::sleep(std::time::Duration::from_millis(500));
        rows = stdout(&csv_query(
            dir.path(),
            "SELECT count(*) AS n FROM forecasts",
        ));
        if rows.lines().nth(1).is_some_and(|n| n != "0") {
            break;
        }
    }
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(
        rows.lines().nth(1).is_some_and(|n| n != "0"),
        "no forecasts: {rows}"
    );
}

/// `gyrus` with the connector credential key set.
fn gyrus_keyed(data: &Path, args: &[&str]) -> Output {
    command(data, args)
        .env(
            "GYRUS_SECRET_KEY",
            "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=",
        )
        .output()
        .expect("gyrus runs")
}

#[test]
fn connectors_are_added_synced_followed_and_removed() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(fake::Fake::start(fake::FakeConfig::default()));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let credentials = d.join("hubspot.json");
    std::fs::write(&credentials, fake.credentials("hubspot").to_string()).unwrap();
    let credentials = credentials.to_str().unwrap();
    let url = fake.url();
    let add = |extra: &[&str]| {
        let mut args = vec![
            "connectors",
            "add",
            "--tenant",
            "acme",
            "--platform",
            "hubspot",
            "--account",
            "portal1",
            "--credentials",
            credentials,
            "--base-url",
            &url,
            "--auth-url",
            &url,
            "--start-date",
            "2026-03-01",
            "--schedule-minutes",
            "0",
            "--setting",
            "page_size=25",
        ];
        args.extend_from_slice(extra);
        gyrus_keyed(d, &args)
    };

    // Without the key, a clear way forward.
    fails(
        gyrus(
            d,
            &[
                "connectors",
                "add",
                "--tenant",
                "acme",
                "--platform",
                "hubspot",
                "--account",
                "p",
                "--credentials",
                credentials,
            ],
        ),
        1,
        "GYRUS_SECRET_KEY",
    );
    fails(
        add(&["--setting", "colour=blue"]),
        1,
        "has no setting \"colour\"",
    );
    let added = ok(add(&[]));
    let id = added.split_whitespace().nth(2).unwrap().to_string();
    assert!(id.starts_with("c_"), "{added}");

    let listed = ok(gyrus(d, &["connectors", "list"]));
    assert!(
        listed.contains(&id) && listed.contains("hubspot"),
        "{listed}"
    );
    let synced = ok(gyrus_keyed(
        d,
        &["connectors", "sync", &id, "--today", "2026-05-29"],
    ));
    let expected = fake.expected("hubspot").len();
    assert!(synced.contains(&format!("{expected} rows")), "{synced}");
    let status = ok(gyrus(d, &["connectors", "status", &id]));
    assert!(
        status.contains("succeeded") && status.contains("records modified up to"),
        "{status}"
    );
    let counted = ok(gyrus(
        d,
        &[
            "sql",
            "--tenant",
            "acme",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM crm_deals",
        ],
    ));
    assert!(counted.contains(&expected.to_string()), "{counted}");

    // The store holds no credential in the clear, and no output shows one.
    let mut stored = Vec::new();
    for entry in walk(&d.join("_system")) {
        stored.extend(std::fs::read(entry).unwrap());
    }
    let stored = String::from_utf8_lossy(&stored);
    for secret in fake.secrets() {
        for text in [&added, &listed, &synced, &status, &stored.to_string()] {
            assert!(!text.contains(&secret), "a credential is readable");
        }
    }

    ok(gyrus(d, &["connectors", "remove", &id]));
    fails(gyrus(d, &["connectors", "status", &id]), 1, "no connector");
    drop(fake);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn a_tenant_is_exported_erased_and_restored_with_its_connectors_and_model_runs() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(fake::Fake::start(fake::FakeConfig::default()));
    let dir = tempfile::tempdir().unwrap();
    let (d, url) = (dir.path().join("store"), fake.url());
    ok(gyrus(
        &d,
        &["demo", "--no-serve", "--tenants", "acme,globex"],
    ));
    let credentials = dir.path().join("hubspot.json");
    std::fs::write(&credentials, fake.credentials("hubspot").to_string()).unwrap();
    let mut ids = Vec::new();
    for tenant in ["acme", "globex"] {
        let added = ok(gyrus_keyed(
            &d,
            &[
                "connectors",
                "add",
                "--tenant",
                tenant,
                "--platform",
                "hubspot",
                "--account",
                "portal1",
                "--credentials",
                credentials.to_str().unwrap(),
                "--base-url",
                &url,
                "--auth-url",
                &url,
                "--start-date",
                "2026-03-01",
                "--schedule-minutes",
                "0",
            ],
        ));
        ids.push(added.split_whitespace().nth(2).unwrap().to_string());
    }
    let (acme_connector, globex_connector) = (&ids[0], &ids[1]);
    ok(gyrus_keyed(
        &d,
        &[
            "connectors",
            "sync",
            acme_connector,
            "--today",
            "2026-05-29",
        ],
    ));
    let runs = |data: &Path, tenant: &str| {
        ok(gyrus(
            data,
            &[
                "sql",
                "--tenant",
                tenant,
                "--format",
                "csv",
                "SELECT count(*) AS n FROM system.model_runs",
            ],
        ))
    };
    let acme_runs = runs(&d, "acme");
    assert_ne!(acme_runs.lines().nth(1), Some("0"), "{acme_runs}");
    let tables = |data: &Path, tenant: &str| ok(gyrus(data, &["tables", "--tenant", tenant]));
    let (acme_tables, globex_tables) = (tables(&d, "acme"), tables(&d, "globex"));

    let export = dir.path().join("acme-export");
    let exported = ok(gyrus(
        &d,
        &[
            "tenants",
            "export",
            "--tenant",
            "acme",
            "--to",
            export.to_str().unwrap(),
        ],
    ));
    assert!(
        exported.contains("tenant acme (") && exported.contains("backed up into"),
        "{exported}"
    );
    // An export goes to a new place only.
    fails(
        gyrus(
            &d,
            &[
                "tenants",
                "export",
                "--tenant",
                "acme",
                "--to",
                export.to_str().unwrap(),
            ],
        ),
        1,
        "not empty",
    );

    let erased = ok(gyrus(&d, &["tenants", "erase", "--tenant", "acme"]));
    for place in [
        "_system/api_keys",
        "_system/connectors",
        "_system/connector_state",
        "_system/connector_runs",
        "_system/model_registry",
        "_system/leases",
        "tenants/acme/ad_performance",
        "tenants/acme/forecasts",
    ] {
        assert!(erased.contains(place), "{place} not in: {erased}");
    }
    let left: Vec<_> = walk(&d)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("acme"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let listed = ok(gyrus(&d, &["connectors", "list"]));
    assert!(
        !listed.contains(acme_connector.as_str()) && listed.contains(globex_connector.as_str()),
        "{listed}"
    );
    assert_eq!(runs(&d, "acme").lines().nth(1), Some("0"));
    assert_ne!(runs(&d, "globex").lines().nth(1), Some("0"));
    assert_eq!(tables(&d, "globex"), globex_tables);
    // A second erase finds only what the `gyrus sql` calls above recorded
    // about acme since: their lines in the stored query log.
    let again = ok(gyrus(&d, &["tenants", "erase", "--tenant", "acme"]));
    let places: Vec<&str> = again
        .lines()
        .filter(|l| l.starts_with("_system/") || l.starts_with("tenants/"))
        .collect();
    assert!(
        places.len() == 1 && places[0].starts_with("_system/queries"),
        "{again}"
    );

    // The export brings all of it back: tables, runs, the connector with
    // its sealed credentials (it syncs again).
    ok(gyrus(&d, &["restore", "--from", export.to_str().unwrap()]));
    assert_eq!(tables(&d, "acme"), acme_tables);
    assert_eq!(runs(&d, "acme"), acme_runs);
    ok(gyrus_keyed(
        &d,
        &[
            "connectors",
            "sync",
            acme_connector,
            "--today",
            "2026-05-30",
        ],
    ));

    // The whole store, into an empty one: every table the same.
    let backup = dir.path().join("backup");
    ok(gyrus(&d, &["backup", "--to", backup.to_str().unwrap()]));
    let copy = dir.path().join("copy");
    ok(gyrus(
        &copy,
        &["restore", "--from", backup.to_str().unwrap()],
    ));
    for tenant in ["acme", "globex"] {
        assert_eq!(tables(&copy, tenant), tables(&d, tenant), "{tenant}");
        assert_eq!(runs(&copy, tenant), runs(&d, tenant), "{tenant}");
    }
    // Into the store it came from: nothing to do while that is unchanged,
    // refused once a table has moved on.
    ok(gyrus(&d, &["restore", "--from", backup.to_str().unwrap()]));
    let late = dir.path().join("late.csv");
    std::fs::write(&late, csv_rows("late", 1..=2, 3)).unwrap();
    ok(ingest(&d, late.to_str().unwrap()));
    fails(
        gyrus(&d, &["restore", "--from", backup.to_str().unwrap()]),
        1,
        "already has tenants/acme/ad_performance",
    );
    fails(
        gyrus(&copy, &["restore", "--from", d.to_str().unwrap()]),
        1,
        "no backup.json",
    );
    drop(fake);
}

/// Runs `args` on `data` again and again, each run SIGKILLed (no
/// destructor, no flush) at a share of `whole` (how long a run takes here);
/// returns how many kills landed before the run ended, and how many of
/// those left `written` (the folder the command writes) changed: part way.
fn killed_at_moments(
    data: &Path,
    args: &[&str],
    written: &Path,
    whole: std::time::Duration,
) -> (usize, usize) {
    let listing = || {
        if written.exists() {
            walk(written)
        } else {
            Vec::new()
        }
    };
    let (mut interrupted, mut part_way) = (0, 0);
    for share in [0.2, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9] {
        let before = listing();
        let mut child = command(data, args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(whole.mul_f64(share));
        let _ = child.kill();
        // Killed (no exit code), not finished nor refused.
        if child.wait().unwrap().code().is_none() {
            interrupted += 1;
            if listing() != before {
                part_way += 1;
            }
        }
    }
    (interrupted, part_way)
}

/// `gyrus tenants erase`, `gyrus backup` and `gyrus restore` SIGKILLed at
/// moments spread over their run, again and again, then run to the end:
/// - erase leaves nothing of the tenant, and the other tenant's tables and
///   keys as they were; a half-done erase never blocks the next one;
/// - a killed backup is never taken for a whole one (restoring from it is
///   refused), and a backup to a new place afterwards is whole;
/// - a killed restore, run again, gives every table of the snapshot.
#[test]
fn erase_backup_and_restore_killed_at_any_moment_finish_when_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("store");
    ok(gyrus(
        &d,
        &[
            "demo",
            "--no-serve",
            "--no-train",
            "--tenants",
            "acme,globex",
        ],
    ));
    for tenant in ["acme", "globex"] {
        ok(gyrus(
            &d,
            &["keys", "create", "--tenant", tenant, "--role", "reader"],
        ));
    }
    let tables = |data: &Path, tenant: &str| ok(gyrus(data, &["tables", "--tenant", tenant]));
    let (acme, globex) = (tables(&d, "acme"), tables(&d, "globex"));
    let timed = |data: &Path, args: &[&str]| {
        let started = std::time::Instant::now();
        ok(gyrus(data, args));
        started.elapsed()
    };
    let path = |name: &str| dir.path().join(name);
    let text = |p: &Path| p.to_str().unwrap().to_string();

    // Backup: killed runs into one place, then a whole one into another.
    let whole = timed(&d, &["backup", "--to", &text(&path("timing"))]);
    let partial = path("partial");
    let (interrupted, part_way) =
        killed_at_moments(&d, &["backup", "--to", &text(&partial)], &partial, whole);
    eprintln!("backup: {interrupted} kills landed before the end, {part_way} of them part way");
    if partial.join("backup.json").exists() {
        // The last run finished: that backup is whole and restores.
        ok(gyrus(
            &path("from-partial"),
            &["restore", "--from", &text(&partial)],
        ));
    } else if partial.exists() {
        fails(
            gyrus(
                &path("from-partial"),
                &["restore", "--from", &text(&partial)],
            ),
            1,
            "no backup.json",
        );
    }
    let backup = path("backup");
    ok(gyrus(&d, &["backup", "--to", &text(&backup)]));

    // Restore: killed runs into one store, then run to the end.
    let whole = timed(
        &path("timing-restore"),
        &["restore", "--from", &text(&backup)],
    );
    let copy = path("copy");
    let (interrupted, part_way) =
        killed_at_moments(&copy, &["restore", "--from", &text(&backup)], &copy, whole);
    eprintln!("restore: {interrupted} kills landed before the end, {part_way} of them part way");
    ok(gyrus(&copy, &["restore", "--from", &text(&backup)]));
    assert_eq!(tables(&copy, "acme"), acme);
    assert_eq!(tables(&copy, "globex"), globex);

    // Erase: killed runs, then run to the end.
    let whole = timed(&copy, &["tenants", "erase", "--tenant", "acme"]);
    let (interrupted, part_way) =
        killed_at_moments(&d, &["tenants", "erase", "--tenant", "acme"], &d, whole);
    assert!(interrupted > 0, "no kill landed before an erase ended");
    // How many landed part way depends on timing; shown, not asserted.
    eprintln!("erase: {interrupted} kills landed before the end, {part_way} of them part way");
    ok(gyrus(&d, &["tenants", "erase", "--tenant", "acme"]));
    let left: Vec<_> = walk(&d)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("acme"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(tables(&d, "globex"), globex);
    let keys = ok(gyrus(&d, &["keys", "list"]));
    assert!(keys.contains("globex") && !keys.contains("acme"), "{keys}");
    let count = ok(gyrus(
        &d,
        &[
            "sql",
            "--tenant",
            "globex",
            "--format",
            "csv",
            "SELECT count(*) FROM orders",
        ],
    ));
    assert_ne!(count.lines().nth(1), Some("0"), "{count}");
}
