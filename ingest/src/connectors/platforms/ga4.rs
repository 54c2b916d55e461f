//! Google Analytics 4: the Data API's `runReport`, sessions by day, source,
//! medium and campaign, read by offset.

use std::collections::HashMap;

use async_trait::async_trait;
use gyrus_engine::schema::CanonicalTable;
use serde_json::{Value, json};

use super::{
    About, ClientParts, OAUTH_FIELDS, Platform, WINDOWED, Window, WindowRows, bad,
    google_ads::{GOOGLE_OAUTH, Google},
    list, parse_date,
};
use crate::connectors::rows::{Row, Rows, count, money, number};
use crate::connectors::{ConnectorConfig, Credentials, Source, SyncError};
use crate::http::RotatedToken;

const DIMENSIONS: [&str; 4] = [
    "date",
    "sessionSource",
    "sessionMedium",
    "sessionCampaignName",
];
const METRICS: [&str; 6] = [
    "sessions",
    "totalUsers",
    "newUsers",
    "engagedSessions",
    "keyEvents",
    "purchaseRevenue",
];

/// Google Analytics 4 properties.
pub struct Ga4;

const ABOUT: About = About {
    name: "ga4",
    table: CanonicalTable::WebSessions,
    shape: WINDOWED,
    account_kind: "GA4 property id",
    credential_fields: OAUTH_FIELDS,
    settings: &[],
    base_url: "https://analyticsdata.googleapis.com",
    auth_url: GOOGLE_OAUTH,
    page_size: 10_000,
};

#[async_trait]
impl Platform for Ga4 {
    fn about(&self) -> &About {
        &ABOUT
    }

    fn slice_equals(&self, config: &ConnectorConfig) -> Vec<(String, String)> {
        vec![("property_id".into(), config.account.clone())]
    }

    fn client(
        &self,
        config: &ConnectorConfig,
        credentials: &Credentials,
        rotated: &RotatedToken,
    ) -> Result<ClientParts, SyncError> {
        ClientParts::oauth(Google(self.name()), config, credentials, rotated, "/token")
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
    let url = source.url(&format!("/v1beta/properties/{}:runReport", config.account))?;
    let mut rows = Rows::new(config.platform.table());
    let mut offset = 0usize;
    loop {
        let body = json!({
            "dateRanges": [{"startDate": window.from.to_string(), "endDate": window.to.to_string()}],
            "dimensions": DIMENSIONS.map(|name| json!({"name": name})),
            "metrics": METRICS.map(|name| json!({"name": name})),
            // A stable order, so that offsets page through it exactly.
            "orderBys": DIMENSIONS.map(|name| json!({"dimension": {"dimensionName": name}})),
            "limit": source.page_size.to_string(),
            "offset": offset.to_string(),
            "keepEmptyRows": false,
        });
        let answer = source
            .http
            .json(&source.post_json(url.clone(), &body), |answer| {
                let page = read_page(source, answer).map_err(|e| e.to_string())?;
                for row in &page {
                    window.check(parse_date(&row["date"]))?;
                }
                // Offsets cannot tell a page served twice; its rows can.
                if offset > 0 && page.first().is_some_and(|r| rows.contains(r)) {
                    return Err(format!(
                        "the page at offset {offset} repeats rows already read"
                    ));
                }
                Ok(())
            })
            .await?;
        let page = read_page(source, &answer)?;
        let read = page.len();
        for row in page {
            rows.insert(row);
        }
        offset += read;
        let total = answer["rowCount"].as_u64().unwrap_or(0) as usize;
        if read == 0 || offset >= total {
            if rows.len() != total {
                return Err(source.data_error(format!(
                    "the report has {total} rows, {} were read",
                    rows.len()
                )));
            }
            break;
        }
    }
    Ok(rows)
}

/// The rows of one answer, read by header names rather than positions.
fn read_page(source: &Source<'_>, answer: &Value) -> Result<Vec<Row>, SyncError> {
    let position = |pointer: &str| -> HashMap<String, usize> {
        list(answer, pointer)
            .iter()
            .enumerate()
            .filter_map(|(i, h)| Some((h["name"].as_str()?.to_string(), i)))
            .collect()
    };
    let (dimensions, metrics) = (position("/dimensionHeaders"), position("/metricHeaders"));
    let currency = answer["metadata"]["currencyCode"].as_str().unwrap_or("USD");
    let mut out = Vec::new();
    for row in list(answer, "/rows") {
        let dimension = |name: &str| -> Result<Value, SyncError> {
            let i = dimensions
                .get(name)
                .ok_or_else(|| source.data_error(format!("no dimension {name}")))?;
            Ok(row["dimensionValues"][*i]["value"].clone())
        };
        let metric = |name: &str| -> Result<Value, SyncError> {
            let i = metrics
                .get(name)
                .ok_or_else(|| source.data_error(format!("no metric {name}")))?;
            Ok(row["metricValues"][*i]["value"].clone())
        };
        let date = parse_date(&dimension("date")?)
            .ok_or_else(|| source.data_error("a row without a date"))?;
        let value = json!({
            "date": date.to_string(),
            "property_id": source.config.account,
            "source": dimension("sessionSource")?,
            "medium": dimension("sessionMedium")?,
            "campaign": dimension("sessionCampaignName")?,
            "sessions": count(&metric("sessions")?).map_err(bad(source, "sessions"))?,
            "users": count(&metric("totalUsers")?).map_err(bad(source, "totalUsers"))?,
            "new_users": count(&metric("newUsers")?).map_err(bad(source, "newUsers"))?,
            "engaged_sessions": count(&metric("engagedSessions")?).map_err(bad(source, "engagedSessions"))?,
            "conversions": number(&metric("keyEvents")?).map_err(bad(source, "keyEvents"))?,
            "revenue": money(&metric("purchaseRevenue")?).map_err(bad(source, "purchaseRevenue"))?,
            "currency": currency,
        });
        if let Value::Object(row) = value {
            out.push(row);
        }
    }
    Ok(out)
}
