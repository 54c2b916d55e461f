//! The model families' pipelines end to end (train, write outputs, read them
//! back), in one test binary: one module per family.

mod common;

mod curiosity;
mod family;
mod memory;
mod oracle;
