//! Gyrus model families (ORACLE, CURIOSITY, MEMORY, REFLEXES), the model
//! registry and the batch pipelines.
//!
//! Every family has one shape, the [`Family`] trait: a config checked in one
//! place, a tenant's data loaded, fitted into a trained model
//! ([`TrainedModel`]) that serialises into the [`Registry`] and reports the
//! evaluation it was judged on, output tables, and a prediction for serving
//! ([`oracle::Oracle`], [`curiosity::Curiosity`], [`memory::Memory`],
//! [`reflexes::Reflexes`]). [`pipeline::train`] runs any of them through one
//! loop over every tenant.
//!
//! What several families read is in modules of its own, not inside a
//! family: [`series`] (the daily series), [`campaigns`] (names and places),
//! [`decompose`] (robust seasonal decomposition); days are
//! `gyrus_engine::day`.

pub mod campaigns;
pub mod curiosity;
pub mod decompose;
pub mod error;
pub mod family;
pub mod hash;
pub mod memory;
pub mod optimize;
pub mod oracle;
pub mod pipeline;
pub mod reflexes;
pub mod registry;
pub mod series;
pub mod serving;
pub mod special;

pub use error::{ModelError, Result};
pub use family::{Family, FamilyId, TrainedModel};
pub use registry::{Entry, Registry, Status};
pub use serving::{Served, ServingCache};
