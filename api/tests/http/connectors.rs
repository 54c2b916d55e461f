//! Connectors over HTTP: added by admins of their own tenant, listed and
//! shown without credentials, synced in the background against a platform
//! fake, refused with a clear problem when the input is wrong.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use gyrus_engine::{Role, TenantId};
use gyrus_ingest::connectors::registry::Connectors;
use gyrus_ingest::secrets::SecretKey;
use serde_json::{Value, json};

use crate::fake::{Fake, FakeConfig};
use crate::support::*;

#[tokio::test]
async fn admins_add_list_sync_and_remove_connectors_without_seeing_credentials() {
    let fake = Fake::start(FakeConfig::default()).await;
    let mut api = api(|c| c.allow_connector_urls = true).await;
    let connectors = Connectors::new(
        api.state.store.clone(),
        Some(SecretKey::from_bytes(&[7; 32]).unwrap()),
    );
    api.state = api.state.clone().with_connectors(Arc::new(connectors));
    api.app = gyrus_api::router(api.state.clone());
    let body = json!({
        "platform": "stripe",
        "account": fake.account("stripe"),
        "credentials": fake.credentials("stripe"),
        "base_url": fake.url(),
        "start_date": "2026-03-01",
        "schedule_minutes": 0,
        "settings": {"page_size": "50"},
    });

    // Readers may not; bad input is named.
    call(
        &api.app,
        post_json("/api/v1/connectors", &api.reader, body.clone()),
    )
    .await
    .problem(StatusCode::FORBIDDEN, "forbidden");
    let mut unknown = body.clone();
    unknown["platform"] = json!("myspace");
    let problem = call(
        &api.app,
        post_json("/api/v1/connectors", &api.admin, unknown),
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-request");
    assert!(
        problem["detail"].as_str().unwrap().contains("google_ads"),
        "{problem}"
    );
    let mut missing = body.clone();
    missing["credentials"] = json!({"access_token": "x"});
    let problem = call(
        &api.app,
        post_json("/api/v1/connectors", &api.admin, missing),
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-request");
    assert!(
        problem["detail"].as_str().unwrap().contains("api_key"),
        "{problem}"
    );
    let mut bad_url = body.clone();
    bad_url["base_url"] = json!("ftp://example.com");
    call(
        &api.app,
        post_json("/api/v1/connectors", &api.admin, bad_url),
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-request");

    let created = call(&api.app, post_json("/api/v1/connectors", &api.admin, body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json());
    let id = created.json()["id"].as_str().unwrap().to_string();
    assert_eq!(created.json()["table"], "orders");

    let listed = call(&api.app, get("/api/v1/connectors", Some(&api.admin))).await;
    assert_eq!(listed.json().as_array().unwrap().len(), 1);

    // Another tenant's admin does not see it.
    let globex_admin = api
        .state
        .store
        .create_key(&TenantId::new("globex").unwrap(), Role::Admin)
        .await
        .unwrap()
        .secret;
    api.state.keys.forget().await;
    call(
        &api.app,
        get(&format!("/api/v1/connectors/{id}"), Some(&globex_admin)),
    )
    .await
    .problem(StatusCode::NOT_FOUND, "not-found");
    let theirs = call(&api.app, get("/api/v1/connectors", Some(&globex_admin))).await;
    assert_eq!(theirs.json(), json!([]));

    let started = call(
        &api.app,
        post_json(
            &format!("/api/v1/connectors/{id}/sync"),
            &api.admin,
            json!({}),
        ),
    )
    .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.json());
    let mut detail = Value::Null;
    for _ in 0..600 {
        detail = call(
            &api.app,
            get(&format!("/api/v1/connectors/{id}"), Some(&api.admin)),
        )
        .await
        .json();
        if detail["last_run"]["status"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(detail["last_run"]["status"], "succeeded", "{detail}");
    let expected = fake.expected("stripe").len();
    assert_eq!(
        detail["last_run"]["rows"].as_u64().unwrap() as usize,
        expected,
        "{detail}"
    );
    assert!(detail["cursor"]["synced_through"].is_string(), "{detail}");
    assert_eq!(
        detail["next_run"],
        Value::Null,
        "a manual connector has no next run"
    );

    let counted = call(
        &api.app,
        sql(
            &api.reader,
            "application/json",
            json!({"sql": "SELECT count(*) AS n FROM orders WHERE source = 'stripe'"}),
        ),
    )
    .await;
    assert_eq!(
        counted.json()["rows"][0]["n"].as_u64().unwrap() as usize,
        expected,
        "{}",
        counted.json()
    );

    // No credential in anything the API said, nor in clear in the store.
    let stored = gyrus_ingest::connectors::state::CONNECTORS
        .history::<Value>(&api.state.store, None)
        .await
        .unwrap();
    assert!(!stored.is_empty());
    let stored: String = stored.iter().map(|(_, _, doc)| doc.to_string()).collect();
    assert!(stored.contains("\"sealed\":\"v1:"), "{stored}");
    for secret in fake.secrets() {
        for text in [
            created.json().to_string(),
            listed.json().to_string(),
            detail.to_string(),
            stored.clone(),
        ] {
            assert!(
                !text.contains(&secret),
                "a credential came back from the API"
            );
        }
    }

    let removed = call(
        &api.app,
        request(
            "DELETE",
            &format!("/api/v1/connectors/{id}"),
            Some(&api.admin),
            None,
            "",
        ),
    )
    .await;
    assert_eq!(removed.status, StatusCode::OK);
    call(
        &api.app,
        get(&format!("/api/v1/connectors/{id}"), Some(&api.admin)),
    )
    .await
    .problem(StatusCode::NOT_FOUND, "not-found");
}

#[tokio::test]
async fn connectors_call_only_the_platforms_unless_the_server_allows_other_urls() {
    let mut api = api(|_| {}).await;
    let connectors = Connectors::new(
        api.state.store.clone(),
        Some(SecretKey::from_bytes(&[7; 32]).unwrap()),
    );
    api.state = api.state.clone().with_connectors(Arc::new(connectors));
    api.app = gyrus_api::router(api.state.clone());
    let body = json!({"platform": "stripe", "account": "acct_1", "credentials": {"api_key": "sk_test_x"},
        "base_url": "http://169.254.169.254"});
    let problem = call(&api.app, post_json("/api/v1/connectors", &api.admin, body))
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("--allow-connector-urls"),
        "{problem}"
    );
}

#[tokio::test]
async fn without_a_credential_key_connectors_are_unavailable() {
    let api = api(|_| {}).await;
    let body =
        json!({"platform": "stripe", "account": "acct_1", "credentials": {"api_key": "sk_test_x"}});
    let problem = call(&api.app, post_json("/api/v1/connectors", &api.admin, body))
        .await
        .problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("GYRUS_SECRET_KEY"),
        "{problem}"
    );
}
