//! Numbers and names as a marketer reads them, for the sentence each
//! insight carries.

use std::collections::HashMap;

pub use crate::campaigns::CampaignInfo;

/// How a metric's values read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Whole events: 12,400 clicks.
    Count,
    /// Money in the tenant's currency: 12,400 or 41.20.
    Money,
    /// A share: 2.31%.
    Percent,
    /// A multiple: 3.20×.
    Multiple,
}

/// A metric's label and unit.
pub fn metric_label(metric: &str) -> (&'static str, Unit) {
    match metric {
        "spend" => ("Spend", Unit::Money),
        "impressions" => ("Impressions", Unit::Count),
        "clicks" => ("Clicks", Unit::Count),
        "conversions" => ("Conversions", Unit::Count),
        "conversion_value" => ("Conversion value", Unit::Money),
        "sessions" => ("Sessions", Unit::Count),
        "revenue" => ("Revenue", Unit::Money),
        "ctr" => ("CTR", Unit::Percent),
        "conversion_rate" => ("Conversion rate", Unit::Percent),
        "cpc" => ("CPC", Unit::Money),
        "cpa" => ("CPA", Unit::Money),
        "roas" => ("ROAS", Unit::Multiple),
        _ => ("Value", Unit::Money),
    }
}

/// `value` as the metric's unit reads: thousands separated, money with
/// cents below 100, shares in percent.
pub fn format_value(metric: &str, value: f64) -> String {
    match metric_label(metric).1 {
        Unit::Count => thousands(value.round()),
        Unit::Money if value.abs() >= 100.0 => thousands(value.round()),
        Unit::Money => format!("{value:.2}"),
        Unit::Percent => format!("{:.2}%", value * 100.0),
        Unit::Multiple => format!("{value:.2}×"),
    }
}

fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if value < 0.0 && digits != "0" {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "38%" for a change from `from` to `to`, or "3.1×" when it more than
/// doubles.
pub fn change(from: f64, to: f64) -> String {
    if from == 0.0 {
        return "from nothing".to_string();
    }
    let ratio = to / from;
    if ratio >= 2.0 {
        format!("{ratio:.1}×")
    } else {
        format!("{:.0}%", ((ratio - 1.0) * 100.0).abs())
    }
}

/// "1 − smaller/larger": 0 for no change, 0.5 for half or double, → 1 for
/// vanishing or exploding. The severity of every insight that compares two
/// values.
pub fn severity(a: f64, b: f64) -> f64 {
    let (a, b) = (a.abs(), b.abs());
    let larger = a.max(b);
    if larger == 0.0 {
        0.0
    } else {
        1.0 - a.min(b) / larger
    }
}

/// Names of a tenant's entities, for sentences.
#[derive(Debug, Clone, Default)]
pub struct Names {
    pub campaigns: HashMap<String, CampaignInfo>,
}

impl Names {
    /// "campaign Brand Search (Google Ads, search)", "channel search",
    /// "the business".
    pub fn entity(&self, entity_type: &str, entity_id: &str) -> String {
        match entity_type {
            "business" => "the business".to_string(),
            "platform" => platform_label(entity_id).to_string(),
            "campaign" => match self.campaigns.get(entity_id) {
                Some(c) => format!(
                    "campaign {} ({}, {})",
                    c.name,
                    platform_label(&c.platform),
                    c.channel
                ),
                None => format!("campaign {entity_id}"),
            },
            other => format!("{other} {entity_id}"),
        }
    }
}

/// The platform as people name it.
pub fn platform_label(platform: &str) -> &str {
    match platform {
        "google_ads" => "Google Ads",
        "meta_ads" => "Meta Ads",
        "linkedin_ads" => "LinkedIn Ads",
        "tiktok_ads" => "TikTok Ads",
        "youtube_ads" => "YouTube Ads",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_their_unit() {
        assert_eq!(format_value("spend", 12_400.4), "12,400");
        assert_eq!(format_value("cpa", 41.204), "41.20");
        assert_eq!(format_value("clicks", 999.6), "1,000");
        assert_eq!(format_value("ctr", 0.02314), "2.31%");
        assert_eq!(format_value("roas", 3.2), "3.20×");
        assert_eq!(format_value("spend", -1_234_567.0), "-1,234,567");
        assert_eq!(change(100.0, 62.0), "38%");
        assert_eq!(change(100.0, 310.0), "3.1×");
    }

    #[test]
    fn severity_is_symmetric_in_ratio() {
        assert_eq!(severity(100.0, 100.0), 0.0);
        assert!((severity(100.0, 50.0) - 0.5).abs() < 1e-12);
        assert!((severity(50.0, 100.0) - 0.5).abs() < 1e-12);
        assert_eq!(severity(0.0, 10.0), 1.0);
        assert_eq!(severity(0.0, 0.0), 0.0);
    }
}
