//! MEMORY's fits, timed, for `benches/cdnow.py` and the 10-million-customer run.
//!
//!     target/release/gyrus-memory cdnow --transactions CDNOW_master.txt [--repeat 5]
//!     target/release/gyrus-memory synthetic --customers 10000000 [--days 730]
//!
//! `cdnow` reads CDNOW transactions (lifetimes' `CDNOW_master.txt` or
//! `CDNOW_sample.txt`), summarises the paper's 39-week calibration period
//! (1997-01-01 to 1997-09-30, weeks) and times the BG/NBD and Gamma-Gamma
//! fits; it prints one JSON object. `synthetic` draws customers from the
//! generator's BG/NBD and Gamma-Gamma processes (untimed), then times
//! grouping, both fits and scoring every customer (P(alive), 90-day
//! purchases, CLV, churn risk, RFM segment), and reports the process's peak
//! resident memory.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use gyrus_datasets::{GeneratorConfig, Scale, btyd_summaries, generate};
use gyrus_models::memory::model::{MemoryConfig, fit_customers, rfm_segments};
use gyrus_models::memory::{DAYS_PER_UNIT, Summary};
use serde_json::json;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Peak resident memory of this process, in MiB (Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn day(date: NaiveDate) -> i64 {
    (date - NaiveDate::default()).num_days()
}

/// Calibration-period summaries of a CDNOW transactions file.
fn cdnow(path: &str, end: NaiveDate) -> Result<Vec<Summary>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let mut histories: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // CDNOW_master.txt: id, date, CDs, dollars (after a header);
        // CDNOW_sample.txt: master id, sample id, date, CDs, dollars.
        let (id, date, dollars) = match fields.len() {
            4 => (fields[0], fields[1], fields[3]),
            5 => (fields[1], fields[2], fields[4]),
            _ => continue,
        };
        let Ok(date) = NaiveDate::parse_from_str(date, "%Y%m%d") else {
            continue;
        };
        let history = histories.entry(id.to_string()).or_default();
        if date <= end {
            history.push((day(date), dollars.parse().context("dollar value")?));
        }
    }
    histories
        .values()
        .filter(|h| !h.is_empty())
        .map(|h| Ok(Summary::from_history(h, day(end))?))
        .collect()
}

fn run_cdnow(args: &[String]) -> Result<()> {
    let path = arg(args, "--transactions").context("--transactions PATH is required")?;
    let repeat: usize = arg(args, "--repeat").map_or(Ok(5), |r| r.parse())?;
    let end = NaiveDate::from_ymd_opt(1997, 9, 30).context("date")?;
    let started = Instant::now();
    let summaries = cdnow(&path, end)?;
    let summary_seconds = started.elapsed().as_secs_f64();
    let x: Vec<u32> = summaries.iter().map(|s| s.frequency).collect();
    let tx: Vec<f64> = summaries.iter().map(|s| s.recency).collect();
    let t: Vec<f64> = summaries.iter().map(|s| s.tenure).collect();
    let m: Vec<f64> = summaries.iter().map(|s| s.monetary).collect();
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..repeat.max(1) {
        let started = Instant::now();
        let (model, _) = fit_customers(&x, &tx, &t, &m, 0.0)?;
        times.push(started.elapsed().as_secs_f64());
        last = Some(model);
    }
    let model = last.context("no fit")?;
    times.sort_by(f64::total_cmp);
    let gg = model.gamma_gamma.as_ref().context("no Gamma-Gamma fit")?;
    let out = json!({
        "customers": summaries.len(),
        "summary_seconds": summary_seconds,
        "fit_seconds_median": times[times.len() / 2],
        "fit_seconds": times,
        "bgnbd": model.bgnbd.params,
        "bgnbd_log_likelihood": model.bgnbd.log_likelihood,
        "bgnbd_groups": model.bgnbd.groups,
        "gamma_gamma": gg.params,
        "gamma_gamma_customers": gg.customers,
        "frequency_value_correlation": gg.frequency_value_correlation,
        "threads": rayon::current_num_threads(),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn run_synthetic(args: &[String]) -> Result<()> {
    let customers: usize = arg(args, "--customers").map_or(Ok(10_000_000), |c| c.parse())?;
    let days: u32 = arg(args, "--days").map_or(Ok(730), |d| d.parse())?;
    let seed: u64 = arg(args, "--seed").map_or(Ok(1), |s| s.parse())?;
    if customers == 0 || days < 2 {
        bail!("--customers must be positive and --days at least 2");
    }
    let truth = generate(&GeneratorConfig::new(seed, Scale::Small)).truth;
    let started = Instant::now();
    let simulated = btyd_summaries(customers, &truth.bgnbd, &truth.gamma_gamma, days, seed);
    let x: Vec<u32> = simulated.iter().map(|c| c.frequency).collect();
    let tx: Vec<f64> = simulated
        .iter()
        .map(|c| f64::from(c.recency_days) / DAYS_PER_UNIT)
        .collect();
    let t: Vec<f64> = simulated
        .iter()
        .map(|c| f64::from(c.tenure_days) / DAYS_PER_UNIT)
        .collect();
    let m: Vec<f64> = simulated.iter().map(|c| c.monetary).collect();
    let since_last: Vec<f64> = simulated
        .iter()
        .map(|c| f64::from(c.tenure_days - c.recency_days))
        .collect();
    let purchases: Vec<f64> = x.iter().map(|x| f64::from(x + 1)).collect();
    let revenue: Vec<f64> = simulated.iter().map(|c| c.revenue).collect();
    drop(simulated);
    let simulate_seconds = started.elapsed().as_secs_f64();

    let config = MemoryConfig::default();
    let started = Instant::now();
    let mean_value = revenue.iter().sum::<f64>() / purchases.iter().sum::<f64>();
    let (model, groups) = fit_customers(&x, &tx, &t, &m, mean_value)?;
    let fit_seconds = started.elapsed().as_secs_f64();
    let scores = model.score_all(&config, &groups, &x, &m);
    let segments = rfm_segments(&since_last, &purchases, &revenue);
    let total_seconds = started.elapsed().as_secs_f64();

    let mut by_segment: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &segments {
        *by_segment.entry(s.1).or_default() += 1;
    }
    let clv: f64 = scores.iter().map(|s| s.clv).sum::<f64>() / scores.len() as f64;
    let gg = model.gamma_gamma.as_ref().context("no Gamma-Gamma fit")?;
    let out = json!({
        "customers": customers,
        "days": days,
        "threads": rayon::current_num_threads(),
        "simulate_seconds": simulate_seconds,
        "groups": groups.len(),
        "fit_seconds": fit_seconds,
        "score_seconds": total_seconds - fit_seconds,
        "fit_and_score_seconds": total_seconds,
        "peak_rss_mib": peak_rss_mib(),
        "bgnbd": model.bgnbd.params,
        "bgnbd_standard_errors": model.bgnbd.standard_errors,
        "bgnbd_truth": {"r": truth.bgnbd.r, "alpha": truth.bgnbd.alpha, "a": truth.bgnbd.a, "b": truth.bgnbd.b},
        "gamma_gamma": gg.params,
        "gamma_gamma_truth": truth.gamma_gamma,
        "mean_clv_365d": clv,
        "segments": by_segment,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("cdnow") => run_cdnow(&args),
        Some("synthetic") => run_synthetic(&args),
        _ => bail!(
            "usage: gyrus-memory cdnow --transactions PATH [--repeat N] | \
             synthetic [--customers N] [--days D] [--seed S]"
        ),
    }
}
