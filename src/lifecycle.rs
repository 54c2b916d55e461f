//! `gyrus tenants`, `gyrus backup` and `gyrus restore`: a tenant's or the
//! whole store's life as one unit.

use std::io::Write;
use std::time::Instant;

use gyrus_engine::backup::Manifest;
use gyrus_engine::{Store, TenantId};

use crate::cli::TenantsCommand;

pub async fn tenants(
    store: &Store,
    command: TenantsCommand,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match command {
        TenantsCommand::List => {
            writeln!(
                out,
                "{:<24} {:>7} {:>14} {:>14}",
                "tenant", "tables", "rows", "bytes"
            )?;
            for tenant in store.tenants().await? {
                let stats = store.table_stats(&tenant).await?;
                let written = stats.iter().filter(|s| s.version.is_some()).count();
                let rows: u64 = stats.iter().map(|s| s.rows).sum();
                let bytes: u64 = stats.iter().map(|s| s.bytes).sum();
                writeln!(out, "{tenant:<24} {written:>7} {rows:>14} {bytes:>14}")?;
            }
            Ok(())
        }
        TenantsCommand::Export { tenant, to } => {
            let tenant = TenantId::new(tenant)?;
            backup(store, &to, Some(&tenant), out).await
        }
        TenantsCommand::Erase { tenant } => {
            let tenant = TenantId::new(tenant)?;
            let started = Instant::now();
            let owners = gyrus_api::state::tenant_rows();
            let report = store.erase_tenant(&tenant, &owners).await?;
            if report.is_empty() {
                writeln!(
                    out,
                    "tenant {tenant} has nothing in this store; nothing removed"
                )?;
                return Ok(());
            }
            writeln!(
                out,
                "{:<40} {:>8} {:>8} {:>14}",
                "removed", "rows", "files", "bytes"
            )?;
            for r in &report.removed {
                writeln!(
                    out,
                    "{:<40} {:>8} {:>8} {:>14}",
                    r.what, r.rows, r.objects, r.bytes
                )?;
            }
            writeln!(
                out,
                "tenant {tenant} erased in {:.1} s",
                started.elapsed().as_secs_f64()
            )?;
            Ok(())
        }
    }
}

pub async fn backup(
    store: &Store,
    to: &str,
    tenant: Option<&TenantId>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let target = Store::open(to).await?;
    let owners = gyrus_api::state::tenant_rows();
    let manifest = store.backup(&target, tenant, &owners).await?;
    summary(
        &manifest,
        "backed up into",
        target.root().as_str(),
        started,
        out,
    )
}

pub async fn restore(store: &Store, from: &str, out: &mut impl Write) -> anyhow::Result<()> {
    let started = Instant::now();
    let source = Store::open(from).await?;
    let owners = gyrus_api::state::tenant_rows();
    let manifest = store.restore(&source, &owners).await?;
    summary(
        &manifest,
        "restored from",
        source.root().as_str(),
        started,
        out,
    )
}

fn summary(
    manifest: &Manifest,
    verb: &str,
    place: &str,
    started: Instant,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    for table in &manifest.tables {
        writeln!(
            out,
            "{:<48} v{:<6} {:>12} rows {:>6} files {:>14} bytes",
            table.path, table.version, table.rows, table.files, table.bytes
        )?;
    }
    let rows: u64 = manifest.tables.iter().map(|t| t.rows).sum();
    let bytes: u64 = manifest.tables.iter().map(|t| t.bytes).sum();
    writeln!(
        out,
        "{} ({} tables, {rows} rows, {bytes} bytes) {verb} {place} in {:.1} s; snapshot {}",
        manifest
            .tenant
            .as_deref()
            .map_or("the whole store".to_string(), |t| format!("tenant {t}")),
        manifest.tables.len(),
        started.elapsed().as_secs_f64(),
        manifest.id
    )?;
    Ok(())
}
