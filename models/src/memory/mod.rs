//! MEMORY: which customers and leads are worth what, and who is slipping away.
//!
//! - [`summary`]: BTYD summaries (x, t_x, T, monetary) and their grouping;
//! - [`bgnbd`], [`gamma_gamma`]: the purchase and order-value models;
//! - [`rfm`]: quintile scores and named segments;
//! - [`leads`]: P(win) of open deals;
//! - [`model`]: the config, the fitted model and its validation;
//! - [`data`], [`tenant`]: a tenant's inputs read and its scores written.

pub mod bgnbd;
pub mod data;
pub mod family;
pub mod gamma_gamma;
pub mod leads;
pub mod model;
pub mod rfm;
pub mod summary;
pub mod tenant;

pub use bgnbd::{BgNbdFit, BgNbdParams};
pub use family::Memory;
pub use gamma_gamma::{GammaGammaFit, GammaGammaParams};
pub use model::{CustomerModel, CustomerScore, MemoryConfig, MemoryModel, Validation};
pub use summary::{DAYS_PER_UNIT, Groups, Summary};
