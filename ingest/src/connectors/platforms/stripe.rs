//! Stripe: charges by creation time, newest first, paged with
//! `starting_after` while `has_more`. Amounts are in the currency's minor
//! units; only succeeded charges are orders. A charge refunded long after it
//! was made lies outside the lookback: the window's refund balance
//! transactions name it, and it is read again and upserted.

use std::collections::BTreeSet;

use async_trait::async_trait;
use gyrus_engine::schema::CanonicalTable;
use serde_json::{Value, json};

use super::{
    About, ClientParts, CursorGuard, Platform, WINDOWED, Window, WindowRows, field, instant_text,
    list,
};
use crate::connectors::rows::{Row, Rows, minor_units};
use crate::connectors::{ConnectorConfig, Credentials, Source, SyncError};
use crate::http::{Plain, RotatedToken};

/// Stripe accounts: succeeded charges as orders.
pub struct Stripe;

const ABOUT: About = About {
    name: "stripe",
    table: CanonicalTable::Orders,
    shape: WINDOWED,
    account_kind: "Stripe account id",
    credential_fields: &["api_key"],
    settings: &[],
    base_url: "https://api.stripe.com",
    auth_url: "",
    page_size: 100,
};

#[async_trait]
impl Platform for Stripe {
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
            Plain(self.name()),
            credentials,
            ("authorization", "api_key", "Bearer "),
        )
    }

    async fn fetch_window(
        &self,
        source: &Source<'_>,
        window: Window,
    ) -> Result<WindowRows, SyncError> {
        fetch(source, window).await
    }
}

async fn fetch(source: &Source<'_>, window: Window) -> Result<WindowRows, SyncError> {
    let config = source.config;
    let mut rows = Rows::new(config.platform.table());
    list_of(source, window, "/v1/charges", &[], |charge| {
        if let Some(row) = order(source, charge)? {
            rows.insert(row);
        }
        Ok(())
    })
    .await?;

    // Refunds made in the window, of charges made before it.
    let mut refunded = BTreeSet::new();
    list_of(
        source,
        window,
        "/v1/balance_transactions",
        &[("type", "refund"), ("expand[]", "data.source")],
        |transaction| {
            if let Some(charge) = transaction["source"]["charge"].as_str() {
                refunded.insert(charge.to_string());
            }
            Ok(())
        },
    )
    .await?;
    let start = config
        .start_date
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc()
        .timestamp();
    let mut updates = Rows::new(config.platform.table());
    for id in refunded {
        let mut probe = Row::new();
        probe.insert("order_id".into(), json!(id));
        if rows.contains(&probe) {
            continue;
        }
        let url = source.url(&format!("/v1/charges/{id}"))?;
        let charge = source
            .http
            .json(&source.get(url), |c| {
                (c["id"].as_str() == Some(id.as_str()))
                    .then_some(())
                    .ok_or_else(|| format!("asked for charge {id}, got another"))
            })
            .await?;
        if charge["created"].as_i64().is_some_and(|c| c >= start)
            && let Some(row) = order(source, &charge)?
        {
            updates.insert(row);
        }
    }
    Ok(WindowRows {
        rows,
        updates: Some(updates),
    })
}

/// Pages through one Stripe list (charges, balance transactions) of the
/// window's creation times, handing every item to `each`.
async fn list_of(
    source: &Source<'_>,
    window: Window,
    path: &str,
    filters: &[(&str, &str)],
    mut each: impl FnMut(&Value) -> Result<(), SyncError>,
) -> Result<(), SyncError> {
    let (start, end) = window.instants();
    let (gte, lt) = (start.timestamp(), end.timestamp());
    let mut after: Option<String> = None;
    let mut guard = CursorGuard::default();
    loop {
        let mut url = source.url(path)?;
        url.query_pairs_mut()
            .append_pair("limit", &source.page_size.min(100).to_string())
            .append_pair("created[gte]", &gte.to_string())
            .append_pair("created[lt]", &lt.to_string())
            .extend_pairs(filters);
        if let Some(after) = &after {
            url.query_pairs_mut().append_pair("starting_after", after);
        }
        let page = source
            .http
            .json(&source.get(url), |page| {
                if page["object"] != "list" {
                    return Err("not a list".into());
                }
                for item in list(page, "/data") {
                    let created = item["created"].as_i64().unwrap_or(i64::MIN);
                    if !(gte..lt).contains(&created) {
                        return Err(format!(
                            "an item created at {created}, outside [{gte}, {lt})"
                        ));
                    }
                }
                Ok(())
            })
            .await?;
        let items = list(&page, "/data");
        for item in items {
            each(item)?;
        }
        match items.last().and_then(|c| c["id"].as_str()) {
            Some(last) if page["has_more"] == true => {
                guard.next(source, last)?;
                after = Some(last.to_string());
            }
            _ => return Ok(()),
        }
    }
}

/// A succeeded charge as an order; `None` for failed and pending ones.
fn order(source: &Source<'_>, charge: &Value) -> Result<Option<Row>, SyncError> {
    if charge["status"] != "succeeded" {
        return Ok(None);
    }
    let id = field(source, charge, "/id")?;
    let currency = field(source, charge, "/currency")?;
    let amount = charge["amount"]
        .as_i64()
        .ok_or_else(|| source.data_error(format!("charge {id} has no amount")))?;
    let created = chrono::DateTime::from_timestamp(charge["created"].as_i64().unwrap_or(0), 0)
        .ok_or_else(|| source.data_error(format!("charge {id} has no valid created")))?;
    let customer = match charge["customer"].as_str() {
        Some(customer) => customer.to_string(),
        None => format!("guest:{id}"),
    };
    let row = json!({
        "order_id": id,
        "customer_id": customer,
        "created_at": instant_text(created),
        "amount": minor_units(amount, &currency),
        "currency": currency.to_ascii_uppercase(),
        "status": if charge["refunded"] == true { "refunded" } else { "paid" },
        "source": "stripe",
        "utm_source": charge["metadata"]["utm_source"],
        "utm_campaign": charge["metadata"]["utm_campaign"],
    });
    Ok(match row {
        Value::Object(row) => Some(row),
        _ => None,
    })
}
