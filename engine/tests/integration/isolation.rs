//! A session of tenant A cannot reach tenant B's rows or `_system` by any route.

use crate::common::*;
use gyrus_engine::datafusion::arrow::util::pretty::pretty_format_batches;
use gyrus_engine::schema::CanonicalTable;
use gyrus_engine::{Role, SessionLimits, Store, TenantId, WriteRequest};

/// A store with tenants `alpha` and `beta`; beta's campaign ids carry a marker.
async fn two_tenants() -> (tempfile::TempDir, Store, TenantId, TenantId) {
    let (dir, store) = temp_store().await;
    let (alpha, beta) = (tenant("alpha"), tenant("beta"));
    let table = CanonicalTable::AdPerformance;
    store
        .write(
            &alpha,
            WriteRequest::append(
                table,
                vec![batch(&rows("a", "alpha-c", day(2026, 1, 1), 5, 2, 1))],
            ),
        )
        .await
        .unwrap();
    store
        .write(
            &beta,
            WriteRequest::append(
                table,
                vec![batch(&rows("b", "BETA-SECRET", day(2026, 1, 1), 5, 2, 1))],
            ),
        )
        .await
        .unwrap();
    store.create_key(&beta, Role::Admin).await.unwrap();
    (dir, store, alpha, beta)
}

/// Runs `sql` as `alpha`; returns the rendered result, or the error.
async fn as_alpha(store: &Store, alpha: &TenantId, sql: &str) -> Result<String, String> {
    let session = store
        .session(alpha, &SessionLimits::default())
        .await
        .unwrap();
    match session.query(sql).await {
        Ok(batches) => Ok(pretty_format_batches(&batches).unwrap().to_string()),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test]
async fn other_tenants_and_system_tables_are_unreachable() {
    let (dir, store, alpha, _beta) = two_tenants().await;
    let root = dir.path().display().to_string();
    let beta_table = format!("{root}/tenants/beta/ad_performance");
    let beta_file = std::fs::read_dir(&beta_table)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap()
        .display()
        .to_string();
    let keys_table = format!("{root}/_system/api_keys");

    // Own data is there.
    let own = as_alpha(
        &store,
        &alpha,
        "SELECT DISTINCT campaign_id FROM ad_performance",
    )
    .await
    .unwrap();
    assert!(own.contains("alpha-c") && !own.contains("BETA"));

    let attempts = [
        // Other catalogs, schemas and tenant names.
        "SELECT * FROM beta.ad_performance".to_string(),
        "SELECT * FROM gyrus.beta.ad_performance".to_string(),
        "SELECT * FROM datafusion.public.ad_performance".to_string(),
        "SELECT * FROM tenants.beta.ad_performance".to_string(),
        "SELECT * FROM \"beta/ad_performance\"".to_string(),
        "SELECT * FROM \"../beta/ad_performance\"".to_string(),
        // The system tables.
        "SELECT * FROM api_keys".to_string(),
        "SELECT * FROM _system.api_keys".to_string(),
        // Paths and URLs as table names.
        format!("SELECT * FROM '{beta_file}'"),
        format!("SELECT * FROM '{beta_table}'"),
        format!("SELECT * FROM 'file://{beta_file}'"),
        format!("SELECT * FROM '{keys_table}'"),
        // File-reading table functions.
        format!("SELECT * FROM read_parquet('{beta_file}')"),
        format!("SELECT * FROM read_csv('{beta_file}')"),
        format!("SELECT * FROM parquet_metadata('{beta_file}')"),
        // DDL that would map files in.
        format!("CREATE EXTERNAL TABLE stolen STORED AS PARQUET LOCATION '{beta_table}'"),
        format!("CREATE VIEW v AS SELECT * FROM '{beta_file}'"),
        "CREATE VIEW v AS SELECT * FROM ad_performance".to_string(),
        // Unions and subqueries that reach out.
        "SELECT campaign_id FROM ad_performance UNION ALL SELECT campaign_id FROM beta.ad_performance".to_string(),
        format!("SELECT * FROM ad_performance WHERE campaign_id IN (SELECT campaign_id FROM '{beta_file}')"),
        format!("WITH x AS (SELECT * FROM '{beta_file}') SELECT * FROM x"),
        // Settings that could open doors.
        "SET datafusion.catalog.default_catalog = 'beta'".to_string(),
        format!("COPY (SELECT * FROM ad_performance) TO '{root}/tenants/beta/ad_performance/x.parquet'"),
    ];
    for sql in &attempts {
        match as_alpha(&store, &alpha, sql).await {
            Ok(out) => panic!("alpha ran `{sql}`:\n{out}"),
            Err(e) => assert!(
                !e.contains("BETA-SECRET"),
                "{sql} leaked through its error: {e}"
            ),
        }
    }
}

#[tokio::test]
async fn information_schema_shows_only_the_tenants_tables() {
    let (_dir, store, alpha, _beta) = two_tenants().await;
    let tables = as_alpha(
        &store,
        &alpha,
        "SELECT table_catalog, table_schema, table_name FROM information_schema.tables ORDER BY 1, 2, 3",
    )
    .await
    .unwrap();
    for table in CanonicalTable::ALL {
        assert!(tables.contains(table.name()), "{table} missing:\n{tables}");
    }
    for foreign in ["beta", "api_keys", "_system", "datafusion"] {
        assert!(!tables.contains(foreign), "`{foreign}` visible:\n{tables}");
    }
    let listed = as_alpha(&store, &alpha, "SHOW TABLES").await.unwrap();
    assert!(!listed.contains("beta") && !listed.contains("api_keys"));
    // Plain data in alpha's columns never includes beta's rows, whatever the query shape.
    let everything = as_alpha(
        &store,
        &alpha,
        "SELECT campaign_id FROM ad_performance UNION SELECT table_name FROM information_schema.columns",
    )
    .await
    .unwrap();
    assert!(!everything.contains("BETA-SECRET"));
}

#[tokio::test]
async fn tenant_ids_cannot_walk_the_tree() {
    let (_dir, store) = temp_store().await;
    for bad in ["../beta", "beta/..", "_system", "BETA", ""] {
        assert!(TenantId::new(bad).is_err(), "{bad}");
    }
    let ghost = tenant("ghost");
    // A tenant with no data sees empty tables, and opening them creates nothing.
    assert_eq!(
        scalar(&store, &ghost, "SELECT count(*) FROM ad_performance").await,
        "0"
    );
    assert!(store.tenants().await.unwrap().is_empty());
}
