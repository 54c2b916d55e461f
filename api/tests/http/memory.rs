//! MEMORY over HTTP: a customer's scores, scoring a summary or a history,
//! segments and leads, and every way a request can be wrong.

use std::sync::Arc;

use axum::http::StatusCode;
use gyrus_datasets::{GeneratorConfig, Scale, generate};
use gyrus_engine::TenantId;
use gyrus_models::FamilyId;
use gyrus_models::memory::rfm::SEGMENTS;
use gyrus_models::pipeline::{Silent, TrainOptions, train};
use serde_json::{Value, json};

use crate::support::*;

/// The test API with acme's synthetic orders and deals, MEMORY trained.
async fn trained() -> Api {
    let api = api(|_| {}).await;
    let acme = TenantId::new("acme").unwrap();
    generate(&GeneratorConfig::for_tenant("acme", Scale::Small))
        .load(&api.state.store, &acme, |_| {})
        .await
        .unwrap();
    let options = TrainOptions {
        tenants: Some(vec![acme]),
        families: vec![FamilyId::Memory],
        ..TrainOptions::default()
    };
    train(&api.state.store, &options, Arc::new(Silent))
        .await
        .unwrap();
    api
}

async fn score(api: &Api, key: &str, body: Value) -> Answer {
    call(
        &api.app,
        request(
            "POST",
            "/api/v1/memory/score",
            Some(key),
            Some("application/json"),
            body.to_string(),
        ),
    )
    .await
}

#[tokio::test]
async fn a_customers_scores_match_scoring_its_summary() {
    let api = trained().await;
    let answer = call(
        &api.app,
        get("/api/v1/memory/customers/cust-0000001", Some(&api.reader)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json());
    let row = answer.json();
    assert_eq!(row["customer_id"], "cust-0000001");
    assert_eq!(row["model_version"], "memory-v1");
    let p_alive = row["p_alive"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p_alive));
    assert!(SEGMENTS.contains(&row["rfm_segment"].as_str().unwrap()));
    assert_eq!(row["rfm_score"].as_str().unwrap().len(), 3);
    // Money is exact decimal text.
    assert!(row["clv_365d"].as_str().unwrap().contains('.'));

    // The online scorer gives the batch's numbers for the same summary.
    let monetary: f64 = row["monetary"].as_str().unwrap().parse().unwrap();
    let answer = score(
        &api,
        &api.reader,
        json!({"summary": {"frequency": row["frequency"], "recency_days": row["recency_days"],
                           "tenure_days": row["tenure_days"], "monetary": monetary}}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json());
    let scored = answer.json();
    assert_eq!(scored["model_version"], "memory-v1");
    assert!(
        (scored["p_alive"].as_f64().unwrap() - p_alive).abs() < 1e-9,
        "{scored} vs {row}"
    );
    assert!(
        (scored["expected_purchases_90d"].as_f64().unwrap()
            - row["expected_purchases_90d"].as_f64().unwrap())
        .abs()
            < 1e-9
    );
    assert!(
        (scored["churn_risk"].as_f64().unwrap() - row["churn_risk"].as_f64().unwrap()).abs() < 1e-9
    );
    assert_eq!(scored["churn_band"], row["churn_band"]);
    let clv: f64 = row["clv_365d"].as_str().unwrap().parse().unwrap();
    assert!((scored["clv_365d"].as_f64().unwrap() - clv).abs() < 1e-4 + 1e-6 * clv);

    // Unknown customers are 404; another tenant's key sees nothing of acme's.
    call(
        &api.app,
        get("/api/v1/memory/customers/nobody", Some(&api.reader)),
    )
    .await
    .problem(StatusCode::NOT_FOUND, "no-customer");
    call(
        &api.app,
        get("/api/v1/memory/customers/cust-0000001", Some(&api.globex)),
    )
    .await
    .problem(StatusCode::NOT_FOUND, "no-customer");
    call(&api.app, get("/api/v1/memory/customers/cust-0000001", None))
        .await
        .problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn scores_a_purchase_history_sent_in() {
    let api = trained().await;
    // Three purchases on two days: one repeat, of 30 + 20 = 50.
    let body = json!({"purchases": [
        {"date": "2026-01-01", "amount": 80.0},
        {"date": "2026-02-01", "amount": 30.0},
        {"date": "2026-02-01", "amount": 20.0}],
        "as_of": "2026-03-01"});
    let answer = score(&api, &api.reader, body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json());
    let s = answer.json();
    assert_eq!(s["frequency"], 1);
    assert_eq!(s["recency_days"], 31.0);
    assert_eq!(s["tenure_days"], 59.0);
    assert_eq!(s["monetary"], 50.0);
    for field in ["p_alive", "churn_risk"] {
        let v = s[field].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{field} {v}");
    }
    assert!(s["clv_365d"].as_f64().unwrap() > 0.0);
    // A recent buyer is likelier to buy soon than the same one long silent.
    let silent = score(
        &api,
        &api.reader,
        json!({"summary": {"frequency": 1, "recency_days": 31, "tenure_days": 400, "monetary": 50}}),
    )
    .await
    .json();
    assert!(
        silent["expected_purchases_90d"].as_f64().unwrap()
            < s["expected_purchases_90d"].as_f64().unwrap()
    );
}

#[tokio::test]
async fn bad_score_requests_are_problems() {
    let api = trained().await;
    for (body, why) in [
        (json!({}), "neither"),
        (
            json!({"summary": {"frequency": 1, "recency_days": 1, "tenure_days": 5}, "purchases": []}),
            "both",
        ),
        (
            json!({"summary": {"frequency": 1, "recency_days": 9, "tenure_days": 5}}),
            "recency > tenure",
        ),
        (
            json!({"summary": {"frequency": 0, "recency_days": 3, "tenure_days": 5}}),
            "recency without repeats",
        ),
        (
            json!({"summary": {"frequency": 1, "recency_days": -1, "tenure_days": 5}}),
            "negative",
        ),
        (
            json!({"summary": {"frequency": 1, "recency_days": 1, "tenure_days": 1e9}}),
            "too long",
        ),
        (json!({"purchases": []}), "no purchases"),
        (
            json!({"purchases": [{"date": "2026-01-01", "amount": -5}]}),
            "negative amount",
        ),
        (
            json!({"purchases": [{"date": "2026-05-01", "amount": 5}], "as_of": "2026-01-01"}),
            "after as_of",
        ),
        (
            json!({"summary": {"frequency": 1, "recency_days": 1, "tenure_days": 5}, "as_of": "2026-01-01"}),
            "as_of with a summary",
        ),
    ] {
        let answer = score(&api, &api.reader, body).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{why}: {}",
            answer.json()
        );
        answer.problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-request");
    }
    // Fields the API does not know, wrong types: invalid bodies.
    score(
        &api,
        &api.reader,
        json!({"summary": {"frequency": 1, "recency_days": 1, "tenure_days": 5, "x": 1}}),
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-body");
    score(
        &api,
        &api.reader,
        json!({"purchases": [{"date": "yesterday", "amount": 1}]}),
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-body");
    call(
        &api.app,
        request(
            "POST",
            "/api/v1/memory/score",
            Some(&api.reader),
            Some("application/json"),
            "{",
        ),
    )
    .await
    .problem(StatusCode::BAD_REQUEST, "malformed-json");
    call(
        &api.app,
        request(
            "POST",
            "/api/v1/memory/score",
            Some(&api.reader),
            Some("text/plain"),
            "{}",
        ),
    )
    .await
    .problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");
    // A tenant without a MEMORY model.
    score(
        &api,
        &api.globex,
        json!({"summary": {"frequency": 0, "recency_days": 0, "tenure_days": 5}}),
    )
    .await
    .problem(StatusCode::NOT_FOUND, "no-model");
}

#[tokio::test]
async fn segments_add_up_to_every_customer() {
    let api = trained().await;
    let answer = call(&api.app, get("/api/v1/memory/segments", Some(&api.reader))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json());
    let body = answer.json();
    assert_eq!(body["model_version"], "memory-v1");
    let segments = body["segments"].as_array().unwrap();
    let names: Vec<&str> = segments
        .iter()
        .map(|s| s["segment"].as_str().unwrap())
        .collect();
    let mut ordered = names.clone();
    ordered.sort_by_key(|n| SEGMENTS.iter().position(|s| s == n));
    assert_eq!(names, ordered, "best segment first");
    let customers: i64 = segments
        .iter()
        .map(|s| s["customers"].as_i64().unwrap())
        .sum();
    assert_eq!(body["customers"].as_i64().unwrap(), customers);
    let share: f64 = segments.iter().map(|s| s["share"].as_f64().unwrap()).sum();
    assert!((share - 1.0).abs() < 1e-9);
    let scored = call(
        &api.app,
        sql(
            &api.reader,
            "application/json",
            json!({"sql": "SELECT count(*) AS n FROM customer_scores"}),
        ),
    )
    .await
    .json();
    assert_eq!(scored["rows"][0]["n"].as_i64().unwrap(), customers);
    // Before any training: no segments, not an error.
    let empty = call(&api.app, get("/api/v1/memory/segments", Some(&api.globex))).await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.json()["segments"], json!([]));
}

#[tokio::test]
async fn leads_page_by_p_win() {
    let api = trained().await;
    let page = call(
        &api.app,
        get("/api/v1/memory/leads?limit=5", Some(&api.reader)),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.json());
    let page = page.json();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    let p: Vec<f64> = items.iter().map(|i| i["p_win"].as_f64().unwrap()).collect();
    assert!(p.windows(2).all(|w| w[0] >= w[1]), "{p:?}");
    assert!(items[0]["pipeline"].is_string() && items[0]["amount"].is_string());
    // The next page continues below the last P(win).
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = call(
        &api.app,
        get(
            &format!("/api/v1/memory/leads?limit=5&cursor={cursor}"),
            Some(&api.reader),
        ),
    )
    .await
    .json();
    let first_next = next["items"][0]["p_win"].as_f64().unwrap();
    assert!(first_next <= p[4]);
    assert_ne!(next["items"][0]["deal_id"], items[4]["deal_id"]);
    // Filters and sorts.
    let expansion = call(
        &api.app,
        get(
            "/api/v1/memory/leads?pipeline=expansion&limit=1000",
            Some(&api.reader),
        ),
    )
    .await
    .json();
    assert!(
        expansion["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["pipeline"] == "expansion")
    );
    call(
        &api.app,
        get("/api/v1/memory/leads?sort=amount", Some(&api.reader)),
    )
    .await
    .problem(StatusCode::BAD_REQUEST, "bad-request");
    call(
        &api.app,
        get("/api/v1/memory/leads?stagee=x", Some(&api.reader)),
    )
    .await
    .problem(StatusCode::BAD_REQUEST, "bad-request");
    // Another tenant sees none of acme's deals.
    let other = call(&api.app, get("/api/v1/memory/leads", Some(&api.globex)))
        .await
        .json();
    assert_eq!(other["items"], json!([]));
}
