//! REFLEXES: where the next dollar should go.
//!
//! - [`curve`]: response curves (adstock and Hill) fitted per campaign and
//!   channel, with held-back scores and bootstrap uncertainty;
//! - [`allocate`]: the budget split that maximises expected response within
//!   bounds and an efficiency target, exact for concave curves;
//! - [`model`]: the family's config and fitted model, and budget plans;
//! - [`bandit`]: Thompson-sampling traffic splits across variants;
//! - [`pacing`]: month-to-date spend against budget, and the daily spend
//!   that lands on it.

pub mod allocate;
pub mod bandit;
pub mod curve;
pub mod family;
pub mod model;
pub mod pacing;

pub use family::{AUTOMATIC_PLAN_ID, PlanQuery, Reflexes};
pub use model::{ReflexesConfig, ReflexesModel};
