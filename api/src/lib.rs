//! Gyrus HTTP API (axum). Empty until the HTTP API issue lands; the crate
//! exists so the workspace already has the shape design.md fixes.
