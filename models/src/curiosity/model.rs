//! CURIOSITY as a family: a config, a run over one tenant's data that gives
//! its insights, and the record the registry keeps of it.

use std::collections::{BTreeMap, HashMap};

use chrono::{Days, NaiveDate};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimestampMicrosecondType};
use gyrus_engine::session::{SessionLimits, TenantSession};
use gyrus_engine::{Store, TenantId};
use serde::{Deserialize, Serialize};

use super::benchmarks::benchmarks;
use super::data::{load_names, load_totals};
use super::detect::Sensitivity;
use super::drivers::{DriversRequest, Period, drivers};
use super::explain::{Names, change, format_value, metric_label, severity};
use super::insight::{Insight, InsightKind};
use super::quality::{RunQuality, injection_check};
use super::scan::scan_tenant;
use super::segments::{segment, segment_insights};
use crate::error::{ModelError, Result};
use crate::family::{FamilyId, TrainedModel};
use crate::series::{Metric, TenantSeries, load_series};

/// How CURIOSITY looks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CuriosityConfig {
    pub sensitivity: Sensitivity,
    /// Days segments and benchmarks are measured over.
    pub profile_days: u64,
    /// Days of the two periods movers compare (this week against last).
    pub mover_days: u64,
    /// Movers reported per metric.
    pub movers_per_metric: usize,
}

impl Default for CuriosityConfig {
    fn default() -> Self {
        CuriosityConfig {
            sensitivity: Sensitivity::default(),
            profile_days: 28,
            mover_days: 7,
            movers_per_metric: 3,
        }
    }
}

impl CuriosityConfig {
    pub fn check(&self) -> Result<()> {
        self.sensitivity.check()?;
        if self.profile_days == 0 || self.mover_days == 0 {
            return Err(ModelError::Invalid(
                "profile_days and mover_days must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Movers are reported for these metrics.
pub const MOVER_METRICS: [&str; 5] = ["spend", "conversions", "conversion_value", "cpa", "roas"];

/// The record of one run: what was looked at and what was found. CURIOSITY
/// has no labels to judge a run by; its score is the [injection
/// check](super::quality) on the tenant's own data, and a run that hears
/// markedly worse than the serving one is rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CuriosityModel {
    pub config: CuriosityConfig,
    /// The last day of data.
    pub end: Option<NaiveDate>,
    pub series_scanned: usize,
    pub series_too_short: usize,
    /// Insights by kind.
    pub insights: BTreeMap<String, usize>,
    pub segments: Option<usize>,
    pub silhouette: Option<f64>,
    pub notes: Vec<String>,
    /// The injection check (none in runs recorded before it existed).
    #[serde(default)]
    pub quality: Option<RunQuality>,
}

impl TrainedModel for CuriosityModel {
    const FAMILY: FamilyId = FamilyId::Curiosity;
    const SCORE_METRIC: &'static str = "injection_score";
    const SCORE_NAME: &'static str = "share of injected events missed or misread";

    fn score(&self) -> Option<f64> {
        self.quality.as_ref().map(|q| q.score)
    }

    fn metrics(&self) -> serde_json::Value {
        serde_json::json!({
            "series_scanned": self.series_scanned,
            "series_too_short": self.series_too_short,
            "insights": self.insights,
            "segments": self.segments,
            "silhouette": self.silhouette,
            "notes": self.notes,
            "injection_score": self.quality.as_ref().map(|q| q.score),
            "quality": self.quality,
        })
    }
}

/// A tenant's run: its insights, and when each was first detected.
#[derive(Debug, Clone)]
pub struct TenantInsights {
    pub model: CuriosityModel,
    pub insights: Vec<Insight>,
    /// insight_id → detected_at (µs) of the insights already in the table.
    pub first_seen: HashMap<String, i64>,
    pub input_versions: BTreeMap<String, Option<u64>>,
}

/// Everything CURIOSITY reads of a tenant, before the CPU work.
pub struct TenantInputs {
    pub series: TenantSeries,
    pub session: TenantSession,
    pub names: Names,
    pub first_seen: HashMap<String, i64>,
}

/// Reads a tenant's series, names and earlier insights.
pub async fn load(store: &Store, tenant: &TenantId) -> Result<TenantInputs> {
    let series = load_series(store, tenant).await?;
    let tables = store.tenant_tables(tenant).await?;
    let session = TenantSession::new(&tables, &SessionLimits::default())?;
    let names = load_names(&session).await?;
    let first_seen = first_seen(&session).await?;
    Ok(TenantInputs {
        series,
        session,
        names,
        first_seen,
    })
}

async fn first_seen(session: &TenantSession) -> Result<HashMap<String, i64>> {
    let batches: Vec<RecordBatch> = session
        .query("SELECT insight_id, detected_at FROM insights")
        .await?;
    let mut out = HashMap::new();
    for batch in &batches {
        let ids = cast(batch.column(0), &DataType::Utf8)?;
        let at = batch.column(1).as_primitive::<TimestampMicrosecondType>();
        for (i, id) in ids.as_string::<i32>().iter().enumerate() {
            if let Some(id) = id {
                out.insert(id.to_string(), at.value(i));
            }
        }
    }
    Ok(out)
}

/// Scans a tenant's series (CPU work: call off the async runtime).
pub fn scan(
    inputs: &TenantInputs,
    config: &CuriosityConfig,
    progress: &(dyn Fn() + Sync),
) -> super::scan::TenantScan {
    let mut scanned = scan_tenant(&inputs.series, &inputs.names, &config.sensitivity, progress);
    // The run's score: events injected into copies of campaign spend and
    // conversions, the busiest first.
    let mut sample: Vec<(&str, &[f64], Option<f64>)> = inputs
        .series
        .series
        .iter()
        .filter(|x| x.entity_type == "campaign")
        .filter_map(|x| match x.metric {
            Metric::Spend => Some((x.entity_id.as_str(), x.values.as_slice(), None)),
            Metric::Conversions => Some((x.entity_id.as_str(), x.values.as_slice(), Some(1.0))),
            _ => None,
        })
        .collect();
    let total = |v: &[f64]| v.iter().sum::<f64>();
    sample.sort_by(|a, b| total(b.1).total_cmp(&total(a.1)).then(a.0.cmp(b.0)));
    // Spend and conversions alternate so both are sampled.
    let (spend, counts): (Vec<_>, Vec<_>) = sample.into_iter().partition(|x| x.2.is_none());
    let mixed: Vec<_> = spend
        .iter()
        .zip(&counts)
        .flat_map(|(a, b)| [*a, *b])
        .collect();
    scanned.quality = injection_check(&mixed, &config.sensitivity);
    scanned
}

/// Adds movers, segments and benchmarks to a tenant's scan and records the run.
pub async fn finish(
    inputs: TenantInputs,
    scanned: super::scan::TenantScan,
    config: &CuriosityConfig,
) -> Result<TenantInsights> {
    let mut insights = scanned.insights;
    let mut notes = Vec::new();
    let end = (!inputs.series.series.is_empty()).then_some(inputs.series.end);
    let mut segments = None;
    if let Some(end) = end {
        insights.extend(movers(&inputs.session, &inputs.names, end, config, &mut notes).await?);
        let totals = load_totals(&inputs.session, end, config.profile_days).await?;
        if let Some(s) = segment(&totals) {
            segments = Some((s.k, s.silhouette));
        } else {
            notes.push(format!(
                "{} campaigns spent in the last {} days: segments need {}",
                totals.len(),
                config.profile_days,
                super::segments::MIN_CAMPAIGNS
            ));
        }
        insights.extend(segment_insights(
            &totals,
            &inputs.names,
            end,
            config.profile_days,
        ));
        insights.extend(benchmarks(&totals, &inputs.names, end, config.profile_days));
    } else {
        notes.push("no data: ad_performance, web_sessions and orders are empty".into());
    }
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for i in &insights {
        *by_kind.entry(i.kind.as_str().to_string()).or_default() += 1;
    }
    Ok(TenantInsights {
        model: CuriosityModel {
            config: config.clone(),
            end,
            series_scanned: scanned.series_scanned,
            series_too_short: scanned.series_too_short,
            insights: by_kind,
            segments: segments.map(|s| s.0),
            silhouette: segments.map(|s| s.1),
            notes,
            quality: scanned.quality,
        },
        insights,
        first_seen: inputs.first_seen,
        input_versions: inputs.series.input_versions,
    })
}

/// This week against last: the campaigns that moved each metric most.
async fn movers(
    session: &TenantSession,
    names: &Names,
    end: NaiveDate,
    config: &CuriosityConfig,
    notes: &mut Vec<String>,
) -> Result<Vec<Insight>> {
    let days = config.mover_days;
    let period_b = Period {
        start: end - Days::new(days - 1),
        end,
    };
    let period_a = Period {
        start: end - Days::new(2 * days - 1),
        end: end - Days::new(days),
    };
    let mut out = Vec::new();
    for metric in MOVER_METRICS {
        let request = DriversRequest {
            metric: metric.to_string(),
            period_a,
            period_b,
            dimensions: vec!["campaign".into()],
        };
        let splits = match drivers(session, &request, usize::MAX).await {
            Ok(splits) => splits,
            // A ratio without a denominator in a period: nothing to say.
            Err(ModelError::Invalid(why)) => {
                notes.push(format!("movers of {metric}: {why}"));
                continue;
            }
            Err(e) => return Err(e),
        };
        let Some(split) = splits.into_iter().next().map(|s| s.split) else {
            continue;
        };
        // A mover changed by a fifth or more itself, and moved the total by at
        // least 1% of its level, whether or not others offset it.
        let level = split.total_a.abs();
        let moved = |c: &super::drivers::Contribution| match (c.a, c.b) {
            (Some(a), Some(b)) => severity(a, b) >= 0.2,
            _ => true,
        };
        let (label, _) = metric_label(metric);
        let ratio = split.contributions.iter().any(|c| c.mix.is_some());
        for c in split
            .contributions
            .iter()
            .filter(|c| c.contribution.abs() >= 0.01 * level && moved(c))
            .take(config.movers_per_metric)
        {
            let entity = names.entity("campaign", &c.value);
            let (a, b) = (c.a.unwrap_or(0.0), c.b.unwrap_or(0.0));
            let moved = if b >= a { "rose" } else { "fell" };
            let whole = format!(
                "while the total went from {} to {}",
                format_value(metric, split.total_a),
                format_value(metric, split.total_b)
            );
            let explanation = if ratio {
                format!(
                    "{label} of {entity} went from {} to {} in the {days} days to {end} against \
                     the {days} before; it moved the overall {label} by {} (mix {}: its share of \
                     volume moved; rate {}: its own {label} moved), {whole}",
                    format_value(metric, a),
                    format_value(metric, b),
                    signed(metric, c.contribution),
                    signed(metric, c.mix.unwrap_or(0.0)),
                    signed(metric, c.rate.unwrap_or(0.0)),
                )
            } else {
                format!(
                    "{label} on {entity} {moved} {} ({} → {}) in the {days} days to {end} \
                     against the {days} before: {}, {whole}",
                    change(a, b),
                    format_value(metric, a),
                    format_value(metric, b),
                    signed(metric, c.contribution),
                )
            };
            out.push(Insight {
                severity: severity(a, b),
                score: c.contribution,
                expected: c.a,
                actual: c.b,
                ..Insight::of(
                    InsightKind::Mover,
                    "campaign",
                    c.value.as_str(),
                    metric,
                    end,
                    explanation,
                )
            });
        }
    }
    Ok(out)
}

fn signed(metric: &str, v: f64) -> String {
    let text = format_value(metric, v);
    if v > 0.0 { format!("+{text}") } else { text }
}
