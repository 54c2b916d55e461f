//! REFLEXES in the shape of every family ([`Family`]): response curves fitted
//! on a tenant's daily spend and outcomes, the automatic plan written to
//! `budget_plans`; serving plans any budget from the model.

use std::collections::HashMap;
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use gyrus_engine::schema::CanonicalTable;
use gyrus_engine::{Slice, Store, TenantId};

use super::model::{
    Plan, PlanRequest, ReflexesConfig, ReflexesModel, campaign_channels, default_plan, fit_tenant,
    plan_rows, plan_until,
};
use crate::error::Result;
use crate::family::{Family, FamilyId, Fit, Loaded, Output, Replace};
use crate::series::{TenantSeries, load_series};

/// Budget allocation.
pub struct Reflexes;

/// The plan each REFLEXES run writes replaces the previous run's; plans
/// saved through the API stay.
pub const AUTOMATIC_PLAN_ID: &str = "automatic";

/// What serving asks REFLEXES: a plan for a budget, and when to give up
/// the bootstrap (the plan then comes without its interval, and says so).
#[derive(Debug, Clone)]
pub struct PlanQuery {
    pub request: PlanRequest,
    pub give_up_at: Option<Instant>,
}

#[async_trait]
impl Family for Reflexes {
    const ID: FamilyId = FamilyId::Reflexes;
    type Config = ReflexesConfig;
    /// The tenant's series and each campaign's channel.
    type Data = (TenantSeries, HashMap<String, String>);
    type Fitted = Fit<ReflexesModel, Option<Plan>>;
    type Model = ReflexesModel;
    /// The automatic plan, when the tenant spends.
    type Output = Option<Plan>;
    type Query = PlanQuery;
    type Answer = Plan;

    fn check(config: &ReflexesConfig) -> Result<()> {
        config.check()
    }

    async fn load(
        store: &Store,
        tenant: &TenantId,
        _config: &ReflexesConfig,
    ) -> Result<Loaded<Self::Data>> {
        let series = load_series(store, tenant).await?;
        let channels = campaign_channels(store, tenant).await?;
        Ok(Loaded {
            input_versions: series.input_versions.clone(),
            data: (series, channels),
        })
    }

    fn units(_data: &Self::Data) -> usize {
        1
    }

    fn fit(
        config: &ReflexesConfig,
        (series, channels): Self::Data,
        progress: &(dyn Fn() + Sync),
    ) -> Self::Fitted {
        let mut model = fit_tenant(config, &series, &channels);
        let plan = default_plan(&model);
        model.plan = plan.as_ref().map(|p| p.summary.clone());
        progress();
        Fit {
            units: model.curves.len(),
            empty: model.curves.is_empty().then(|| model.notes.join("; ")),
            model,
            output: plan,
        }
    }

    async fn finish(_config: &ReflexesConfig, fitted: Self::Fitted) -> Result<Self::Fitted> {
        Ok(fitted)
    }

    fn outputs(
        _model: &ReflexesModel,
        plan: &Option<Plan>,
        label: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<Output>> {
        let Some(plan) = plan else {
            return Ok(Vec::new());
        };
        Ok(vec![Output {
            table: CanonicalTable::BudgetPlans,
            batch: plan_rows(plan, AUTOMATIC_PLAN_ID, "campaign", label, at)?,
            // Every earlier automatic plan, whenever it was made.
            replace: Replace::Slice(Slice {
                equals: vec![("plan_id".into(), AUTOMATIC_PLAN_ID.into())],
                from: NaiveDate::default(),
                to: at.date_naive(),
            }),
        }])
    }

    fn predict(model: &ReflexesModel, query: &PlanQuery) -> Result<Plan> {
        plan_until(model, &query.request, query.give_up_at)
    }
}
