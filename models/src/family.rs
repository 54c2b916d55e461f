//! What every model family shares: its name, and the shape of a trained
//! model the registry stores.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ModelError;

/// The four model families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// Forecasts.
    Oracle,
    /// Anomalies, change points, drivers.
    Curiosity,
    /// Customer and lead scores.
    Memory,
    /// Budget allocation.
    Reflexes,
}

impl Family {
    pub const ALL: [Family; 4] = [
        Family::Oracle,
        Family::Curiosity,
        Family::Memory,
        Family::Reflexes,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Family::Oracle => "oracle",
            Family::Curiosity => "curiosity",
            Family::Memory => "memory",
            Family::Reflexes => "reflexes",
        }
    }

    /// Families whose pipeline exists in this build (all of them).
    pub fn is_trainable(self) -> bool {
        true
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that widths in tables (`{:<9}`) apply.
        f.pad(self.as_str())
    }
}

impl Serialize for Family {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl FromStr for Family {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Family::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                ModelError::Invalid(format!(
                    "unknown model family `{s}`: use oracle, curiosity, memory or reflexes"
                ))
            })
    }
}

/// A trained model, as the registry stores it: it serialises (serde), names
/// its family, and reports the evaluation it was judged on.
pub trait TrainedModel: Serialize + DeserializeOwned + Send + Sync + 'static {
    const FAMILY: Family;
    /// The key of [`TrainedModel::score`] in [`TrainedModel::metrics`].
    const SCORE_METRIC: &'static str;
    /// The score as people read it ("holdout MASE").
    const SCORE_NAME: &'static str;

    /// The figure a new version must not make worse (lower is better), e.g.
    /// ORACLE's mean backtest MASE. `None` when nothing could be measured.
    fn score(&self) -> Option<f64>;

    /// Evaluation metrics, stored in the registry beside the model.
    fn metrics(&self) -> serde_json::Value;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_honours_the_width_it_is_printed_at() {
        assert_eq!(format!("{:<9}|", Family::Oracle), "oracle   |");
        assert_eq!(format!("{:>9}|", Family::Memory), "   memory|");
    }
}
