//! Meta (Facebook and Instagram) ads: asynchronous insights report runs with
//! `time_increment=1`, polled until done, then read by cursor. Conversions
//! are the `actions` of the configured action types; numbers are strings.

use std::time::Duration;

use async_trait::async_trait;
use gyrus_engine::schema::CanonicalTable;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::{
    About, AdRow, ClientParts, CursorGuard, Platform, WINDOWED, Window, WindowRows, bad, field,
    list, parse_date,
};
use crate::connectors::rows::{Rows, count, minor_to_decimal, money, number, to_micros};
use crate::connectors::{ConnectorConfig, Credentials, Source, SyncError};
use crate::http::{Dialect, RotatedToken, Verdict};

const VERSION: &str = "v21.0";
/// Purchases tracked by the Meta pixel, unless the connector says otherwise.
const DEFAULT_ACTION_TYPES: &str = "offsite_conversion.fb_pixel_purchase";
/// Usage (percent of the quota) above which calls slow down.
const USAGE_CEILING: f64 = 95.0;
/// Polls of a report run before giving up on it.
const MAX_POLLS: u32 = 900;

pub struct Meta;

/// Error codes Meta uses for "too many calls" (with HTTP 400 or 403).
fn is_throttle(code: i64) -> bool {
    matches!(code, 4 | 17 | 32 | 341 | 613 | 80000..=80014)
}

/// The highest usage percent and the longest wait in the usage headers.
fn usage(headers: &HeaderMap) -> (f64, Duration) {
    let mut highest: f64 = 0.0;
    let mut wait = Duration::ZERO;
    let mut read = |entry: &Value| {
        for key in ["call_count", "total_cputime", "total_time"] {
            highest = highest.max(entry[key].as_f64().unwrap_or(0.0));
        }
        let minutes = entry["estimated_time_to_regain_access"]
            .as_u64()
            .unwrap_or(0);
        wait = wait.max(Duration::from_secs(minutes * 60));
    };
    for name in [
        "x-business-use-case-usage",
        "x-ad-account-usage",
        "x-app-usage",
    ] {
        let Some(parsed) = headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| serde_json::from_str::<Value>(v).ok())
        else {
            continue;
        };
        match &parsed {
            // Business use case usage: {"<account>": [{...}, ...]}
            Value::Object(map) if map.values().all(Value::is_array) => map
                .values()
                .flat_map(|v| v.as_array().into_iter().flatten())
                .for_each(&mut read),
            other => read(other),
        }
    }
    (highest, wait)
}

impl Dialect for Meta {
    fn platform(&self) -> &'static str {
        "meta_ads"
    }

    fn judge(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: Option<&Value>,
    ) -> Option<Verdict> {
        let error = &body?["error"];
        let code = error["code"].as_i64()?;
        let message = error["message"].as_str().unwrap_or("").to_string();
        if is_throttle(code) || error["is_transient"].as_bool() == Some(true) {
            let (_, wait) = usage(headers);
            return Some(Verdict::Retry {
                after: (!wait.is_zero()).then_some(wait),
                why: format!("throttled (code {code}): {message}"),
            });
        }
        if code == 190 || status == StatusCode::UNAUTHORIZED {
            return Some(Verdict::Unauthorized(format!("code {code}: {message}")));
        }
        None
    }

    fn pace(&self, headers: &HeaderMap, _body: &Value) -> Option<Duration> {
        let (highest, wait) = usage(headers);
        (highest >= USAGE_CEILING).then(|| wait.max(Duration::from_secs(1)))
    }
}

const ABOUT: About = About {
    name: "meta_ads",
    table: CanonicalTable::AdPerformance,
    shape: WINDOWED,
    account_kind: "ad account id (digits, without act_)",
    credential_fields: &["access_token"],
    settings: &["conversion_action_types", "poll_interval_ms"],
    base_url: "https://graph.facebook.com",
    auth_url: "",
    page_size: 500,
};

#[async_trait]
impl Platform for Meta {
    fn about(&self) -> &About {
        &ABOUT
    }

    fn client(
        &self,
        _config: &ConnectorConfig,
        credentials: &Credentials,
        _rotated: &RotatedToken,
    ) -> Result<ClientParts, SyncError> {
        ClientParts::token_header(
            Meta,
            credentials,
            ("authorization", "access_token", "Bearer "),
        )
    }

    async fn fetch_window(
        &self,
        source: &Source<'_>,
        window: Window,
    ) -> Result<WindowRows, SyncError> {
        Ok(fetch(source, window).await?.into())
    }
}

async fn fetch(source: &Source<'_>, window: Window) -> Result<Rows, SyncError> {
    let config = source.config;
    let action_types: Vec<&str> = config
        .setting("conversion_action_types")
        .unwrap_or(DEFAULT_ACTION_TYPES)
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    let poll_interval = Duration::from_millis(config.number("poll_interval_ms", 2000)?);

    // 1. Start the report run.
    let time_range =
        json!({"since": window.from.to_string(), "until": window.to.to_string()}).to_string();
    let fields = "account_id,account_currency,campaign_id,campaign_name,adset_id,ad_id,\
                  impressions,clicks,spend,actions,action_values,video_play_actions";
    let url = source.url(&format!("/{VERSION}/act_{}/insights", config.account))?;
    let call = source.post_form(
        url,
        &[
            ("level", "ad"),
            ("time_increment", "1"),
            ("time_range", &time_range),
            ("fields", fields),
        ],
    );
    let started = source
        .http
        .json(&call, |v| {
            v["report_run_id"]
                .as_str()
                .map(|_| ())
                .ok_or_else(|| "no report_run_id".to_string())
        })
        .await?;
    let run = field(source, &started, "/report_run_id")?;

    // 2. Poll it.
    let status_call = source.get(source.url(&format!("/{VERSION}/{run}"))?);
    let mut polls = 0;
    loop {
        let status = source
            .http
            .json(&status_call, |v| {
                v["async_status"]
                    .as_str()
                    .map(|_| ())
                    .ok_or_else(|| "no async_status".to_string())
            })
            .await?;
        match status["async_status"].as_str().unwrap_or_default() {
            "Job Completed" => break,
            "Job Failed" | "Job Skipped" => {
                return Err(source.data_error(format!(
                    "report run {run} ended: {}",
                    status["async_status"]
                )));
            }
            _ => {}
        }
        polls += 1;
        if polls >= MAX_POLLS {
            return Err(source.data_error(format!(
                "report run {run} did not finish after {polls} polls"
            )));
        }
        tokio::time::sleep(poll_interval).await;
    }

    // 3. Read its pages.
    let mut rows = Rows::new(config.platform.table());
    let mut after: Option<String> = None;
    let mut guard = CursorGuard::default();
    loop {
        let mut url = source.url(&format!("/{VERSION}/{run}/insights"))?;
        url.query_pairs_mut()
            .append_pair("limit", &source.page_size.to_string());
        if let Some(after) = &after {
            url.query_pairs_mut().append_pair("after", after);
        }
        let page = source
            .http
            .json(&source.get(url), |page| {
                if !page["data"].is_array() {
                    return Err("a page without data".into());
                }
                list(page, "/data")
                    .iter()
                    .try_for_each(|r| window.check(parse_date(&r["date_start"])))
            })
            .await?;
        for item in list(&page, "/data") {
            rows.insert(row(source, item, &action_types)?.into_row(config));
        }
        let next = page["paging"]["next"].as_str().is_some();
        match page["paging"]["cursors"]["after"].as_str() {
            Some(cursor) if next => {
                guard.next(source, cursor)?;
                after = Some(cursor.to_string());
            }
            _ => break,
        }
    }
    Ok(rows)
}

/// The sum of the values of `actions` whose type is one of `types`.
fn sum_actions(
    actions: &Value,
    types: &[&str],
    money_values: bool,
) -> Result<(f64, String), String> {
    let mut total = 0.0;
    let mut micros: i128 = 0;
    for action in actions.as_array().into_iter().flatten() {
        if !types.contains(&action["action_type"].as_str().unwrap_or_default()) {
            continue;
        }
        if money_values {
            micros += to_micros(&money(&action["value"])?)?;
        } else {
            total += number(&action["value"])?;
        }
    }
    Ok((total, minor_to_decimal(micros, 6)))
}

fn row(source: &Source<'_>, item: &Value, action_types: &[&str]) -> Result<AdRow, SyncError> {
    let (conversions, _) =
        sum_actions(&item["actions"], action_types, false).map_err(bad(source, "actions"))?;
    let (_, conversion_value) = sum_actions(&item["action_values"], action_types, true)
        .map_err(bad(source, "action_values"))?;
    let video_views: i64 = list(item, "/video_play_actions")
        .iter()
        .map(|a| count(&a["value"]))
        .sum::<Result<i64, String>>()
        .map_err(bad(source, "video_play_actions"))?;
    Ok(AdRow {
        campaign_id: field(source, item, "/campaign_id")?,
        campaign_name: item["campaign_name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        ad_group_id: item["adset_id"].as_str().map(str::to_string),
        ad_id: item["ad_id"].as_str().map(str::to_string),
        channel: "social",
        date: parse_date(&item["date_start"])
            .ok_or_else(|| source.data_error("a row without date_start"))?,
        impressions: count(&item["impressions"]).map_err(bad(source, "impressions"))?,
        clicks: count(&item["clicks"]).map_err(bad(source, "clicks"))?,
        spend: money(&item["spend"]).map_err(bad(source, "spend"))?,
        currency: field(source, item, "/account_currency")?,
        conversions,
        conversion_value,
        video_views: Some(video_views),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configured_actions_count_and_money_sums_exactly() {
        let actions = json!([
            {"action_type": "link_click", "value": "34"},
            {"action_type": "offsite_conversion.fb_pixel_purchase", "value": "2"},
            {"action_type": "purchase", "value": "3"}]);
        let types = ["offsite_conversion.fb_pixel_purchase"];
        assert_eq!(sum_actions(&actions, &types, false).unwrap().0, 2.0);
        let values = json!([
            {"action_type": "offsite_conversion.fb_pixel_purchase", "value": "0.10"},
            {"action_type": "offsite_conversion.fb_pixel_purchase", "value": "0.20"}]);
        assert_eq!(sum_actions(&values, &types, true).unwrap().1, "0.300000");
    }

    #[test]
    fn usage_headers_are_read() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-business-use-case-usage",
            r#"{"123":[{"type":"ads_insights","call_count":96,"total_cputime":5,"total_time":7,"estimated_time_to_regain_access":2}]}"#
                .parse()
                .unwrap(),
        );
        assert_eq!(usage(&headers), (96.0, Duration::from_secs(120)));
        assert_eq!(
            Meta.pace(&headers, &Value::Null),
            Some(Duration::from_secs(120))
        );
    }
}
