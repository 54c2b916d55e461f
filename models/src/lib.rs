//! Gyrus model families (ORACLE, CURIOSITY, MEMORY, REFLEXES), the model
//! registry and the batch pipelines.
//!
//! Every family has one shape: a config fits data into a trained model
//! ([`TrainedModel`]) that serialises into the [`Registry`], predicts, and
//! reports the evaluation it was judged on. [`pipeline::train`] runs the
//! families over every tenant and writes their output tables.

pub mod curiosity;
pub mod error;
pub mod family;
pub mod hash;
pub mod memory;
pub mod optimize;
pub mod oracle;
pub mod pipeline;
pub mod reflexes;
pub mod registry;
pub mod serving;
pub mod special;

pub use error::{ModelError, Result};
pub use family::{Family, TrainedModel};
pub use registry::{Entry, Registry, Status};
pub use serving::{Served, ServingCache};
