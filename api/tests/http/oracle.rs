//! `POST /api/v1/oracle/forecast`: from the trained model, from a series in
//! the body, and every way a request can be wrong.

use std::sync::Arc;

use axum::http::StatusCode;
use chrono::{Days, NaiveDate};
use gyrus_engine::TenantId;
use gyrus_models::pipeline::{Silent, TrainOptions, train};
use serde_json::{Value, json};

use crate::support::*;

async fn trained() -> Api {
    let api = api(|_| {}).await;
    let options = TrainOptions {
        tenants: Some(vec![TenantId::new("acme").unwrap()]),
        ..TrainOptions::default()
    };
    train(&api.state.store, &options, Arc::new(Silent))
        .await
        .unwrap();
    api
}

async fn forecast(api: &Api, key: &str, body: Value) -> Answer {
    call(
        &api.app,
        request(
            "POST",
            "/api/v1/oracle/forecast",
            Some(key),
            Some("application/json"),
            body.to_string(),
        ),
    )
    .await
}

#[tokio::test]
async fn forecasts_a_metric_from_the_serving_model() {
    let api = trained().await;
    let answer = forecast(
        &api,
        &api.reader,
        json!({"metric": "spend", "entity_type": "campaign", "horizon": 7}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json());
    let body = answer.json();
    assert_eq!(body["model_version"], "oracle-v1");
    assert_eq!(body["levels"], json!([0.8, 0.95]));
    let series = &body["forecasts"][0];
    assert_eq!(series["entity_id"], "camp-1");
    assert_eq!(series["metric"], "spend");
    let points = series["points"].as_array().unwrap();
    assert_eq!(points.len(), 7);
    // The data's last day is 2026-03-10: forecasts start the day after.
    assert_eq!(points[0]["date"], "2026-03-11");
    let first = &points[0];
    let (yhat, i80, i95) = (
        first["yhat"].as_f64().unwrap(),
        &first["intervals"][0],
        &first["intervals"][1],
    );
    assert!(yhat >= 0.0);
    assert!(i80["lower"].as_f64().unwrap() <= yhat && yhat <= i80["upper"].as_f64().unwrap());
    assert!(i95["upper"].as_f64().unwrap() >= i80["upper"].as_f64().unwrap());

    // Ratios come from their parts; unknown ids are named, known ones served.
    let answer = forecast(
        &api,
        &api.reader,
        json!({"metric": "cpc", "entity_type": "campaign", "entity_ids": ["camp-1", "nope"],
               "horizon": 3, "levels": [0.5]}),
    )
    .await;
    let body = answer.json();
    assert_eq!(answer.status, StatusCode::OK, "{body}");
    assert_eq!(body["forecasts"][0]["model"], "ratio(spend/clicks)");
    assert_eq!(body["unknown_entity_ids"], json!(["nope"]));
    assert_eq!(
        body["forecasts"][0]["points"][0]["intervals"][0]["level"],
        0.5
    );
}

#[tokio::test]
async fn fits_a_series_sent_in_the_body() {
    let api = api(|_| {}).await;
    let start = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
    let shape = [100.0, 120.0, 140.0, 130.0, 110.0, 40.0, 30.0];
    // Twelve weeks of a weekly pattern, one day missing (counted as zero).
    let series: Vec<Value> = (0..84u64)
        .filter(|&d| d != 40)
        .map(|d| json!({"date": start.checked_add_days(Days::new(d)).unwrap(), "value": shape[d as usize % 7]}))
        .collect();
    let answer = forecast(&api, &api.reader, json!({"series": series, "horizon": 14})).await;
    let body = answer.json();
    assert_eq!(answer.status, StatusCode::OK, "{body}");
    assert_eq!(body["filled_days"], 1);
    assert!(body.get("model_version").is_none());
    let points = body["forecasts"][0]["points"].as_array().unwrap();
    assert_eq!(points.len(), 14);
    assert_eq!(points[0]["date"], "2026-03-30");
    for (i, p) in points.iter().enumerate() {
        let want = shape[(84 + i) % 7];
        let got = p["yhat"].as_f64().unwrap();
        assert!((got - want).abs() < 15.0, "day {i}: {got} vs {want}");
    }
}

#[tokio::test]
async fn every_error_is_a_problem() {
    let api = trained().await;
    let ok = json!({"metric": "spend", "entity_type": "campaign", "horizon": 7});
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({"metric": "spend", "entity_type": "campaign", "horizon": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        (
            json!({"metric": "spend", "entity_type": "campaign", "horizon": 366}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        (
            json!({"metric": "spend", "entity_type": "campaign", "horizon": 7, "levels": [1.5]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        (
            json!({"metric": "spend", "entity_type": "campaign", "horizon": 7, "levels": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        (
            json!({"metric": "likes", "entity_type": "campaign", "horizon": 7}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        (
            json!({"metric": "spend", "entity_type": "galaxy", "horizon": 7}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        (
            json!({"metric": "spend", "horizon": 7}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        (
            json!({"horizon": 7}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        (
            json!({"metric": "spend", "entity_type": "campaign", "horizon": 7, "series": [{"date": "2026-01-01", "value": 1}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        (
            json!({"metric": "spend", "entity_type": "campaign", "entity_ids": vec!["x"; 1001], "horizon": 7}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        (
            json!({"metric": "spend", "entity_type": "campaign", "horizon": 7, "extra": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-body",
        ),
        (
            json!({"metric": "spend", "entity_type": "campaign", "horizon": "seven"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-body",
        ),
        (
            json!({"series": [], "horizon": 7}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        (
            json!({"series": [{"date": "2026-01-01", "value": 1}, {"date": "2026-01-01", "value": 2}], "horizon": 7}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        (
            json!({"series": [{"date": "2000-01-01", "value": 1}, {"date": "2026-01-01", "value": 2}], "horizon": 7}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        (
            json!({"series": [{"date": "2026-13-01", "value": 1}], "horizon": 7}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-body",
        ),
        (
            json!({"series": [{"date": "2026-01-01", "value": 1e300}], "horizon": 7}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        (
            json!({"metric": "spend", "entity_type": "campaign", "entity_ids": ["nope"], "horizon": 7}),
            StatusCode::NOT_FOUND,
            "no-series",
        ),
        (
            json!({"metric": "sessions", "entity_type": "campaign", "horizon": 7}),
            StatusCode::NOT_FOUND,
            "no-series",
        ),
    ];
    for (body, status, kind) in cases {
        forecast(&api, &api.reader, body.clone())
            .await
            .problem(status, kind);
    }
    // Not JSON, not declared JSON, no key, a bad key.
    let post = |key: Option<&str>, content_type: Option<&str>, body: &str| {
        request(
            "POST",
            "/api/v1/oracle/forecast",
            key,
            content_type,
            body.to_string(),
        )
    };
    call(
        &api.app,
        post(Some(&api.reader), Some("application/json"), "{"),
    )
    .await
    .problem(StatusCode::BAD_REQUEST, "malformed-json");
    call(
        &api.app,
        post(Some(&api.reader), Some("text/plain"), &ok.to_string()),
    )
    .await
    .problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");
    call(
        &api.app,
        post(None, Some("application/json"), &ok.to_string()),
    )
    .await
    .problem(StatusCode::UNAUTHORIZED, "unauthorized");
    call(
        &api.app,
        post(
            Some("gyr_0123456789ab_nope"),
            Some("application/json"),
            &ok.to_string(),
        ),
    )
    .await
    .problem(StatusCode::UNAUTHORIZED, "unauthorized");
    // Another tenant's key sees its own (untrained) tenant, not acme's model.
    forecast(&api, &api.globex, ok)
        .await
        .problem(StatusCode::NOT_FOUND, "no-model");
}
