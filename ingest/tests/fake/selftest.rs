//! Checks that the platform fake (tests/fake) serves what SPEC.md says:
//! shapes, paging, auth, faults, restatement.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::fake::{Fake, FakeConfig};
use reqwest::header::HeaderMap;
use reqwest::{Client, RequestBuilder};
use serde_json::{Value, json};

type AdKey = (String, String);
/// (ad id, date) -> (spend cents, conversions, value cents, impressions)
type AdMap = BTreeMap<AdKey, (i64, f64, i64, i64)>;

async fn send(rb: RequestBuilder) -> (u16, HeaderMap, Value) {
    let r = rb.send().await.expect("request");
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    let text = r.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn post_json(c: &Client, url: String, v: &Value) -> RequestBuilder {
    c.post(url)
        .header("content-type", "application/json")
        .body(v.to_string())
}

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

fn cents(s: &str) -> i64 {
    let (a, b) = s.split_once('.').unwrap_or((s, ""));
    a.parse::<i64>().unwrap() * 100 + format!("{b:0<2}").parse::<i64>().unwrap()
}

fn token_form(f: &Fake, platform: &str) -> String {
    let cr = f.credentials(platform);
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "refresh_token")
        .append_pair("refresh_token", &s(&cr["refresh_token"]))
        .append_pair("client_id", &s(&cr["client_id"]))
        .append_pair("client_secret", &s(&cr["client_secret"]))
        .finish()
}

async fn token_answer(f: &Fake, c: &Client, platform: &str, path: &str) -> Value {
    let rb = c
        .post(format!("{}{path}", f.url()))
        .header("content-type", "application/x-www-form-urlencoded");
    let (st, _, v) = send(rb.body(token_form(f, platform))).await;
    assert_eq!(st, 200, "{platform} token: {v}");
    v
}

async fn token(f: &Fake, c: &Client, platform: &str, path: &str) -> String {
    s(&token_answer(f, c, platform, path).await["access_token"])
}

fn expected_ads(f: &Fake, p: &str, from: &str, to: &str) -> AdMap {
    f.expected(p)
        .iter()
        .filter(|r| (from..=to).contains(&r["date"].as_str().unwrap()))
        .map(|r| {
            (
                (s(&r["ad_id"]), s(&r["date"])),
                (
                    cents(r["spend"].as_str().unwrap()),
                    r["conversions"].as_f64().unwrap(),
                    cents(r["conversion_value"].as_str().unwrap()),
                    r["impressions"].as_i64().unwrap(),
                ),
            )
        })
        .collect()
}

fn start_date() -> String {
    FakeConfig::default().start.to_string()
}

async fn fake() -> Fake {
    Fake::start(FakeConfig::default()).await
}

#[tokio::test]
async fn google_ads_and_youtube() {
    let f = fake().await;
    let c = Client::new();
    let tok_answer = token_answer(&f, &c, "google_ads", "/token").await;
    assert_eq!(tok_answer["expires_in"], 3599);
    let tok = s(&tok_answer["access_token"]);
    assert!(f.secrets().contains(&tok));
    let cust = f.account("google_ads");
    assert_eq!(cust.len(), 10);
    assert_eq!(cust, f.account("youtube_ads"));
    let dev = s(&f.credentials("google_ads")["developer_token"]);
    let url = format!("{}/v21/customers/{cust}/googleAds:searchStream", f.url());
    let (from, to) = (start_date(), f.today().to_string());
    let search = |q: String, batch: &str, tok: &str| {
        post_json(&c, url.clone(), &json!({"query": q}))
            .bearer_auth(tok)
            .header("developer-token", &dev)
            .header("x-fake-batch-size", batch)
    };
    let fields = "SELECT campaign.id, campaign.advertising_channel_type, segments.date, metrics.clicks FROM ad_group_ad";
    for (platform, op) in [("google_ads", "!="), ("youtube_ads", "=")] {
        let q = format!(
            "{fields} WHERE segments.date BETWEEN '{from}' AND '{to}' AND campaign.advertising_channel_type {op} 'VIDEO'"
        );
        let (st, _, v) = send(search(q, "50", &tok)).await;
        assert_eq!(st, 200, "{v}");
        let batches = v.as_array().unwrap();
        assert!(
            batches.len() > 1
                && batches
                    .iter()
                    .all(|b| b["results"].as_array().unwrap().len() <= 50
                        && b["fieldMask"].is_string())
        );
        let mut got = AdMap::new();
        for r in batches
            .iter()
            .flat_map(|b| b["results"].as_array().unwrap())
        {
            let m = &r["metrics"];
            assert!(
                m.as_object()
                    .unwrap()
                    .values()
                    .all(|x| x != "0" && x != 0.0),
                "zero metric not omitted: {m}"
            );
            let video = r["campaign"]["advertisingChannelType"] == "VIDEO";
            assert_eq!(video, platform == "youtube_ads");
            assert_eq!(r["customer"]["id"], cust.as_str());
            let int = |k: &str| m[k].as_str().map_or(0, |x| x.parse::<i64>().unwrap());
            let key = (s(&r["adGroupAd"]["ad"]["id"]), s(&r["segments"]["date"]));
            let value = (m["conversionsValue"].as_f64().unwrap_or(0.0) * 100.0).round() as i64;
            got.insert(
                key,
                (
                    int("costMicros") / 10_000,
                    m["conversions"].as_f64().unwrap_or(0.0),
                    value,
                    int("impressions"),
                ),
            );
        }
        assert_eq!(got, expected_ads(&f, platform, &from, &to), "{platform}");
        if platform == "google_ads" {
            assert!(
                got.values().any(|v| v.1.fract() == 0.5),
                "Google conversions can be halves"
            );
        }
    }
    // A window returns only its dates; no BETWEEN is an error.
    let (_, _, v) = send(search(
        format!("{fields} WHERE segments.date BETWEEN '2026-04-01' AND '2026-04-02'"),
        "10000",
        &tok,
    ))
    .await;
    let dates: std::collections::BTreeSet<_> = v[0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| s(&r["segments"]["date"]))
        .collect();
    assert_eq!(
        dates.into_iter().collect::<Vec<_>>(),
        ["2026-04-01", "2026-04-02"]
    );
    let (st, _, v) = send(search(
        format!("{fields} WHERE segments.date DURING LAST_30_DAYS"),
        "10",
        &tok,
    ))
    .await;
    assert_eq!(
        (st, v["error"]["status"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );
    // Auth: a token the fake did not issue, and a missing developer token.
    let q = format!("{fields} WHERE segments.date BETWEEN '{from}' AND '{to}'");
    let (st, _, v) = send(search(
        q.clone(),
        "10",
        "google_ads-access-token-secret-0000",
    ))
    .await;
    assert_eq!(
        (st, v["error"]["status"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
    let (st, _, _) = send(post_json(&c, url.clone(), &json!({"query": q})).bearer_auth(&tok)).await;
    assert_eq!(st, 401);
    // Wrong credentials at the token endpoint.
    let (st, _, v) = send(
        c.post(format!("{}/token", f.url()))
            .body("grant_type=refresh_token&refresh_token=x&client_id=y&client_secret=z"),
    )
    .await;
    assert_eq!((st, v["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn ga4_pages_with_limit_and_offset() {
    let f = fake().await;
    let c = Client::new();
    let tok = token(&f, &c, "ga4", "/token").await;
    let url = format!(
        "{}/v1beta/properties/{}:runReport",
        f.url(),
        f.account("ga4")
    );
    let (mut offset, mut rows) = (0, vec![]);
    loop {
        let body = json!({"dateRanges": [{"startDate": start_date(), "endDate": f.today().to_string()}],
            "dimensions": [{"name": "date"}, {"name": "sessionSource"}, {"name": "sessionMedium"}, {"name": "sessionCampaignName"}],
            "limit": 100, "offset": offset.to_string()});
        let (st, _, v) = send(post_json(&c, url.clone(), &body).bearer_auth(&tok)).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["metricHeaders"][5]["type"], "TYPE_CURRENCY");
        let Some(page) = v["rows"].as_array() else {
            break;
        };
        rows.extend(page.iter().cloned());
        offset += page.len();
        assert!(offset <= v["rowCount"].as_u64().unwrap() as usize);
    }
    let exp = f.expected("ga4");
    assert_eq!(rows.len(), exp.len());
    let key = |r: &Value| {
        let d: Vec<String> = r["dimensionValues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| s(&x["value"]))
            .collect();
        (d[0].clone(), d[1].clone(), d[2].clone(), d[3].clone())
    };
    assert!(
        rows.windows(2).all(|w| key(&w[0]) < key(&w[1])),
        "ordered by (date, source, medium, campaign)"
    );
    let rev: i64 = rows
        .iter()
        .map(|r| cents(r["metricValues"][5]["value"].as_str().unwrap()))
        .sum();
    assert_eq!(
        rev,
        exp.iter()
            .map(|r| cents(r["revenue"].as_str().unwrap()))
            .sum::<i64>()
    );
    assert_eq!(exp[0]["property_id"], f.account("ga4").as_str());
    let (st, _, v) = send(
        post_json(
            &c,
            url,
            &json!({"dateRanges": [{"startDate": "2026-03-01", "endDate": "2026-03-01"}]}),
        )
        .bearer_auth("nope"),
    )
    .await;
    assert_eq!((st, v["error"]["code"].as_i64()), (401, Some(401)));
}

#[tokio::test]
async fn meta_async_insights() {
    let f = fake().await;
    let c = Client::new();
    let tok = s(&f.credentials("meta_ads")["access_token"]);
    let acct = f.account("meta_ads");
    assert!(acct.chars().all(|ch| ch.is_ascii_digit()));
    let (from, to) = ("2026-04-01", "2026-04-30");
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("level", "ad")
        .append_pair("time_increment", "1")
        .append_pair(
            "time_range",
            &json!({"since": from, "until": to}).to_string(),
        )
        .append_pair("fields", "campaign_id,ad_id,spend,actions,action_values")
        .finish();
    let (st, h, v) = send(
        c.post(format!("{}/v21.0/act_{acct}/insights", f.url()))
            .bearer_auth(&tok)
            .body(form),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let usage: Value =
        serde_json::from_str(h["x-business-use-case-usage"].to_str().unwrap()).unwrap();
    assert_eq!(usage[&acct][0]["type"], "ads_insights");
    assert!(h.contains_key("x-app-usage"));
    let run = s(&v["report_run_id"]);
    let poll = || send(c.get(format!("{}/v21.0/{run}", f.url())).bearer_auth(&tok));
    assert_eq!(poll().await.2["async_status"], "Job Running");
    let (_, _, v) = poll().await;
    assert_eq!(
        (
            v["async_status"].as_str(),
            v["async_percent_completion"].as_i64()
        ),
        (Some("Job Completed"), Some(100))
    );
    let mut next = Some(format!("{}/v21.0/{run}/insights?limit=100", f.url()));
    let (mut got, mut pages) = (AdMap::new(), 0);
    while let Some(url) = next {
        let (st, _, v) = send(c.get(url).bearer_auth(&tok)).await;
        assert_eq!(st, 200, "{v}");
        pages += 1;
        for r in v["data"].as_array().unwrap() {
            let purchase = |k: &str| {
                r[k].as_array()
                    .into_iter()
                    .flatten()
                    .filter(|a| a["action_type"] == "offsite_conversion.fb_pixel_purchase")
                    .map(|a| s(&a["value"]))
                    .next()
            };
            let conv = purchase("actions").map_or(0.0, |x| x.parse().unwrap());
            let value = purchase("action_values").map_or(0, |x| cents(&x));
            let key = (s(&r["ad_id"]), s(&r["date_start"]));
            got.insert(
                key,
                (
                    cents(r["spend"].as_str().unwrap()),
                    conv,
                    value,
                    s(&r["impressions"]).parse().unwrap(),
                ),
            );
        }
        next = v["paging"]["next"].as_str().map(str::to_string);
    }
    assert!(pages > 2);
    assert_eq!(got, expected_ads(&f, "meta_ads", from, to));
    let (st, _, v) = send(
        c.get(format!("{}/v21.0/{run}", f.url()))
            .bearer_auth("EAAwrong"),
    )
    .await;
    assert_eq!((st, v["error"]["code"].as_i64()), (401, Some(190)));
}

#[tokio::test]
async fn linkedin_accounts_campaigns_analytics() {
    let f = fake().await;
    let c = Client::new();
    let answer = token_answer(&f, &c, "linkedin_ads", "/oauth/v2/accessToken").await;
    assert_eq!(
        answer["refresh_token"],
        f.credentials("linkedin_ads")["refresh_token"]
    );
    let tok = s(&answer["access_token"]);
    let acct = f.account("linkedin_ads");
    let get = |path: String| {
        c.get(format!("{}{path}", f.url()))
            .bearer_auth(&tok)
            .header("LinkedIn-Version", "202501")
            .header("X-Restli-Protocol-Version", "2.0.0")
    };
    let (_, _, v) = send(get(format!("/rest/adAccounts/{acct}"))).await;
    assert_eq!(
        (v["id"].to_string(), v["currency"].as_str()),
        (acct.clone(), Some("USD"))
    );
    let (mut token_param, mut campaigns) = (None::<String>, vec![]);
    loop {
        let mut q = vec![("q", "search".to_string()), ("pageSize", "2".into())];
        q.extend(token_param.map(|t| ("pageToken", t)));
        let (st, _, v) = send(get(format!("/rest/adAccounts/{acct}/adCampaigns")).query(&q)).await;
        assert_eq!(st, 200, "{v}");
        campaigns.extend(v["elements"].as_array().unwrap().iter().cloned());
        token_param = v["metadata"]["nextPageToken"].as_str().map(str::to_string);
        if token_param.is_none() {
            break;
        }
    }
    assert_eq!(campaigns.len(), 3);
    assert!(
        campaigns[0]["campaignGroup"]
            .as_str()
            .unwrap()
            .starts_with("urn:li:sponsoredCampaignGroup:")
    );
    let (from, to) = ("2026-03-05", "2026-04-03");
    let query = format!(
        "q=statistics&pivots=List(CAMPAIGN,CREATIVE)&timeGranularity=DAILY&dateRange=(start:(year:2026,month:3,day:5),end:(year:2026,month:4,day:3))&accounts=List(urn%3Ali%3AsponsoredAccount%3A{acct})&fields=impressions,clicks"
    );
    let (st, _, v) = send(get(format!("/rest/adAnalytics?{query}"))).await;
    assert_eq!(st, 200, "{v}");
    let got: AdMap = v["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let d = &e["dateRange"]["start"];
            let date = format!(
                "{}-{:02}-{:02}",
                d["year"],
                d["month"].as_u64().unwrap(),
                d["day"].as_u64().unwrap()
            );
            let ad = s(&e["pivotValues"][1])
                .rsplit(':')
                .next()
                .unwrap()
                .to_string();
            (
                (ad, date),
                (
                    cents(e["costInLocalCurrency"].as_str().unwrap()),
                    e["externalWebsiteConversions"].as_f64().unwrap(),
                    cents(e["conversionValueInLocalCurrency"].as_str().unwrap()),
                    e["impressions"].as_i64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(got, expected_ads(&f, "linkedin_ads", from, to));
    let row = f.expected("linkedin_ads").into_iter().next().unwrap();
    assert_eq!(
        campaigns
            .iter()
            .find(|x| x["id"] == s(&row["campaign_id"]).parse::<u64>().unwrap())
            .unwrap()["campaignGroup"],
        format!("urn:li:sponsoredCampaignGroup:{}", s(&row["ad_group_id"])).as_str()
    );
    let (st, _, _) = send(
        c.get(format!("{}/rest/adAccounts/{acct}", f.url()))
            .bearer_auth(&tok),
    )
    .await;
    assert_eq!(st, 400, "version headers are required");
    let (st, _, v) = send(
        c.get(format!("{}/rest/adAccounts/{acct}", f.url()))
            .bearer_auth("x")
            .header("LinkedIn-Version", "202501")
            .header("X-Restli-Protocol-Version", "2.0.0"),
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (401, Some("REVOKED_ACCESS_TOKEN"))
    );
}

#[tokio::test]
async fn tiktok_pages() {
    let f = fake().await;
    let c = Client::new();
    let tok = s(&f.credentials("tiktok_ads")["access_token"]);
    let (from, to) = ("2026-04-01", "2026-04-30");
    let get = |page: usize, end: &str, tok: &str| {
        c.get(format!("{}/open_api/v1.3/report/integrated/get/", f.url()))
            .header("Access-Token", tok)
            .query(&[
                ("advertiser_id", f.account("tiktok_ads")),
                ("report_type", "BASIC".into()),
                ("data_level", "AUCTION_AD".into()),
                ("dimensions", r#"["ad_id","stat_time_day"]"#.into()),
                ("metrics", r#"["spend","impressions"]"#.into()),
                ("start_date", from.into()),
                ("end_date", end.into()),
                ("page", page.to_string()),
                ("page_size", "100".into()),
            ])
    };
    let (mut page, mut got, mut order) = (1, AdMap::new(), vec![]);
    loop {
        let (st, _, v) = send(get(page, to, &tok)).await;
        assert_eq!((st, v["code"].as_i64()), (200, Some(0)), "{v}");
        for r in v["data"]["list"].as_array().unwrap() {
            let (d, m) = (&r["dimensions"], &r["metrics"]);
            assert_eq!(m["currency"], "EUR");
            let date = s(&d["stat_time_day"])[..10].to_string();
            order.push((date.clone(), s(&d["ad_id"])));
            got.insert(
                (s(&d["ad_id"]), date),
                (
                    cents(m["spend"].as_str().unwrap()),
                    s(&m["conversion"]).parse().unwrap(),
                    cents(m["total_complete_payment_rate"].as_str().unwrap()),
                    s(&m["impressions"]).parse().unwrap(),
                ),
            );
        }
        if page >= v["data"]["page_info"]["total_page"].as_u64().unwrap() as usize {
            break;
        }
        page += 1;
    }
    assert!(page > 2 && order.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(got, expected_ads(&f, "tiktok_ads", from, to));
    let (st, _, v) = send(get(1, "2026-05-02", &tok)).await;
    assert_eq!((st, v["code"].as_i64()), (200, Some(40002)));
    let (st, _, _) = send(get(1, to, "wrong")).await;
    assert_eq!(st, 401);
}

#[tokio::test]
async fn shopify_orders() {
    let f = fake().await;
    let c = Client::new();
    let tok = s(&f.credentials("shopify")["access_token"]);
    let q = format!(
        "created_at:>='{}T00:00:00Z' AND created_at:<'2026-04-01T00:00:00Z'",
        start_date()
    );
    let query = "query($first:Int!,$cursor:String,$q:String){orders(first:$first,after:$cursor,query:$q,sortKey:CREATED_AT){edges{cursor node{id}} pageInfo{hasNextPage endCursor}}}";
    let (mut cursor, mut nodes) = (Value::Null, vec![]);
    loop {
        let body = json!({"query": query, "variables": {"first": 100, "cursor": cursor, "q": q}});
        let rb = post_json(
            &c,
            format!("{}/admin/api/2025-07/graphql.json", f.url()),
            &body,
        )
        .header("X-Shopify-Access-Token", &tok);
        let (st, _, v) = send(rb).await;
        assert_eq!(st, 200, "{v}");
        let orders = &v["data"]["orders"];
        nodes.extend(
            orders["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"].clone()),
        );
        if orders["pageInfo"]["hasNextPage"] != true {
            break;
        }
        cursor = orders["pageInfo"]["endCursor"].clone();
    }
    let exp: Vec<Value> = f
        .expected("shopify")
        .into_iter()
        .filter(|r| r["created_at"].as_str().unwrap() < "2026-04-01")
        .collect();
    assert!(nodes.len() > 400);
    assert_eq!(nodes.len(), exp.len());
    let key = |n: &Value| {
        (
            s(&n["createdAt"]),
            s(&n["id"])
                .rsplit('/')
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap(),
        )
    };
    assert!(
        nodes.windows(2).all(|w| key(&w[0]) < key(&w[1])),
        "ordered by (createdAt, id)"
    );
    for (n, e) in nodes.iter().zip(&exp) {
        assert_eq!(
            s(&n["id"]).rsplit('/').next().unwrap(),
            e["order_id"].as_str().unwrap()
        );
        assert_eq!(
            s(&n["totalPriceSet"]["shopMoney"]["amount"]),
            s(&e["amount"])
        );
        assert_eq!(
            n["customer"].is_null(),
            s(&e["customer_id"]).starts_with("guest:")
        );
    }
    assert!(
        nodes.iter().any(|n| n["cancelledAt"].is_string())
            && nodes.iter().any(|n| n["customerJourneySummary"].is_null())
    );
    let (st, _, _) = send(
        post_json(
            &c,
            format!("{}/admin/api/2025-07/graphql.json", f.url()),
            &json!({}),
        )
        .header("X-Shopify-Access-Token", "x"),
    )
    .await;
    assert_eq!(st, 401);
}

#[tokio::test]
async fn stripe_charges() {
    let f = fake().await;
    let c = Client::new();
    let key = s(&f.credentials("stripe")["api_key"]);
    assert!(f.account("stripe").starts_with("acct_"));
    let (gte, lt) = ("1772323200", "1775001600"); // 2026-03-01 .. 2026-04-01
    let (mut after, mut charges) = (None::<String>, vec![]);
    loop {
        let mut q = vec![
            ("limit", "100".to_string()),
            ("created[gte]", gte.into()),
            ("created[lt]", lt.into()),
        ];
        q.extend(after.clone().map(|a| ("starting_after", a)));
        let (st, _, v) = send(
            c.get(format!("{}/v1/charges", f.url()))
                .bearer_auth(&key)
                .query(&q),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        let data = v["data"].as_array().unwrap();
        charges.extend(data.iter().cloned());
        if v["has_more"] != true {
            break;
        }
        after = Some(s(&data.last().unwrap()["id"]));
    }
    assert!(
        charges
            .windows(2)
            .all(|w| w[0]["created"].as_i64() >= w[1]["created"].as_i64()),
        "newest first"
    );
    let created: Vec<i64> = charges
        .iter()
        .map(|c| c["created"].as_i64().unwrap())
        .collect();
    assert!(
        created
            .iter()
            .all(|t| (1_772_323_200..1_775_001_600).contains(t))
    );
    let succeeded: Vec<&Value> = charges
        .iter()
        .filter(|c| c["status"] == "succeeded")
        .collect();
    let exp: Vec<Value> = f
        .expected("stripe")
        .into_iter()
        .filter(|r| r["created_at"].as_str().unwrap() < "2026-04-01")
        .collect();
    assert_eq!(succeeded.len(), exp.len());
    assert!(
        charges.iter().any(|c| c["status"] == "failed")
            && charges.iter().any(|c| c["currency"] == "jpy")
    );
    let exp_by_id: BTreeMap<String, &Value> = exp.iter().map(|r| (s(&r["order_id"]), r)).collect();
    for ch in succeeded {
        let e = exp_by_id[&s(&ch["id"])];
        let amount = ch["amount"].as_i64().unwrap();
        let major = if ch["currency"] == "jpy" {
            amount * 100
        } else {
            amount
        };
        assert_eq!(cents(e["amount"].as_str().unwrap()), major);
        assert_eq!(e["currency"], s(&ch["currency"]).to_uppercase().as_str());
    }
    let (st, _, v) = send(
        c.get(format!("{}/v1/charges", f.url()))
            .bearer_auth("sk_test_wrong"),
    )
    .await;
    assert_eq!(
        (st, v["error"]["type"].as_str()),
        (401, Some("invalid_request_error"))
    );
}

async fn hubspot_all(f: &Fake, c: &Client, tok: &str, since_ms: i64) -> Vec<Value> {
    let (mut after, mut out) = (None::<String>, vec![]);
    loop {
        let mut body = json!({"filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": since_ms.to_string()}]}],
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}], "properties": ["dealname", "amount"], "limit": 30});
        if let Some(a) = &after {
            body["after"] = a.clone().into();
        }
        let (st, _, v) = send(
            post_json(c, format!("{}/crm/v3/objects/deals/search", f.url()), &body)
                .bearer_auth(tok),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        out.extend(v["results"].as_array().unwrap().iter().cloned());
        after = v["paging"]["next"]["after"].as_str().map(str::to_string);
        if after.is_none() {
            assert_eq!(v["total"].as_u64().unwrap() as usize, out.len());
            return out;
        }
    }
}

#[tokio::test]
async fn hubspot_deals() {
    let f = fake().await;
    let c = Client::new();
    let answer = token_answer(&f, &c, "hubspot", "/oauth/v1/token").await;
    let tok = s(&answer["access_token"]);
    let deals = hubspot_all(&f, &c, &tok, 0).await;
    assert_eq!(deals.len(), 100);
    let exp = f.expected("hubspot");
    assert_eq!(deals.len(), exp.len());
    let modified: Vec<(String, String)> = deals
        .iter()
        .map(|d| (s(&d["properties"]["hs_lastmodifieddate"]), s(&d["id"])))
        .collect();
    assert!(modified.windows(2).all(|w| w[0] < w[1]));
    let won = deals
        .iter()
        .filter(|d| d["properties"]["hs_is_closed_won"] == "true")
        .count();
    assert_eq!(won, exp.iter().filter(|r| r["is_won"] == true).count());
    assert!(deals.iter().any(|d| d["properties"]["amount"].is_null()));
    // Incremental: after a restatement, only the newly closed deals are modified since.
    let last = chrono::DateTime::parse_from_rfc3339(&modified.last().unwrap().0)
        .unwrap()
        .timestamp_millis();
    f.restate();
    let changed = hubspot_all(&f, &c, &tok, last + 1).await;
    assert!(
        !changed.is_empty()
            && changed
                .iter()
                .all(|d| d["properties"]["hs_is_closed"] == "true")
    );
    let (st, _, v) = send(
        post_json(
            &c,
            format!("{}/crm/v3/objects/deals/search", f.url()),
            &json!({"limit": 201}),
        )
        .bearer_auth(&tok),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    let (st, _, v) = send(
        post_json(
            &c,
            format!("{}/crm/v3/objects/deals/search", f.url()),
            &json!({}),
        )
        .bearer_auth("bad"),
    )
    .await;
    assert_eq!(
        (st, v["category"].as_str()),
        (401, Some("EXPIRED_AUTHENTICATION"))
    );
}

#[tokio::test]
async fn salesforce_opportunities() {
    let f = fake().await;
    let c = Client::new();
    let answer = token_answer(&f, &c, "salesforce", "/services/oauth2/token").await;
    assert_eq!(answer["instance_url"], f.url().as_str());
    let tok = s(&answer["access_token"]);
    let soql = "SELECT Id, Amount FROM Opportunity WHERE SystemModstamp >= 2026-03-01T00:00:00Z ORDER BY SystemModstamp, Id";
    let mut url = format!(
        "{}/services/data/v61.0/query?{}",
        f.url(),
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("q", soql)
            .finish()
    );
    let (mut records, mut pages) = (vec![], 0);
    loop {
        let (st, _, v) = send(
            c.get(&url)
                .bearer_auth(&tok)
                .header("Sforce-Query-Options", "batchSize=30"),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        pages += 1;
        records.extend(v["records"].as_array().unwrap().iter().cloned());
        if v["done"] == true {
            assert_eq!(v["totalSize"].as_u64().unwrap() as usize, records.len());
            break;
        }
        url = format!("{}{}", f.url(), s(&v["nextRecordsUrl"]));
    }
    assert_eq!((pages, records.len()), (4, f.expected("salesforce").len()));
    let r = &records[0];
    assert_eq!(r["attributes"]["type"], "Opportunity");
    assert!(s(&r["CreatedDate"]).ends_with(".000+0000") && s(&r["Id"]).starts_with("006"));
    let exp: BTreeMap<String, Value> = f
        .expected("salesforce")
        .into_iter()
        .map(|e| (s(&e["deal_id"]), e))
        .collect();
    for r in &records {
        let e = &exp[&s(&r["Id"])];
        assert_eq!(e["closed_at"].is_null(), r["IsClosed"] == false);
        if r["IsClosed"] == true {
            assert_eq!(
                s(&e["closed_at"]),
                format!("{}T00:00:00Z", s(&r["CloseDate"]))
            );
        }
        assert_eq!(
            cents(e["amount"].as_str().unwrap()),
            (r["Amount"].as_f64().unwrap_or(0.0) * 100.0).round() as i64
        );
    }
    let (st, _, v) = send(c.get(&url).bearer_auth("nope")).await;
    assert_eq!(
        (st, v[0]["errorCode"].as_str()),
        (401, Some("INVALID_SESSION_ID"))
    );
}

#[tokio::test]
async fn gohighlevel_opportunities() {
    let f = fake().await;
    let c = Client::new();
    let answer = token_answer(&f, &c, "gohighlevel", "/oauth/token").await;
    assert_eq!(answer["locationId"], f.account("gohighlevel").as_str());
    let tok = s(&answer["access_token"]);
    let mut url = format!(
        "{}/opportunities/search?location_id={}&limit=25",
        f.url(),
        f.account("gohighlevel")
    );
    let mut opps = vec![];
    loop {
        let (st, _, v) = send(
            c.get(&url)
                .bearer_auth(&tok)
                .header("Version", "2021-07-28"),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        opps.extend(v["opportunities"].as_array().unwrap().iter().cloned());
        match v["meta"]["nextPageUrl"].as_str() {
            Some(next) => url = next.to_string(),
            None => break,
        }
    }
    assert_eq!(opps.len(), f.expected("gohighlevel").len());
    let keys: Vec<(String, String)> = opps
        .iter()
        .map(|o| (s(&o["createdAt"]), s(&o["id"])))
        .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
    assert!(
        opps.iter().any(|o| o["status"] == "abandoned")
            && opps.iter().any(|o| o["status"] == "open")
    );
    let (st, _, v) = send(
        c.get(&url)
            .bearer_auth("nope")
            .header("Version", "2021-07-28"),
    )
    .await;
    assert_eq!((st, v["message"].as_str()), (401, Some("Invalid JWT")));
}

/// Which fault a HubSpot search answer shows.
fn classify(st: u16, h: &HeaderMap, v: &Value, slow: bool) -> &'static str {
    match (st, v) {
        _ if slow => "timeout",
        (429, _) if h.contains_key("retry-after") => "throttle_retry_after",
        (429, _) => "throttle",
        (500 | 503, _) => "server_error",
        (401, _) => "token_expired",
        (200, Value::String(t)) if t.starts_with("<html>") => "malformed",
        (200, Value::String(_)) => "truncated",
        (200, _) => "repeat_page",
        _ => panic!("unexpected answer {st} {v}"),
    }
}

#[tokio::test]
async fn every_fault_kind_is_injected() {
    let stall = Duration::from_millis(300);
    let f = Fake::start(FakeConfig {
        stall,
        ..FakeConfig::default()
    })
    .await;
    let c = Client::new();
    let tok = token(&f, &c, "hubspot", "/oauth/v1/token").await;
    let url = format!("{}/crm/v3/objects/deals/search", f.url());
    // A second page: only continuations of a paging sequence are repeated.
    let body = json!({"limit": 5, "after": "5"});
    let (st, _, clean) = send(post_json(&c, url.clone(), &body).bearer_auth(&tok)).await;
    assert_eq!(st, 200);
    f.set_faults(1.0, 11);
    let mut seen = BTreeMap::<String, usize>::new();
    for _ in 0..80 {
        let t0 = Instant::now();
        let (st, h, v) = send(post_json(&c, url.clone(), &body).bearer_auth(&tok)).await;
        let kind = classify(st, &h, &v, t0.elapsed() >= stall);
        if kind == "repeat_page" {
            assert_eq!(v, clean);
        }
        if kind == "truncated" {
            assert!(
                clean.to_string().starts_with(v.as_str().unwrap())
                    || v.as_str().unwrap().len() < 200
            );
        }
        *seen.entry(kind.into()).or_default() += 1;
    }
    assert_eq!(seen, f.faults());
    assert_eq!(seen.len(), 8, "every kind: {seen:?}");
    assert_eq!(f.request_count(), 82);
    assert!(f.requests().iter().all(|r| r.platform == "hubspot"));
    // The expired token stays expired; a new one works.
    f.set_faults(0.0, 0);
    let (st, _, _) = send(post_json(&c, url.clone(), &body).bearer_auth(&tok)).await;
    assert_eq!(st, 401);
    let tok = token(&f, &c, "hubspot", "/oauth/v1/token").await;
    let (st, _, _) = send(post_json(&c, url.clone(), &body).bearer_auth(&tok)).await;
    assert_eq!(st, 200);
    // Token endpoints get faults too, but never token expiry.
    f.set_faults(1.0, 12);
    let before = f.faults();
    for _ in 0..20 {
        let rb = c
            .post(format!("{}/oauth/v1/token", f.url()))
            .body(token_form(&f, "hubspot"));
        let _ = send(rb).await;
    }
    let after = f.faults();
    assert_eq!(
        after.values().sum::<usize>(),
        before.values().sum::<usize>() + 20
    );
    assert_eq!(after.get("token_expired"), before.get("token_expired"));
}

#[tokio::test]
async fn faults_at_a_rate_and_platform_throttle_shapes() {
    let f = Fake::start(FakeConfig {
        stall: Duration::from_millis(20),
        ..FakeConfig::default()
    })
    .await;
    let c = Client::new();
    let key = s(&f.credentials("stripe")["api_key"]);
    f.set_faults(0.25, 5);
    for _ in 0..200 {
        let _ = send(
            c.get(format!("{}/v1/charges?limit=3", f.url()))
                .bearer_auth(&key),
        )
        .await;
    }
    let n: usize = f.faults().values().sum();
    assert!((30..=70).contains(&n), "{n} faults in 200 requests at 0.25");
    assert!(
        !f.faults().contains_key("token_expired"),
        "Stripe has no OAuth token"
    );
    // Meta's throttle: HTTP 400, code 80004, call_count 100.
    f.set_faults(1.0, 6);
    let tok = s(&f.credentials("meta_ads")["access_token"]);
    let mut found = false;
    for _ in 0..40 {
        let (st, h, v) = send(
            c.get(format!("{}/v21.0/1/insights", f.url()))
                .bearer_auth(&tok),
        )
        .await;
        if st == 400 && v["error"]["code"] == 80004 {
            let usage: Value = serde_json::from_str(h["x-app-usage"].to_str().unwrap()).unwrap();
            assert_eq!(usage["call_count"], 100);
            found = true;
        }
    }
    assert!(found);
    // TikTok's throttle is HTTP 200 with code 40100; Shopify's is THROTTLED.
    let tt = s(&f.credentials("tiktok_ads")["access_token"]);
    let sh = s(&f.credentials("shopify")["access_token"]);
    let (mut tiktok, mut shopify) = (false, false);
    for _ in 0..40 {
        let (st, _, v) = send(
            c.get(format!("{}/open_api/v1.3/report/integrated/get/", f.url()))
                .header("Access-Token", &tt),
        )
        .await;
        tiktok |= st == 200 && v["code"] == 40100;
        let rb = post_json(
            &c,
            format!("{}/admin/api/2025-07/graphql.json", f.url()),
            &json!({}),
        )
        .header("X-Shopify-Access-Token", &sh);
        let (st, _, v) = send(rb).await;
        shopify |= st == 200 && v["errors"][0]["extensions"]["code"] == "THROTTLED";
    }
    assert!(tiktok && shopify);
}

#[tokio::test]
async fn restate_and_advance_change_expected() {
    let f = fake().await;
    let same = fake().await;
    for p in crate::fake::PLATFORMS {
        let e = f.expected(p);
        assert!(!e.is_empty(), "{p}");
        assert_eq!(e, same.expected(p), "{p}: same seed, same data");
        assert!(f.secrets().iter().any(|x| {
            f.credentials(p)
                .as_object()
                .unwrap()
                .values()
                .any(|v| v == x.as_str())
        }));
    }
    let today = f.today();
    let recent = |d: &str| {
        (today - chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap()).num_days() < 10
    };
    let before = f.expected("meta_ads");
    let orders = f.expected("shopify");
    let deals = f.expected("hubspot");
    f.restate();
    let after = f.expected("meta_ads");
    assert_eq!(
        after.len(),
        before.len() - 1,
        "one row at today - 3 disappears"
    );
    let key = |r: &Value| (s(&r["ad_id"]), s(&r["date"]));
    let after_by: BTreeMap<_, _> = after.iter().map(|r| (key(r), r)).collect();
    for b in &before {
        let Some(a) = after_by.get(&key(b)) else {
            assert_eq!(
                b["date"],
                (today - chrono::Duration::days(3)).to_string().as_str()
            );
            continue;
        };
        let d = s(&b["date"]);
        let extra = if recent(&d) { 1.0 } else { 0.0 };
        assert_eq!(
            a["conversions"].as_f64().unwrap(),
            b["conversions"].as_f64().unwrap() + extra
        );
        assert_eq!(
            cents(a["conversion_value"].as_str().unwrap()),
            cents(b["conversion_value"].as_str().unwrap()) + 100 * extra as i64
        );
    }
    let refunded = |o: &[Value]| o.iter().filter(|r| r["status"] == "refunded").count();
    assert!(refunded(&f.expected("shopify")) > refunded(&orders));
    let closed = |d: &[Value]| d.iter().filter(|r| !r["closed_at"].is_null()).count();
    assert!(closed(&f.expected("hubspot")) > closed(&deals));
    f.advance(3);
    assert_eq!(f.today(), today + chrono::Duration::days(3));
    assert_eq!(f.expected("hubspot").len(), deals.len() + 3);
    assert!(f.expected("meta_ads").len() > after.len());
    assert!(f.expected("stripe").len() > same.expected("stripe").len());
}

#[tokio::test]
async fn unknown_paths_are_404_and_logged() {
    let f = fake().await;
    let (st, _, _) = send(Client::new().get(format!("{}/nope?x=1", f.url()))).await;
    assert_eq!(st, 404);
    let log = f.requests();
    assert_eq!(
        (
            log.len(),
            log[0].path.as_str(),
            log[0].query.as_str(),
            log[0].platform.as_str()
        ),
        (1, "/nope", "x=1", "")
    );
}
