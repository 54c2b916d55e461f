//! CURIOSITY's scan, timed: series scanned per second.
//!
//!     target/release/gyrus-curiosity --data /tmp/large [--series 100000]
//!
//! Reads every tenant's daily series from the store (untimed: DataFusion
//! aggregates, as `gyrus train` reads them), then scans them with Rayon over
//! all cores (decomposition, change points, ESD tests of counts, amounts
//! and ratios) until at least `--series` series were scanned, passing over
//! the tenants again as often as needed: every pass recomputes everything.
//! Prints one JSON object.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use gyrus_engine::Store;
use gyrus_models::curiosity::detect::Sensitivity;
use gyrus_models::curiosity::model::{CuriosityConfig, TenantInputs, load, scan};
use serde_json::json;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(data) = arg(&args, "--data") else {
        bail!("usage: gyrus-curiosity --data DIR [--series N]");
    };
    let want: usize = arg(&args, "--series")
        .map(|s| s.parse().context("--series takes a number"))
        .transpose()?
        .unwrap_or(100_000);
    let store = Store::open(&data).await?;
    let loading = Instant::now();
    let mut inputs: Vec<TenantInputs> = Vec::new();
    for tenant in store.tenants().await? {
        inputs.push(load(&store, &tenant).await?);
    }
    let load_seconds = loading.elapsed().as_secs_f64();
    let config = CuriosityConfig {
        sensitivity: Sensitivity::default(),
        ..CuriosityConfig::default()
    };
    let (mut scanned, mut passes, mut insights) = (0usize, 0usize, 0usize);
    let started = Instant::now();
    while scanned < want {
        for tenant in &inputs {
            let found = scan(tenant, &config, &|| {});
            scanned += found.series_scanned;
            insights += found.insights.len();
        }
        passes += 1;
        if scanned == 0 {
            bail!("no series to scan in {data}");
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "tenants": inputs.len(),
            "series_per_pass": scanned / passes,
            "passes": passes,
            "series_scanned": scanned,
            "scan_seconds": seconds,
            "series_per_second": scanned as f64 / seconds,
            "seconds_per_100k_series": 100_000.0 * seconds / scanned as f64,
            "anomalies_and_change_points_per_pass": insights / passes,
            "load_seconds": load_seconds,
            "threads": rayon::current_num_threads(),
        })
    );
    Ok(())
}
