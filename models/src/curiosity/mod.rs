//! CURIOSITY: what changed, where, and why.
//!
//! - [`detect`]: anomalies (robust seasonal decomposition and the
//!   generalised ESD test, [`esd`]) and change points in each daily series;
//! - [`drivers`]: a change between two periods split exactly into the
//!   contributions of dimension values, with mix and rate effects for ratios;
//! - [`segments`]: campaigns clustered on their performance profile;
//! - [`benchmarks`]: each campaign's percentile among its peers;
//! - [`explain`]: the plain-language sentence every insight carries;
//! - [`quality`]: a run's score, from events injected into its own data.

pub mod benchmarks;
pub mod data;
pub mod detect;
pub mod drivers;
pub mod esd;
pub mod explain;
pub mod family;
pub mod insight;
pub mod model;
pub mod quality;
pub mod scan;
pub mod segments;
#[cfg(test)]
mod test_noise;

pub use family::Curiosity;
