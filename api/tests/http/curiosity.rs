//! CURIOSITY over HTTP: the insights list with its filters and pages, the
//! drivers of a change, and every way a request can be wrong.

use std::sync::Arc;

use axum::http::StatusCode;
use gyrus_datasets::{GeneratorConfig, Scale, generate};
use gyrus_engine::TenantId;
use gyrus_models::FamilyId;
use gyrus_models::pipeline::{Silent, TrainOptions, train};
use serde_json::{Value, json};

use crate::support::*;

/// The test API with acme's synthetic data (medium), CURIOSITY trained.
async fn trained() -> Api {
    let api = api(|_| {}).await;
    let acme = TenantId::new("acme").unwrap();
    generate(&GeneratorConfig::for_tenant("acme", Scale::Medium))
        .load(&api.state.store, &acme, |_| {})
        .await
        .unwrap();
    let options = TrainOptions {
        tenants: Some(vec![acme]),
        families: vec![FamilyId::Curiosity],
        ..TrainOptions::default()
    };
    train(&api.state.store, &options, Arc::new(Silent))
        .await
        .unwrap();
    api
}

async fn list(api: &Api, key: &str, query: &str) -> Answer {
    call(
        &api.app,
        get(&format!("/api/v1/curiosity/insights{query}"), Some(key)),
    )
    .await
}

fn items(answer: &Answer) -> Vec<Value> {
    answer.json()["items"].as_array().unwrap().clone()
}

async fn drivers(api: &Api, key: &str, body: Value) -> Answer {
    call(
        &api.app,
        request(
            "POST",
            "/api/v1/curiosity/drivers",
            Some(key),
            Some("application/json"),
            body.to_string(),
        ),
    )
    .await
}

#[tokio::test]
async fn insights_filter_and_page() {
    let api = trained().await;
    let all = list(&api, &api.reader, "?limit=1000").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.json());
    let all = items(&all);
    assert!(all.len() > 100, "{}", all.len());
    // Newest first by default.
    let dates: Vec<&str> = all.iter().map(|i| i["date"].as_str().unwrap()).collect();
    assert!(dates.windows(2).all(|w| w[0] >= w[1]));

    let anomalies = items(
        &list(
            &api,
            &api.reader,
            "?kind=anomaly&entity_type=campaign&limit=1000",
        )
        .await,
    );
    assert!(!anomalies.is_empty());
    assert!(
        anomalies
            .iter()
            .all(|i| i["kind"] == "anomaly" && i["entity_type"] == "campaign")
    );
    let first = &anomalies[0];
    assert!(
        first["explanation"]
            .as_str()
            .unwrap()
            .chars()
            .any(|c| c.is_ascii_digit())
    );
    assert!(first["expected"].is_number() && first["actual"].is_number());

    // entity is entity_id; severity names a floor; from/to bound the date.
    let entity = first["entity_id"].as_str().unwrap();
    let of_one = items(&list(&api, &api.reader, &format!("?entity={entity}&limit=1000")).await);
    assert!(of_one.iter().all(|i| i["entity_id"] == entity));
    let high = items(&list(&api, &api.reader, "?severity=high&limit=1000").await);
    assert!(
        high.iter()
            .all(|i| i["severity"].as_f64().unwrap() >= 2.0 / 3.0)
    );
    assert!(high.len() < all.len());
    let at_least = items(&list(&api, &api.reader, "?severity=0.9&limit=1000").await);
    assert!(
        at_least
            .iter()
            .all(|i| i["severity"].as_f64().unwrap() >= 0.9)
    );
    let day = first["date"].as_str().unwrap();
    let that_day = items(
        &list(
            &api,
            &api.reader,
            &format!(
                "?from={day}&to={day}&metric={}&limit=1000",
                first["metric"].as_str().unwrap()
            ),
        )
        .await,
    );
    assert!(!that_day.is_empty());
    assert!(
        that_day
            .iter()
            .all(|i| i["date"] == day && i["metric"] == first["metric"])
    );

    // Pages of 7 walk the same list without repeats.
    let mut cursor: Option<String> = None;
    let mut walked = Vec::new();
    loop {
        let query = match &cursor {
            Some(c) => format!("?kind=anomaly&limit=7&cursor={c}"),
            None => "?kind=anomaly&limit=7".to_string(),
        };
        let page = list(&api, &api.reader, &query).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.json());
        walked.extend(
            items(&page)
                .into_iter()
                .map(|i| i["insight_id"].as_str().unwrap().to_string()),
        );
        match page.json()["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let every: Vec<String> = items(&list(&api, &api.reader, "?kind=anomaly&limit=1000").await)
        .into_iter()
        .map(|i| i["insight_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(walked, every);

    // Another tenant sees none of acme's insights.
    assert!(items(&list(&api, &api.globex, "").await).is_empty());
}

#[tokio::test]
async fn bad_insight_queries_are_clear_errors() {
    let api = trained().await;
    for (query, needle) in [
        ("?severity=urgent", "severity must be"),
        ("?severity=1.5", "severity must be"),
        ("?from=yesterday", "from must be a date"),
        ("?from=2026-03-02&to=2026-03-01", "before from"),
        ("?kidn=anomaly", "kidn"),
        ("?sort=explanation", "cannot sort"),
    ] {
        let answer = list(&api, &api.reader, query).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            answer.json()
        );
        let detail = answer.json()["detail"].as_str().unwrap().to_string();
        assert!(detail.contains(needle), "{query}: {detail}");
    }
    let anonymous = call(&api.app, get("/api/v1/curiosity/insights", None)).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn drivers_add_up_and_split_ratios_into_mix_and_rate() {
    let api = trained().await;
    let week = |start: &str, end: &str| json!({"start": start, "end": end});
    let body = json!({
        "metric": "cpa",
        "period_a": week("2026-10-18", "2026-10-24"),
        "period_b": week("2026-10-25", "2026-10-31"),
        "dimensions": ["platform", "campaign"],
        "limit": 5,
    });
    let answer = drivers(&api, &api.reader, body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json());
    let out = answer.json();
    let dims = out["dimensions"].as_array().unwrap();
    assert_eq!(dims.len(), 2);
    let change = dims[0]["change"].as_f64().unwrap();
    for dim in dims {
        // Every split of the same change adds up to it.
        assert!((dim["change"].as_f64().unwrap() - change).abs() < 1e-9);
        let rows = dim["contributions"].as_array().unwrap();
        let sum: f64 = rows
            .iter()
            .map(|c| c["contribution"].as_f64().unwrap())
            .sum();
        assert!(
            (sum - change).abs() < 1e-9 * change.abs().max(1.0),
            "{sum} vs {change}"
        );
        for c in rows {
            let parts = c["mix"].as_f64().unwrap() + c["rate"].as_f64().unwrap();
            assert!((parts - c["contribution"].as_f64().unwrap()).abs() < 1e-9);
        }
    }
    // 5 campaigns and one row for the rest.
    let campaigns = dims[1]["contributions"].as_array().unwrap();
    assert_eq!(campaigns.len(), 6);
    assert!(campaigns[5]["value"].as_str().unwrap().ends_with("others)"));
    assert!(campaigns[0]["label"].is_string());

    // A sum has no mix or rate.
    let spend = drivers(
        &api,
        &api.reader,
        json!({"metric": "spend", "period_a": week("2026-10-18", "2026-10-24"),
               "period_b": week("2026-10-25", "2026-10-31"), "dimensions": ["channel"]}),
    )
    .await;
    assert_eq!(spend.status, StatusCode::OK);
    let first = &spend.json()["dimensions"][0]["contributions"][0];
    assert!(first.get("mix").is_none());
}

#[tokio::test]
async fn bad_driver_requests_are_clear_errors() {
    let api = trained().await;
    let week = json!({"start": "2026-10-25", "end": "2026-10-31"});
    for (body, status, needle) in [
        (
            json!({"metric": "profit", "period_a": week, "period_b": week, "dimensions": ["channel"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown metric",
        ),
        (
            json!({"metric": "spend", "period_a": week, "period_b": week, "dimensions": ["country"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown dimension",
        ),
        (
            json!({"metric": "spend", "period_a": week, "period_b": week, "dimensions": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "dimensions is empty",
        ),
        (
            json!({"metric": "spend", "period_a": {"start": "2026-10-31", "end": "2026-10-01"},
                "period_b": week, "dimensions": ["channel"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "ends",
        ),
        (
            json!({"metric": "cpa", "period_a": {"start": "2020-01-01", "end": "2020-01-07"},
                "period_b": week, "dimensions": ["channel"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "undefined in period_a",
        ),
        (
            json!({"metric": "spend", "period_a": week, "period_b": week, "dimensions": ["channel"], "limit": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit",
        ),
        (
            json!({"metric": "spend", "period_a": "last week", "period_b": week, "dimensions": ["channel"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "does not fit",
        ),
    ] {
        let answer = drivers(&api, &api.reader, body.clone()).await;
        assert_eq!(answer.status, status, "{body}: {}", answer.json());
        let detail = answer.json()["detail"].as_str().unwrap().to_string();
        assert!(detail.contains(needle), "{body}: {detail}");
    }
    // Another tenant's drivers are its own: globex has one campaign.
    let answer = drivers(
        &api,
        &api.globex,
        json!({"metric": "spend", "period_a": {"start": "2026-02-01", "end": "2026-02-28"},
               "period_b": {"start": "2026-03-01", "end": "2026-03-31"}, "dimensions": ["campaign"]}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json());
    let rows = answer.json()["dimensions"][0]["contributions"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["value"], "gx-camp");
}

/// `n` insights of acme, one per (day, campaign), with severities and
/// scores that repeat, so that sorts have ties.
fn many_insights(n: usize) -> gyrus_engine::datafusion::arrow::array::RecordBatch {
    use gyrus_engine::datafusion::arrow::array::{
        ArrayRef, Date32Array, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    };
    use gyrus_engine::schema::CanonicalTable;
    let text = |f: &dyn Fn(usize) -> String| -> ArrayRef {
        Arc::new(StringArray::from((0..n).map(f).collect::<Vec<_>>()))
    };
    let float = |f: &dyn Fn(usize) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from((0..n).map(f).collect::<Vec<_>>()))
    };
    let base = 20_000; // 2024-10-04
    RecordBatch::try_new(
        CanonicalTable::Insights.schema(),
        vec![
            text(&|i| format!("ins-{i:07}")),
            text(&|i| ["anomaly", "changepoint", "mover"][i % 3].to_string()),
            text(&|_| "campaign".to_string()),
            text(&|i| format!("c-{:04}", i % 1000)),
            text(&|i| ["clicks", "spend"][i % 2].to_string()),
            Arc::new(Date32Array::from(
                (0..n).map(|i| base + (i / 1000) as i32).collect::<Vec<_>>(),
            )),
            float(&|i| (i % 97) as f64 / 96.0),
            float(&|i| (i % 13) as f64),
            float(&|i| i as f64),
            float(&|i| i as f64 * 1.5),
            text(&|i| format!("clicks rose by {i} against the expected value of the week")),
            text(&|_| "curiosity-v1".to_string()),
            Arc::new(
                TimestampMicrosecondArray::from(
                    (0..n)
                        .map(|i| 1_760_000_000_000_000 + (i % 5000) as i64 * 1_000_000)
                        .collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
        ],
    )
    .unwrap()
}

/// The list reads one page from the scan, not the table: under a pool
/// that cannot sort the whole table (and no spill space), the table sorted
/// whole is refused, while pages of it come back in every sort, and
/// `system.queries` shows each page's scan returned at most a page and one
/// row more.
#[tokio::test]
async fn insights_page_a_table_larger_than_the_pool() {
    const N: usize = 200_000;
    let api = api(|c| {
        c.limits.memory_bytes = 16 << 20;
        c.limits.budget = gyrus_engine::budget::ProcessBudget::new(64 << 20, 0);
    })
    .await;
    let acme = TenantId::new("acme").unwrap();
    api.state
        .store
        .write(
            &acme,
            gyrus_engine::WriteRequest::append(
                gyrus_engine::schema::CanonicalTable::Insights,
                vec![many_insights(N)],
            ),
        )
        .await
        .unwrap();

    let whole = call(
        &api.app,
        sql(
            &api.reader,
            "application/json",
            json!({ "sql": "SELECT * FROM insights ORDER BY explanation" }),
        ),
    )
    .await;
    assert!(
        whole.json().to_string().contains("memory limit"),
        "the table sorted whole fits the pool: {}",
        whole.json()
    );

    for (sort, field) in [
        ("-date", "date"),
        ("-severity", "severity"),
        ("score", "score"),
        ("detected_at", "detected_at"),
    ] {
        let mut seen = std::collections::HashSet::new();
        let mut cursor = String::new();
        let mut last: Option<Value> = None;
        for _ in 0..3 {
            let page = list(
                &api,
                &api.reader,
                &format!("?kind=mover&sort={sort}&limit=500{cursor}"),
            )
            .await;
            assert_eq!(page.status, StatusCode::OK, "{sort}: {}", page.json());
            let got = items(&page);
            assert_eq!(got.len(), 500, "{sort}");
            for item in &got {
                assert_eq!(item["kind"], "mover");
                assert!(
                    seen.insert(item["insight_id"].to_string()),
                    "{sort} repeats"
                );
                let value = &item[field];
                if let Some(before) = &last {
                    let (a, b) = (before.to_string(), value.to_string());
                    let ordered = match (before.as_f64(), value.as_f64()) {
                        (Some(x), Some(y)) if sort.starts_with('-') => x >= y,
                        (Some(x), Some(y)) => x <= y,
                        _ if sort.starts_with('-') => a >= b,
                        _ => a <= b,
                    };
                    assert!(ordered, "{sort}: {before} then {value}");
                }
                last = Some(value.clone());
            }
            let next = page.json()["next_cursor"].as_str().unwrap().to_string();
            cursor = format!("&cursor={next}");
        }
    }
    // The newest day comes first by default, as the whole table says.
    let first = items(&list(&api, &api.reader, "?limit=1").await);
    assert_eq!(first[0]["date"], "2025-04-21");

    let queries = call(
        &api.app,
        sql(
            &api.admin,
            "application/json",
            json!({ "sql": "SELECT rows FROM system.queries WHERE sql = 'SELECT * FROM insights'" }),
        ),
    )
    .await;
    let rows: Vec<u64> = queries.json()["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rows"].as_u64().unwrap())
        .collect();
    assert_eq!(rows.len(), 13, "{rows:?}");
    assert!(rows.iter().all(|&n| n <= 501), "{rows:?}");
}
