//! The engine's integration tests, in one binary (one link, one ~300 MB file
//! instead of six): each module is one concern.

mod common;

mod crash;
mod fairness;
mod hostile;
mod isolation;
mod layout;
mod leases;
mod lifecycle;
mod limits;
mod rollups;
mod scan;
mod writes;
