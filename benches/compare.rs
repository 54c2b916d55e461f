//! The Gyrus side of the comparison harness (driven by `benches/compare.py`).
//!
//! Makes sure the tenant holds the dataset (generating and loading it, timed,
//! when it does not), lists the Parquet files of its `ad_performance` table
//! for the peer, and times each dashboard query through a Gyrus session.
//! Writes everything as JSON.
//!
//! `gyrus-compare --data DIR --tenant bench --scale large --runs 5 --out FILE`

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use gyrus_datasets::{GeneratorConfig, Scale, generate};
use gyrus_engine::schema::CanonicalTable;
use gyrus_engine::{SessionLimits, Store, TenantId};
use serde::Serialize;

#[derive(Serialize)]
struct Report {
    tenant: String,
    scale: String,
    rows: u64,
    generate_seconds: Option<f64>,
    load_seconds: Option<f64>,
    files: Vec<String>,
    queries: Vec<QueryTiming>,
}

#[derive(Serialize)]
struct QueryTiming {
    name: String,
    rows: usize,
    seconds: Vec<f64>,
}

struct Args {
    data: String,
    tenant: String,
    scale: Scale,
    runs: usize,
    queries: PathBuf,
    out: PathBuf,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        data: "./gyrus-bench-data".into(),
        tenant: "bench".into(),
        scale: Scale::Large,
        runs: 5,
        queries: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/dashboard_queries.sql"
        )),
        out: PathBuf::from("gyrus-compare.json"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--data" => args.data = value,
            "--tenant" => args.tenant = value,
            "--scale" => args.scale = value.parse().map_err(anyhow::Error::msg)?,
            "--runs" => args.runs = value.parse().context("--runs takes a number")?,
            "--queries" => args.queries = value.into(),
            "--out" => args.out = value.into(),
            other => anyhow::bail!("unknown flag {other}; see the module docs"),
        }
    }
    Ok(args)
}

/// `(name, sql)` pairs from a file of `-- name:` sections.
pub fn parse_queries(text: &str) -> Vec<(String, String)> {
    let mut queries: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("-- name:") {
            queries.push((name.trim().to_string(), String::new()));
        } else if let Some((_, sql)) = queries.last_mut()
            && !line.starts_with("--")
        {
            sql.push_str(line);
            sql.push('\n');
        }
    }
    for (_, sql) in &mut queries {
        *sql = sql.trim().trim_end_matches(';').to_string();
    }
    queries
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let store = Store::open(&args.data).await?;
    let tenant = TenantId::new(args.tenant.as_str())?;
    let mut report = Report {
        tenant: args.tenant.clone(),
        scale: args.scale.to_string(),
        rows: 0,
        generate_seconds: None,
        load_seconds: None,
        files: Vec::new(),
        queries: Vec::new(),
    };
    if store
        .table(&tenant, CanonicalTable::AdPerformance)
        .await?
        .is_none()
    {
        eprintln!("generating the {} dataset ...", args.scale);
        let started = Instant::now();
        let config = GeneratorConfig::new(42, args.scale);
        let dataset = tokio::task::spawn_blocking(move || generate(&config)).await?;
        report.generate_seconds = Some(started.elapsed().as_secs_f64());
        eprintln!("loading {} ad rows ...", dataset.ad_rows());
        let started = Instant::now();
        dataset.load(&store, &tenant, |_| {}).await?;
        report.load_seconds = Some(started.elapsed().as_secs_f64());
    }
    let stats = store.table_stats(&tenant).await?;
    report.rows = stats
        .iter()
        .find(|s| s.table == CanonicalTable::AdPerformance)
        .map_or(0, |s| s.rows);
    report.files = store
        .data_files(&tenant, CanonicalTable::AdPerformance)
        .await?
        .into_iter()
        .map(|u| {
            u.to_file_path()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| u.to_string())
        })
        .collect();

    let text = std::fs::read_to_string(&args.queries)
        .with_context(|| format!("cannot read {}", args.queries.display()))?;
    let session = store.session(&tenant, &SessionLimits::default()).await?;
    for (name, sql) in parse_queries(&text) {
        let mut timing = QueryTiming {
            name: name.clone(),
            rows: 0,
            seconds: Vec::new(),
        };
        session
            .query(&sql)
            .await
            .with_context(|| format!("query {name}"))?; // warm-up
        for _ in 0..args.runs {
            let started = Instant::now();
            let batches = session.query(&sql).await?;
            timing.seconds.push(started.elapsed().as_secs_f64());
            timing.rows = batches.iter().map(|b| b.num_rows()).sum();
        }
        eprintln!("{name}: {:?}", timing.seconds);
        report.queries.push(timing);
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&report)?)?;
    Ok(())
}
