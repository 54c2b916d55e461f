//! HubSpot, Salesforce and GoHighLevel deals.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::auth::{authorized, unauthorized};
use super::data::{Deal, Status, World, account, money, ts_ms};
use super::{Ctx, Resp, dec, enc};

fn sorted(
    c: &Ctx,
    p: &str,
    key: impl Fn(&Deal) -> (DateTime<Utc>, String),
) -> Vec<(Deal, (DateTime<Utc>, String))> {
    let mut v: Vec<_> = c.world.deals[p]
        .iter()
        .map(|d| (d.clone(), key(d)))
        .collect();
    v.sort_by(|a, b| a.1.cmp(&b.1));
    v
}

pub fn hubspot(c: &Ctx) -> Resp {
    if !authorized(c, "hubspot") {
        return unauthorized("hubspot");
    }
    let body = c.req.json().unwrap_or_default();
    let bad = |m: &str| {
        Resp::json(
            400,
            json!({"status": "error", "message": m, "category": "VALIDATION_ERROR"}),
        )
    };
    let limit = body["limit"].as_u64().unwrap_or(10) as usize;
    if !(1..=200).contains(&limit) {
        return bad("limit must be between 1 and 200");
    }
    let after = &body["after"];
    let offset = after
        .as_u64()
        .or_else(|| after.as_str()?.parse().ok())
        .unwrap_or(0) as usize;
    let mut filters = vec![];
    for f in body["filterGroups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["filters"].as_array().into_iter().flatten())
    {
        if f["propertyName"] != "hs_lastmodifieddate" {
            continue;
        }
        let v = &f["value"];
        let Some(ms) = v.as_i64().or_else(|| v.as_str()?.parse().ok()) else {
            return bad("hs_lastmodifieddate filter value must be epoch milliseconds");
        };
        filters.push((f["operator"].as_str().unwrap_or("").to_string(), ms));
    }
    let all = sorted(c, "hubspot", |d| {
        (d.modified, World::deal_id("hubspot", d.n))
    });
    let hits: Vec<_> = all
        .iter()
        .filter(|(d, _)| {
            let m = d.modified.timestamp_millis();
            filters.iter().all(|(op, v)| match op.as_str() {
                "GTE" => m >= *v,
                "GT" => m > *v,
                "LTE" => m <= *v,
                "LT" => m < *v,
                "EQ" => m == *v,
                _ => true,
            })
        })
        .collect();
    let w = &c.world;
    let results: Vec<Value> = hits.iter().skip(offset).take(limit).map(|(d, (_, id))| {
        let closed = d.status != Status::Open;
        json!({"id": id, "properties": {
            "dealname": format!("Deal {}", d.n), "amount": w.deal_amount("hubspot", d.n).map(money),
            "deal_currency_code": w.deal_currency("hubspot", d.n), "dealstage": w.deal_stage("hubspot", d), "pipeline": "default",
            "createdate": ts_ms(d.created), "closedate": d.closed.map(ts_ms), "hs_is_closed": closed.to_string(),
            "hs_is_closed_won": (d.status == Status::Won).to_string(), "hs_lastmodifieddate": ts_ms(d.modified),
            "hs_analytics_source_data_1": w.deal_source("hubspot", d.n), "hs_object_id": id,
        }, "createdAt": ts_ms(d.created), "updatedAt": ts_ms(d.modified), "archived": false})
    }).collect();
    let end = offset + results.len();
    let mut out = json!({"total": hits.len(), "results": results});
    if end < hits.len() {
        out["paging"] = json!({"next": {"after": end.to_string()}});
    }
    Resp::json(200, out)
}

fn sf_error(code: u16, error: &str, m: &str) -> Resp {
    Resp::json(code, json!([{"message": m, "errorCode": error}]))
}

fn sf_ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S.000+0000").to_string()
}

/// The `SystemModstamp >= X` (or `>`) bound of a SOQL query, as (ms, strict).
fn soql_bound(q: &str) -> Result<Option<(i64, bool)>, ()> {
    let u = q.to_ascii_uppercase();
    for (i, m) in u.match_indices("SYSTEMMODSTAMP") {
        let rest = q[i + m.len()..].trim_start();
        let (strict, rest) = match (rest.strip_prefix(">="), rest.strip_prefix('>')) {
            (Some(r), _) => (false, r),
            (None, Some(r)) => (true, r),
            _ => continue,
        };
        let lit = rest.split_whitespace().next().unwrap_or("");
        let t = DateTime::parse_from_rfc3339(lit)
            .or_else(|_| DateTime::parse_from_str(lit, "%Y-%m-%dT%H:%M:%S%.f%z"))
            .map_err(|_| ())?;
        return Ok(Some((t.timestamp_millis(), strict)));
    }
    Ok(None)
}

fn sf_page(c: &Ctx, bound: Option<(i64, bool)>, batch: usize, offset: usize) -> Resp {
    let w = &c.world;
    let all = sorted(c, "salesforce", |d| {
        (d.modified, World::deal_id("salesforce", d.n))
    });
    let hits: Vec<_> = all
        .iter()
        .filter(|(d, _)| {
            let m = d.modified.timestamp_millis();
            bound.is_none_or(|(b, strict)| if strict { m > b } else { m >= b })
        })
        .collect();
    let records: Vec<Value> = hits.iter().skip(offset).take(batch).map(|(d, (_, id))| {
        let closed = d.status != Status::Open;
        json!({
            "attributes": {"type": "Opportunity", "url": format!("/services/data/v61.0/sobjects/Opportunity/{id}")},
            "Id": id, "Name": format!("Opportunity {}", d.n),
            "Amount": w.deal_amount("salesforce", d.n).map(|a| a as f64 / 100.0),
            "CurrencyIsoCode": w.deal_currency("salesforce", d.n), "StageName": w.deal_stage("salesforce", d),
            "IsClosed": closed, "IsWon": d.status == Status::Won, "CloseDate": World::sf_close_date(d).to_string(),
            "CreatedDate": sf_ts(d.created), "SystemModstamp": sf_ts(d.modified),
            "CampaignId": w.deal_source("salesforce", d.n), "AccountId": w.deal_customer("salesforce", d.n),
        })
    }).collect();
    let end = offset + records.len();
    let mut out = json!({"totalSize": hits.len(), "done": end >= hits.len(), "records": records});
    if end < hits.len() {
        let state = enc(&format!(
            "{}:{}:{batch}",
            bound.map_or("-".into(), |b| b.0.to_string()),
            bound.is_some_and(|b| b.1)
        ));
        out["nextRecordsUrl"] = format!("/services/data/v61.0/query/01g{state}-{end}").into();
    }
    Resp::json(200, out)
}

pub fn salesforce_query(c: &Ctx) -> Resp {
    if !authorized(c, "salesforce") {
        return unauthorized("salesforce");
    }
    let q = c.req.param("q").unwrap_or_default();
    if !q.to_ascii_uppercase().contains("FROM OPPORTUNITY") {
        return sf_error(
            400,
            "MALFORMED_QUERY",
            "only SELECT … FROM Opportunity is supported",
        );
    }
    let Ok(bound) = soql_bound(&q) else {
        return sf_error(400, "MALFORMED_QUERY", "invalid SystemModstamp literal");
    };
    let batch = c
        .req
        .header("sforce-query-options")
        .and_then(|v| {
            v.split(',')
                .find_map(|kv| kv.trim().strip_prefix("batchSize=")?.trim().parse().ok())
        })
        .filter(|n| *n > 0)
        .unwrap_or(2000);
    sf_page(c, bound, batch, 0)
}

pub fn salesforce_more(c: &Ctx) -> Resp {
    if !authorized(c, "salesforce") {
        return unauthorized("salesforce");
    }
    let locator = c.req.segs()[4];
    let parsed = (|| {
        let (state, offset) = locator.strip_prefix("01g")?.rsplit_once('-')?;
        let state = dec(state)?;
        let mut parts = state.split(':');
        let (since, strict, batch) = (parts.next()?, parts.next()?, parts.next()?.parse().ok()?);
        let bound = if since == "-" {
            None
        } else {
            Some((since.parse().ok()?, strict == "true"))
        };
        Some((bound, batch, offset.parse().ok()?))
    })();
    match parsed {
        Some((bound, batch, offset)) => sf_page(c, bound, batch, offset),
        None => sf_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator"),
    }
}

pub fn gohighlevel(c: &Ctx) -> Resp {
    if !authorized(c, "gohighlevel") {
        return unauthorized("gohighlevel");
    }
    if c.req.header("version") != Some("2021-07-28") {
        return Resp::json(
            400,
            json!({"statusCode": 400, "message": "Version header was not found or is invalid"}),
        );
    }
    let acct = account(c.world.seed, "gohighlevel");
    if c.req.param("location_id").as_deref() != Some(acct.as_str()) {
        return Resp::json(
            403,
            json!({"statusCode": 403, "message": "The token does not have access to this location"}),
        );
    }
    let limit = c
        .req
        .param("limit")
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(20);
    let after_ms = c
        .req
        .param("startAfter")
        .and_then(|v| v.parse::<i64>().ok());
    let after_id = c.req.param("startAfterId").unwrap_or_default();
    let all = sorted(c, "gohighlevel", |d| {
        (d.created, World::deal_id("gohighlevel", d.n))
    });
    let w = &c.world;
    let mut rest = all
        .iter()
        .filter(|(_, (t, id))| {
            after_ms.is_none_or(|a| (t.timestamp_millis(), id.as_str()) > (a, after_id.as_str()))
        })
        .peekable();
    let page: Vec<_> = rest.by_ref().take(limit).collect();
    let more = rest.peek().is_some();
    let opportunities: Vec<Value> = page.iter().map(|(d, (_, id))| {
        let status = match d.status {
            Status::Open => "open",
            Status::Won => "won",
            Status::Lost => "lost",
            Status::Abandoned => "abandoned",
        };
        json!({
            "id": id, "name": format!("Opportunity {}", d.n),
            "monetaryValue": w.deal_amount("gohighlevel", d.n).unwrap_or(0) as f64 / 100.0,
            "pipelineId": w.ghl_pipeline(d.n), "pipelineStageId": w.deal_stage("gohighlevel", d), "status": status,
            "createdAt": ts_ms(d.created), "updatedAt": ts_ms(d.modified), "lastStatusChangeAt": ts_ms(d.closed.unwrap_or(d.created)),
            "contact": {"id": w.deal_customer("gohighlevel", d.n)}, "source": w.deal_source("gohighlevel", d.n), "locationId": acct,
        })
    }).collect();
    let last = page
        .last()
        .filter(|_| more)
        .map(|(_, (t, id))| (t.timestamp_millis(), id.clone()));
    let next = last.as_ref().map(|(ms, id)| {
        format!("{}/opportunities/search?location_id={acct}&limit={limit}&startAfter={ms}&startAfterId={id}", c.shared.url)
    });
    Resp::json(
        200,
        json!({"opportunities": opportunities, "meta": {
            "total": all.len(), "startAfter": last.as_ref().map(|l| l.0), "startAfterId": last.map(|l| l.1), "nextPageUrl": next,
        }}),
    )
}
