//! Keys over HTTP, and the role x route matrix: 401 without a valid key, 403
//! with a role too small, and an answer otherwise.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

fn key_id(secret: &str) -> &str {
    secret
        .strip_prefix("gyr_")
        .and_then(|rest| rest.split_once('_'))
        .map(|(id, _)| id)
        .unwrap()
}

fn create_key(admin: &str, role: &str) -> axum::http::Request<axum::body::Body> {
    request(
        "POST",
        "/api/v1/keys",
        Some(admin),
        Some("application/json"),
        json!({ "role": role }).to_string(),
    )
}

#[tokio::test]
async fn admins_create_list_and_revoke_their_tenants_keys() {
    let api = api(|_| {}).await;
    let created = call(&api.app, create_key(&api.admin, "reader")).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let created = created.json();
    assert_eq!(created["role"], "reader");
    assert_eq!(created["tenant"], "acme");
    let secret = created["secret"].as_str().unwrap().to_string();
    // The new key works at once.
    assert_eq!(
        call(&api.app, get("/api/v1/tables", Some(&secret)))
            .await
            .status,
        StatusCode::OK
    );

    // Listing: this tenant's keys only, never a secret, paged.
    let mut ids = Vec::new();
    let mut path = "/api/v1/keys?limit=2".to_string();
    loop {
        let page = call(&api.app, get(&path, Some(&api.admin))).await.json();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        for item in items {
            assert_eq!(item["tenant"], "acme");
            assert!(item.get("secret").is_none(), "{item}");
            ids.push(item["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/keys?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let mut expected: Vec<String> = [&api.reader, &api.writer, &api.admin, &secret]
        .iter()
        .map(|s| key_id(s).to_string())
        .collect();
    expected.sort();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(
        sorted, expected,
        "every key once, in creation order: {ids:?}"
    );
    let readers = call(
        &api.app,
        get("/api/v1/keys?role=reader&sort=-id", Some(&api.admin)),
    )
    .await
    .json();
    assert_eq!(readers["items"].as_array().unwrap().len(), 2);

    // Revoking: effective at once; twice is harmless.
    let path = format!("/api/v1/keys/{}", key_id(&secret));
    let revoked = call(
        &api.app,
        request("DELETE", &path, Some(&api.admin), None, ""),
    )
    .await
    .json();
    assert_eq!(revoked["revoked"], true);
    call(&api.app, get("/api/v1/tables", Some(&secret)))
        .await
        .problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let again = call(
        &api.app,
        request("DELETE", &path, Some(&api.admin), None, ""),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK);
    let live = call(
        &api.app,
        get("/api/v1/keys?revoked=false", Some(&api.admin)),
    )
    .await
    .json();
    assert_eq!(live["items"].as_array().unwrap().len(), 3);

    // Another tenant's key, or none: not found, alike.
    for id in [key_id(&api.globex), "000000000000"] {
        let path = format!("/api/v1/keys/{id}");
        call(
            &api.app,
            request("DELETE", &path, Some(&api.admin), None, ""),
        )
        .await
        .problem(StatusCode::NOT_FOUND, "not-found");
    }
    assert_eq!(
        call(&api.app, get("/api/v1/tables", Some(&api.globex)))
            .await
            .status,
        StatusCode::OK,
        "globex's key still works"
    );
    // Bad requests.
    call(&api.app, create_key(&api.admin, "owner"))
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid-role");
    call(&api.app, get("/api/v1/keys?sort=secret", Some(&api.admin)))
        .await
        .problem(StatusCode::BAD_REQUEST, "bad-request");
    call(&api.app, get("/api/v1/keys?limit=0", Some(&api.admin)))
        .await
        .problem(StatusCode::BAD_REQUEST, "bad-request");
}

#[tokio::test]
async fn the_role_by_route_matrix() {
    let api = api(|_| {}).await;
    let spare = call(&api.app, create_key(&api.admin, "reader"))
        .await
        .json();
    let spare_id = spare["id"].as_str().unwrap().to_string();
    let ndjson = r#"{"platform":"google_ads","account_id":"m","campaign_id":"m","campaign_name":"n","channel":"search","date":"2026-04-01","impressions":10,"clicks":1,"spend":"1.50","currency":"USD","conversions":0,"conversion_value":0}"#;
    // (method, path, content type, body, the least role that may call it)
    type Route<'a> = (&'a str, String, Option<&'a str>, String, Option<&'a str>);
    let routes: Vec<Route> = vec![
        ("GET", "/healthz".into(), None, String::new(), None),
        ("GET", "/readyz".into(), None, String::new(), None),
        ("GET", "/metrics".into(), None, String::new(), None),
        ("GET", "/docs".into(), None, String::new(), None),
        (
            "GET",
            "/api/v1/openapi.json".into(),
            None,
            String::new(),
            None,
        ),
        (
            "POST",
            "/api/v1/sql".into(),
            Some("application/json"),
            json!({"sql": "SELECT 1"}).to_string(),
            Some("reader"),
        ),
        (
            "GET",
            "/api/v1/tables".into(),
            None,
            String::new(),
            Some("reader"),
        ),
        (
            "GET",
            "/api/v1/tables/ad_performance".into(),
            None,
            String::new(),
            Some("reader"),
        ),
        (
            "POST",
            "/api/v1/tables/ad_performance/rows".into(),
            Some("application/x-ndjson"),
            ndjson.into(),
            Some("writer"),
        ),
        (
            "GET",
            "/api/v1/keys".into(),
            None,
            String::new(),
            Some("admin"),
        ),
        (
            "POST",
            "/api/v1/keys".into(),
            Some("application/json"),
            json!({"role": "reader"}).to_string(),
            Some("admin"),
        ),
        (
            "DELETE",
            format!("/api/v1/keys/{spare_id}"),
            None,
            String::new(),
            Some("admin"),
        ),
    ];
    let rank = |role: &str| {
        ["reader", "writer", "admin"]
            .iter()
            .position(|r| *r == role)
            .unwrap()
    };
    let callers = [
        ("no key", None, None),
        ("a bad key", Some("gyr_000000000000_nope".to_string()), None),
        ("reader", Some(api.reader.clone()), Some("reader")),
        ("writer", Some(api.writer.clone()), Some("writer")),
        ("admin", Some(api.admin.clone()), Some("admin")),
    ];
    let mut checked = 0;
    for (method, path, content_type, body, needed) in &routes {
        for (who, key, role) in &callers {
            let answer = call(
                &api.app,
                request(method, path, key.as_deref(), *content_type, body.clone()),
            )
            .await;
            let expected = match (needed, role) {
                (None, _) => None,
                (Some(_), None) => Some((StatusCode::UNAUTHORIZED, "unauthorized")),
                (Some(needed), Some(role)) if rank(role) < rank(needed) => {
                    Some((StatusCode::FORBIDDEN, "forbidden"))
                }
                _ => None,
            };
            match expected {
                Some((status, kind)) => {
                    answer.problem(status, kind);
                }
                None => assert!(
                    answer.status.is_success(),
                    "{who} on {method} {path}: {} {}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body)
                ),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, routes.len() * callers.len());
    let _: Value = spare;
}
