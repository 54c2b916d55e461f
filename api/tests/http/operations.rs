//! Limits (rate, concurrency, time), metrics, and the OpenAPI document.

use axum::http::StatusCode;
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::support::*;

#[tokio::test]
async fn each_key_has_its_own_rate_limit_with_retry_after() {
    let api = api(|c| {
        c.admission.key_rate = gyrus_engine::admission::RateLimit {
            per_second: 0.2,
            burst: 3.0,
        }
    })
    .await;
    for _ in 0..3 {
        let ok = call(&api.app, get("/api/v1/tables", Some(&api.reader))).await;
        assert_eq!(ok.status, StatusCode::OK);
    }
    let limited = call(&api.app, get("/api/v1/tables", Some(&api.reader))).await;
    limited.problem(StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    assert_eq!(limited.retry_after, Some(5));
    // Another key, and the unauthenticated operations routes, are not held back.
    assert_eq!(
        call(&api.app, get("/api/v1/tables", Some(&api.writer)))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        call(&api.app, get("/healthz", None)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn past_the_concurrency_limit_requests_get_503_until_a_body_is_done() {
    let api = api(|c| c.admission.max_concurrent = 1).await;
    let query = json!({"sql": "SELECT * FROM ad_performance"});
    // A streamed answer whose body is not read yet holds the one slot.
    let held = api
        .app
        .clone()
        .oneshot(sql(&api.reader, "text/csv", query.clone()))
        .await
        .unwrap();
    assert_eq!(held.status(), StatusCode::OK);
    let refused = call(&api.app, sql(&api.reader, "text/csv", query.clone())).await;
    refused.problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(refused.retry_after, Some(1));
    // Health stays answerable under load.
    assert_eq!(
        call(&api.app, get("/healthz", None)).await.status,
        StatusCode::OK
    );
    let body = held.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(String::from_utf8_lossy(&body).lines().count(), 31);
    let after = call(&api.app, sql(&api.reader, "text/csv", query)).await;
    assert_eq!(after.status, StatusCode::OK);
}

#[tokio::test]
async fn one_tenant_holding_its_slots_leaves_others_theirs() {
    let api = api(|c| {
        c.admission.max_concurrent = 3;
        c.admission.max_concurrent_per_tenant = 2;
    })
    .await;
    let query = json!({"sql": "SELECT * FROM ad_performance"});
    // acme holds both of its slots with streamed answers not yet read.
    let mut held = Vec::new();
    for _ in 0..2 {
        let answer = api
            .app
            .clone()
            .oneshot(sql(&api.reader, "text/csv", query.clone()))
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        held.push(answer);
    }
    let refused = call(&api.app, sql(&api.writer, "text/csv", query.clone())).await;
    let problem = refused.problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(
        problem["detail"].as_str().unwrap().contains("this tenant"),
        "{problem}"
    );
    assert_eq!(refused.retry_after, Some(1));
    // globex still gets its answer, and health still answers.
    others_are_served(&api).await;
    drop(held);
    let after = call(&api.app, sql(&api.reader, "text/csv", query)).await;
    assert_eq!(after.status, StatusCode::OK);
}

#[tokio::test]
async fn a_tenant_is_rate_limited_over_all_its_keys() {
    let api = api(|c| {
        c.admission.tenant_rate = gyrus_engine::admission::RateLimit {
            per_second: 0.2,
            burst: 4.0,
        }
    })
    .await;
    for key in [&api.reader, &api.writer, &api.admin, &api.reader] {
        let ok = call(&api.app, get("/api/v1/tables", Some(key))).await;
        assert_eq!(ok.status, StatusCode::OK);
    }
    let limited = call(&api.app, get("/api/v1/tables", Some(&api.writer))).await;
    let problem = limited.problem(StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    assert!(
        problem["detail"].as_str().unwrap().contains("tenant"),
        "{problem}"
    );
    assert_eq!(
        call(&api.app, get("/api/v1/tables", Some(&api.globex)))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_request_past_its_time_limit_gets_504() {
    let api = api(|c| c.request_timeout = std::time::Duration::ZERO).await;
    call(&api.app, get("/api/v1/tables", Some(&api.reader)))
        .await
        .problem(StatusCode::GATEWAY_TIMEOUT, "timeout");
}

#[tokio::test]
async fn metrics_count_requests_errors_queries_and_rows() {
    let api = api(|_| {}).await;
    let query = json!({"sql": "SELECT * FROM ad_performance"});
    assert_eq!(
        call(
            &api.app,
            sql(&api.reader, "application/json", query.clone())
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        call(&api.app, sql(&api.reader, "text/csv", query))
            .await
            .status,
        StatusCode::OK
    );
    call(&api.app, get("/api/v1/tables", None))
        .await
        .problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let ndjson = r#"{"platform":"google_ads","account_id":"m","campaign_id":"m","campaign_name":"n","channel":"search","date":"2026-04-01","impressions":10,"clicks":1,"spend":"1.50","currency":"USD","conversions":0,"conversion_value":0}"#;
    let pushed = call(
        &api.app,
        request(
            "POST",
            "/api/v1/tables/ad_performance/rows",
            Some(&api.writer),
            Some("application/x-ndjson"),
            ndjson,
        ),
    )
    .await;
    assert_eq!(pushed.status, StatusCode::CREATED);
    let metrics = call(&api.app, get("/metrics", None)).await;
    assert!(
        metrics
            .content_type
            .starts_with("text/plain; version=0.0.4")
    );
    let text = String::from_utf8(metrics.body.to_vec()).unwrap();
    for line in [
        "gyrus_http_requests_total{route=\"/api/v1/sql\",method=\"POST\",status=\"200\"} 2",
        "gyrus_http_requests_total{route=\"/api/v1/tables\",method=\"GET\",status=\"401\"} 1",
        "gyrus_http_requests_total{route=\"/api/v1/tables/{table}/rows\",method=\"POST\",status=\"201\"} 1",
        "gyrus_http_request_duration_seconds_count{route=\"/api/v1/sql\"} 2",
        "gyrus_http_errors_total{kind=\"unauthorized\"} 1",
        "gyrus_sql_queries_total 2",
        "gyrus_rows_returned_total 60",
        "gyrus_rows_ingested_total 1",
    ] {
        assert!(text.contains(line), "missing `{line}` in\n{text}");
    }
}

/// A path of the document with its parameters filled in.
fn concrete(path: &str) -> String {
    path.replace("{table}", "ad_performance")
        .replace("{id}", "000000000000")
}

#[tokio::test]
async fn the_openapi_document_is_3_1_and_every_documented_route_is_served() {
    let api = api(|_| {}).await;
    let doc = call(&api.app, get("/api/v1/openapi.json", None))
        .await
        .json();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            operations.push((method.to_uppercase(), path.clone()));
        }
    }
    operations.sort();
    let expected = [
        ("DELETE", "/api/v1/connectors/{id}"),
        ("DELETE", "/api/v1/keys/{id}"),
        ("GET", "/api/v1/connectors"),
        ("GET", "/api/v1/connectors/{id}"),
        ("GET", "/api/v1/curiosity/insights"),
        ("GET", "/api/v1/keys"),
        ("GET", "/api/v1/memory/customers/{id}"),
        ("GET", "/api/v1/memory/leads"),
        ("GET", "/api/v1/memory/segments"),
        ("GET", "/api/v1/models/runs"),
        ("GET", "/api/v1/openapi.json"),
        ("GET", "/api/v1/reflexes/pacing"),
        ("GET", "/api/v1/tables"),
        ("GET", "/api/v1/tables/{table}"),
        ("GET", "/docs"),
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("GET", "/readyz"),
        ("POST", "/api/v1/connectors"),
        ("POST", "/api/v1/connectors/{id}/sync"),
        ("POST", "/api/v1/curiosity/drivers"),
        ("POST", "/api/v1/keys"),
        ("POST", "/api/v1/memory/score"),
        ("POST", "/api/v1/oracle/forecast"),
        ("POST", "/api/v1/reflexes/bandit"),
        ("POST", "/api/v1/reflexes/budget"),
        ("POST", "/api/v1/sql"),
        ("POST", "/api/v1/tables/{table}/rows"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(operations, expected);
    let mut ids: Vec<&str> = paths
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .map(|op| op["operationId"].as_str().unwrap())
        .collect();
    ids.sort();
    let count = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), count, "operation ids are unique: {ids:?}");
    // Each is routed: whatever the answer, it is not "no such route".
    for (method, path) in &operations {
        let answer = call(
            &api.app,
            request(method, &concrete(path), Some(&api.admin), None, ""),
        )
        .await;
        assert!(
            answer.status != StatusCode::NOT_FOUND
                || answer.json()["type"] != "urn:gyrus:problem:not-found"
                || path.contains("{id}"),
            "{method} {path} is documented but not routed"
        );
        assert_ne!(
            answer.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        // Every operation documents its problems.
        let responses = &paths[path.as_str()][method.to_lowercase()]["responses"];
        assert!(
            responses.as_object().is_some_and(|r| !r.is_empty()),
            "{method} {path}"
        );
    }
    // Security scheme and the shared problem schema are declared.
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["ProblemBody"].is_object());
    // The docs page is self-contained: every path is on it, nothing is fetched.
    let page = call(&api.app, get("/docs", None)).await;
    assert!(page.content_type.starts_with("text/html"));
    let html = String::from_utf8(page.body.to_vec()).unwrap();
    for (_, path) in &operations {
        assert!(
            html.contains(&format!("<code>{path}</code>")),
            "{path} not on /docs"
        );
    }
    for external in ["<script", "http://", "https://", "<link"] {
        assert!(!html.contains(external), "/docs refers to `{external}`");
    }
    let _: Value = doc;
}

#[tokio::test]
async fn odd_methods_and_paths_get_problems_and_mint_no_metric_series() {
    let api = api(|_| {}).await;
    for method in ["AAAA0001", "AAAA0002"] {
        let answer = call(&api.app, request(method, "/api/v1/sql", None, None, "")).await;
        answer.problem(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed");
    }
    call(&api.app, get("/api/v1/tables/%FF", Some(&api.reader)))
        .await
        .problem(StatusCode::BAD_REQUEST, "bad-request");
    let text =
        String::from_utf8(call(&api.app, get("/metrics", None)).await.body.to_vec()).unwrap();
    assert!(!text.contains("AAAA"), "{text}");
    assert!(
        text.contains(
            "gyrus_http_requests_total{route=\"/api/v1/sql\",method=\"other\",status=\"405\"} 2"
        ),
        "{text}"
    );
}

/// One query path: the query's own deadline (not the request's) ends a slow
/// SQL query over HTTP as it does over Flight SQL, with the same words.
#[tokio::test]
async fn a_query_past_its_deadline_gets_504_with_the_limit() {
    let api = api(|c| c.limits.timeout = std::time::Duration::from_secs(1)).await;
    let slow = json!({"sql": "SELECT count(*) FROM generate_series(1, 100000000000) a"});
    let answer = call(&api.app, sql(&api.reader, "application/json", slow)).await;
    let problem = answer.problem(StatusCode::GATEWAY_TIMEOUT, "timeout");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("query exceeded its time limit of 1 s"),
        "{problem}"
    );
}

/// `GET /api/v1/models/runs`: the tenant's registry runs, newest first, with
/// the serving one marked, paged and filtered by the list convention; only
/// for admins, and never another tenant's runs.
#[tokio::test]
async fn model_runs_are_listed_for_admins_with_the_serving_one_marked() {
    use gyrus_models::FamilyId;
    use gyrus_models::pipeline::{Silent, TrainOptions, train};
    let api = api(|_| {}).await;
    let tenants = ["acme", "globex"].map(|t| gyrus_engine::TenantId::new(t).unwrap());
    let mut acme_runs = Vec::new();
    for round in 0..2 {
        let options = TrainOptions {
            // globex trains once, acme twice, ORACLE then MEMORY.
            tenants: Some(tenants[..if round == 0 { 2 } else { 1 }].to_vec()),
            families: vec![FamilyId::Oracle, FamilyId::Memory],
            ..TrainOptions::default()
        };
        let reports = train(&api.state.store, &options, std::sync::Arc::new(Silent))
            .await
            .unwrap();
        acme_runs.extend(reports.into_iter().filter(|r| r.tenant == "acme"));
    }
    assert_eq!(acme_runs.len(), 4);
    let list = |query: &str, key: &str| {
        let path = format!("/api/v1/models/runs{query}");
        let app = api.app.clone();
        let key = key.to_string();
        async move { call(&app, get(&path, Some(&key))).await }
    };
    let all = list("", &api.admin).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.json());
    let items = all.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 4, "acme's runs only: {items:?}");
    let times: Vec<&str> = items
        .iter()
        .map(|i| i["trained_at"].as_str().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    for family in ["oracle", "memory"] {
        let runs: Vec<&Value> = items.iter().filter(|i| i["family"] == family).collect();
        assert_eq!(runs.len(), 2, "{family}: {runs:?}");
        let newest_good = runs
            .iter()
            .filter(|r| r["status"] == "good")
            .max_by_key(|r| r["version"].as_u64());
        for run in &runs {
            let serves = newest_good.is_some_and(|g| g["run_id"] == run["run_id"]);
            assert_eq!(run["serving"], serves, "{run}");
            assert_eq!(run["run_id"], format!("{family}-v{}", run["version"]));
        }
    }
    // The list convention: a filter, a page of one, its cursor.
    let oracle = list("?family=oracle&limit=1", &api.admin).await.json();
    assert_eq!(oracle["items"].as_array().unwrap().len(), 1);
    assert_eq!(oracle["items"][0]["family"], "oracle");
    let cursor = oracle["next_cursor"].as_str().unwrap().to_string();
    let next = list(
        &format!("?family=oracle&limit=1&cursor={cursor}"),
        &api.admin,
    )
    .await
    .json();
    assert_ne!(next["items"][0]["run_id"], oracle["items"][0]["run_id"]);
    list("?tenant=globex", &api.admin)
        .await
        .problem(StatusCode::BAD_REQUEST, "bad-request");
    list("", &api.reader)
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
    list("", &api.writer)
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
}
