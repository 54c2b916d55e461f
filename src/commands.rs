//! What each command does; `main` only parses, sets up logging and reports errors.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use gyrus_datasets::{GeneratorConfig, Scale, generate};
use gyrus_engine::schema::CanonicalTable;
use gyrus_engine::{Role, Slice, Store, TenantId, WriteRequest};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::cli::{Command, KeysCommand, ServeArgs};
use crate::connectors;
use crate::output;
use crate::settings::Settings;
use crate::training;
use gyrus_models::pipeline::TrainOptions;

pub async fn run(command: Command, settings: &Settings) -> anyhow::Result<()> {
    // Allocation reads no store: it solves the curves it is given.
    if let Command::Allocate { input } = &command {
        return crate::allocation::run(input, &mut std::io::stdout().lock());
    }
    let store = Store::open(&settings.data).await?;
    let mut out = std::io::stdout().lock();
    match command {
        Command::Demo {
            scale,
            no_serve,
            no_train,
            tenants,
            serve: serve_args,
        } => {
            demo(&store, scale, &tenants, !no_train, &mut out).await?;
            if no_serve {
                return Ok(());
            }
            drop(out);
            serve(store, &serve_args, settings).await
        }
        Command::Train {
            tenant,
            family,
            horizon,
            monthly_discount_rate,
            holdout_days,
            anomaly_alpha,
            json,
        } => {
            let mut options = TrainOptions {
                tenants: tenant.map(TenantId::new).transpose()?.map(|t| vec![t]),
                families: training::families(&family)?,
                ..TrainOptions::default()
            };
            options.oracle.horizon = horizon;
            options.memory.monthly_discount_rate = monthly_discount_rate;
            options.memory.holdout_days = holdout_days;
            options.curiosity.sensitivity.alpha = anomaly_alpha;
            training::run_train(&store, options, json, &mut out).await
        }
        Command::Allocate { .. } => Ok(()),
        Command::Serve { serve: serve_args } => {
            drop(out);
            serve(store, &serve_args, settings).await
        }
        Command::Sql {
            tenant,
            format,
            limits,
            sql,
        } => {
            let tenant = TenantId::new(tenant)?;
            // The operator's CLI reads the `system` tables as an admin.
            let system = gyrus_engine::system::SystemCatalog::new(&store);
            gyrus_api::state::add_system_views(&system, &store);
            let operator = gyrus_engine::system::Asker {
                surface: gyrus_engine::system::Surface::Cli,
                key_id: None,
                role: gyrus_engine::Role::Admin,
            };
            let session = store
                .session(&tenant, &settings.limits(&limits)?)
                .await?
                .with_system(&system, operator)?;
            let answer = session.query(&sql).await;
            // The query goes to the stored log whether it worked or not.
            if let Err(e) = system.queries().flush().await {
                tracing::warn!(error = %e, "the query was not recorded in system.queries");
            }
            let mut batches = answer?;
            if batches.is_empty() {
                // No rows: still print the header, from the plan's schema.
                let schema = session.plan(&sql).await?.schema().inner().clone();
                batches
                    .push(gyrus_engine::datafusion::arrow::array::RecordBatch::new_empty(schema));
            }
            output::print(&batches, format, &mut out)
        }
        Command::Ingest {
            tenant,
            table,
            idempotency_key,
            replace_from,
            replace_to,
            matches,
            files,
        } => {
            let tenant = TenantId::new(tenant)?;
            let table: CanonicalTable = table.parse()?;
            let mut batches = Vec::new();
            let mut hasher = Sha256::new();
            hasher.update(table.name());
            for file in &files {
                // Read once: the same bytes are hashed (the default idempotency key) and parsed.
                let bytes =
                    std::fs::read(file).map_err(|source| gyrus_ingest::IngestError::Open {
                        path: file.display().to_string(),
                        source,
                    })?;
                hasher.update(Sha256::digest(&bytes));
                batches.extend(gyrus_ingest::read_bytes(table, file, bytes.into())?);
            }
            let key = idempotency_key
                .unwrap_or_else(|| format!("files:{}", hex::encode(hasher.finalize())));
            let mut request =
                WriteRequest::append(table, batches).with_idempotency_key(key.clone());
            if let (Some(from), Some(to)) = (replace_from, replace_to) {
                let equals = matches
                    .iter()
                    .map(|m| {
                        m.split_once('=')
                            .map(|(c, v)| (c.trim().to_string(), v.to_string()))
                            .with_context(|| format!("--match takes COLUMN=VALUE, got `{m}`"))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                request = request.replacing(Slice { equals, from, to });
            }
            let outcome = store.write(&tenant, request).await?;
            if outcome.already_applied {
                writeln!(
                    out,
                    "already ingested (idempotency key {key}); nothing was written"
                )?;
            } else {
                writeln!(
                    out,
                    "wrote {} rows to {tenant}.{table} (Delta version {})",
                    outcome.rows, outcome.version
                )?;
            }
            Ok(())
        }
        Command::Keys { command } => keys(&store, command, &mut out).await,
        Command::Connectors { command } => connectors::run(&store, command, &mut out).await,
        Command::Tables { tenant } => {
            let tenant = TenantId::new(tenant)?;
            writeln!(
                out,
                "{:<16} {:>12} {:>7} {:>14} {:>8}",
                "table", "rows", "files", "bytes", "version"
            )?;
            for s in store.table_stats(&tenant).await? {
                let version = s.version.map_or("-".to_string(), |v| v.to_string());
                writeln!(
                    out,
                    "{:<16} {:>12} {:>7} {:>14} {:>8}",
                    s.table.name(),
                    s.rows,
                    s.files,
                    s.bytes,
                    version
                )?;
            }
            Ok(())
        }
        Command::Optimize { tenant } => {
            // The whole deployment includes the system tables all tenants share.
            let deployment = tenant.is_none();
            for tenant in tenants(&store, tenant).await? {
                for r in store.optimize(&tenant).await? {
                    writeln!(
                        out,
                        "{tenant}.{}: {} files compacted into {}",
                        r.table, r.files_removed, r.files_added
                    )?;
                }
                for (rollup, rows) in store.rebuild_rollups(&tenant).await? {
                    writeln!(out, "{tenant}.{rollup}: rollup rebuilt, {rows} rows")?;
                }
            }
            if deployment {
                for r in store.optimize_system().await? {
                    writeln!(
                        out,
                        "_system.{}: {} files compacted into {}",
                        r.name, r.files_removed, r.files_added
                    )?;
                }
            }
            Ok(())
        }
        Command::Tenants { command } => crate::lifecycle::tenants(&store, command, &mut out).await,
        Command::Backup { to, tenant } => {
            let tenant = tenant.map(TenantId::new).transpose()?;
            crate::lifecycle::backup(&store, &to, tenant.as_ref(), &mut out).await
        }
        Command::Restore { from } => crate::lifecycle::restore(&store, &from, &mut out).await,
        Command::Vacuum {
            tenant,
            retention_hours,
        } => {
            let deployment = tenant.is_none();
            let retention = Duration::from_secs(retention_hours.saturating_mul(3600));
            for tenant in tenants(&store, tenant).await? {
                for r in store.vacuum(&tenant, retention).await? {
                    writeln!(
                        out,
                        "{tenant}.{}: {} files deleted",
                        r.table, r.files_deleted
                    )?;
                }
            }
            if deployment {
                for r in store.vacuum_system(retention).await? {
                    write!(out, "_system.{}: {} files deleted", r.name, r.files_deleted)?;
                    if r.rows_expired > 0 {
                        write!(out, " ({} expired rows deleted first)", r.rows_expired)?;
                    }
                    writeln!(out)?;
                }
            }
            Ok(())
        }
    }
}

async fn tenants(store: &Store, tenant: Option<String>) -> anyhow::Result<Vec<TenantId>> {
    Ok(match tenant {
        Some(t) => vec![TenantId::new(t)?],
        None => store.tenants().await?,
    })
}

async fn keys(
    store: &Store,
    command: KeysCommand,
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create { tenant, role } => {
            let tenant = TenantId::new(tenant)?;
            let role: Role = role.parse()?;
            let created = store.create_key(&tenant, role).await?;
            writeln!(
                out,
                "created key {} for tenant {tenant} with role {role}",
                created.key.id
            )?;
            writeln!(out, "the secret is shown once; store it now:")?;
            writeln!(out, "{}", created.secret)?;
        }
        KeysCommand::List => {
            writeln!(
                out,
                "{:<14} {:<20} {:<8} {:<22} status",
                "id", "tenant", "role", "created"
            )?;
            for key in store.list_keys().await? {
                let status = key.revoked_at.map_or("active".to_string(), |t| {
                    format!("revoked {}", t.format("%Y-%m-%d %H:%M"))
                });
                writeln!(
                    out,
                    "{:<14} {:<20} {:<8} {:<22} {status}",
                    key.id,
                    key.tenant,
                    key.role,
                    key.created_at.format("%Y-%m-%d %H:%M:%S")
                )?;
            }
        }
        KeysCommand::Revoke { id } => {
            let key = store.revoke_key(&id).await?;
            writeln!(
                out,
                "revoked key {} (tenant {}, role {})",
                key.id, key.tenant, key.role
            )?;
        }
    }
    Ok(())
}

fn progress(len: u64, message: String) -> ProgressBar {
    let bar = ProgressBar::new(len).with_message(message);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {msg:<32} [{bar:30}] {pos}/{len} writes ({elapsed})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Serves Flight SQL and the HTTP API until SIGTERM or Ctrl-C; prints both
/// addresses once listening.
async fn serve(store: Store, args: &ServeArgs, settings: &Settings) -> anyhow::Result<()> {
    let limits = settings.limits(&args.limits)?;
    let mut config = gyrus_flight::ServerConfig::new(args.flight_addr);
    config.service.limits = limits.clone();
    config.service.max_ingest_bytes = args.max_ingest_mb.max(1) << 20;
    config.service.max_bound_rows = args.max_bound_rows.max(1);
    config.service.max_unclaimed_per_key = args.max_unclaimed_per_key.max(1);
    config.service.max_prepared_per_key = args.max_prepared_per_key.max(1);
    let max_concurrent = args.max_concurrent.max(1);
    let admission = gyrus_engine::admission::AdmissionConfig {
        key_rate: gyrus_engine::admission::RateLimit {
            per_second: args.rate_limit,
            burst: args.rate_burst,
        },
        tenant_rate: gyrus_engine::admission::RateLimit {
            per_second: args.tenant_rate_limit,
            burst: args.tenant_rate_limit * 2.0,
        },
        max_concurrent,
        max_concurrent_per_tenant: args
            .max_concurrent_per_tenant
            .unwrap_or(max_concurrent.div_ceil(2)),
        max_concurrent_ingests: args.max_concurrent_ingests.max(1),
        max_concurrent_ingests_per_tenant: args.max_concurrent_ingests.max(1).div_ceil(2),
    };
    config.service.admission = admission;
    config.shutdown_grace = Duration::from_secs(args.shutdown_grace_secs);
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.tls = Some(gyrus_flight::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        });
    }
    let api_config = gyrus_api::ApiConfig {
        limits,
        max_body_bytes: args.max_body_mb.max(1) << 20,
        json_byte_cap: args.json_max_mb.max(1) << 20,
        admission,
        request_timeout: Duration::from_secs(args.request_timeout_secs.max(1)),
        allow_connector_urls: args.allow_connector_urls,
        ..Default::default()
    };
    // One key ring and one table cache for both servers.
    let caches = gyrus_engine::ServerCaches::new(
        &store,
        api_config.keys,
        api_config.catalog_max_age,
        admission,
    );
    config.caches = Some(caches.clone());
    let flight_listener = tokio::net::TcpListener::bind(args.flight_addr)
        .await
        .with_context(|| format!("cannot listen on {} (Flight SQL)", args.flight_addr))?;
    let http_listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("cannot listen on {} (HTTP)", args.http_addr))?;
    let scheme = if config.tls.is_some() {
        "grpc+tls"
    } else {
        "grpc"
    };
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "Flight SQL: {scheme}://{}",
            flight_listener.local_addr()?
        )?;
        writeln!(out, "HTTP API: http://{}", http_listener.local_addr()?)?;
        writeln!(out, "data: {}", store.root())?;
        out.flush()?;
    }
    // One signal stops both servers.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    tokio::spawn(training::schedule(
        store.clone(),
        args.retrain_every,
        args.retrain_min_gap,
        stopped.clone(),
    ));
    let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let connectors = Arc::new(connectors::open(&store)?);
    tokio::spawn(connectors::schedule(connectors.clone(), stopped.clone()));
    let query_log = caches.system.queries().clone();
    tokio::spawn(upkeep(store.clone(), query_log.clone(), stopped.clone()));
    let http_state =
        gyrus_api::AppState::sharing(store.clone(), caches, api_config).with_connectors(connectors);
    let (flight, http) = tokio::join!(
        gyrus_flight::serve_on(
            flight_listener,
            store,
            config,
            until_stopped(stopped.clone())
        ),
        gyrus_api::serve_on(http_listener, http_state, until_stopped(stopped)),
    );
    // The last queries, answered while the servers drained.
    if let Err(e) = query_log.flush().await {
        tracing::warn!(error = %e, "the last queries were not stored");
    }
    flight?;
    http.context("HTTP API")?;
    Ok(())
}

/// How often `gyrus serve` stores its finished queries.
const FLUSH_QUERIES_EVERY: Duration = Duration::from_secs(5);
/// How often `gyrus serve` compacts the system tables and expires old queries.
const MAINTAIN_SYSTEM_EVERY: Duration = Duration::from_secs(3600);
/// The files of system tables' older versions kept for readers (Delta's default).
const SYSTEM_FILE_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Under `gyrus serve`: stores the query log in batches, and every hour
/// compacts the system tables (which grow by small commits), expires old
/// queries and deletes unreferenced files. Errors are logged, never fatal.
async fn upkeep(
    store: Store,
    log: Arc<gyrus_engine::system::QueryLog>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut maintained = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(FLUSH_QUERIES_EVERY) => {}
            _ = log.filled() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if let Err(e) = log.flush().await {
            tracing::warn!(error = %e, "queries not stored yet; retrying later");
        }
        if maintained.elapsed() < MAINTAIN_SYSTEM_EVERY {
            continue;
        }
        maintained = Instant::now();
        let upkept = async {
            let compacted = store.optimize_system().await?;
            let vacuumed = store.vacuum_system(SYSTEM_FILE_RETENTION).await?;
            Ok::<_, gyrus_engine::EngineError>((compacted, vacuumed))
        };
        match upkept.await {
            Ok((compacted, vacuumed)) => tracing::info!(
                files_compacted = compacted.iter().map(|r| r.files_removed).sum::<u64>(),
                files_deleted = vacuumed.iter().map(|r| r.files_deleted).sum::<usize>(),
                queries_expired = vacuumed.iter().map(|r| r.rows_expired).sum::<u64>(),
                "system tables maintained"
            ),
            Err(e) => tracing::warn!(error = %e, "system table maintenance failed"),
        }
    }
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn demo(
    store: &Store,
    scale: Scale,
    tenants: &[String],
    train: bool,
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut loaded = Vec::new();
    for name in tenants {
        let tenant = TenantId::new(name.as_str())?;
        let spinner = ProgressBar::new_spinner()
            .with_message(format!("generating {scale} data for {tenant}"));
        spinner.enable_steady_tick(Duration::from_millis(120));
        let config = GeneratorConfig::for_tenant(tenant.as_str(), scale);
        let dataset = tokio::task::spawn_blocking(move || generate(&config))
            .await
            .context("the generator stopped")?;
        spinner.finish_and_clear();
        let mut bar: Option<ProgressBar> = None;
        let report = dataset
            .load(store, &tenant, |step| {
                let bar = bar
                    .get_or_insert_with(|| progress(step.of as u64, format!("loading {tenant}")));
                bar.set_position(step.index as u64 - 1);
            })
            .await?;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let rows: usize = report.rows_written.iter().map(|(_, r)| r).sum();
        writeln!(
            out,
            "{tenant}: {} ad_performance rows, {} orders, {} deals{}",
            dataset.ad_rows(),
            dataset.orders.num_rows(),
            dataset.crm_deals.num_rows(),
            if rows == 0 { " (already loaded)" } else { "" }
        )?;
        loaded.push(tenant);
    }
    writeln!(
        out,
        "data in {} ({:.1} s)",
        store.root(),
        started.elapsed().as_secs_f64()
    )?;
    if train && !loaded.is_empty() {
        // So that `SELECT * FROM forecasts` (and insights, customer_scores) answers right away.
        let options = TrainOptions {
            tenants: Some(loaded.clone()),
            ..TrainOptions::default()
        };
        training::run_train(store, options, false, out).await?;
    }
    if let Some(first) = loaded.first() {
        let key = store.create_key(first, Role::Admin).await?;
        writeln!(out)?;
        writeln!(out, "Try:")?;
        for example in [
            "SELECT platform, sum(spend) AS spend, sum(conversions) AS conversions, sum(spend) / sum(conversions) AS cpa FROM ad_performance GROUP BY platform ORDER BY spend DESC",
            "SELECT date, sum(clicks) AS clicks FROM ad_performance WHERE date >= DATE '2026-10-01' GROUP BY date ORDER BY date",
            "SELECT status, count(*) AS orders, sum(amount) AS amount FROM orders GROUP BY status",
            "SELECT date, yhat, yhat_lower, yhat_upper FROM forecasts WHERE entity_type = 'business' AND metric = 'revenue' AND interval_level = 0.8 ORDER BY date",
            "SELECT rfm_segment, count(*) AS customers, avg(clv_365d) AS mean_clv, avg(p_alive) AS p_alive FROM customer_scores GROUP BY rfm_segment ORDER BY mean_clv DESC",
            "SELECT date, kind, metric, round(severity, 2) AS severity, explanation FROM insights WHERE kind IN ('anomaly', 'changepoint', 'mover') ORDER BY date DESC, severity DESC LIMIT 10",
            "SELECT entity_id, current_spend, recommended_spend, round(expected_current, 1) AS conversions_now, round(expected_recommended, 1) AS conversions_planned FROM budget_plans WHERE plan_id = 'automatic' ORDER BY recommended_spend - current_spend DESC LIMIT 10",
        ] {
            writeln!(out, "  gyrus sql --tenant {first} \"{example}\"")?;
        }
        writeln!(out)?;
        writeln!(out, "Admin API key for {first} (shown once):")?;
        writeln!(out, "{}", key.secret)?;
    }
    Ok(())
}
