//! Gyrus Arrow Flight SQL server. Empty until the Flight SQL issue lands; the
//! crate exists so the workspace already has the shape design.md fixes.
