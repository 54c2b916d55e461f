//! The handlers, one module per resource.

pub mod health;
pub mod sql;
pub mod tables;
