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
use gyrus_models::reflexes::allocate::{Entity, Problem, allocate};
use gyrus_models::reflexes::curve::ResponseCurve;
use gyrus_models::reflexes::model::{
    BoundSource, CurveSource, Objective, Plan, PlanEntity, PlanRequest, ReflexesConfig,
    ReflexesModel, SpendBounds, campaign_channels, default_plan, fit_tenant, plan, plan_until,
};
use gyrus_models::series::load_series;

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

/// Today's daily spend over the campaigns that are spending.
fn today_spend(model: &ReflexesModel) -> f64 {
    model
        .curves
        .iter()
        .filter(|c| c.entity_type == "campaign" && c.current_spend > 0.0)
        .map(|c| c.current_spend)
        .sum()
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

/// The true response of a plan's entities at today's spend and at the
/// recommended spend.
fn true_responses(made: &Plan, truth: &HashMap<&str, &CampaignTruth>) -> (f64, f64) {
    let true_of = |spend: &dyn Fn(&PlanEntity) -> f64| {
        made.entities
            .iter()
            .map(|r| true_curve(truth[r.entity_id.as_str()]).response(spend(r)))
            .sum::<f64>()
    };
    (
        true_of(&|r| r.current_spend),
        true_of(&|r| r.recommended_spend),
    )
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
        covered,
        failures,
    } = figures;
    // The defaults, bootstrap included: plans use it to judge whether a
    // reallocation is worth making, and for their lift interval.
    let config = ReflexesConfig::default();
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
    let today = today_spend(&model);
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
        let (true_today, true_plan) = true_responses(&made, &truth);
        let claimed = made.summary.expected_recommended;
        claim_errors.push(claimed / true_plan - 1.0);
        let true_lift = true_plan - true_today;
        let (lower, upper) = made
            .summary
            .lift_lower
            .zip(made.summary.lift_upper)
            .expect("an interval with the default bootstrap");
        covered.push(lower <= true_lift && true_lift <= upper);
        let line = format!(
            "{:>6} {noise:>13} seed {seed} ×{multiple}: spend {:.0} of {:.0}; true today \
             {true_today:.1}, true plan {true_plan:.1}, claimed {claimed:.1}; lift true \
             {true_lift:+.1}, interval {lower:+.1} to {upper:+.1}; {} warnings",
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
        // Plain words, one space between them (a lost line continuation
        // once put fourteen in the middle of this warning).
        for w in &wide.summary.warnings {
            assert!(!w.contains("  "), "{w:?}");
        }
    }
}

/// What the plan checks print and judge.
#[derive(Default)]
struct Figures {
    lines: Vec<String>,
    claim_errors: Vec<f64>,
    /// Whether each plan's 90% lift interval holds its true lift.
    covered: Vec<bool>,
    failures: Vec<String>,
}

fn report(figures: Figures) {
    let Figures {
        lines,
        mut claim_errors,
        covered,
        failures,
    } = figures;
    for line in &lines {
        println!("{line}");
    }
    claim_errors.sort_by(f64::total_cmp);
    let median = claim_errors[claim_errors.len() / 2];
    let share = covered.iter().filter(|&&c| c).count() as f64 / covered.len().max(1) as f64;
    println!(
        "claimed / true - 1: median {median:+.3}, range {:+.3} to {:+.3}; the 90% lift \
         interval holds the true lift in {share:.2} of {} plans",
        claim_errors[0],
        claim_errors[claim_errors.len() - 1],
        covered.len()
    );
    // At least the 80%: on 16 plans all may be covered.
    assert!(share >= 0.80, "coverage {share}");
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
/// change made for them) 14 of 16 cases met that; two lost 0.5%
/// (overdispersed, small, 9005) and 2.8% (uneven, small, 9005), where the
/// fitted curves overstate a small campaign's gain. With the channel prior
/// and the confidence gate (2026-12-05) one still lost 0.3%; with curves
/// through the origin and a generic prior on the channels' (later that
/// day) none does (the least gain is +0.13%), and the test holds that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_plans_hold_on_noise_shapes_never_tuned_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
    let mut figures = Figures::default();
    for noise in NoiseShape::ALL.into_iter().skip(1) {
        for scale in [Scale::Small, Scale::Medium] {
            for seed in &HELD_OUT_SEEDS[4..6] {
                check_default_plans(&store, scale, noise, *seed, 1.0 - 1e-9, &mut figures).await;
            }
        }
    }
    report(figures);
}

/// One plan scored against the truth: what it claims, what it truly
/// yields, and whether its 90% lift interval holds the true lift.
struct Scored {
    line: String,
    claim_error: f64,
    covered: Option<bool>,
    /// The plan's true response over today's, at today's budget.
    gain_at_today: Option<f64>,
}

/// Default plans of one generated tenant at 0.5, 1, 1.5 and 3 times
/// today's budget, fitted with `config` (bootstrap on for intervals).
async fn score_plans(
    store: &Store,
    config: &ReflexesConfig,
    scale: Scale,
    noise: NoiseShape,
    seed: u64,
) -> Vec<Scored> {
    let mut generator = GeneratorConfig::new(seed, scale);
    generator.noise = noise;
    let tenant = format!("cov{}{noise}{seed}{}", scale.as_str(), config_tag(config));
    let (data, model) = fit_config(store, config, &generator, &tenant.replace('_', "")).await;
    let truth = truth_of(&data);
    let today = today_spend(&model);
    let mut out = Vec::new();
    for multiple in [0.5, 1.0, 1.5, 3.0] {
        let made = plan(
            &model,
            &PlanRequest {
                entity_type: "campaign".into(),
                objective: Objective::Conversions,
                total_budget: today * multiple,
                bounds: SpendBounds::default(),
                entity_bounds: HashMap::new(),
                target: None,
            },
        )
        .unwrap();
        let (true_today, true_plan) = true_responses(&made, &truth);
        let s = &made.summary;
        let true_lift = true_plan - true_today;
        let covered = s
            .lift_lower
            .zip(s.lift_upper)
            .map(|(lo, hi)| lo <= true_lift && true_lift <= hi);
        out.push(Scored {
            line: format!(
                "{:>6} {noise:>13} seed {seed} ×{multiple}: today true {true_today:.1} \
                 fitted {:.1}; plan true {true_plan:.1} claimed {:.1}; lift true \
                 {true_lift:+.1} claimed {:+.1} interval {}",
                scale.as_str(),
                s.expected_current,
                s.expected_recommended,
                s.lift,
                match (s.lift_lower, s.lift_upper) {
                    (Some(lo), Some(hi)) => format!("{lo:+.1} to {hi:+.1}"),
                    _ => "none".into(),
                }
            ),
            claim_error: s.expected_recommended / true_plan - 1.0,
            covered,
            gain_at_today: (multiple == 1.0).then_some(true_plan / true_today - 1.0),
        });
    }
    out
}

/// A tenant name part that keeps fits of different configs apart.
fn config_tag(config: &ReflexesConfig) -> String {
    format!(
        "p{}c{}b{}",
        (config.curve_prior * 100.0) as u64,
        (config.channel_prior * 100.0) as u64,
        config.bootstrap
    )
}

/// Claims, losses and interval coverage of default plans with the
/// bootstrap on, every noise shape, small and medium tenants.
async fn plan_figures(seeds: &[u64]) -> (Vec<f64>, Vec<bool>, Vec<f64>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
    let mut config = ReflexesConfig::default();
    if let Ok(w) = std::env::var("GYRUS_CURVE_PRIOR") {
        config.curve_prior = w.parse().unwrap();
    }
    if let Ok(w) = std::env::var("GYRUS_CHANNEL_PRIOR") {
        config.channel_prior = w.parse().unwrap();
    }
    if let Ok(w) = std::env::var("GYRUS_INTERVAL_SCALE") {
        config.interval_scale = w.parse().unwrap();
    }
    let (seeds, shapes) = gyrus_datasets::check_cases(seeds).unwrap();
    let (mut claims, mut covered, mut gains) = (Vec::new(), Vec::new(), Vec::new());
    for noise in shapes {
        for scale in [Scale::Small, Scale::Medium] {
            for &seed in &seeds {
                for s in score_plans(&store, &config, scale, noise, seed).await {
                    println!("{}", s.line);
                    claims.push(s.claim_error);
                    covered.extend(s.covered);
                    gains.extend(s.gain_at_today);
                }
            }
        }
    }
    let share = covered.iter().filter(|&&c| c).count() as f64 / covered.len().max(1) as f64;
    let mut sorted = claims.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "prior {} (channels {}): {} plans; claimed / true − 1 median {:+.3} ({:+.3} to {:+.3}), within ±25% \
         {:.2}; 90% lift interval covers the true lift in {:.2} of {}; at today's budget the \
         plan loses in {} of {} (worst {:+.4}, median {:+.4})",
        config.curve_prior,
        config.channel_prior,
        claims.len(),
        sorted[sorted.len() / 2],
        sorted[0],
        sorted[sorted.len() - 1],
        claims.iter().filter(|e| e.abs() <= 0.25).count() as f64 / claims.len() as f64,
        share,
        covered.len(),
        gains.iter().filter(|&&g| g < 0.0).count(),
        gains.len(),
        gains.iter().copied().fold(f64::INFINITY, f64::min),
        median(gains.clone()),
    );
    (claims, covered, gains)
}

/// Explores on the tuning seeds (`--ignored`): every shape, seeds 1 to 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "an exploration on tuning seeds; minutes"]
async fn plan_figures_on_tuning_seeds() {
    plan_figures(&[1, 2, 3]).await;
}

/// Plans with the bootstrap on, every noise shape, on a seed held out
/// from all tuning (9007; `GYRUS_CHECK_SEEDS` for more): claims close to
/// the truth, no loss at today's budget, and the 90% lift interval's
/// coverage of the true lift.
///
/// Issue 19 asks for coverage between 80% and 97%. Measured 2026-12-05:
/// 0.23 on the held-out plans with the first interval that plans again;
/// 0.43 with curves through the origin, a generic prior on the channels'
/// and refits that draw their prior's centre too; 0.52 with each campaign
/// refit drawn toward its channel's matching refit; on this seed 0.42.
/// The refits' spread of a campaign's marginal return is about half its
/// true error (`slope_errors_against_the_bootstrap_spread`), so the plain
/// intervals were too narrow. With the interval widened by
/// `INTERVAL_SCALE` (2, chosen on the tuning seeds): 0.875 of the 120
/// held-out plans, 35 of 40 on this seed. The test holds it to the issue's
/// range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lift_intervals_on_a_seed_never_tuned_on() {
    let (claims, covered, gains) = plan_figures(&HELD_OUT_SEEDS[6..7]).await;
    let share = covered.iter().filter(|&&c| c).count() as f64 / covered.len() as f64;
    assert_eq!(covered.len(), claims.len(), "every plan has an interval");
    assert!(median(claims.clone()).abs() <= 0.25, "{claims:?}");
    assert!(
        claims.iter().all(|e| (-0.5..=1.0).contains(e)),
        "{claims:?}"
    );
    assert!(gains.iter().all(|&g| g >= -1e-9), "{gains:?}");
    assert!((0.80..=0.97).contains(&share), "coverage {share}");
}

/// A plan whose bootstrap cannot finish before its deadline still comes,
/// keeping today's split (a reallocation it cannot check is not made),
/// without an interval and saying why; with time, the same request gets
/// its interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_past_its_deadline_comes_without_its_interval_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
    let config = ReflexesConfig::default();
    let (_, model) = fit_generated(&store, &config, Scale::Small, 1, "deadline").await;
    let today = today_spend(&model);
    let request = PlanRequest {
        entity_type: "campaign".into(),
        objective: Objective::Conversions,
        total_budget: today * 1.5,
        bounds: SpendBounds::default(),
        entity_bounds: HashMap::new(),
        target: None,
    };
    let late = plan_until(&model, &request, Some(std::time::Instant::now())).unwrap();
    assert_eq!(
        (late.summary.lift_lower, late.summary.lift_upper),
        (None, None)
    );
    assert!(
        late.summary
            .warnings
            .iter()
            .any(|w| w.contains("time limit") && w.contains("keeps that split")),
        "{:?}",
        late.summary.warnings
    );
    // Unchecked, no reallocation is made: today's split, scaled to the budget.
    for r in &late.entities {
        let split = (r.current_spend * 1.5).clamp(r.lower, r.upper.max(r.lower));
        assert!(
            (r.recommended_spend - split).abs() < 1e-9 * split.max(1.0),
            "{r:?}"
        );
    }
    let timely = plan_until(
        &model,
        &request,
        Some(std::time::Instant::now() + std::time::Duration::from_secs(600)),
    )
    .unwrap();
    assert!(timely.summary.lift_lower.is_some() && timely.summary.lift_upper.is_some());
    assert!(
        !timely
            .summary
            .warnings
            .iter()
            .any(|w| w.contains("time limit"))
    );
    assert!(late.summary.expected_recommended > 0.0);
}

/// Explores (`--ignored`): per fitted campaign, the marginal return at
/// current spend — true, fitted, and the bootstrap refits' spread — and the
/// response at 0.7× and 1.3×, to see whether the refits' spread accounts
/// for the fits' errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "an exploration on tuning seeds"]
async fn slope_errors_against_the_bootstrap_spread() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
    let config = ReflexesConfig::default();
    let (seeds, shapes) = gyrus_datasets::check_cases(&[1]).unwrap();
    let mut z = Vec::new();
    let mut rel = Vec::new();
    let (mut lo_f, mut lo_t, mut hi_f, mut hi_t) = (0.0, 0.0, 0.0, 0.0);
    for noise in shapes {
        for &seed in &seeds {
            let mut generator = GeneratorConfig::new(seed, Scale::Medium);
            generator.noise = noise;
            let (data, model) = fit_config(
                &store,
                &config,
                &generator,
                &format!("slope{noise}{seed}").replace('_', ""),
            )
            .await;
            let truth = truth_of(&data);
            for c in model.curves.iter().filter(|c| {
                c.entity_type == "campaign"
                    && c.current_spend > 0.0
                    && c.conversions.source == CurveSource::Fitted
            }) {
                let t = true_curve(truth[c.entity_id.as_str()]);
                let x = c.current_spend;
                let f = &c.conversions;
                let reps: Vec<f64> = f.replicates.iter().map(|r| r.marginal(x)).collect();
                let mean = reps.iter().sum::<f64>() / reps.len() as f64;
                let sd = (reps.iter().map(|m| (m - mean) * (m - mean)).sum::<f64>()
                    / (reps.len() as f64 - 1.0))
                    .sqrt();
                let err = f.curve.marginal(x) - t.marginal(x);
                z.push(err / sd);
                rel.push(f.curve.marginal(x) / t.marginal(x) - 1.0);
                lo_f += f.curve.response(x) - f.curve.response(0.7 * x);
                lo_t += t.response(x) - t.response(0.7 * x);
                hi_f += f.curve.response(1.3 * x) - f.curve.response(x);
                hi_t += t.response(1.3 * x) - t.response(x);
                println!(
                    "{noise} {seed} {}: marginal true {:.4} fitted {:.4} refits sd {:.4} (z {:+.2}); shape true {:.2} fitted {:.2}; K/x true {:.2} fitted {:.2}; adstock {:.2} {:.2}; baseline {:.2} of {:.2}",
                    c.entity_id,
                    t.marginal(x),
                    f.curve.marginal(x),
                    sd,
                    err / sd,
                    t.shape,
                    f.curve.shape,
                    t.steady_half_saturation() / x,
                    f.curve.steady_half_saturation() / x,
                    t.adstock,
                    f.curve.adstock,
                    f.curve.baseline,
                    f.curve.response(x),
                );
            }
        }
    }
    let n = z.len() as f64;
    let within = |k: f64| z.iter().filter(|v| v.abs() <= k).count() as f64 / n;
    println!(
        "{n} campaigns: |z| ≤ 1.64 in {:.2} (0.90 if the refits' spread were right), ≤ 1 in {:.2}; \
         median z {:+.2}; marginal fitted/true − 1 median {:+.3}, median |.| {:.3}; \
         drop to 0.7×: fitted {lo_f:.1} true {lo_t:.1}; gain to 1.3×: fitted {hi_f:.1} true {hi_t:.1}",
        within(1.645),
        within(1.0),
        median(z.clone()),
        median(rel.clone()),
        median(rel.iter().map(|v| v.abs()).collect()),
    );
}
