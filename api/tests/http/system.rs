//! The `system` schema over HTTP SQL: every table for an admin, holding its
//! tenant's rows and no other's; refused to reader and writer keys.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use chrono::Utc;
use gyrus_engine::{Role, TenantId};
use gyrus_ingest::connectors::registry::{Connectors, NewConnector, Run, RunStatus};
use gyrus_ingest::connectors::state::RUNS;
use gyrus_ingest::connectors::{Credentials, PlatformId};
use gyrus_ingest::secrets::SecretKey;
use gyrus_models::FamilyId;
use gyrus_models::pipeline::{Silent, TrainOptions, train};
use serde_json::{Value, json};

use crate::support::*;

/// The id inside a key's secret (`gyr_<id>_<secret>`).
fn key_id(secret: &str) -> &str {
    secret.split('_').nth(1).unwrap()
}

/// Runs `query` as `key`; the JSON rows.
async fn rows(api: &Api, key: &str, query: &str) -> Vec<Value> {
    let answer = call(
        &api.app,
        sql(key, "application/json", json!({ "sql": query })),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{query}: {}", answer.json());
    answer.json()["rows"].as_array().unwrap().clone()
}

/// A Stripe connector of `tenant` with a run recorded, as a sync records it.
async fn connector_with_a_run(
    store: &gyrus_engine::Store,
    connectors: &Connectors,
    tenant: &TenantId,
    secret: &str,
) -> String {
    let config = connectors
        .add(
            tenant,
            NewConnector {
                platform: "stripe".parse::<PlatformId>().expect("stripe"),
                account: format!("acct_{tenant}"),
                credentials: Credentials(BTreeMap::from([(
                    "api_key".to_string(),
                    secret.to_string(),
                )])),
                base_url: None,
                auth_url: None,
                start_date: None,
                lookback_days: None,
                schedule_minutes: Some(0),
                settings: BTreeMap::new(),
            },
        )
        .await
        .unwrap();
    let run = Run {
        run_id: format!("run-{tenant}"),
        connector_id: config.id.clone(),
        trigger: "manual".into(),
        status: RunStatus::Succeeded,
        started_at: Utc::now(),
        finished_at: Some(Utc::now()),
        rows: 7,
        error: None,
        report: None,
    };
    RUNS.append(store, &config.id, &run).await.unwrap();
    config.id
}

#[tokio::test]
async fn every_system_table_is_for_admins_and_holds_only_their_tenants_rows() {
    let api = api(|_| {}).await;
    let store = &api.state.store;
    let (acme, globex) = (
        TenantId::new("acme").unwrap(),
        TenantId::new("globex").unwrap(),
    );
    let globex_admin = store.create_key(&globex, Role::Admin).await.unwrap().secret;
    // Both tenants train, have a connector with a run, and query.
    let options = TrainOptions {
        tenants: Some(vec![acme.clone(), globex.clone()]),
        families: vec![FamilyId::Oracle],
        ..TrainOptions::default()
    };
    train(store, &options, std::sync::Arc::new(Silent))
        .await
        .unwrap();
    let connectors = Connectors::new(
        store.clone(),
        Some(SecretKey::from_bytes(&[7; 32]).unwrap()),
    );
    let acme_connector =
        connector_with_a_run(store, &connectors, &acme, "sk_live_acme_secret").await;
    let globex_connector =
        connector_with_a_run(store, &connectors, &globex, "sk_live_globex_secret").await;
    rows(
        &api,
        &api.reader,
        "SELECT count(*) AS acme_marker FROM ad_performance",
    )
    .await;
    let failed = call(
        &api.app,
        sql(
            &api.reader,
            "application/json",
            json!({"sql": "SELECT nope FROM ad_performance"}),
        ),
    )
    .await;
    assert_eq!(failed.status, StatusCode::BAD_REQUEST, "{}", failed.json());
    rows(&api, &api.globex, "SELECT 'globex_marker' AS m").await;
    rows(&api, &globex_admin, "SELECT * FROM system.queries").await;

    // Readers and writers are refused every table, with the reason; their
    // ordinary queries still work.
    for key in [&api.reader, &api.writer, &api.globex] {
        for table in [
            "queries",
            "model_runs",
            "connectors",
            "connector_runs",
            "api_keys",
            "tables",
        ] {
            let answer = call(
                &api.app,
                sql(
                    key,
                    "application/json",
                    json!({"sql": format!("SELECT * FROM system.{table}")}),
                ),
            )
            .await;
            let problem = answer.problem(StatusCode::FORBIDDEN, "forbidden");
            assert!(
                problem["detail"].as_str().unwrap().contains("admin key"),
                "{problem}"
            );
        }
        // Catalog browsers are not shown tables the key cannot read.
        let listed = rows(
            &api,
            key,
            "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'system'",
        )
        .await;
        assert_eq!(listed[0]["n"], 0);
    }
    let listed = rows(
        &api,
        &api.admin,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'system' ORDER BY 1",
    )
    .await;
    assert_eq!(
        listed
            .iter()
            .map(|r| r["table_name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        [
            "api_keys",
            "connector_runs",
            "connectors",
            "model_runs",
            "queries",
            "tables"
        ]
    );

    let everything = |rows: &[Value]| serde_json::to_string(rows).unwrap();
    // system.queries: this tenant's queries on HTTP with key, rows, status
    // and error; not globex's, not the refused ones' text from globex.
    let queries = rows(
        &api,
        &api.admin,
        "SELECT * FROM system.queries ORDER BY started_at",
    )
    .await;
    let marker = queries
        .iter()
        .find(|q| q["sql"].as_str().unwrap().contains("acme_marker"))
        .expect("the reader's query is recorded");
    assert_eq!(marker["surface"], "http");
    assert_eq!(marker["key_id"], key_id(&api.reader));
    assert_eq!(marker["status"], "ok");
    assert_eq!(marker["rows"], 1);
    assert!(marker["bytes"].as_u64().unwrap() > 0);
    let error = queries
        .iter()
        .find(|q| q["sql"].as_str().unwrap().contains("nope"))
        .expect("the failed query is recorded");
    assert_eq!(error["status"], "error");
    assert!(error["error"].as_str().unwrap().contains("nope"), "{error}");
    // The refused reads are recorded as errors too.
    assert!(
        queries
            .iter()
            .any(|q| q["status"] == "error" && q["error"].as_str().unwrap().contains("admin key"))
    );
    // The query reading the log sees itself running.
    let last = queries.last().unwrap();
    assert_eq!(last["status"], "running");
    assert_eq!(last["key_id"], key_id(&api.admin));
    assert!(!everything(&queries).contains("globex_marker"));
    assert!(!everything(&queries).contains(key_id(&api.globex)));

    // system.model_runs: acme's one ORACLE run, serving, no model blob.
    let runs = rows(&api, &api.admin, "SELECT * FROM system.model_runs").await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["family"], "oracle");
    assert_eq!(runs[0]["serving"], true);
    assert_eq!(runs[0]["run_id"], "oracle-v1");
    let inputs: Value = serde_json::from_str(runs[0]["input_versions"].as_str().unwrap()).unwrap();
    assert!(inputs.get("ad_performance").is_some(), "{inputs}");
    assert!(!runs[0].as_object().unwrap().contains_key("model"));
    let globex_runs = rows(&api, &globex_admin, "SELECT run_id FROM system.model_runs").await;
    assert_eq!(globex_runs.len(), 1);

    // system.connectors and connector_runs: acme's, without credentials.
    let listed = rows(&api, &api.admin, "SELECT * FROM system.connectors").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["connector_id"], acme_connector.as_str());
    assert_eq!(listed[0]["platform"], "stripe");
    assert_eq!(listed[0]["last_run_status"], "succeeded");
    let connector_runs = rows(&api, &api.admin, "SELECT * FROM system.connector_runs").await;
    assert_eq!(connector_runs.len(), 1, "{connector_runs:?}");
    assert_eq!(connector_runs[0]["connector_id"], acme_connector.as_str());
    assert_eq!(connector_runs[0]["rows"], 7);
    for text in [everything(&listed), everything(&connector_runs)] {
        assert!(!text.contains("sk_live"), "{text}");
        assert!(!text.contains(&globex_connector), "{text}");
    }

    // system.api_keys: acme's three keys, no secrets or hashes.
    let keys = rows(
        &api,
        &api.admin,
        "SELECT * FROM system.api_keys ORDER BY created_at",
    )
    .await;
    let ids: Vec<&str> = keys.iter().map(|k| k["key_id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [key_id(&api.reader), key_id(&api.writer), key_id(&api.admin)]
    );
    assert_eq!(
        keys.iter()
            .map(|k| k["role"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["reader", "writer", "admin"]
    );
    assert_eq!(
        keys[0].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["created_at", "key_id", "revoked_at", "role"]
    );
    for secret in [&api.reader, &api.writer, &api.admin] {
        assert!(!everything(&keys).contains(secret.rsplit('_').next().unwrap()));
    }

    // system.tables: the ten tables; ad_performance as written.
    let tables = rows(
        &api,
        &api.admin,
        "SELECT * FROM system.tables WHERE table_name = 'ad_performance'",
    )
    .await;
    assert_eq!(tables.len(), 1);
    assert_eq!(tables[0]["rows"], 30);
    let stored = store
        .table(&acme, gyrus_engine::schema::CanonicalTable::AdPerformance)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tables[0]["version"], stored.version().unwrap());
    assert!(tables[0]["files"].as_u64().unwrap() >= 1);
    assert!(tables[0]["last_write"].as_str().is_some());
    let all = rows(&api, &api.admin, "SELECT count(*) AS n FROM system.tables").await;
    assert_eq!(all[0]["n"], 10);
    // Joins with the tenant's own tables work like any SQL.
    let joined = rows(
        &api,
        &api.admin,
        "SELECT t.rows, count(*) AS n FROM system.tables t JOIN ad_performance a ON t.table_name = 'ad_performance' GROUP BY t.rows",
    )
    .await;
    assert_eq!(joined[0]["n"], 30);
}
