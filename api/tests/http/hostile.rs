//! Requests built to crash, exhaust or spy on the server, from a reader key:
//! each gets a 4xx naming its bound, and afterwards the server still answers
//! `/healthz` and another tenant's query.

use axum::http::StatusCode;
use serde_json::json;

use crate::support::*;

async fn still_serving(api: &Api) {
    assert_eq!(
        call(&api.app, get("/healthz", None)).await.status,
        StatusCode::OK
    );
    let other = call(
        &api.app,
        sql(
            &api.globex,
            "application/json",
            json!({"sql": "SELECT count(*) AS n FROM ad_performance"}),
        ),
    )
    .await;
    assert_eq!(other.status, StatusCode::OK);
}

#[tokio::test]
async fn deep_long_and_amplifying_statements_get_4xx_naming_their_bound() {
    let api = api(|c| c.json_byte_cap = 1 << 20).await;
    let sum = |terms: usize| format!("SELECT {}", vec!["1"; terms].join("+"));
    let cases = [
        (sum(5_000), "bound-exceeded", "--max-sql-depth"),
        (sum(400_000), "bound-exceeded", "--max-sql-depth"),
        (
            vec!["SELECT 1"; 50_000].join(" UNION ALL "),
            "bound-exceeded",
            "--max-sql-depth",
        ),
        (
            "SELECT length(repeat('x', 1000000000))".to_string(),
            "invalid-query",
            "functions may",
        ),
        (
            "SELECT cardinality(range(60000000))".to_string(),
            "invalid-query",
            "functions may",
        ),
        (
            "SELECT levenshtein(repeat('a', 144000), repeat('b', 144000))".to_string(),
            "invalid-query",
            "functions may",
        ),
    ];
    for (query, kind, named) in cases {
        eprintln!("case: {}", &query[..query.len().min(60)]);
        let answer = call(
            &api.app,
            sql(&api.reader, "application/json", json!({"sql": query})),
        )
        .await;
        let problem = answer.problem(StatusCode::BAD_REQUEST, kind);
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(named), "{detail}");
        still_serving(&api).await;
    }
    // A wide IN list (40,000 values, under --max-in-list) is not deep: answered.
    let wide_in = format!(
        "SELECT count(*) AS n FROM ad_performance WHERE clicks IN ({})",
        (0..40_000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let answer = call(
        &api.app,
        sql(&api.reader, "application/json", json!({"sql": wide_in})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    // A JSON answer is bounded in bytes, not only in rows.
    let wide = call(
        &api.app,
        sql(
            &api.reader,
            "application/json",
            json!({"sql": "SELECT repeat('x', 100000) AS x FROM generate_series(1, 50)"}),
        ),
    )
    .await;
    let problem = wide.problem(StatusCode::UNPROCESSABLE_ENTITY, "too-many-bytes");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("--json-max-mb")
    );
    // The same rows stream as CSV.
    let csv = call(
        &api.app,
        sql(
            &api.reader,
            "text/csv",
            json!({"sql": "SELECT repeat('x', 100000) AS x FROM generate_series(1, 50)"}),
        ),
    )
    .await;
    assert_eq!(csv.status, StatusCode::OK);
    still_serving(&api).await;
}

#[tokio::test]
async fn plans_and_errors_show_tables_not_storage() {
    let api = api(|_| {}).await;
    let root = api.state.store.root().clone();
    let hidden = [
        root.as_str().trim_end_matches('/').to_string(),
        root.path().trim_end_matches('/').to_string(),
        "tenants/".to_string(),
    ];
    for query in [
        "EXPLAIN SELECT * FROM ad_performance WHERE clicks > 1",
        "EXPLAIN ANALYZE SELECT count(*) FROM ad_performance WHERE clicks > 1",
        "EXPLAIN VERBOSE SELECT platform FROM ad_performance",
    ] {
        let answer = call(
            &api.app,
            sql(&api.reader, "application/json", json!({"sql": query})),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{query}");
        let text = String::from_utf8_lossy(&answer.body).to_string();
        assert!(text.contains("ad_performance"), "{query}: {text}");
        for secret in &hidden {
            assert!(
                !text.contains(secret.as_str()),
                "{query} shows {secret}: {text}"
            );
        }
    }
}
