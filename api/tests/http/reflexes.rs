//! REFLEXES over HTTP: budget plans (bounds, targets, saving and roles),
//! bandit splits and pacing, and every way a request can be wrong.

use std::sync::Arc;

use axum::http::StatusCode;
use gyrus_datasets::{GeneratorConfig, Scale, generate};
use gyrus_engine::TenantId;
use gyrus_models::FamilyId;
use gyrus_models::pipeline::{Silent, TrainOptions, train};
use gyrus_models::reflexes::ReflexesConfig;
use serde_json::{Value, json};

use crate::support::*;

/// The test API with acme's synthetic data (small), REFLEXES trained. Its
/// caches never wait: the test retrains behind the API's back.
async fn trained() -> Api {
    trained_with(TEST_BOOTSTRAP, |_| {}).await
}

/// Bootstrap refits in tests: fewer than the default.
const TEST_BOOTSTRAP: usize = 12;

/// [`trained`] with `bootstrap` refits and more settings of the API's.
async fn trained_with(bootstrap: usize, configure: impl FnOnce(&mut gyrus_api::ApiConfig)) -> Api {
    let api = api(|c| {
        c.catalog_max_age = std::time::Duration::ZERO;
        configure(c);
    })
    .await;
    let acme = TenantId::new("acme").unwrap();
    generate(&GeneratorConfig::for_tenant("acme", Scale::Small))
        .load(&api.state.store, &acme, |_| {})
        .await
        .unwrap();
    train_reflexes_with(&api, bootstrap).await;
    api
}

/// Trains acme's REFLEXES (fewer bootstrap refits than the default: a test).
async fn train_reflexes(api: &Api) {
    train_reflexes_with(api, TEST_BOOTSTRAP).await
}

/// Trains acme's REFLEXES with `bootstrap` refits.
async fn train_reflexes_with(api: &Api, bootstrap: usize) {
    let options = TrainOptions {
        tenants: Some(vec![TenantId::new("acme").unwrap()]),
        families: vec![FamilyId::Reflexes],
        reflexes: ReflexesConfig {
            bootstrap,
            ..ReflexesConfig::default()
        },
        ..TrainOptions::default()
    };
    let reports = train(&api.state.store, &options, Arc::new(Silent))
        .await
        .unwrap();
    assert_eq!(reports[0].status, gyrus_models::Status::Good, "{reports:?}");
}

async fn post(api: &Api, key: &str, path: &str, body: Value) -> Answer {
    call(&api.app, post_json(path, key, body)).await
}

fn total(plan: &Value, field: &str) -> f64 {
    plan["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[field].as_f64().unwrap())
        .sum()
}

#[tokio::test]
async fn budget_plans_keep_bounds_targets_and_roles() {
    let api = trained().await;
    let path = "/api/v1/reflexes/budget";
    // Today's spend, reallocated within ±20%: same total, more conversions.
    let answer = post(
        &api,
        &api.reader,
        path,
        json!({"total_budget": 0.0, "objective": "conversions"}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json());
    let current = answer.json()["current_spend"].as_f64().unwrap();
    assert!(current > 0.0);
    let answer = post(
        &api,
        &api.reader,
        path,
        json!({"total_budget": current, "objective": "conversions", "bounds": {"share": 0.2}}),
    )
    .await;
    let plan = answer.json();
    assert_eq!(answer.status, StatusCode::OK, "{plan}");
    assert_eq!(plan["saved"], false, "a reader's plan is not saved");
    assert!(
        (total(&plan, "recommended_spend") - current).abs() < 1e-6 * current,
        "{plan}"
    );
    for e in plan["entities"].as_array().unwrap() {
        let (now, then) = (
            e["current_spend"].as_f64().unwrap(),
            e["recommended_spend"].as_f64().unwrap(),
        );
        assert!(then >= now * 0.8 - 1e-9 && then <= now * 1.2 + 1e-9, "{e}");
    }
    assert!(plan["lift"].as_f64().unwrap() >= -1e-9, "{plan}");
    assert!(plan["lift_lower"].as_f64().unwrap() <= plan["lift_upper"].as_f64().unwrap());
    // A CPA target below today's: the plan keeps it, spending less.
    let cpa = current / plan["expected_current"].as_f64().unwrap();
    let answer = post(
        &api,
        &api.reader,
        path,
        json!({"total_budget": current, "objective": "conversions", "target_cpa": cpa * 0.95}),
    )
    .await;
    let targeted = answer.json();
    assert_eq!(answer.status, StatusCode::OK, "{targeted}");
    let spent = total(&targeted, "recommended_spend");
    let expected = total(&targeted, "expected_recommended");
    assert!(spent / expected <= cpa * 0.95 * (1.0 + 1e-6), "{targeted}");
    // Where the target binds, the allocator spends until the fitted curves
    // just keep it, so curves as uncertain as the refits may not: the plan
    // says how often they keep it when fewer than nine in ten do. A target
    // that does not bind (the one above) draws no such warning.
    let about_target = |plan: &Value| -> Vec<String> {
        plan["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|w| w.as_str())
            .filter(|w| w.contains("CPA target"))
            .map(str::to_string)
            .collect()
    };
    assert!(about_target(&targeted).is_empty(), "{targeted}");
    let mut warned = 0;
    for share in [0.94, 0.935, 0.93, 0.92] {
        let answer = post(
            &api,
            &api.reader,
            path,
            json!({"total_budget": current, "objective": "conversions", "target_cpa": cpa * share}),
        )
        .await;
        let plan = answer.json();
        assert_eq!(answer.status, StatusCode::OK, "{plan}");
        let spent = total(&plan, "recommended_spend");
        let expected = total(&plan, "expected_recommended");
        assert!(spent / expected <= cpa * share * (1.0 + 1e-6), "{plan}");
        for w in about_target(&plan) {
            let kept: f64 = w
                .split("under only ")
                .nth(1)
                .and_then(|rest| rest.split('%').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no share in {w}"));
            assert!(kept < 90.0, "{w}");
            assert!(w.contains("of the curves' refits"), "{w}");
            warned += 1;
        }
        for w in plan["warnings"].as_array().unwrap() {
            assert!(!w.as_str().unwrap().contains("  "), "{w}");
        }
    }
    assert!(warned > 0, "no binding target drew a warning");
    // A writer's plan is saved; a reader may not ask to save.
    let answer = post(
        &api,
        &api.writer,
        path,
        json!({"total_budget": current, "objective": "conversion_value", "bounds": {"share": 0.3}}),
    )
    .await;
    let saved = answer.json();
    assert_eq!(saved["saved"], true, "{saved}");
    let id = saved["plan_id"].as_str().unwrap();
    let rows = call(
        &api.app,
        sql(
            &api.reader,
            "application/json",
            json!({"sql": "SELECT count(*) AS n, min(objective) AS o FROM budget_plans WHERE plan_id = ?", "params": [id]}),
        ),
    )
    .await
    .json();
    assert_eq!(
        rows["rows"][0]["n"],
        saved["entities"].as_array().unwrap().len()
    );
    assert_eq!(rows["rows"][0]["o"], "conversion_value");
    // A new training run replaces its own plan, `automatic`, and keeps saved ones.
    train_reflexes(&api).await;
    let plans = call(
        &api.app,
        sql(
            &api.reader,
            "application/json",
            json!({"sql": "SELECT plan_id, count(*) AS n, count(DISTINCT model_version) AS versions, max(model_version) AS v FROM budget_plans GROUP BY plan_id ORDER BY plan_id"}),
        ),
    )
    .await
    .json();
    let plans = plans["rows"].as_array().unwrap();
    assert_eq!(plans.len(), 2, "{plans:?}");
    assert_eq!(plans[0]["plan_id"], "automatic");
    assert_eq!(plans[0]["versions"], 1);
    assert_eq!(plans[0]["v"], "reflexes-v2");
    assert_eq!(plans[1]["plan_id"], id);
    post(
        &api,
        &api.reader,
        path,
        json!({"total_budget": current, "objective": "conversions", "save": true}),
    )
    .await
    .problem(StatusCode::FORBIDDEN, "forbidden");
    // Another tenant has no curves of its own.
    post(
        &api,
        &api.globex,
        path,
        json!({"total_budget": 10.0, "objective": "conversions"}),
    )
    .await
    .problem(StatusCode::NOT_FOUND, "no-model");
    for body in [
        json!({"total_budget": -1.0, "objective": "conversions"}),
        json!({"total_budget": 10.0, "objective": "clicks"}),
        json!({"total_budget": 10.0, "objective": "conversions", "target_cpa": 5.0, "target_roas": 2.0}),
        json!({"total_budget": 10.0, "objective": "conversions", "bounds": {"min": 5.0, "max": 1.0}}),
        json!({"total_budget": 10.0, "objective": "conversions", "bounds": {"entities": {"nope": {"max": 1.0}}}}),
        json!({"total_budget": 10.0, "objective": "conversions", "entity_type": "ad"}),
        json!({"total_budget": 1.0, "objective": "conversions", "bounds": {"min": 1000.0}}),
    ] {
        post(&api, &api.reader, path, body.clone())
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-request");
    }

    // Pacing against the saved plan: a budget per campaign and per account.
    let answer = call(
        &api.app,
        get(
            &format!("/api/v1/reflexes/pacing?plan_id={id}"),
            Some(&api.reader),
        ),
    )
    .await;
    let pacing = answer.json();
    assert_eq!(answer.status, StatusCode::OK, "{pacing}");
    let entities = pacing["entities"].as_array().unwrap();
    assert!(!entities.is_empty());
    for e in entities {
        let budget = e["budget"].as_f64().unwrap();
        let projected = e["projected_spend"].as_f64().unwrap();
        assert!(e["month_to_date_spend"].as_f64().unwrap() <= projected + 1e-9);
        assert!((e["pace"].as_f64().unwrap() - projected / budget).abs() < 1e-9);
    }
    let accounts = call(
        &api.app,
        get(
            &format!("/api/v1/reflexes/pacing?entity_type=account&plan_id={id}"),
            Some(&api.reader),
        ),
    )
    .await
    .json();
    let campaign_budgets: f64 = entities.iter().map(|e| e["budget"].as_f64().unwrap()).sum();
    let account_budgets: f64 = accounts["entities"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["budget"].as_f64())
        .sum();
    assert!((campaign_budgets - account_budgets).abs() < 1e-6 * campaign_budgets);
    call(
        &api.app,
        get("/api/v1/reflexes/pacing?plan_id=nope", Some(&api.reader)),
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-request");
    call(
        &api.app,
        get("/api/v1/reflexes/pacing?month=June", Some(&api.reader)),
    )
    .await
    .problem(StatusCode::BAD_REQUEST, "bad-request");
    call(
        &api.app,
        get("/api/v1/reflexes/pacing?color=red", Some(&api.reader)),
    )
    .await
    .problem(StatusCode::BAD_REQUEST, "bad-request");
}

#[tokio::test]
async fn bandit_splits_favour_the_best_arm_and_refuse_bad_arms() {
    let api = api(|_| {}).await;
    let path = "/api/v1/reflexes/bandit";
    let arms = json!({"arms": [
        {"id": "a", "trials": 5000, "successes": 100},
        {"id": "b", "trials": 5000, "successes": 160},
        {"id": "c", "trials": 40, "successes": 1},
    ], "floor": 0.05});
    let answer = post(&api, &api.reader, path, arms.clone()).await;
    let split = answer.json();
    assert_eq!(answer.status, StatusCode::OK, "{split}");
    let shares: Vec<f64> = split["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["share"].as_f64().unwrap())
        .collect();
    assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    assert!(shares[1] > shares[0] && shares.iter().all(|&s| s >= 0.05 - 1e-12));
    // The same arms get the same split.
    assert_eq!(post(&api, &api.reader, path, arms).await.json(), split);
    let values = json!({"arms": [
        {"id": "a", "n": 1000, "sum": 500.0, "sum_squares": 1250.0},
        {"id": "b", "n": 1000, "sum": 700.0, "sum_squares": 1490.0},
    ]});
    let split = post(&api, &api.reader, path, values).await.json();
    assert_eq!(split["model"], "gaussian", "{split}");
    for body in [
        json!({"arms": [{"id": "a", "trials": 10, "successes": 11}, {"id": "b", "trials": 1, "successes": 0}]}),
        json!({"arms": [{"id": "a", "trials": 10, "successes": 1}]}),
        json!({"arms": [{"id": "a", "trials": 10}, {"id": "b", "trials": 1, "successes": 0}]}),
        json!({"arms": [{"id": "a", "trials": 10, "successes": 1}, {"id": "b", "n": 3, "sum": 1.0, "sum_squares": 1.0}]}),
        json!({"arms": [{"id": "a", "trials": 10, "successes": 1}, {"id": "b", "trials": 1, "successes": 0}], "floor": 0.9}),
        json!({"arms": [{"id": "a", "trials": 10, "successes": 1}, {"id": "b", "trials": 1, "successes": 0}], "draws": 0}),
        json!({"arms": (0..100).map(|i| json!({"id": format!("a{i}"), "trials": 10, "successes": 1})).collect::<Vec<_>>(), "draws": 1_000_000}),
    ] {
        post(&api, &api.reader, path, body.clone())
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-request");
    }
}

/// Makes acme's serving REFLEXES model one of `n` campaigns (copies of its
/// trained ones), so that a plan is seconds of CPU; returns today's spend.
async fn serve_campaigns(api: &Api, n: usize) -> f64 {
    use gyrus_models::reflexes::ReflexesModel;
    use gyrus_models::reflexes::model::EntityCurves;
    use gyrus_models::registry::Registry;

    let acme = TenantId::new("acme").unwrap();
    let registry = Registry::new(api.state.store.clone());
    let (entry, mut model) = registry
        .serving::<ReflexesModel>(&acme)
        .await
        .unwrap()
        .unwrap();
    let campaigns: Vec<EntityCurves> = model
        .curves
        .iter()
        .filter(|c| c.entity_type == "campaign" && c.current_spend > 0.0)
        .cloned()
        .collect();
    model.curves = (0..n)
        .map(|i| EntityCurves {
            entity_id: format!("big-{i}"),
            ..campaigns[i % campaigns.len()].clone()
        })
        .collect();
    let big = gyrus_models::registry::Entry {
        version: entry.version + 1,
        trained_at: chrono::Utc::now(),
        ..entry
    };
    registry.record(&big, Some(&model)).await.unwrap();
    model.curves.iter().map(|c| c.current_spend).sum()
}

/// One tenant floods the server with budget plans, each seconds of CPU,
/// more at once than its share of request slots. The flood stays on that
/// tenant's lane: another tenant's query and the health check are answered
/// while plans are still being computed. Every plan request gets an answer
/// a client can act on: a plan, 503 with `Retry-After` past the tenant's
/// slots, or 504 past the time limit. And once the flood is over, the
/// tenant itself is served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_plans_from_one_tenant_leaves_the_others_served() {
    const FLOOD: usize = 12;
    const SLOTS: usize = 4;
    let api = trained_with(TEST_BOOTSTRAP, |c| {
        c.limits.timeout = std::time::Duration::from_secs(6);
        c.admission.max_concurrent_per_tenant = SLOTS;
    })
    .await;
    let today = serve_campaigns(&api, 5_000).await;
    let body = json!({"total_budget": today, "objective": "conversions", "save": false});
    let flood: Vec<_> = (0..FLOOD)
        .map(|_| {
            let app = api.app.clone();
            let request = post_json("/api/v1/reflexes/budget", &api.reader, body.clone());
            tokio::spawn(async move { call(&app, request).await })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    others_are_served(&api).await;
    let computing = flood.iter().filter(|plan| !plan.is_finished()).count();
    assert!(
        computing > 0,
        "the others were answered while the flood was computing"
    );
    let mut answered = std::collections::BTreeMap::<u16, usize>::new();
    for plan in flood {
        let answer = plan.await.unwrap();
        match answer.status {
            StatusCode::OK => {
                assert_eq!(answer.json()["entities"].as_array().unwrap().len(), 5_000);
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                answer.problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
                assert!(answer.retry_after.is_some_and(|s| s >= 1));
            }
            StatusCode::GATEWAY_TIMEOUT => {
                answer.problem(StatusCode::GATEWAY_TIMEOUT, "timeout");
            }
            other => panic!("{other}: {}", String::from_utf8_lossy(&answer.body)),
        }
        *answered.entry(answer.status.as_u16()).or_default() += 1;
    }
    println!(
        "flood of {FLOOD} plans, {SLOTS} slots: answers by status {answered:?}, {computing} still computing when the others were answered"
    );
    // More than the tenant's slots were sent at once: some were refused.
    assert!(
        answered.get(&503).copied().unwrap_or(0) >= FLOOD - SLOTS,
        "{answered:?}"
    );
    assert!(
        answered.get(&503).copied().unwrap_or(0) < FLOOD,
        "{answered:?}"
    );
    let after = call(
        &api.app,
        sql(
            &api.reader,
            "application/json",
            json!({"sql": "SELECT 1 AS one"}),
        ),
    )
    .await;
    assert_eq!(after.status, StatusCode::OK, "the tenant is served again");
}

/// A plan over 10,000 campaigns is seconds of CPU (an allocation per
/// bootstrap refit). It runs on the tenant's lane, off the server's async
/// threads: this test's runtime has one thread, so a plan computed on it
/// would hold the health check and the other tenant's query until it
/// ended. Its bootstrap gives up at half the time limit, and the answer
/// says so (or, on a machine too slow for even that, is a 504).
#[tokio::test]
async fn a_plan_over_ten_thousand_campaigns_runs_off_the_async_threads() {
    let api = trained_with(TEST_BOOTSTRAP, |c| {
        c.limits.timeout = std::time::Duration::from_secs(6)
    })
    .await;
    let today = serve_campaigns(&api, 10_000).await;
    let body = json!({"total_budget": today, "objective": "conversions", "save": false});

    // The plan and, meanwhile (once the model is loaded and being planned
    // on its lane), a health check and another tenant's query, all polled
    // by this test's one thread: the order they finish in is recorded.
    let finished = std::sync::Mutex::new(Vec::new());
    let plan = async {
        let answer = call(
            &api.app,
            post_json("/api/v1/reflexes/budget", &api.reader, body),
        )
        .await;
        finished.lock().unwrap().push("plan");
        answer
    };
    let others = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        others_are_served(&api).await;
        finished.lock().unwrap().push("others");
    };
    let (answer, ()) = tokio::join!(plan, others);
    assert_eq!(
        *finished.lock().unwrap(),
        ["others", "plan"],
        "the others were answered while the plan was computing"
    );
    if answer.status == StatusCode::OK {
        let plan = answer.json();
        assert_eq!(plan["entities"].as_array().unwrap().len(), 10_000);
        let late = plan["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("time limit"));
        assert_eq!(late, plan["lift_lower"].is_null(), "{}", plan["warnings"]);
    } else {
        answer.problem(StatusCode::GATEWAY_TIMEOUT, "timeout");
    }
}

/// Figures for benches/RESULTS.md (run on a release build): the latency of
/// a budget plan over 10,000 campaigns with the default bootstrap (31
/// refits, each a plan of its own), without and with a CPA target, under
/// a time limit long enough that the bootstrap is never given up.
///
/// `cargo nextest run --release -p gyrus-api --run-ignored only --no-capture -E 'test(plan_latency)'`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "figures for benches/RESULTS.md"]
async fn plan_latency_at_ten_thousand_campaigns() {
    let api = trained_with(ReflexesConfig::default().bootstrap, |c| {
        c.limits.timeout = std::time::Duration::from_secs(600)
    })
    .await;
    let today = serve_campaigns(&api, 10_000).await;
    let untargeted = post(
        &api,
        &api.reader,
        "/api/v1/reflexes/budget",
        json!({"total_budget": today, "objective": "conversions", "save": false}),
    )
    .await;
    assert_eq!(untargeted.status, StatusCode::OK);
    let plan = untargeted.json();
    let cpa = plan["current_spend"].as_f64().unwrap() / plan["expected_current"].as_f64().unwrap();
    for (what, body) in [
        (
            "conversions",
            json!({"total_budget": today, "objective": "conversions", "save": false}),
        ),
        (
            "conversions, CPA target 0.95x today's",
            json!({"total_budget": today, "objective": "conversions", "save": false,
                   "target_cpa": cpa * 0.95}),
        ),
    ] {
        let mut seconds = Vec::new();
        for _ in 0..5 {
            let started = std::time::Instant::now();
            let answer = post(&api, &api.reader, "/api/v1/reflexes/budget", body.clone()).await;
            seconds.push(started.elapsed().as_secs_f64());
            let plan = answer.json();
            assert_eq!(answer.status, StatusCode::OK, "{plan}");
            assert_eq!(plan["entities"].as_array().unwrap().len(), 10_000);
            assert!(!plan["lift_lower"].is_null(), "{}", plan["warnings"]);
        }
        seconds.sort_by(f64::total_cmp);
        println!(
            "plan over 10,000 campaigns ({what}): median {:.2} s, min {:.2}, max {:.2} (5 plans)",
            seconds[2], seconds[0], seconds[4]
        );
    }
}
