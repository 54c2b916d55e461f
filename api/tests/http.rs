//! The HTTP API through its router: auth, errors as problem+json, SQL in
//! three formats, tables, health.

#[path = "../../engine/tests/common/mod.rs"]
mod common;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use datafusion::arrow::ipc::reader::StreamReader;
use gyrus_api::{ApiConfig, AppState, router};
use gyrus_engine::schema::CanonicalTable;
use gyrus_engine::{Role, TenantId, WriteRequest};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use common::{batch, day, rows};

struct Api {
    app: Router,
    reader: String,
    writer: String,
    _dir: tempfile::TempDir,
}

async fn api(configure: impl FnOnce(&mut ApiConfig)) -> Api {
    let (dir, store) = common::temp_store().await;
    let acme = TenantId::new("acme").unwrap();
    store
        .write(
            &acme,
            WriteRequest::append(
                CanonicalTable::AdPerformance,
                vec![batch(&rows("acct-1", "camp-1", day(2026, 3, 1), 10, 3, 10))],
            ),
        )
        .await
        .unwrap();
    let reader = store.create_key(&acme, Role::Reader).await.unwrap().secret;
    let writer = store.create_key(&acme, Role::Writer).await.unwrap().secret;
    let mut config = ApiConfig::default();
    configure(&mut config);
    Api {
        app: router(AppState::new(store, config)),
        reader,
        writer,
        _dir: dir,
    }
}

struct Answer {
    status: StatusCode,
    content_type: String,
    request_id: String,
    body: bytes::Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts a problem+json answer of `status` and `kind`.
    fn problem(&self, status: StatusCode, kind: &str) -> Value {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.content_type, "application/problem+json");
        let body = self.json();
        assert_eq!(body["type"], format!("urn:gyrus:problem:{kind}"), "{body}");
        assert_eq!(body["status"], status.as_u16());
        assert_eq!(body["request_id"], self.request_id.as_str());
        assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
        body
    }
}

async fn call(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let (status, content_type, request_id) = (
        response.status(),
        header("content-type"),
        header("x-request-id"),
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        content_type,
        request_id,
        body,
    }
}

fn get(path: &str, key: Option<&str>) -> Request<Body> {
    let mut request = Request::get(path);
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    request.body(Body::empty()).unwrap()
}

fn sql(key: &str, accept: &str, body: Value) -> Request<Body> {
    Request::post("/api/v1/sql")
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, accept)
        .body(Body::from(body.to_string()))
        .unwrap()
}

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
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-body",
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
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-body",
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
