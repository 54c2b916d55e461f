//! Shopify (GraphQL orders) and Stripe (charges).

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::auth::{authorized, unauthorized};
use super::data::{midnight, money, ts};
use super::{Ctx, Resp, dec, enc};

fn time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim().trim_matches(['\'', '"']);
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.to_utc())
        .ok()
        .or_else(|| super::ads::date(s).map(midnight))
}

/// The [from, to) creation bounds of a Shopify search query (`created_at:>=…`).
fn shopify_bounds(q: &str) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let (mut from, mut to) = (None, None);
    for (i, m) in q.match_indices("created_at:") {
        let rest = &q[i + m.len()..];
        let op_len = if rest.starts_with(">=") || rest.starts_with("<=") {
            2
        } else {
            1
        };
        let (op, rest) = rest.split_at(op_len.min(rest.len()));
        let value = rest.split_whitespace().next().and_then(time);
        let Some(t) = value else { continue };
        let sec = Duration::seconds(1);
        match op {
            ">=" => from = Some(t),
            ">" => from = Some(t + sec),
            "<" => to = Some(t),
            "<=" => to = Some(t + sec),
            _ => {}
        }
    }
    (from, to)
}

pub fn shopify(c: &Ctx) -> Resp {
    if !authorized(c, "shopify") {
        return unauthorized("shopify");
    }
    let gql_err = |m: &str| {
        Resp::json(
            200,
            json!({"errors": [{"message": m, "extensions": {"code": "BAD_REQUEST"}}]}),
        )
    };
    let body = c.req.json().unwrap_or_default();
    let vars = &body["variables"];
    let first = vars["first"].as_u64().unwrap_or(0) as usize;
    if !(1..=250).contains(&first) {
        return gql_err("Variable $first must be between 1 and 250");
    }
    let (from, to) = shopify_bounds(vars["q"].as_str().unwrap_or(""));
    let after = match vars["cursor"].as_str() {
        None => None,
        Some(cur) => match dec(cur)
            .and_then(|s| s.parse().ok())
            .and_then(|n| Some((c.world.sale("shopify", n)?, n)))
        {
            Some(key) => Some(key),
            None => return gql_err("Invalid cursor"),
        },
    };
    // Start generating at the cursor's day.
    let from = after.map_or(from, |(t, _)| from.max(Some(midnight(t.date_naive()))));
    let sales = c.world.sales("shopify", from, to, false);
    let mut rest = sales.filter(|k| after.is_none_or(|a| *k > a)).peekable();
    let edges: Vec<Value> = rest.by_ref().take(first).map(|(_, n)| {
        let o = c.world.order(n);
        let journey = match o.journey {
            0 => Value::Null,
            1 => json!({"lastVisit": null}),
            2 => json!({"lastVisit": {"utmParameters": null}}),
            _ => json!({"lastVisit": {"utmParameters": {"source": o.utm.0, "campaign": o.utm.1}}}),
        };
        json!({"cursor": enc(&n.to_string()), "node": {
            "id": format!("gid://shopify/Order/{n}"), "name": format!("#{n}"), "createdAt": ts(o.created),
            "displayFinancialStatus": o.financial, "cancelledAt": o.cancelled.map(ts),
            "customer": o.customer.map(|id| json!({"id": format!("gid://shopify/Customer/{id}")})),
            "totalPriceSet": {"shopMoney": {"amount": money(o.amount), "currencyCode": "USD"}},
            "customerJourneySummary": journey,
        }})
    }).collect();
    let has_next = rest.peek().is_some();
    let end = edges
        .last()
        .map(|e| e["cursor"].clone())
        .unwrap_or(Value::Null);
    Resp::json(
        200,
        json!({
            "data": {"orders": {"edges": edges, "pageInfo": {"hasNextPage": has_next, "endCursor": end}}},
            "extensions": {"cost": {"requestedQueryCost": first + 2, "actualQueryCost": edges.len() + 2,
                "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 1940, "restoreRate": 100.0}}},
        }),
    )
}

pub fn stripe(c: &Ctx) -> Resp {
    if !authorized(c, "stripe") {
        return unauthorized("stripe");
    }
    let bad = |m: String| {
        Resp::json(
            400,
            json!({"error": {"type": "invalid_request_error", "message": m}}),
        )
    };
    let at = |k: &str, plus: i64| {
        c.req
            .param(k)
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(|s| DateTime::from_timestamp(s + plus, 0))
    };
    let from = at("created[gte]", 0).or_else(|| at("created[gt]", 1));
    let to = at("created[lt]", 0).or_else(|| at("created[lte]", 1));
    let limit = c
        .req
        .param("limit")
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(10);
    let before = match c.req.param("starting_after") {
        None => None,
        Some(id) => match id
            .strip_prefix("ch_3Fk")
            .and_then(|n| n.parse().ok())
            .and_then(|n| Some((c.world.sale("stripe", n)?, n)))
        {
            Some(key) => Some(key),
            None => return bad(format!("No such charge: '{id}'")),
        },
    };
    // Newest first, from the cursor's time down.
    let to = before.map_or(to, |(t, _)| {
        Some(to.map_or(t + Duration::seconds(1), |e| {
            e.min(t + Duration::seconds(1))
        }))
    });
    let sales = c.world.sales("stripe", from, to, true);
    let mut rest = sales.filter(|k| before.is_none_or(|b| *k < b)).peekable();
    let data: Vec<Value> = rest
        .by_ref()
        .take(limit)
        .map(|(_, n)| charge_json(c, n))
        .collect();
    let has_more = rest.peek().is_some();
    Resp::json(
        200,
        json!({"object": "list", "url": "/v1/charges", "has_more": has_more, "data": data}),
    )
}

fn charge_json(c: &Ctx, n: u64) -> Value {
    let ch = c.world.charge(n);
    let metadata = ch.utm.as_ref().map_or(
        json!({}),
        |(s, cp)| json!({"utm_source": s, "utm_campaign": cp}),
    );
    json!({"id": ch.id(), "object": "charge", "amount": ch.amount, "amount_refunded": ch.amount_refunded,
        "currency": ch.currency, "created": ch.created.timestamp(), "customer": ch.customer.map(|x| format!("cus_Fk{x:010}")),
        "status": ch.status, "paid": ch.status == "succeeded", "refunded": ch.refunded, "livemode": false, "metadata": metadata})
}

fn stripe_error(status: u16, message: String) -> Resp {
    Resp::json(
        status,
        json!({"error": {"type": "invalid_request_error", "message": message}}),
    )
}

/// `GET /v1/charges/{id}`.
pub fn stripe_charge(c: &Ctx) -> Resp {
    if !authorized(c, "stripe") {
        return unauthorized("stripe");
    }
    let id = c.req.path.rsplit('/').next().unwrap_or_default();
    match id
        .strip_prefix("ch_3Fk")
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|n| c.world.sale("stripe", *n).is_some())
    {
        Some(n) => Resp::json(200, charge_json(c, n)),
        None => stripe_error(404, format!("No such charge: '{id}'")),
    }
}

/// `GET /v1/balance_transactions?type=refund`: the refunds restatements
/// made, newest first, each with its refund when `expand[]=data.source`.
pub fn stripe_balance(c: &Ctx) -> Resp {
    if !authorized(c, "stripe") {
        return unauthorized("stripe");
    }
    if c.req.param("type").as_deref() != Some("refund") {
        return stripe_error(400, "the fake lists only type=refund".into());
    }
    let at = |k: &str| {
        c.req
            .param(k)
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(|s| DateTime::from_timestamp(s, 0))
    };
    let (from, to) = (at("created[gte]"), at("created[lt]"));
    let limit = c
        .req
        .param("limit")
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(10);
    let expand = c.req.query.contains("expand") && c.req.query.contains("data.source");
    // (refund time, charge number), newest first.
    let mut refunds: Vec<(DateTime<chrono::Utc>, u64)> = c
        .world
        .sales("stripe", None, None, false)
        .filter_map(|(created, n)| {
            let ch = c.world.charge(n);
            let at = c.world.restatement_refund(n, created)?;
            (ch.status == "succeeded" && from.is_none_or(|f| at >= f) && to.is_none_or(|t| at < t))
                .then_some((at, n))
        })
        .collect();
    refunds.sort_by(|a, b| b.cmp(a));
    if let Some(after) = c.req.param("starting_after") {
        let Some(position) = after
            .strip_prefix("txn_1Fk")
            .and_then(|n| n.parse::<u64>().ok())
            .and_then(|n| refunds.iter().position(|(_, m)| *m == n))
        else {
            return stripe_error(400, format!("No such balance transaction: '{after}'"));
        };
        refunds.drain(..=position);
    }
    let has_more = refunds.len() > limit;
    let data: Vec<Value> = refunds
        .iter()
        .take(limit)
        .map(|(at, n)| {
            let ch = c.world.charge(*n);
            let refund = format!("re_1Fk{n:012}");
            let source = if expand {
                json!({"id": refund, "object": "refund", "amount": ch.amount, "charge": ch.id(), "status": "succeeded"})
            } else {
                json!(refund)
            };
            json!({"id": format!("txn_1Fk{n:012}"), "object": "balance_transaction", "amount": -ch.amount,
                "currency": ch.currency, "created": at.timestamp(), "type": "refund", "source": source})
        })
        .collect();
    Resp::json(
        200,
        json!({"object": "list", "url": "/v1/balance_transactions", "has_more": has_more, "data": data}),
    )
}
