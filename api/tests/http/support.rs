//! What every HTTP test uses: a router over a temporary store with one
//! tenant's data and keys, and a way to call it and read the answer.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use gyrus_api::{ApiConfig, AppState, router};
use gyrus_engine::schema::CanonicalTable;
use gyrus_engine::{Role, TenantId, WriteRequest};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;

use crate::common::{self, batch, day, rows};

pub struct Api {
    pub app: Router,
    pub state: AppState,
    pub reader: String,
    pub writer: String,
    pub admin: String,
    /// A reader of another tenant, `globex`, which has data of its own.
    pub globex: String,
    _dir: tempfile::TempDir,
}

pub async fn api(configure: impl FnOnce(&mut ApiConfig)) -> Api {
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
    let globex = TenantId::new("globex").unwrap();
    store
        .write(
            &globex,
            WriteRequest::append(
                CanonicalTable::AdPerformance,
                vec![batch(&rows("gx-1", "gx-camp", day(2026, 3, 1), 4, 1, 10))],
            ),
        )
        .await
        .unwrap();
    let key = |tenant: TenantId, role| {
        let store = store.clone();
        async move { store.create_key(&tenant, role).await.unwrap().secret }
    };
    let reader = key(acme.clone(), Role::Reader).await;
    let writer = key(acme.clone(), Role::Writer).await;
    let admin = key(acme, Role::Admin).await;
    let globex = key(globex, Role::Reader).await;
    let mut config = ApiConfig::default();
    configure(&mut config);
    let state = AppState::new(store, config);
    Api {
        app: router(state.clone()),
        state,
        reader,
        writer,
        admin,
        globex,
        _dir: dir,
    }
}

pub struct Answer {
    pub retry_after: Option<u64>,
    pub status: StatusCode,
    pub content_type: String,
    pub request_id: String,
    pub body: bytes::Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts a problem+json answer of `status` and `kind`.
    pub fn problem(&self, status: StatusCode, kind: &str) -> Value {
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

/// Asserts that the other tenant, globex, gets its answer and that the
/// health check answers (while acme is doing something heavy).
pub async fn others_are_served(api: &Api) {
    let other = call(
        &api.app,
        sql(
            &api.globex,
            "application/json",
            serde_json::json!({"sql": "SELECT 1 AS one"}),
        ),
    )
    .await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(
        call(&api.app, get("/healthz", None)).await.status,
        StatusCode::OK
    );
}

pub async fn call(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let retry_after = header("retry-after").parse().ok();
    let (status, content_type, request_id) =
        (parts.status, header("content-type"), header("x-request-id"));
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        retry_after,
        status,
        content_type,
        request_id,
        body,
    }
}

pub fn get(path: &str, key: Option<&str>) -> Request<Body> {
    let mut request = Request::get(path);
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    request.body(Body::empty()).unwrap()
}

pub fn sql(key: &str, accept: &str, body: Value) -> Request<Body> {
    Request::post("/api/v1/sql")
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, accept)
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// A JSON `POST` with a key.
pub fn post_json(path: &str, key: &str, body: Value) -> Request<Body> {
    request(
        "POST",
        path,
        Some(key),
        Some("application/json"),
        body.to_string(),
    )
}

/// A request with a key, a method, a content type and a body.
pub fn request(
    method: &str,
    path: &str,
    key: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    request.body(body.into()).unwrap()
}
