//! One thing worth telling, as a row of the `insights` table.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::array::{
    ArrayRef, Date32Array, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use gyrus_engine::schema::CanonicalTable;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::hash::fnv1a;
use gyrus_engine::day::date_to_day;

/// The kinds of insight, as `insights.kind` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InsightKind {
    Anomaly,
    Changepoint,
    Mover,
    Segment,
    Benchmark,
}

impl InsightKind {
    pub fn as_str(self) -> &'static str {
        match self {
            InsightKind::Anomaly => "anomaly",
            InsightKind::Changepoint => "changepoint",
            InsightKind::Mover => "mover",
            InsightKind::Segment => "segment",
            InsightKind::Benchmark => "benchmark",
        }
    }
}

/// An insight. `severity` is in [0, 1] (see
/// [`super::explain::severity`]); `score` is the kind's own strength (a test
/// statistic, a contribution, a percentile).
#[derive(Debug, Clone, PartialEq)]
pub struct Insight {
    pub kind: InsightKind,
    pub entity_type: String,
    pub entity_id: String,
    pub metric: String,
    pub date: NaiveDate,
    pub severity: f64,
    pub score: f64,
    pub expected: Option<f64>,
    pub actual: Option<f64>,
    pub explanation: String,
    /// For a change point that cannot be dated to the day, the first and
    /// last day it may have come on (its 90% confidence set; `date` is the
    /// likeliest); for a gradual change, the days it came over (`date` is
    /// the first). The explanation says it too.
    pub dates: Option<(NaiveDate, NaiveDate)>,
}

impl Insight {
    /// A finding of `kind` on one entity's metric on `date`, with what it
    /// says in words and nothing measured yet: callers fill in what they
    /// measured with struct-update syntax, so a field added here gets its
    /// default in one place.
    ///
    /// ```
    /// use chrono::NaiveDate;
    /// use gyrus_models::curiosity::insight::{Insight, InsightKind};
    ///
    /// let day = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
    /// let i = Insight {
    ///     severity: 0.4,
    ///     ..Insight::of(InsightKind::Anomaly, "campaign", "c1", "spend", day, "Spend doubled")
    /// };
    /// assert_eq!(i.dates, None);
    /// ```
    pub fn of(
        kind: InsightKind,
        entity_type: impl Into<String>,
        entity_id: impl Into<String>,
        metric: impl Into<String>,
        date: NaiveDate,
        explanation: impl Into<String>,
    ) -> Self {
        Insight {
            kind,
            entity_type: entity_type.into(),
            entity_id: entity_id.into(),
            metric: metric.into(),
            date,
            severity: 0.0,
            score: 0.0,
            expected: None,
            actual: None,
            explanation: explanation.into(),
            dates: None,
        }
    }

    /// The same finding has the same id in every run: the kind, the entity,
    /// the metric and the date, hashed.
    pub fn id(&self) -> String {
        let key = format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
            self.kind.as_str(),
            self.entity_type,
            self.entity_id,
            self.metric,
            self.date
        );
        format!("{:016x}", fnv1a(key.as_bytes()))
    }
}

/// The `insights` rows of one run. A finding already in `first_seen` (by
/// id) keeps the time it was first detected; duplicates within the run are
/// dropped, the first kept.
pub fn insight_rows(
    insights: &[Insight],
    version: &str,
    detected_at: DateTime<Utc>,
    first_seen: &HashMap<String, i64>,
) -> Result<RecordBatch> {
    let mut seen = std::collections::HashSet::with_capacity(insights.len());
    let mut ids = Vec::with_capacity(insights.len());
    let mut kept = Vec::with_capacity(insights.len());
    for insight in insights {
        let id = insight.id();
        if seen.insert(id.clone()) {
            if !(insight.severity.is_finite() && insight.score.is_finite()) {
                return Err(ModelError::Invalid(format!(
                    "insight {id} ({} of {} on {}) has a non-finite score; nothing was written",
                    insight.kind.as_str(),
                    insight.metric,
                    insight.entity_id
                )));
            }
            ids.push(id);
            kept.push(insight);
        }
    }
    let finite = |v: Option<f64>| v.filter(|x| x.is_finite());
    let now = detected_at.timestamp_micros();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(&ids)),
        Arc::new(StringArray::from_iter_values(
            kept.iter().map(|i| i.kind.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            kept.iter().map(|i| i.entity_type.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            kept.iter().map(|i| i.entity_id.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            kept.iter().map(|i| i.metric.as_str()),
        )),
        Arc::new(Date32Array::from_iter_values(
            kept.iter().map(|i| date_to_day(i.date)),
        )),
        Arc::new(Float64Array::from_iter_values(
            kept.iter().map(|i| i.severity.clamp(0.0, 1.0)),
        )),
        Arc::new(Float64Array::from_iter_values(kept.iter().map(|i| i.score))),
        Arc::new(Float64Array::from_iter(
            kept.iter().map(|i| finite(i.expected)),
        )),
        Arc::new(Float64Array::from_iter(
            kept.iter().map(|i| finite(i.actual)),
        )),
        Arc::new(StringArray::from_iter_values(
            kept.iter().map(|i| i.explanation.as_str()),
        )),
        Arc::new(StringArray::from(vec![version; kept.len()])),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(
                ids.iter()
                    .map(|id| first_seen.get(id).copied().unwrap_or(now)),
            )
            .with_timezone("UTC"),
        ),
    ];
    RecordBatch::try_new(CanonicalTable::Insights.schema(), columns)
        .map_err(|e| ModelError::Registry(format!("building insight rows: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insight(entity_id: &str, day: u32) -> Insight {
        let date = NaiveDate::from_ymd_opt(2026, 3, day).unwrap();
        Insight {
            severity: 0.5,
            score: 4.0,
            expected: Some(100.0),
            actual: Some(200.0),
            ..Insight::of(
                InsightKind::Anomaly,
                "campaign",
                entity_id,
                "spend",
                date,
                "Spend doubled",
            )
        }
    }

    #[test]
    fn ids_are_stable_and_duplicates_are_dropped_keeping_first_detection() {
        let a = insight("c1", 14);
        assert_eq!(a.id(), insight("c1", 14).id());
        assert_ne!(a.id(), insight("c1", 15).id());
        assert_ne!(a.id(), insight("c2", 14).id());
        let earlier = Utc::now() - chrono::Duration::days(3);
        let first_seen = HashMap::from([(a.id(), earlier.timestamp_micros())]);
        let rows = insight_rows(
            &[a.clone(), a.clone(), insight("c2", 14)],
            "v1",
            Utc::now(),
            &first_seen,
        )
        .unwrap();
        assert_eq!(rows.num_rows(), 2);
        let detected = rows
            .column(12)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(detected.value(0), earlier.timestamp_micros());
        assert!(detected.value(1) > earlier.timestamp_micros());
        gyrus_engine::write::prepare(CanonicalTable::Insights, &[rows]).unwrap();
    }
}
