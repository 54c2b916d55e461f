//! REFLEXES over HTTP: budget plans from the tenant's response curves,
//! Thompson-sampling traffic splits, and pacing against a plan.

use std::collections::HashMap;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use chrono::{NaiveDate, Utc};
use gyrus_engine::exec::Lane;
use gyrus_engine::schema::CanonicalTable;
use gyrus_engine::{Deadline, Role, WriteRequest};
use gyrus_models::Family;
use gyrus_models::hash::fnv1a;
use gyrus_models::reflexes::bandit::{self, Arm, Evidence};
use gyrus_models::reflexes::model::{
    Objective, PlanEntity, PlanRequest, SpendBounds, Target, new_plan_id, plan_rows,
};
use gyrus_models::reflexes::pacing::{Pacing, PacingRequest, pacing as pace};
use gyrus_models::reflexes::{PlanQuery, Reflexes};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::problem::{Problem, ProblemBody};
use crate::routes::json_body;
use crate::state::AppState;

/// Most entities a request may bound one by one.
const MAX_BOUNDED: usize = 100_000;

/// Bounds on daily spend: absolute, or ± a share of current spend.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BoundsBody {
    /// At least this much a day.
    min: Option<f64>,
    /// At most this much a day.
    max: Option<f64>,
    /// Within ± this share of current spend (0.3: 70% to 130%).
    #[schema(example = 0.3)]
    share: Option<f64>,
}

/// Bounds for every entity, and per entity (these win where given).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanBounds {
    min: Option<f64>,
    max: Option<f64>,
    share: Option<f64>,
    /// entity_id → its own bounds.
    #[serde(default)]
    entities: HashMap<String, BoundsBody>,
}

impl BoundsBody {
    fn check(&self, whose: &str) -> Result<SpendBounds, Problem> {
        let bad = |what: &str| {
            Err(Problem::invalid_request(format!(
                "bounds of {whose}: {what}"
            )))
        };
        for v in [self.min, self.max].into_iter().flatten() {
            if !(v.is_finite() && v >= 0.0) {
                return bad("min and max must be amounts ≥ 0");
            }
        }
        if let (Some(lo), Some(hi)) = (self.min, self.max)
            && lo > hi
        {
            return bad("min is above max");
        }
        if let Some(s) = self.share
            && !(s.is_finite() && (0.0..=10.0).contains(&s))
        {
            return bad("share must be from 0 to 10");
        }
        Ok(SpendBounds {
            min: self.min,
            max: self.max,
            share: self.share,
        })
    }
}

/// A budget to allocate across campaigns or channels.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetBody {
    /// Total spend per day to allocate, in the account currency.
    #[schema(example = 5000.0)]
    total_budget: f64,
    /// conversions or conversion_value.
    #[schema(example = "conversions")]
    objective: String,
    /// campaign (default) or channel.
    entity_type: Option<String>,
    bounds: Option<PlanBounds>,
    /// The plan's spend per conversion must not exceed this.
    target_cpa: Option<f64>,
    /// The plan's conversion value per spend must reach this.
    target_roas: Option<f64>,
    /// Keep the plan in `budget_plans` (needs a writer key; the default for
    /// writer and admin keys).
    save: Option<bool>,
}

/// A budget plan: daily spends and expected daily responses.
#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetPlan {
    plan_id: String,
    /// Whether the plan was written to `budget_plans`.
    saved: bool,
    /// The REFLEXES version whose curves made the plan.
    model_version: String,
    objective: String,
    entity_type: String,
    total_budget: f64,
    current_spend: f64,
    recommended_spend: f64,
    expected_current: f64,
    expected_recommended: f64,
    /// expected_recommended − expected_current.
    lift: f64,
    /// lift / expected_current.
    lift_share: f64,
    /// 90% interval of the lift: the bootstrap refits' spread, widened by
    /// the model's `interval_scale` (calibrated on generated tenants).
    lift_lower: Option<f64>,
    lift_upper: Option<f64>,
    /// What the last unit of budget buys: the marginal response per unit of
    /// spend at the optimum.
    marginal_response: f64,
    /// What to know before acting on the plan: entities planned outside
    /// the spend they were observed at, budget left unspent by the trust
    /// region. Empty when there is nothing to say.
    warnings: Vec<String>,
    /// Per entity: current_spend, recommended_spend, expected_current,
    /// expected_recommended, marginal_response, curve_source (fitted or
    /// pooled from the channel), the range the plan chose from (lower,
    /// upper) and where it came from (bound: trust_region by default, or
    /// requested), the observed range of daily spend (observed_low,
    /// observed_high) and whether the recommendation lies outside it
    /// (extrapolated).
    #[schema(value_type = Vec<Object>)]
    entities: Vec<PlanEntity>,
}

/// Allocates a daily budget across campaigns or channels from the tenant's
/// response curves (`gyrus train --family reflexes`).
///
/// The plan maximises expected conversions or conversion value within the
/// bounds and, if given, keeps the whole plan's CPA at most `target_cpa`
/// or its ROAS at least `target_roas` (spending less than the budget when
/// that is what it takes). Amounts are per day.
///
/// Without `bounds`, each entity stays in its trust region: ± 30% of its
/// current spend scaled to the budget, and never above the highest spend
/// its curve was fitted on (+10%); budget the region cannot place is left
/// unspent, with a warning. Bounds replace the region for the entities they
/// cover; any recommendation outside the observed spend is then marked
/// `extrapolated` and named in `warnings`.
#[utoipa::path(post, path = "/reflexes/budget", operation_id = "reflexes_budget", tag = "reflexes", security(("bearer" = [])),
    request_body(content = BudgetBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The plan", body = BudgetPlan),
        (status = 404, description = "No REFLEXES model was trained", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A budget, bound or target no plan can meet", body = ProblemBody, content_type = "application/problem+json"),
        (status = "4XX", description = "A problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn budget(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<BudgetPlan>, Problem> {
    caller.require(Role::Reader)?;
    let body: BudgetBody = json_body(&headers, body)?;
    let can_write = caller.require(Role::Writer).is_ok();
    let save = body.save.unwrap_or(can_write);
    if save {
        caller.require(Role::Writer)?;
    }
    let request = plan_request(&body)?;
    let served = state.reflexes.get(&caller.tenant).await?;
    // Planning is CPU work (an allocation per bootstrap refit: seconds for
    // thousands of entities): on the tenant's lane and its pool, off the
    // async threads. The bootstrap is given up at half the time limit (a
    // plan then comes without its interval, and says so), which leaves the
    // other half for the allocations already running.
    let limit = state.config.limits.timeout;
    let deadline = Instant::now() + limit / 2;
    let model = served.clone();
    let query = PlanQuery {
        request: request.clone(),
        give_up_at: Some(deadline),
    };
    let made = Deadline::after(limit)
        .bound(Lane::of(&caller.tenant).compute(move || Reflexes::predict(&model.model, &query)))
        .await?
        .map_err(|e| {
            tracing::error!(error = %e, "budget plan task failed");
            Problem::internal()
        })??;
    let created_at = Utc::now();
    let plan_id = new_plan_id(created_at);
    let model_version = served.entry.version_label();
    if save {
        let rows = plan_rows(
            &made,
            &plan_id,
            &request.entity_type,
            &model_version,
            created_at,
        )?;
        state
            .store
            .write(
                &caller.tenant,
                WriteRequest::append(CanonicalTable::BudgetPlans, vec![rows]),
            )
            .await?;
    }
    let s = &made.summary;
    Ok(Json(BudgetPlan {
        plan_id,
        saved: save,
        model_version,
        objective: request.objective.as_str().to_string(),
        entity_type: request.entity_type,
        total_budget: s.total_budget,
        current_spend: s.current_spend,
        recommended_spend: s.recommended_spend,
        expected_current: s.expected_current,
        expected_recommended: s.expected_recommended,
        lift: s.lift,
        lift_share: if s.expected_current > 0.0 {
            s.lift / s.expected_current
        } else {
            0.0
        },
        lift_lower: s.lift_lower,
        lift_upper: s.lift_upper,
        marginal_response: made.allocation.marginal,
        warnings: s.warnings.clone(),
        entities: made.entities,
    }))
}

fn plan_request(body: &BudgetBody) -> Result<PlanRequest, Problem> {
    if !(body.total_budget.is_finite() && body.total_budget >= 0.0) {
        return Err(Problem::invalid_request(format!(
            "total_budget must be an amount ≥ 0, not {}",
            body.total_budget
        )));
    }
    let objective = match body.objective.as_str() {
        "conversions" => Objective::Conversions,
        "conversion_value" => Objective::ConversionValue,
        other => {
            return Err(Problem::invalid_request(format!(
                "objective must be conversions or conversion_value, not `{other}`"
            )));
        }
    };
    let target = match (body.target_cpa, body.target_roas) {
        (Some(_), Some(_)) => {
            return Err(Problem::invalid_request(
                "give target_cpa or target_roas, not both",
            ));
        }
        (Some(cpa), None) => Some(Target::Cpa(cpa)),
        (None, Some(roas)) => Some(Target::Roas(roas)),
        (None, None) => None,
    };
    let bounds = body.bounds.clone().unwrap_or_default();
    if bounds.entities.len() > MAX_BOUNDED {
        return Err(Problem::invalid_request(format!(
            "bounds name more than {MAX_BOUNDED} entities"
        )));
    }
    let all = BoundsBody {
        min: bounds.min,
        max: bounds.max,
        share: bounds.share,
    }
    .check("every entity")?;
    let entity_bounds = bounds
        .entities
        .iter()
        .map(|(id, b)| Ok((id.clone(), b.check(&format!("`{id}`"))?)))
        .collect::<Result<_, Problem>>()?;
    Ok(PlanRequest {
        entity_type: body
            .entity_type
            .clone()
            .unwrap_or_else(|| "campaign".into()),
        objective,
        total_budget: body.total_budget,
        bounds: all,
        entity_bounds,
        target,
    })
}

/// An arm: successes of trials (rates), or n, sum and sum_squares of a
/// value per impression.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArmBody {
    #[schema(example = "creative-a")]
    id: String,
    trials: Option<u64>,
    successes: Option<u64>,
    n: Option<u64>,
    sum: Option<f64>,
    sum_squares: Option<f64>,
}

/// Arms to split traffic across.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BanditBody {
    arms: Vec<ArmBody>,
    /// Least share of traffic per arm (default: 10% of traffic spread evenly).
    floor: Option<f64>,
    /// Posterior draws (default 10,000).
    draws: Option<usize>,
    /// Seed of the draws (default: from the arms, so the same arms get the
    /// same split).
    seed: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ArmSplit {
    id: String,
    /// Share of traffic to send to the arm.
    share: f64,
    /// Posterior probability that the arm is the best.
    p_best: f64,
    /// Posterior mean rate or value.
    mean: f64,
    /// Expected shortfall of choosing this arm now, in its unit.
    expected_loss: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BanditSplit {
    /// beta_binomial or gaussian.
    model: &'static str,
    floor: f64,
    draws: usize,
    arms: Vec<ArmSplit>,
}

/// Most arms a split may have.
const MAX_ARMS: usize = 1000;
/// Most posterior samples (draws × arms) a split may take: well under a second.
const MAX_SAMPLES: usize = 20_000_000;

/// Splits traffic across creatives or ad variants by Thompson sampling.
///
/// Arms with `trials` and `successes` (click or conversion rates) get a
/// Beta-Binomial posterior; arms with `n`, `sum` and `sum_squares` (value
/// per impression) a Gaussian one. Each arm's share is the posterior
/// probability that it is the best, with a floor for exploration.
#[utoipa::path(post, path = "/reflexes/bandit", operation_id = "reflexes_bandit", tag = "reflexes", security(("bearer" = [])),
    request_body(content = BanditBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The split", body = BanditSplit),
        (status = 422, description = "Arms that cannot be split", body = ProblemBody, content_type = "application/problem+json"),
        (status = "4XX", description = "A problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn bandit_route(
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<BanditSplit>, Problem> {
    caller.require(Role::Reader)?;
    let body: BanditBody = json_body(&headers, body)?;
    if body.arms.len() > MAX_ARMS {
        return Err(Problem::invalid_request(format!("at most {MAX_ARMS} arms")));
    }
    let mut arms = Vec::with_capacity(body.arms.len());
    let mut key = String::new();
    for a in &body.arms {
        let evidence = match (a.trials, a.successes, a.n, a.sum, a.sum_squares) {
            (Some(trials), Some(successes), None, None, None) => {
                Evidence::Rate { trials, successes }
            }
            (None, None, Some(n), Some(sum), Some(sum_squares)) => Evidence::Value {
                n,
                sum,
                sum_squares,
            },
            _ => {
                return Err(Problem::invalid_request(format!(
                    "arm `{}`: give trials and successes (a rate), or n, sum and sum_squares \
                     (a value)",
                    a.id
                )));
            }
        };
        key.push_str(&format!("{}:{evidence:?};", a.id));
        arms.push(Arm {
            id: a.id.clone(),
            evidence,
        });
    }
    let floor = body.floor.unwrap_or(0.1 / body.arms.len().max(1) as f64);
    let draws = body.draws.unwrap_or(10_000);
    // Time per request is bounded: draws × arms samples at most.
    if draws.saturating_mul(arms.len()) > MAX_SAMPLES {
        return Err(Problem::invalid_request(format!(
            "draws × arms must be at most {MAX_SAMPLES}: ask for fewer draws"
        )));
    }
    let seed = body.seed.unwrap_or_else(|| fnv1a(key.as_bytes()));
    let model = match arms.first().map(|a| &a.evidence) {
        Some(Evidence::Value { .. }) => "gaussian",
        _ => "beta_binomial",
    };
    // Up to a million draws of a thousand arms: CPU work, off the runtime.
    let split = tokio::task::spawn_blocking(move || {
        bandit::split(&arms, floor, draws, seed).map(|s| (arms, s))
    })
    .await
    .map_err(|_| Problem::internal())?;
    let (arms, split) = split?;
    Ok(Json(BanditSplit {
        model,
        floor,
        draws,
        arms: arms
            .into_iter()
            .enumerate()
            .map(|(i, a)| ArmSplit {
                id: a.id,
                share: split.shares[i],
                p_best: split.p_best[i],
                mean: split.mean[i],
                expected_loss: split.expected_loss[i],
            })
            .collect(),
    }))
}

/// Pacing of every campaign or account with spend in a month.
#[derive(Debug, Serialize, ToSchema)]
pub struct PacingAnswer {
    month: NaiveDate,
    /// The last day counted as spent.
    as_of: NaiveDate,
    days_in_month: u32,
    days_left: u32,
    /// The plan whose recommended daily spends × days in the month are the budgets.
    plan_id: Option<String>,
    /// Per entity: month_to_date_spend, budget, projected_spend,
    /// projected_from (forecast, forecast+run_rate, run_rate), pace,
    /// required_daily_spend, run_rate, status (on_track, over, under,
    /// no_budget).
    #[schema(value_type = Vec<Object>)]
    entities: Vec<gyrus_models::reflexes::pacing::PacingRow>,
}

impl From<Pacing> for PacingAnswer {
    fn from(p: Pacing) -> Self {
        PacingAnswer {
            month: p.month,
            as_of: p.as_of,
            days_in_month: p.days_in_month,
            days_left: p.days_left,
            plan_id: p.plan_id,
            entities: p.entities,
        }
    }
}

/// Month-to-date spend against budget per campaign or account, the
/// projected month-end (ORACLE's spend forecast for the days left; the last
/// week's run rate where there is none) and the daily spend that lands on
/// the budget. Budgets come from a budget plan.
#[utoipa::path(get, path = "/reflexes/pacing", operation_id = "reflexes_pacing", tag = "reflexes", security(("bearer" = [])),
    params(
        ("month" = Option<String>, Query, description = "YYYY-MM (default: the month of the latest data)"),
        ("entity_type" = Option<String>, Query, description = "campaign (default) or account"),
        ("plan_id" = Option<String>, Query, description = "The plan whose spends are the budgets (default: the latest campaign plan)"),
    ),
    responses(
        (status = 200, description = "Pacing", body = PacingAnswer),
        (status = "4XX", description = "A problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn pacing(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<PacingAnswer>, Problem> {
    caller.require(Role::Reader)?;
    let Query(pairs) =
        query.map_err(|e| Problem::bad_request(format!("cannot read the query string: {e}")))?;
    let mut request = PacingRequest {
        month: None,
        entity_type: "campaign".into(),
        plan_id: None,
    };
    for (name, value) in pairs {
        match name.as_str() {
            "month" => {
                let day = NaiveDate::parse_from_str(&format!("{value}-01"), "%Y-%m-%d")
                    .or_else(|_| value.parse::<NaiveDate>())
                    .map_err(|_| {
                        Problem::bad_request(format!("month must be YYYY-MM, not `{value}`"))
                    })?;
                request.month = Some(day);
            }
            "entity_type" => request.entity_type = value,
            "plan_id" => request.plan_id = Some(value),
            other => {
                return Err(Problem::bad_request(format!(
                    "unknown query parameter `{other}`; use month, entity_type, plan_id"
                )));
            }
        }
    }
    let session = state
        .tables
        .session(&caller.tenant, &state.config.limits)
        .await?;
    let found = session.deadline().bound(pace(&session, &request)).await??;
    Ok(Json(found.into()))
}
