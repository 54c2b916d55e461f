//! `gyrus train`, the demo's first training run, and the retraining schedule
//! of `gyrus serve`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use gyrus_engine::{Store, TenantId};
use gyrus_models::FamilyId;
use gyrus_models::pipeline::{Progress, RunReport, TrainOptions, train};
use gyrus_models::registry::Registry;
use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar over the series (or customers, …) a run fits.
struct Bar(ProgressBar);

impl Progress for Bar {
    fn start(&self, family: FamilyId) {
        self.0.set_length(0);
        self.0.set_position(0);
        let unit = match family {
            FamilyId::Oracle => "series",
            FamilyId::Curiosity => "entities",
            _ => "tenants",
        };
        self.0.set_message(format!("training {family} ({unit})"));
    }

    fn add(&self, units: usize) {
        self.0.inc_length(units as u64);
    }

    fn advance(&self) {
        self.0.inc(1);
    }
}

fn bar() -> Arc<Bar> {
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {msg:<26} [{bar:30}] {pos}/{len} ({elapsed}, {per_sec})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    Arc::new(Bar(bar))
}

/// Parses `--family` values.
pub fn families(names: &[String]) -> anyhow::Result<Vec<FamilyId>> {
    let mut families = Vec::new();
    for name in names {
        let family: FamilyId = name.trim().parse()?;
        if !families.contains(&family) {
            families.push(family);
        }
    }
    Ok(families)
}

/// Trains with a progress bar and prints one line (or JSON object) per
/// tenant and family. Fails when any run failed, so scripts notice.
pub async fn run_train(
    store: &Store,
    options: TrainOptions,
    json: bool,
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    for &family in &options.families {
        options.check(family).map_err(|e| {
            let flags = match family {
                FamilyId::Oracle => "--horizon",
                FamilyId::Curiosity => "--anomaly-alpha",
                FamilyId::Memory => "--monthly-discount-rate",
                FamilyId::Reflexes => "its defaults",
            };
            anyhow::anyhow!("{family}: {e} (set with {flags})")
        })?;
    }
    let started = Instant::now();
    let progress = bar();
    let reports = train(store, &options, progress.clone()).await?;
    progress.0.finish_and_clear();
    print_reports(&reports, started.elapsed(), json, out)?;
    if let Some(failed) = reports
        .iter()
        .find(|r| r.status == gyrus_models::Status::Failed)
    {
        anyhow::bail!(
            "training {} for tenant {} failed: {}",
            failed.family,
            failed.tenant,
            failed.message.as_deref().unwrap_or("unknown error")
        );
    }
    Ok(())
}

fn print_reports(
    reports: &[RunReport],
    elapsed: Duration,
    json: bool,
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    if json {
        for report in reports {
            writeln!(out, "{}", serde_json::to_string(report)?)?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{:<16} {:<9} {:>7} {:<9} {:>7} {:>8} {:>9}  note",
        "tenant", "family", "version", "status", "units", "rows", "score"
    )?;
    for r in reports {
        writeln!(
            out,
            "{:<16} {:<9} {:>7} {:<9} {:>7} {:>8} {:>9}  {}",
            r.tenant,
            r.family,
            r.version,
            r.status.as_str(),
            r.units,
            r.rows_written,
            r.score.map_or("-".into(), |s| format!("{s:.3}")),
            r.message.as_deref().unwrap_or("")
        )?;
    }
    let seconds = elapsed.as_secs_f64();
    for family in FamilyId::ALL {
        let units: usize = reports
            .iter()
            .filter(|r| r.family == family)
            .map(|r| r.units)
            .sum();
        if !reports.iter().any(|r| r.family == family) {
            continue;
        }
        match family {
            FamilyId::Oracle => writeln!(
                out,
                "oracle: {units} series ({:.0} series/s over the whole run); units = series, \
                 score = MASE on the last {} held-back days",
                units as f64 / seconds.max(1e-9),
                TrainOptions::default().oracle.holdout_days
            )?,
            FamilyId::Curiosity => writeln!(
                out,
                "curiosity: {units} series scanned ({:.0} series/s over the whole run); \
                 insights in the `insights` table; no score (see the registry's metrics)",
                units as f64 / seconds.max(1e-9)
            )?,
            FamilyId::Memory => writeln!(
                out,
                "memory: {units} customers and open deals scored; score = holdout error \
                 (|predicted - actual| repeat purchases per frequency bucket / actual)"
            )?,
            FamilyId::Reflexes => writeln!(
                out,
                "reflexes: {units} campaign and channel response curves; score = median \
                 weekly error of conversions on the last {} held-back days; plan `{}` in \
                 `budget_plans`",
                TrainOptions::default().reflexes.holdout_days,
                gyrus_models::pipeline::AUTOMATIC_PLAN_ID
            )?,
        }
    }
    writeln!(out, "in {seconds:.1} s")?;
    Ok(())
}

/// How often the schedule looks for tenants due a run.
const CHECK_EVERY: Duration = Duration::from_secs(60);

/// Retrains each tenant's families when their last run is older than `every`, or
/// when its data changed since then and the last run is older than `min_gap`.
/// Runs until `stop` turns true; errors are logged, never fatal to the server.
pub async fn schedule(
    store: Store,
    every: Duration,
    min_gap: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    if every.is_zero() {
        return;
    }
    let registry = Registry::new(store.clone());
    loop {
        for family in FamilyId::ALL.into_iter().filter(|f| f.is_trainable()) {
            match due_tenants(&store, &registry, family, every, min_gap).await {
                Ok(due) if !due.is_empty() => {
                    tracing::info!(%family, tenants = due.len(), "scheduled training starts");
                    let options = TrainOptions {
                        tenants: Some(due),
                        families: vec![family],
                        ..TrainOptions::default()
                    };
                    match train(&store, &options, Arc::new(gyrus_models::pipeline::Silent)).await {
                        Ok(reports) => {
                            for r in reports {
                                tracing::info!(tenant = %r.tenant, family = %r.family, version = r.version,
                                    status = r.status.as_str(), units = r.units, message = r.message.as_deref().unwrap_or(""),
                                    "scheduled training finished");
                            }
                        }
                        Err(e) => tracing::error!(%family, error = %e, "scheduled training failed"),
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(%family, error = %e, "cannot tell which tenants are due training")
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn due_tenants(
    store: &Store,
    registry: &Registry,
    family: FamilyId,
    every: Duration,
    min_gap: Duration,
) -> anyhow::Result<Vec<TenantId>> {
    let entries = registry.entries(None, Some(family)).await?;
    let mut last: BTreeMap<String, gyrus_models::Entry> = BTreeMap::new();
    for entry in entries {
        last.insert(entry.tenant.clone(), entry);
    }
    let now = Utc::now();
    let mut due = Vec::new();
    for tenant in store.tenants().await? {
        let Some(entry) = last.get(tenant.as_str()) else {
            due.push(tenant);
            continue;
        };
        let age = (now - entry.trained_at).to_std().unwrap_or_default();
        if age >= every {
            due.push(tenant);
            continue;
        }
        if age < min_gap {
            continue;
        }
        let tables = store.tenant_tables(&tenant).await?;
        // Only the tables the model read (its own output changes every run).
        let changed = tables.versions().into_iter().any(|(table, version)| {
            entry
                .input_versions
                .get(table.name())
                .is_some_and(|seen| *seen != version)
        });
        if changed {
            due.push(tenant);
        }
    }
    Ok(due)
}
