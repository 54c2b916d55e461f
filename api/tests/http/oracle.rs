//! `POST /api/v1/oracle/forecast`: from the trained model, from a series in
//! the body, and every way a request can be wrong.

use std::sync::Arc;

use axum::http::StatusCode;
use chrono::{Days, NaiveDate};
use gyrus_engine::TenantId;
use gyrus_models::oracle::model::ForecastPoint;
use gyrus_models::oracle::{Calibration, Frequency, fit_series};
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

/// A seasonal series with a trend, of `n` points of `frequency` from
/// `first`, as the body sends it, and its values.
fn seasonal(frequency: Frequency, first: NaiveDate, n: u32) -> (Vec<Value>, Vec<f64>) {
    let period = frequency.periods().first().copied().unwrap_or(1) as f64;
    let values: Vec<f64> = (0..n)
        .map(|i| {
            let i = f64::from(i);
            200.0
                + 2.0 * i
                + 30.0 * (std::f64::consts::TAU * i / period).sin()
                + (i * 7.3).sin() * 5.0
        })
        .collect();
    let body = values
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"date": frequency.step(first, i as u32).unwrap(), "value": v}))
        .collect();
    (body, values)
}

/// Weekly, monthly, quarterly and yearly series are recognised from their
/// dates, forecast in their own steps and dated on their own grid, exactly
/// as the library forecasts them (`Frequency::config`).
#[tokio::test]
async fn every_frequency_is_inferred_and_forecast_as_the_library_does() {
    let api = api(|_| {}).await;
    let first = NaiveDate::from_ymd_opt(2015, 1, 31).unwrap();
    for (frequency, n, horizon) in [
        (Frequency::Week, 160, 13),
        (Frequency::Month, 72, 18),
        (Frequency::Quarter, 40, 8),
        (Frequency::Year, 30, 6),
    ] {
        let (series, values) = seasonal(frequency, first, n);
        let answer = forecast(
            &api,
            &api.reader,
            json!({"series": series, "horizon": horizon}),
        )
        .await;
        let body = answer.json();
        assert_eq!(answer.status, StatusCode::OK, "{frequency}: {body}");
        assert_eq!(body["frequency"], frequency.as_str());
        assert!(body.get("filled_days").is_none(), "{body}");
        let points = body["forecasts"][0]["points"].as_array().unwrap();
        assert_eq!(points.len(), horizon);
        // The library, on the same values with the frequency's configuration.
        let mut config = frequency.config(horizon);
        config.non_negative = true;
        let fitted = fit_series(&config, &values).unwrap();
        let f = fitted
            .model
            .forecast(horizon, &[0.8, 0.95], &Calibration::default());
        let expected = ForecastPoint::dated(&f, |i| frequency.step(first, n + i as u32).unwrap());
        assert_eq!(body["forecasts"][0]["model"], fitted.model.label());
        for (got, want) in points.iter().zip(&expected) {
            assert_eq!(got["date"], json!(want.date), "{frequency}");
            let yhat = got["yhat"].as_f64().unwrap();
            assert!(
                (yhat - want.yhat).abs() <= 1e-9 * want.yhat.abs().max(1.0),
                "{frequency}: {yhat} vs {}",
                want.yhat
            );
        }
        // Given explicitly, the same answer.
        let given = forecast(
            &api,
            &api.reader,
            json!({"series": body_series(frequency, first, n), "horizon": horizon, "frequency": frequency.as_str()}),
        )
        .await;
        assert_eq!(given.status, StatusCode::OK);
        assert_eq!(given.json()["forecasts"], body["forecasts"]);
    }
}

fn body_series(frequency: Frequency, first: NaiveDate, n: u32) -> Vec<Value> {
    seasonal(frequency, first, n).0
}

/// Dates that are not a regular series are refused, naming the first gap.
#[tokio::test]
async fn irregular_dates_are_refused_naming_the_first_gap() {
    let api = api(|_| {}).await;
    let first = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
    let (mut monthly, _) = seasonal(Frequency::Month, first, 24);
    monthly.remove(7);
    let answer = forecast(&api, &api.reader, json!({"series": monthly, "horizon": 6})).await;
    let body = answer.problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-request");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("has no point for 2020-08-01"),
        "{body}"
    );
    let (quarterly, _) = seasonal(Frequency::Quarter, first, 12);
    for (extra, frequency, expected) in [
        (
            json!({"frequency": "week"}),
            "week",
            "weekly but has no point for 2020-01-08",
        ),
        (
            json!({"frequency": "year"}),
            "year",
            "2020-04-01 is not on that grid",
        ),
        (
            json!({"frequency": "fortnight"}),
            "fortnight",
            "not a frequency",
        ),
    ] {
        let mut request = json!({"series": quarterly, "horizon": 4});
        request
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let body = forecast(&api, &api.reader, request)
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-request");
        assert!(
            body["detail"].as_str().unwrap().contains(expected),
            "{frequency}: {body}"
        );
    }
    let odd = json!([{"date": "2024-01-01", "value": 1}, {"date": "2024-01-11", "value": 2}, {"date": "2024-01-21", "value": 3}]);
    let body = forecast(&api, &api.reader, json!({"series": odd, "horizon": 2}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-request");
    assert!(
        body["detail"].as_str().unwrap().contains("10 days apart"),
        "{body}"
    );
    // The model's metrics are daily: a frequency there is a mistake.
    forecast(
        &api,
        &api.reader,
        json!({"metric": "spend", "entity_type": "campaign", "horizon": 7, "frequency": "month"}),
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-request");
    // Thirty yearly points span eleven thousand days: the cap counts points.
    let (yearly, _) = seasonal(Frequency::Year, first, 30);
    let answer = forecast(&api, &api.reader, json!({"series": yearly, "horizon": 5})).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json());
}
