//! The HTTP API through its router (tower's `oneshot`, no socket): auth and
//! roles, errors as problem+json, SQL in three formats, ingest, keys, lists,
//! limits, metrics and the OpenAPI document.

#[path = "../../../engine/tests/integration/common/mod.rs"]
mod common;
mod connectors;
mod curiosity;
#[path = "../../../ingest/tests/fake/mod.rs"]
mod fake;
mod hostile;
mod ingest;
mod keys;
mod memory;
mod operations;
mod oracle;
mod reflexes;
mod support;
mod system;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use datafusion::arrow::ipc::reader::StreamReader;
use serde_json::json;

use support::*;

#[tokio::test]
async fn health_routes_and_unknown_routes() {
    let api = api(|_| {}).await;
    let ok = call(&api.app, get("/healthz", None)).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(!ok.request_id.is_empty());
    assert_eq!(
        call(&api.app, get("/readyz", None)).await.status,
        StatusCode::OK
    );
    call(&api.app, get("/nope", None))
        .await
        .problem(StatusCode::NOT_FOUND, "not-found");
    let delete = Request::delete("/healthz").body(Body::empty()).unwrap();
    call(&api.app, delete)
        .await
        .problem(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed");
    // A caller's request id is kept.
    let mut request = get("/healthz", None);
    request
        .headers_mut()
        .insert("x-request-id", "abc-123".parse().unwrap());
    assert_eq!(call(&api.app, request).await.request_id, "abc-123");
}

#[tokio::test]
async fn keys_decide_401_and_403_and_tables_are_listed() {
    let api = api(|_| {}).await;
    call(&api.app, get("/api/v1/tables", None))
        .await
        .problem(StatusCode::UNAUTHORIZED, "unauthorized");
    call(&api.app, get("/api/v1/tables", Some("gyr_000000000000_00")))
        .await
        .problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let listed = call(&api.app, get("/api/v1/tables", Some(&api.reader))).await;
    assert_eq!(listed.status, StatusCode::OK);
    let items = listed.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 10);
    let ads = items
        .iter()
        .find(|t| t["name"] == "ad_performance")
        .unwrap();
    assert_eq!(ads["rows"], 30);
    let detail = call(
        &api.app,
        get("/api/v1/tables/ad_performance", Some(&api.writer)),
    )
    .await
    .json();
    assert_eq!(detail["columns"][0]["name"], "platform");
    assert_eq!(detail["columns"][0]["nullable"], false);
    assert!(
        detail["natural_key"]
            .as_array()
            .unwrap()
            .contains(&json!("campaign_id"))
    );
    call(&api.app, get("/api/v1/tables/nope", Some(&api.reader)))
        .await
        .problem(StatusCode::NOT_FOUND, "unknown-table");
}

#[tokio::test]
async fn sql_answers_json_csv_and_arrow_with_types_kept() {
    let api = api(|_| {}).await;
    let query = json!({
        "sql": "SELECT date, sum(spend) AS spend, sum(clicks) AS clicks FROM ad_performance WHERE account_id = ? AND date >= ? GROUP BY date ORDER BY date",
        "params": ["acct-1", "2026-03-09"],
    });
    let answer = call(
        &api.app,
        sql(&api.reader, "application/json", query.clone()),
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let body = answer.json();
    assert_eq!(body["row_count"], 2);
    let first = &body["rows"][0];
    assert_eq!(first["date"], "2026-03-09");
    assert_eq!(first["clicks"], 30);
    assert!(
        first["spend"].as_str().is_some_and(|s| s.contains('.')),
        "decimals as exact strings: {first}"
    );
    assert_eq!(body["columns"][1]["type"], "Decimal128(28, 6)");

    let csv = call(&api.app, sql(&api.reader, "text/csv", query.clone())).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.content_type.starts_with("text/csv"));
    let text = String::from_utf8(csv.body.to_vec()).unwrap();
    assert_eq!(text.lines().next(), Some("date,spend,clicks"));
    assert_eq!(text.lines().count(), 3);

    let arrow = call(
        &api.app,
        sql(
            &api.reader,
            gyrus_api::routes::sql::ARROW_STREAM,
            json!({"sql": "SELECT * FROM ad_performance"}),
        ),
    )
    .await;
    assert_eq!(arrow.status, StatusCode::OK);
    let reader = StreamReader::try_new(std::io::Cursor::new(arrow.body.to_vec()), None).unwrap();
    let schema = reader.schema();
    assert_eq!(
        schema.field_with_name("platform").unwrap().data_type(),
        &datafusion::arrow::datatypes::DataType::Utf8
    );
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 30);

    // An empty result still has its header.
    let empty = call(
        &api.app,
        sql(
            &api.reader,
            "text/csv",
            json!({"sql": "SELECT platform FROM ad_performance WHERE false"}),
        ),
    )
    .await;
    assert_eq!(
        String::from_utf8(empty.body.to_vec()).unwrap().trim(),
        "platform"
    );
}

#[tokio::test]
async fn every_bad_request_gets_a_problem_and_the_server_keeps_serving() {
    let api = api(|c| c.json_row_cap = 10).await;
    let key = api.reader.as_str();
    let raw = |content_type: &str, body: &'static [u8]| {
        Request::post("/api/v1/sql")
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap()
    };
    for (request, status, kind) in [
        (
            raw("application/json", b""),
            StatusCode::BAD_REQUEST,
            "bad-request",
        ),
        (
            raw("application/json", b"{\"sql\": "),
            StatusCode::BAD_REQUEST,
            "malformed-json",
        ),
        (
            raw("application/json", b"{\"query\": \"SELECT 1\"}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-body",
        ),
        (
            raw("application/json", b"{\"sql\": 42}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-body",
        ),
        (
            raw("application/json", b"\xff\xfe{}"),
            StatusCode::BAD_REQUEST,
            "malformed-json",
        ),
        (
            raw("text/plain", b"SELECT 1"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        (
            sql(key, "application/xml", json!({"sql": "SELECT 1"})),
            StatusCode::NOT_ACCEPTABLE,
            "not-acceptable",
        ),
        (
            sql(key, "application/json", json!({"sql": "SELEC 1"})),
            StatusCode::BAD_REQUEST,
            "invalid-query",
        ),
        (
            sql(
                key,
                "application/json",
                json!({"sql": "DROP TABLE ad_performance"}),
            ),
            StatusCode::FORBIDDEN,
            "read-only",
        ),
        (
            sql(
                key,
                "application/json",
                json!({"sql": "SELECT ?", "params": [[1]]}),
            ),
            StatusCode::BAD_REQUEST,
            "bad-request",
        ),
        (
            sql(
                key,
                "application/json",
                json!({"sql": "SELECT * FROM ad_performance"}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "too-many-rows",
        ),
    ] {
        call(&api.app, request).await.problem(status, kind);
    }
    let huge = vec![b'x'; (64 << 20) + 1];
    let request = Request::post("/api/v1/sql")
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(huge))
        .unwrap();
    call(&api.app, request)
        .await
        .problem(StatusCode::PAYLOAD_TOO_LARGE, "body-too-large");
    // Still serving.
    let ok = call(
        &api.app,
        sql(
            key,
            "application/json",
            json!({"sql": "SELECT count(*) AS n FROM ad_performance"}),
        ),
    )
    .await;
    assert_eq!(ok.json()["rows"][0]["n"], 30);
}

#[tokio::test]
async fn a_panicking_handler_becomes_a_500_problem_without_internals() {
    let app = axum::Router::new()
        .route(
            "/boom",
            axum::routing::get(|| async {
                let secret_path = "/srv/gyrus/internal/state.rs";
                panic!("failed at {secret_path}");
                #[allow(unreachable_code)]
                ""
            }),
        )
        .layer(axum::middleware::from_fn(gyrus_api::request_id::middleware));
    let answer = call(&app, get("/boom", None)).await;
    let body = answer.problem(StatusCode::INTERNAL_SERVER_ERROR, "internal");
    let text = body.to_string();
    assert!(
        !text.contains("/srv/gyrus") && !text.contains("panicked"),
        "{text}"
    );
}
