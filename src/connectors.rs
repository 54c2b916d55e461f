//! `gyrus connectors ...` and the sync schedule of `gyrus serve`.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use chrono::Utc;
use gyrus_engine::{Store, TenantId};
use gyrus_ingest::connectors::registry::{Connectors, NewConnector, Run, RunStatus};
use gyrus_ingest::connectors::{Credentials, SyncOptions};
use gyrus_ingest::secrets::SecretKey;

use crate::cli::ConnectorsCommand;

/// How often `gyrus serve` looks for connectors due a sync.
const CHECK_EVERY: Duration = Duration::from_secs(30);

/// The deployment's connectors, with the credential key when one is set.
pub fn open(store: &Store) -> anyhow::Result<Connectors> {
    let key = match SecretKey::from_env() {
        Ok(key) => Some(key),
        Err(gyrus_ingest::secrets::SecretError::NoKey) => None,
        Err(e) => return Err(e.into()),
    };
    Ok(Connectors::new(store.clone(), key))
}

pub async fn run(
    store: &Store,
    command: ConnectorsCommand,
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    let connectors = open(store)?;
    match command {
        ConnectorsCommand::Add {
            tenant,
            platform,
            account,
            credentials,
            base_url,
            auth_url,
            start_date,
            lookback_days,
            schedule_minutes,
            settings,
        } => {
            let tenant = TenantId::new(tenant)?;
            let new = NewConnector {
                platform: platform.parse()?,
                account,
                credentials: read_credentials(&credentials)?,
                base_url,
                auth_url,
                start_date,
                lookback_days,
                schedule_minutes,
                settings: parse_settings(&settings)?,
            };
            let config = connectors.add(&tenant, new).await?;
            writeln!(
                out,
                "added connector {} for tenant {tenant}: {} account {} into {}",
                config.id,
                config.platform,
                config.account,
                config.platform.table()
            )?;
        }
        ConnectorsCommand::List { tenant } => {
            let tenant = tenant.map(TenantId::new).transpose()?;
            writeln!(
                out,
                "{:<20} {:<16} {:<14} {:<20} {:<10} schedule",
                "id", "tenant", "platform", "account", "since"
            )?;
            for c in connectors.list(tenant.as_ref()).await? {
                let schedule = match c.schedule_minutes {
                    0 => "manual".to_string(),
                    m => format!("every {m} min"),
                };
                writeln!(
                    out,
                    "{:<20} {:<16} {:<14} {:<20} {:<10} {schedule}",
                    c.id, c.tenant, c.platform, c.account, c.start_date
                )?;
            }
        }
        ConnectorsCommand::Sync { id, full, today } => {
            let options = SyncOptions {
                today,
                full,
                ..Default::default()
            };
            let run = connectors.sync(None, &id, "manual", &options).await?;
            describe_run(out, &run)?;
            if run.status != RunStatus::Succeeded {
                bail!(
                    "sync of {id} failed: {}",
                    run.error.unwrap_or_else(|| "no reason recorded".into())
                );
            }
        }
        ConnectorsCommand::Status { id } => {
            let status = connectors.status(None, &id).await?;
            let c = &status.config;
            writeln!(
                out,
                "connector {} ({} account {}, tenant {})",
                c.id, c.platform, c.account, c.tenant
            )?;
            writeln!(out, "table:     {}", c.platform.table())?;
            writeln!(
                out,
                "from:      {} (lookback {} days)",
                c.start_date, c.lookback_days
            )?;
            let cursor = &status.cursor;
            let cursor_text = match (
                cursor.synced_through,
                cursor.resume_from,
                cursor.modified_since,
            ) {
                (_, Some(resume), _) => format!("interrupted; resumes at {resume}"),
                (Some(through), _, _) => format!("synced through {through}"),
                (_, _, Some(since)) => format!("records modified up to {since}"),
                _ => "never synced".into(),
            };
            writeln!(out, "cursor:    {cursor_text}")?;
            match &status.last_run {
                Some(run) => describe_run(out, run)?,
                None => writeln!(out, "last run:  none")?,
            }
            match status.next_run {
                Some(at) => writeln!(out, "next run:  {}", at.format("%Y-%m-%d %H:%M:%S UTC"))?,
                None => writeln!(out, "next run:  only when asked")?,
            }
        }
        ConnectorsCommand::Remove { id } => {
            let config = connectors.remove(None, &id).await?;
            writeln!(
                out,
                "removed connector {} ({} account {}); its data stays in {}",
                config.id,
                config.platform,
                config.account,
                config.platform.table()
            )?;
        }
    }
    Ok(())
}

fn describe_run(out: &mut impl std::io::Write, run: &Run) -> anyhow::Result<()> {
    let status = serde_json::to_value(run.status)?;
    write!(
        out,
        "last run:  {} {} ({}), started {}",
        run.run_id,
        status.as_str().unwrap_or_default(),
        run.trigger,
        run.started_at.format("%Y-%m-%d %H:%M:%S UTC")
    )?;
    if let Some(report) = &run.report {
        write!(
            out,
            ": {} rows in {} commits, {:.1} s",
            run.rows, report.commits, report.seconds
        )?;
        if let (Some(from), Some(to)) = (report.from, report.to) {
            write!(out, ", days {from}..{to}")?;
        }
        if report.resumed {
            write!(out, ", resumed")?;
        }
    }
    writeln!(out)?;
    if let Some(error) = &run.error {
        writeln!(out, "error:     {error}")?;
    }
    Ok(())
}

/// The credentials JSON object from a file or standard input.
fn read_credentials(path: &std::path::Path) -> anyhow::Result<Credentials> {
    let text = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        text
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read credentials file {}", path.display()))?
    };
    let fields: BTreeMap<String, String> = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "the credentials must be a JSON object of strings, e.g. {{\"access_token\": \"...\"}} ({} at line {})",
            describe_json_error(&e),
            e.line()
        )
    })?;
    Ok(Credentials(fields))
}

fn describe_json_error(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "not an object of strings",
        serde_json::error::Category::Eof => "cut short",
    }
}

fn parse_settings(settings: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    settings
        .iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .with_context(|| format!("--setting {s:?} is not KEY=VALUE"))
        })
        .collect()
}

/// Under `gyrus serve`: syncs each connector when its schedule says, one at
/// a time, until stopped.
pub async fn schedule(connectors: Arc<Connectors>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        match connectors.due(Utc::now()).await {
            Ok(due) => {
                for config in due {
                    if *stop.borrow() {
                        return;
                    }
                    match connectors
                        .sync(None, &config.id, "schedule", &SyncOptions::default())
                        .await
                    {
                        Ok(run) => tracing::info!(connector = %config.id, rows = run.rows,
                            status = ?run.status, "scheduled sync ended"),
                        Err(e) => {
                            tracing::warn!(connector = %config.id, error = %e, "scheduled sync not run")
                        }
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot tell which connectors are due"),
        }
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
