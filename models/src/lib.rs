//! Gyrus model families (ORACLE, CURIOSITY, MEMORY, REFLEXES), the model
//! registry and the batch pipelines. Empty until the model issues land; the
//! crate exists so the workspace already has the shape design.md fixes.
