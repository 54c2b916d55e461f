//! Shopify: the Admin GraphQL API's orders, by creation time, cursor-paged,
//! under cost-based throttling (`extensions.cost.throttleStatus`).

use std::time::Duration;

use async_trait::async_trait;
use gyrus_engine::schema::CanonicalTable;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::{
    About, ClientParts, CursorGuard, Platform, WINDOWED, Window, WindowRows, bad, field,
    instant_text, list, parse_instant, tail,
};
use crate::connectors::rows::{Rows, money};
use crate::connectors::{ConnectorConfig, Credentials, Source, SyncError};
use crate::http::{Dialect, RotatedToken, Verdict};

const VERSION: &str = "2025-07";

const QUERY: &str = "query Orders($first: Int!, $cursor: String, $q: String) {
  orders(first: $first, after: $cursor, query: $q, sortKey: CREATED_AT) {
    edges { cursor node {
      id name createdAt displayFinancialStatus cancelledAt
      customer { id }
      totalPriceSet { shopMoney { amount currencyCode } }
      customerJourneySummary { lastVisit { utmParameters { source campaign } } }
    } }
    pageInfo { hasNextPage endCursor }
  }
}";

pub struct Shopify;

/// How long until the bucket holds what a query costs.
fn refill_wait(body: &Value) -> Option<Duration> {
    let cost = &body["extensions"]["cost"];
    let requested = cost["requestedQueryCost"].as_f64()?;
    let available = cost["throttleStatus"]["currentlyAvailable"].as_f64()?;
    let rate = cost["throttleStatus"]["restoreRate"]
        .as_f64()
        .filter(|r| *r > 0.0)?;
    if available >= requested {
        return None;
    }
    crate::http::seconds((requested - available) / rate)
}

impl Dialect for Shopify {
    fn platform(&self) -> &'static str {
        "shopify"
    }

    fn judge(
        &self,
        _status: StatusCode,
        _headers: &HeaderMap,
        body: Option<&Value>,
    ) -> Option<Verdict> {
        let errors = body?["errors"].as_array()?;
        let code = |c: &str| {
            errors
                .iter()
                .any(|e| e["extensions"]["code"].as_str() == Some(c))
        };
        let throttled = code("THROTTLED");
        if !throttled && (code("INTERNAL_SERVER_ERROR") || code("TIMEOUT")) {
            return Some(Verdict::Retry {
                after: None,
                why: "GraphQL INTERNAL_SERVER_ERROR or TIMEOUT".into(),
            });
        }
        let messages: Vec<&str> = errors
            .iter()
            .filter_map(|e| e["message"].as_str())
            .collect();
        Some(if throttled {
            Verdict::Retry {
                after: Some(refill_wait(body?).unwrap_or(Duration::from_secs(1))),
                why: "THROTTLED".into(),
            }
        } else {
            Verdict::Refuse(messages.join("; "))
        })
    }

    fn pace(&self, _headers: &HeaderMap, body: &Value) -> Option<Duration> {
        refill_wait(body)
    }
}

const ABOUT: About = About {
    name: "shopify",
    table: CanonicalTable::Orders,
    shape: WINDOWED,
    account_kind: "shop name (the <shop> of <shop>.myshopify.com)",
    credential_fields: &["access_token"],
    settings: &[],
    base_url: "https://{account}.myshopify.com",
    auth_url: "",
    page_size: 250,
};

#[async_trait]
impl Platform for Shopify {
    fn about(&self) -> &About {
        &ABOUT
    }

    fn slice_equals(&self, _config: &ConnectorConfig) -> Vec<(String, String)> {
        vec![("source".into(), self.name().into())]
    }

    fn client(
        &self,
        _config: &ConnectorConfig,
        credentials: &Credentials,
        _rotated: &RotatedToken,
    ) -> Result<ClientParts, SyncError> {
        ClientParts::token_header(
            Shopify,
            credentials,
            ("x-shopify-access-token", "access_token", ""),
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
    let (start, end) = window.instants();
    let filter = format!(
        "created_at:>='{}' AND created_at:<'{}'",
        start.format("%Y-%m-%dT%H:%M:%SZ"),
        end.format("%Y-%m-%dT%H:%M:%SZ")
    );
    let url = source.url(&format!("/admin/api/{VERSION}/graphql.json"))?;
    let mut rows = Rows::new(config.platform.table());
    let mut cursor: Option<String> = None;
    let mut guard = CursorGuard::default();
    loop {
        let body = json!({
            "query": QUERY,
            "variables": {"first": source.page_size.min(250), "cursor": cursor, "q": filter},
        });
        let answer = source
            .http
            .json(&source.post_json(url.clone(), &body), |answer| {
                if !answer["data"]["orders"]["edges"].is_array() {
                    return Err("an answer without data.orders".into());
                }
                for edge in list(answer, "/data/orders/edges") {
                    let created = parse_instant(&edge["node"]["createdAt"]);
                    if !created.is_some_and(|t| start <= t && t < end) {
                        return Err(format!("an order created outside {filter}"));
                    }
                }
                Ok(())
            })
            .await?;
        for edge in list(&answer, "/data/orders/edges") {
            let order = &edge["node"];
            let order_id = tail(&field(source, order, "/id")?).to_string();
            let customer_id = match order["customer"]["id"].as_str() {
                Some(id) => tail(id).to_string(),
                None => format!("guest:{order_id}"),
            };
            let status = if !order["cancelledAt"].is_null() {
                "cancelled"
            } else {
                match order["displayFinancialStatus"].as_str().unwrap_or_default() {
                    "REFUNDED" => "refunded",
                    "VOIDED" => "cancelled",
                    "PAID" | "PARTIALLY_PAID" | "PARTIALLY_REFUNDED" => "paid",
                    // PENDING, AUTHORIZED, EXPIRED: no money yet, not an order.
                    _ => continue,
                }
            };
            let created = parse_instant(&order["createdAt"])
                .ok_or_else(|| source.data_error("an order without createdAt"))?;
            let price = &order["totalPriceSet"]["shopMoney"];
            let utm = &order["customerJourneySummary"]["lastVisit"]["utmParameters"];
            let row = json!({
                "order_id": order_id,
                "customer_id": customer_id,
                "created_at": instant_text(created),
                "amount": money(&price["amount"]).map_err(bad(source, "totalPriceSet"))?,
                "currency": field(source, price, "/currencyCode")?,
                "status": status,
                "source": "shopify",
                "utm_source": utm["source"],
                "utm_campaign": utm["campaign"],
            });
            if let Value::Object(row) = row {
                rows.insert(row);
            }
        }
        let info = &answer["data"]["orders"]["pageInfo"];
        match info["endCursor"].as_str() {
            Some(end_cursor) if info["hasNextPage"] == true => {
                guard.next(source, end_cursor)?;
                cursor = Some(end_cursor.to_string());
            }
            _ => break,
        }
    }
    Ok(rows)
}
