//! Google Ads / YouTube, GA4, Meta, LinkedIn and TikTok.

use chrono::{Duration, NaiveDate};
use serde_json::{Value, json};

use super::auth::{authorized, unauthorized};
use super::data::{Ad, AdRow, account, ads, ga4_combos, h, money};
use super::{Ctx, Req, Resp, dec_offset, enc_offset, pct_decode};

const FIELD_MASK: &str = "customer.id,customer.currencyCode,customer.timeZone,campaign.id,campaign.name,campaign.advertisingChannelType,adGroup.id,adGroupAd.ad.id,segments.date,metrics.impressions,metrics.clicks,metrics.costMicros,metrics.conversions,metrics.conversionsValue,metrics.videoViews";

pub fn date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
}

fn google_error(code: u16, message: &str, status: &str) -> Resp {
    Resp::json(
        code,
        json!({"error": {"code": code, "message": message, "status": status}}),
    )
}

/// `segments.date BETWEEN 'a' AND 'b'` in a GAQL query.
fn gaql_dates(q: &str) -> Option<(NaiveDate, NaiveDate)> {
    let u = q.to_ascii_uppercase();
    u.match_indices("SEGMENTS.DATE").find_map(|(i, m)| {
        let rest = u[i + m.len()..].trim_start().strip_prefix("BETWEEN")?;
        let mut parts = rest.split(['\'', '"']).skip(1);
        let (a, and, b) = (parts.next()?, parts.next()?, parts.next()?);
        (and.trim() == "AND").then_some(())?;
        Some((date(a)?, date(b)?))
    })
}

/// `campaign.advertising_channel_type = 'X'` (false, X) or `!= 'X'` (true, X).
fn gaql_channel(q: &str) -> Option<(bool, String)> {
    let u = q.to_ascii_uppercase();
    u.match_indices("CAMPAIGN.ADVERTISING_CHANNEL_TYPE")
        .find_map(|(i, m)| {
            let rest = u[i + m.len()..].trim_start();
            let (neg, rest) = match rest.strip_prefix("!=") {
                Some(r) => (true, r),
                None => (false, rest.strip_prefix('=')?),
            };
            let v = rest.trim_start().strip_prefix(['\'', '"'])?;
            Some((neg, v[..v.find(['\'', '"'])?].to_string()))
        })
}

fn gaql(req: &Req) -> String {
    req.json()
        .and_then(|v| v["query"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The platform a searchStream request is for: YouTube when it asks for VIDEO only.
pub fn google_platform(req: &Req) -> &'static str {
    match gaql_channel(&gaql(req)) {
        Some((false, v)) if v == "VIDEO" => "youtube_ads",
        _ => "google_ads",
    }
}

fn google_result(cust: &str, ad: &Ad, r: &AdRow) -> Value {
    let mut m = serde_json::Map::new();
    let mut put = |k: &str, v: Value, zero: bool| {
        if !zero {
            m.insert(k.into(), v);
        }
    };
    put(
        "impressions",
        r.impressions.to_string().into(),
        r.impressions == 0,
    );
    put("clicks", r.clicks.to_string().into(), r.clicks == 0);
    put(
        "costMicros",
        (r.spend * 10_000).to_string().into(),
        r.spend == 0,
    );
    put("conversions", json!(r.conversions()), r.conv2 == 0);
    put(
        "conversionsValue",
        json!(r.value as f64 / 100.0),
        r.value == 0,
    );
    put(
        "videoViews",
        r.video_views.to_string().into(),
        r.video_views == 0,
    );
    let (c, g, a) = (ad.campaign_id, ad.ad_group_id, ad.ad_id);
    json!({
        "customer": {"resourceName": format!("customers/{cust}"), "id": cust, "currencyCode": "USD", "timeZone": "America/New_York"},
        "campaign": {"resourceName": format!("customers/{cust}/campaigns/{c}"), "id": c.to_string(), "name": ad.campaign_name,
            "advertisingChannelType": ad.channel_type},
        "adGroup": {"resourceName": format!("customers/{cust}/adGroups/{g}"), "id": g.to_string()},
        "adGroupAd": {"resourceName": format!("customers/{cust}/adGroupAds/{g}~{a}"),
            "ad": {"resourceName": format!("customers/{cust}/ads/{a}"), "id": a.to_string()}},
        "segments": {"date": r.date.to_string()},
        "metrics": m,
    })
}

pub fn google_ads(c: &Ctx) -> Resp {
    if !authorized(c, c.platform) {
        return unauthorized(c.platform);
    }
    let cust = account(c.world.seed, "google_ads");
    if c.req.segs()[2] != cust {
        return google_error(
            403,
            "The caller does not have permission",
            "PERMISSION_DENIED",
        );
    }
    let q = gaql(c.req);
    let Some((from, to)) = gaql_dates(&q) else {
        return google_error(
            400,
            "Request contains an invalid argument: segments.date BETWEEN is required.",
            "INVALID_ARGUMENT",
        );
    };
    let filter = gaql_channel(&q);
    let mut rows = Vec::new();
    for p in ["google_ads", "youtube_ads"] {
        let (ads, rs) = c.world.ad_rows(p, from, to);
        for r in rs {
            let ad = &ads[r.ad];
            if filter
                .as_ref()
                .is_none_or(|(neg, v)| (ad.channel_type == v) != *neg)
            {
                rows.push((r.date, ad.ad_id, google_result(&cust, ad, &r)));
            }
        }
    }
    rows.sort_by_key(|(d, id, _)| (*d, *id));
    let batch = c
        .req
        .header("x-fake-batch-size")
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(10_000);
    let rid = format!(
        "fake{:016x}",
        h(c.world.seed, "rid", &[super::data::fnv(&q)])
    );
    let results: Vec<Value> = rows.into_iter().map(|r| r.2).collect();
    let batches: Vec<Value> = if results.is_empty() {
        vec![json!({"fieldMask": FIELD_MASK, "requestId": rid})]
    } else {
        results
            .chunks(batch)
            .map(|ch| json!({"results": ch, "fieldMask": FIELD_MASK, "requestId": rid}))
            .collect()
    };
    Resp::json(200, Value::Array(batches))
}

/// GA4 dates: YYYY-MM-DD, today, yesterday, NdaysAgo.
fn ga4_date(v: &Value, today: NaiveDate) -> Option<NaiveDate> {
    let s = v.as_str()?;
    match s {
        "today" => Some(today),
        "yesterday" => Some(today - Duration::days(1)),
        _ => match s.strip_suffix("daysAgo") {
            Some(n) => Some(today - Duration::days(n.parse().ok()?)),
            None => date(s),
        },
    }
}

pub fn ga4(c: &Ctx) -> Resp {
    if !authorized(c, "ga4") {
        return unauthorized("ga4");
    }
    let prop = account(c.world.seed, "ga4");
    if c.req.segs()[2].strip_suffix(":runReport") != Some(prop.as_str()) {
        return google_error(
            403,
            "User does not have sufficient permissions for this property.",
            "PERMISSION_DENIED",
        );
    }
    let body = c.req.json().unwrap_or_default();
    let range = &body["dateRanges"][0];
    let (Some(from), Some(to)) = (
        ga4_date(&range["startDate"], c.world.today),
        ga4_date(&range["endDate"], c.world.today),
    ) else {
        return google_error(
            400,
            "dateRanges[0] must have startDate and endDate.",
            "INVALID_ARGUMENT",
        );
    };
    let num = |v: &Value, d: u64| {
        v.as_u64()
            .or_else(|| v.as_str()?.parse().ok())
            .filter(|n| *n > 0)
            .unwrap_or(d) as usize
    };
    let (limit, offset) = (num(&body["limit"], 10_000), num(&body["offset"], 0));
    let (combos, rows) = (ga4_combos(c.world.scale), c.world.ga4_keys(from, to));
    let page: Vec<Value> = rows
        .iter()
        .skip(offset)
        .take(limit)
        .map(|k| c.world.ga4_row(&combos, *k))
        .map(|r| {
            let dims = [
                r.date.format("%Y%m%d").to_string(),
                r.source.clone(),
                r.medium.clone(),
                r.campaign.clone(),
            ];
            let mut mets: Vec<String> = r.m[..5].iter().map(|v| v.to_string()).collect();
            mets.push(money(r.m[5]));
            json!({"dimensionValues": dims.iter().map(|v| json!({"value": v})).collect::<Vec<_>>(),
               "metricValues": mets.iter().map(|v| json!({"value": v})).collect::<Vec<_>>()})
        })
        .collect();
    let mut out = json!({
        "dimensionHeaders": (["date", "sessionSource", "sessionMedium", "sessionCampaignName"].map(|n| json!({"name": n}))),
        "metricHeaders": (["sessions", "totalUsers", "newUsers", "engagedSessions", "keyEvents"].map(|n| json!({"name": n, "type": "TYPE_INTEGER"}))
            .into_iter().chain([json!({"name": "purchaseRevenue", "type": "TYPE_CURRENCY"})]).collect::<Vec<_>>()),
        "rowCount": rows.len(),
        "metadata": {"currencyCode": "USD", "timeZone": "America/New_York"},
        "kind": "analyticsData#runReport",
    });
    if !page.is_empty() {
        out["rows"] = page.into();
    }
    Resp::json(200, out)
}

/// An asynchronous Meta insights job.
pub struct Report {
    pub since: NaiveDate,
    pub until: NaiveDate,
    pub polls: u32,
}

fn meta_error(code: u32, message: &str) -> Resp {
    Resp::json(
        400,
        json!({"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AFakeTrace"}}),
    )
}

/// Adds Meta's usage headers (`pct` percent used).
pub fn meta_usage(resp: Resp, acct: &str, pct: u64) -> Resp {
    let usage = json!({"call_count": pct, "total_cputime": pct / 2, "total_time": pct / 2});
    let mut buc = usage.clone();
    buc["type"] = "ads_insights".into();
    buc["estimated_time_to_regain_access"] = 0.into();
    resp.header(
        "x-business-use-case-usage",
        &json!({acct: [buc]}).to_string(),
    )
    .header("x-app-usage", &usage.to_string())
}

pub fn meta_create(c: &Ctx) -> Resp {
    if !authorized(c, "meta_ads") {
        return unauthorized("meta_ads");
    }
    if c.req.segs()[1] != format!("act_{}", account(c.world.seed, "meta_ads")) {
        return meta_error(
            100,
            "Unsupported post request. Object does not exist or you do not have permission.",
        );
    }
    let form = c.req.form();
    let range: Value = form
        .iter()
        .find(|(k, _)| k == "time_range")
        .and_then(|(_, v)| serde_json::from_str(v).ok())
        .unwrap_or_default();
    let (Some(since), Some(until)) = (
        range["since"].as_str().and_then(date),
        range["until"].as_str().and_then(date),
    ) else {
        return meta_error(
            100,
            "(#100) time_range must be {\"since\":\"YYYY-MM-DD\",\"until\":\"YYYY-MM-DD\"}",
        );
    };
    let mut inner = c.shared.inner.lock().unwrap();
    inner.counter += 1;
    let id = (6_000_000_000_000 + inner.counter).to_string();
    inner.reports.insert(
        id.clone(),
        Report {
            since,
            until,
            polls: 0,
        },
    );
    Resp::json(200, json!({"report_run_id": id}))
}

pub fn meta_status(c: &Ctx) -> Resp {
    if !authorized(c, "meta_ads") {
        return unauthorized("meta_ads");
    }
    let id = c.req.segs()[1].to_string();
    let mut inner = c.shared.inner.lock().unwrap();
    let Some(report) = inner.reports.get_mut(&id) else {
        return meta_error(
            100,
            &format!("Unsupported get request. Object with ID '{id}' does not exist"),
        );
    };
    report.polls += 1;
    let (status, pct) = if report.polls == 1 {
        ("Job Running", 50)
    } else {
        ("Job Completed", 100)
    };
    Resp::json(
        200,
        json!({"id": id, "async_status": status, "async_percent_completion": pct}),
    )
}

pub fn meta_insights(c: &Ctx) -> Resp {
    if !authorized(c, "meta_ads") {
        return unauthorized("meta_ads");
    }
    let id = c.req.segs()[1].to_string();
    let range = c
        .shared
        .inner
        .lock()
        .unwrap()
        .reports
        .get(&id)
        .map(|r| (r.since, r.until));
    let Some((since, until)) = range else {
        return meta_error(
            100,
            &format!("Unsupported get request. Object with ID '{id}' does not exist"),
        );
    };
    let limit = c
        .req
        .param("limit")
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(25);
    let offset = match c.req.param("after") {
        Some(a) => match dec_offset(&a) {
            Some(o) => o,
            None => return meta_error(100, "(#100) Invalid cursor"),
        },
        None => 0,
    };
    let acct = account(c.world.seed, "meta_ads");
    let ads = ads("meta_ads", c.world.scale);
    let rows = c.world.ad_keys("meta_ads", &ads, since, until);
    let page = rows
        .iter()
        .skip(offset)
        .take(limit)
        .map(|k| c.world.ad_row("meta_ads", &ads, *k));
    let data: Vec<Value> = page.map(|r| {
        let ad = &ads[r.ad];
        let conv = (r.conv2 / 2).to_string();
        let mut row = json!({
            "account_id": acct, "account_currency": "USD", "campaign_id": ad.campaign_id.to_string(),
            "campaign_name": ad.campaign_name, "adset_id": ad.ad_group_id.to_string(), "ad_id": ad.ad_id.to_string(),
            "date_start": r.date.to_string(), "date_stop": r.date.to_string(), "impressions": r.impressions.to_string(),
            "clicks": r.clicks.to_string(), "spend": money(r.spend),
        });
        let mut actions = vec![];
        if r.clicks > 0 {
            actions.push(json!({"action_type": "link_click", "value": r.clicks.to_string()}));
            actions.push(json!({"action_type": "landing_page_view", "value": (r.clicks / 2 + 1).to_string()}));
        }
        if r.conv2 > 0 {
            // omni_purchase repeats the purchases: it must not be counted twice.
            actions.push(json!({"action_type": "offsite_conversion.fb_pixel_purchase", "value": conv}));
            actions.push(json!({"action_type": "omni_purchase", "value": conv}));
            row["action_values"] = json!([
                {"action_type": "offsite_conversion.fb_pixel_purchase", "value": money(r.value)},
                {"action_type": "omni_purchase", "value": money(r.value)},
            ]);
        }
        if !actions.is_empty() {
            row["actions"] = actions.into();
        }
        if r.video_views > 0 {
            row["video_play_actions"] = json!([{"action_type": "video_view", "value": r.video_views.to_string()}]);
        }
        row
    }).collect();
    let end = offset + data.len();
    let mut out = json!({"data": data});
    if end > offset {
        out["paging"] =
            json!({"cursors": {"before": enc_offset(offset), "after": enc_offset(end)}});
        if end < rows.len() {
            out["paging"]["next"] = format!(
                "{}/v21.0/{id}/insights?limit={limit}&after={}",
                c.shared.url,
                enc_offset(end)
            )
            .into();
        }
    }
    Resp::json(200, out)
}

fn linkedin_check(c: &Ctx) -> Option<Resp> {
    if !authorized(c, "linkedin_ads") {
        return Some(unauthorized("linkedin_ads"));
    }
    if c.req.header("linkedin-version") != Some("202501")
        || c.req.header("x-restli-protocol-version") != Some("2.0.0")
    {
        return Some(Resp::json(
            400,
            json!({"status": 400, "code": "VERSION_MISSING",
            "message": "LinkedIn-Version: 202501 and X-Restli-Protocol-Version: 2.0.0 headers are required"}),
        ));
    }
    None
}

fn linkedin_account(c: &Ctx) -> Result<String, Resp> {
    let acct = account(c.world.seed, "linkedin_ads");
    if c.req.segs()[2] != acct {
        return Err(Resp::json(
            404,
            json!({"status": 404, "message": "Not Found"}),
        ));
    }
    Ok(acct)
}

pub fn linkedin_account_get(c: &Ctx) -> Resp {
    if let Some(r) = linkedin_check(c) {
        return r;
    }
    match linkedin_account(c) {
        Ok(acct) => Resp::json(
            200,
            json!({"id": acct.parse::<u64>().unwrap(), "name": "Gyrus Fake Ads", "currency": "USD", "status": "ACTIVE"}),
        ),
        Err(r) => r,
    }
}

pub fn linkedin_campaigns(c: &Ctx) -> Resp {
    if let Some(r) = linkedin_check(c) {
        return r;
    }
    let acct = match linkedin_account(c) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let mut all = ads("linkedin_ads", c.world.scale);
    all.dedup_by_key(|a| a.campaign_id);
    let size = c
        .req
        .param("pageSize")
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(100);
    let Some(offset) = c.req.param("pageToken").map_or(Some(0), |t| dec_offset(&t)) else {
        return Resp::json(400, json!({"status": 400, "message": "Invalid pageToken"}));
    };
    let elements: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(size)
        .map(|a| {
            json!({
                "id": a.campaign_id, "name": a.campaign_name, "status": "ACTIVE",
                "campaignGroup": format!("urn:li:sponsoredCampaignGroup:{}", a.ad_group_id),
                "account": format!("urn:li:sponsoredAccount:{acct}"),
            })
        })
        .collect();
    let end = offset + elements.len();
    let metadata = if end < all.len() {
        json!({"nextPageToken": enc_offset(end)})
    } else {
        json!({})
    };
    Resp::json(
        200,
        json!({"elements": elements, "metadata": metadata, "paging": {"start": offset, "count": size, "links": []}}),
    )
}

/// `(start:(year:Y,month:M,day:D),end:(…))`; no end means today.
fn linkedin_range(s: &str, today: NaiveDate) -> Option<(NaiveDate, NaiveDate)> {
    let n: Vec<u32> = s
        .split(|ch: char| !ch.is_ascii_digit())
        .filter_map(|x| x.parse().ok())
        .collect();
    let d = |k: usize| NaiveDate::from_ymd_opt(*n.get(k)? as i32, *n.get(k + 1)?, *n.get(k + 2)?);
    match n.len() {
        3 => Some((d(0)?, today)),
        6 => Some((d(0)?, d(3)?)),
        _ => None,
    }
}

pub fn linkedin_analytics(c: &Ctx) -> Resp {
    if let Some(r) = linkedin_check(c) {
        return r;
    }
    let bad = |m: &str| Resp::json(400, json!({"status": 400, "message": m}));
    let p = |k: &str| c.req.param(k).map(|v| pct_decode(&v)).unwrap_or_default();
    let acct = account(c.world.seed, "linkedin_ads");
    if p("q") != "statistics" || p("timeGranularity") != "DAILY" {
        return bad("q=statistics and timeGranularity=DAILY are required");
    }
    if !p("accounts").contains(&format!("urn:li:sponsoredAccount:{acct}")) {
        return Resp::json(
            403,
            json!({"status": 403, "message": "Not enough permissions to access: accounts"}),
        );
    }
    let Some((from, to)) = linkedin_range(&p("dateRange"), c.world.today) else {
        return bad("Invalid dateRange");
    };
    let (ads, rows) = c.world.ad_rows("linkedin_ads", from, to);
    let ymd = |d: NaiveDate| {
        use chrono::Datelike;
        json!({"year": d.year(), "month": d.month(), "day": d.day()})
    };
    let elements: Vec<Value> = rows.iter().map(|r| {
        let ad = &ads[r.ad];
        json!({
            "pivotValues": [format!("urn:li:sponsoredCampaign:{}", ad.campaign_id), format!("urn:li:sponsoredCreative:{}", ad.ad_id)],
            "dateRange": {"start": ymd(r.date), "end": ymd(r.date)},
            "impressions": r.impressions, "clicks": r.clicks, "costInLocalCurrency": money(r.spend),
            "externalWebsiteConversions": r.conv2 / 2, "conversionValueInLocalCurrency": money(r.value),
            "videoViews": r.video_views,
        })
    }).collect();
    Resp::json(
        200,
        json!({"elements": elements, "paging": {"start": 0, "count": 10, "links": []}}),
    )
}

pub fn tiktok(c: &Ctx) -> Resp {
    if !authorized(c, "tiktok_ads") {
        return unauthorized("tiktok_ads");
    }
    let rid = format!(
        "2026{:016x}",
        h(c.world.seed, "rid", &[super::data::fnv(&c.req.query)])
    );
    let err = |code: u32, m: &str| {
        Resp::json(
            200,
            json!({"code": code, "message": m, "request_id": rid, "data": {}}),
        )
    };
    let acct = account(c.world.seed, "tiktok_ads");
    if c.req.param("advertiser_id").as_deref() != Some(acct.as_str()) {
        return err(40001, "No permission to operate advertiser");
    }
    let (Some(from), Some(to)) = (
        c.req.param("start_date").and_then(|s| date(&s)),
        c.req.param("end_date").and_then(|s| date(&s)),
    ) else {
        return err(40002, "start_date and end_date are required (YYYY-MM-DD)");
    };
    if to < from || (to - from).num_days() > 30 {
        return err(
            40002,
            "The time span between start_date and end_date cannot exceed 30 days",
        );
    }
    let num = |k: &str, d: usize| {
        c.req
            .param(k)
            .and_then(|v| v.parse().ok())
            .filter(|n| *n > 0)
            .unwrap_or(d)
    };
    let (page, size) = (num("page", 1), num("page_size", 10));
    let ads = ads("tiktok_ads", c.world.scale);
    let rows = c.world.ad_keys("tiktok_ads", &ads, from, to);
    let keys = rows.iter().skip((page - 1) * size).take(size);
    let list: Vec<Value> = keys.map(|k| c.world.ad_row("tiktok_ads", &ads, *k)).map(|r| {
        let ad = &ads[r.ad];
        json!({
            "dimensions": {"ad_id": ad.ad_id.to_string(), "stat_time_day": format!("{} 00:00:00", r.date)},
            "metrics": {"campaign_id": ad.campaign_id.to_string(), "campaign_name": ad.campaign_name,
                "adgroup_id": ad.ad_group_id.to_string(), "spend": money(r.spend), "impressions": r.impressions.to_string(),
                "clicks": r.clicks.to_string(), "conversion": (r.conv2 / 2).to_string(),
                "total_complete_payment_rate": money(r.value), "video_play_actions": r.video_views.to_string(), "currency": "EUR"},
        })
    }).collect();
    let info = json!({"page": page, "page_size": size, "total_number": rows.len(), "total_page": rows.len().div_ceil(size)});
    Resp::json(
        200,
        json!({"code": 0, "message": "OK", "request_id": rid, "data": {"list": list, "page_info": info}}),
    )
}
