//! The model registry of the caller's tenant: every training run of every
//! family, as the operations page and scripts read it.

use axum::Json;
use axum::extract::State;
use gyrus_engine::Role;
use gyrus_models::Registry;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::pagination::{ListParams, ListQuery, ListSpec, Page};
use crate::problem::{Problem, ProblemBody};
use crate::state::AppState;

/// One training run (without the model itself).
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelRun {
    /// `<family>-v<version>`, as output tables' `model_version` says.
    pub run_id: String,
    pub family: String,
    pub version: u64,
    pub trained_at: chrono::DateTime<chrono::Utc>,
    /// `good` (the newest good run serves), `rejected` (scored worse than
    /// the serving run) or `failed`.
    pub status: String,
    /// Whether this run is the one serving now.
    pub serving: bool,
    /// The Delta version of each input table the run read (null: empty).
    #[schema(value_type = Object)]
    pub input_versions: serde_json::Value,
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
    /// Evaluation metrics (holdout MASE and coverage for ORACLE, …).
    #[schema(value_type = Object)]
    pub metrics: serde_json::Value,
    /// Why a run failed or was rejected.
    pub message: Option<String>,
}

const RUNS: ListSpec = ListSpec {
    id: "run_id",
    sortable: &["trained_at", "family", "version", "status"],
    filterable: &["family", "status", "serving"],
    default_sort: "-trained_at",
};

/// The training runs of the caller's tenant, every family, admins only.
///
/// Sorts by `trained_at` (default, newest first), `family`, `version`,
/// `status`; filters by `family`, `status`, `serving`.
#[utoipa::path(get, path = "/models/runs", operation_id = "list_model_runs", tag = "operations", security(("bearer" = [])),
    params(ListParams,
        ("family" = Option<String>, Query, description = "oracle, curiosity, memory or reflexes"),
        ("status" = Option<String>, Query, description = "good, rejected or failed"),
        ("serving" = Option<bool>, Query, description = "Only the serving run (true) or the others (false)")),
    responses(
        (status = 200, description = "One page of runs", body = Page<ModelRun>),
        (status = "4XX", description = "A problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn runs(
    State(state): State<AppState>,
    caller: Caller,
    query: ListQuery,
) -> Result<Json<Page<ModelRun>>, Problem> {
    caller.require(Role::Admin)?;
    let runs = Registry::new(state.store.clone())
        .runs(&caller.tenant)
        .await?
        .into_iter()
        .map(|(e, serving)| ModelRun {
            run_id: e.version_label(),
            serving,
            family: e.family,
            version: e.version,
            trained_at: e.trained_at,
            status: e.status.as_str().to_string(),
            input_versions: serde_json::to_value(&e.input_versions).unwrap_or_default(),
            parameters: e.parameters,
            metrics: e.metrics,
            message: e.message,
        })
        .collect();
    Ok(Json(query.page(runs, &RUNS)?))
}
