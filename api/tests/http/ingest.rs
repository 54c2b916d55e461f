//! `POST /api/v1/tables/{table}/rows`: four formats, idempotent replay,
//! refused rows named, slice replacement, and every malformed body.

use axum::http::StatusCode;
use datafusion::arrow::array::RecordBatch;
use serde_json::{Value, json};

use crate::common::{batch, day, rows};
use crate::support::*;

const ROWS: &str = "/api/v1/tables/ad_performance/rows";

fn ndjson(batch: &RecordBatch) -> Vec<u8> {
    let mut writer = datafusion::arrow::json::LineDelimitedWriter::new(Vec::new());
    writer.write(batch).unwrap();
    writer.finish().unwrap();
    writer.into_inner()
}

fn csv(batch: &RecordBatch) -> Vec<u8> {
    let mut out = Vec::new();
    datafusion::arrow::csv::Writer::new(&mut out)
        .write(batch)
        .unwrap();
    out
}

fn arrow_stream(batch: &RecordBatch) -> Vec<u8> {
    let mut writer =
        datafusion::arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema()).unwrap();
    writer.write(batch).unwrap();
    writer.finish().unwrap();
    writer.into_inner().unwrap()
}

fn parquet(batch: &RecordBatch) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer =
        datafusion::parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
    out
}

/// Posts `body` as the writer.
async fn push(
    api: &Api,
    path: &str,
    content_type: &str,
    body: impl Into<axum::body::Body>,
) -> Answer {
    let request = request("POST", path, Some(&api.writer), Some(content_type), body);
    call(&api.app, request).await
}

async fn count(api: &Api, key: &str, filter: &str) -> i64 {
    let answer = call(
        &api.app,
        sql(
            key,
            "application/json",
            json!({"sql": format!("SELECT count(*) AS n FROM ad_performance WHERE {filter}")}),
        ),
    )
    .await;
    answer.json()["rows"][0]["n"].as_i64().unwrap()
}

#[tokio::test]
async fn every_format_lands_in_one_commit_and_is_queryable() {
    let api = api(|_| {}).await;
    type Encode = fn(&RecordBatch) -> Vec<u8>;
    let formats: [(&str, Encode); 4] = [
        ("application/x-ndjson", ndjson),
        ("text/csv; charset=utf-8", csv),
        ("application/vnd.apache.arrow.stream", arrow_stream),
        ("application/vnd.apache.parquet", parquet),
    ];
    let mut last_version = 0;
    for (i, (content_type, encode)) in formats.into_iter().enumerate() {
        let campaign = format!("pushed-{i}");
        let body = encode(&batch(&rows("acct-9", &campaign, day(2026, 4, 1), 5, 2, 3)));
        let answer = push(&api, ROWS, content_type, body).await;
        assert_eq!(
            answer.status,
            StatusCode::CREATED,
            "{content_type}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        let outcome = answer.json();
        assert_eq!(outcome["rows"], 10, "{content_type}");
        assert_eq!(outcome["replayed"], false);
        let version = outcome["version"].as_u64().unwrap();
        assert!(version > last_version, "one commit per ingest");
        last_version = version;
        // Visible at once to queries on this server.
        assert_eq!(
            count(&api, &api.reader, &format!("campaign_id = '{campaign}'")).await,
            10
        );
    }
    // The other tenant saw none of it.
    assert_eq!(count(&api, &api.globex, "account_id = 'acct-9'").await, 0);
}

#[tokio::test]
async fn a_replayed_idempotency_key_answers_the_first_outcome_and_writes_nothing() {
    let api = api(|_| {}).await;
    let body = ndjson(&batch(&rows("acct-9", "once", day(2026, 4, 1), 3, 1, 3)));
    let send = |body: Vec<u8>, key: &str| {
        let mut r = request(
            "POST",
            ROWS,
            Some(&api.writer),
            Some("application/x-ndjson"),
            body,
        );
        r.headers_mut()
            .insert("idempotency-key", key.parse().unwrap());
        r
    };
    let first = call(&api.app, send(body.clone(), "batch-7")).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let first = first.json();
    // Another write in between moves the table on.
    let other = ndjson(&batch(&rows("acct-9", "other", day(2026, 4, 1), 1, 1, 3)));
    assert_eq!(
        call(&api.app, send(other, "batch-8")).await.status,
        StatusCode::CREATED
    );
    let replay = call(&api.app, send(body.clone(), "batch-7")).await;
    assert_eq!(replay.status, StatusCode::OK);
    let replay = replay.json();
    assert_eq!(replay["replayed"], true);
    assert_eq!(replay["rows"], first["rows"]);
    assert_eq!(replay["version"], first["version"]);
    assert_eq!(count(&api, &api.reader, "campaign_id = 'once'").await, 3);
    // The same key with other data is a client bug: refused, not ignored.
    let changed = ndjson(&batch(&rows("acct-9", "once", day(2026, 5, 1), 3, 1, 3)));
    call(&api.app, send(changed, "batch-7"))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused");
    assert_eq!(count(&api, &api.reader, "campaign_id = 'once'").await, 3);
}

#[tokio::test]
async fn refused_rows_are_named_by_row_and_column_and_nothing_lands() {
    let api = api(|_| {}).await;
    let good = r#"{"platform":"google_ads","account_id":"a","campaign_id":"bad-1","campaign_name":"n","channel":"search","date":"2026-04-01","impressions":10,"clicks":1,"spend":"1.50","currency":"USD","conversions":0,"conversion_value":0}"#;
    let negative = good
        .replace("\"spend\":\"1.50\"", "\"spend\":\"-4.00\"")
        .replace("04-01", "04-02");
    let body = format!("{good}\n{negative}\n");
    let answer = push(&api, ROWS, "application/x-ndjson", body).await;
    let problem = answer.problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-rows");
    let error = &problem["errors"][0];
    assert_eq!(error["column"], "spend", "{problem}");
    assert_eq!(error["count"], 1);
    assert_eq!(error["rows"][0]["row"], 2, "{problem}");

    // A value the parser cannot read: the record is named.
    let mistyped = good.replace("\"clicks\":1", "\"clicks\":\"many\"");
    let body = format!("{good}\n{good}\n{mistyped}\n");
    let answer = push(&api, ROWS, "application/x-ndjson", body).await;
    let problem = answer.problem(StatusCode::UNPROCESSABLE_ENTITY, "unreadable-rows");
    assert_eq!(problem["errors"][0]["rows"][0]["row"], 3, "{problem}");

    // An unknown column is named too.
    let answer = call(
        &api.app,
        request(
            "POST",
            ROWS,
            Some(&api.writer),
            Some("text/csv"),
            "platform,clickz\ngoogle_ads,1\n",
        ),
    )
    .await;
    let problem = answer.problem(StatusCode::UNPROCESSABLE_ENTITY, "unreadable-rows");
    assert_eq!(problem["errors"][0]["column"], "clickz");
    assert_eq!(count(&api, &api.reader, "campaign_id = 'bad-1'").await, 0);
}

#[tokio::test]
async fn query_parameters_replace_a_slice_atomically() {
    let api = api(|_| {}).await;
    // acct-1 has 30 rows from 2026-03-01 (10 days x 3 ads); restate 03-03..03-05.
    let restated = ndjson(&batch(&rows("acct-1", "camp-1", day(2026, 3, 3), 3, 1, 99)));
    let path = format!(
        "{ROWS}?replace_from=2026-03-03&replace_to=2026-03-05&match=account_id=acct-1&match=platform=google_ads"
    );
    let answer = push(&api, &path, "application/x-ndjson", restated).await;
    assert_eq!(
        answer.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(
        answer.json()["replaced"]
            .as_str()
            .unwrap()
            .contains("2026-03-03")
    );
    assert_eq!(
        count(&api, &api.reader, "account_id = 'acct-1'").await,
        30 - 9 + 3
    );
    assert_eq!(count(&api, &api.reader, "clicks = 99").await, 3);

    // Rows outside the slice refuse the whole write.
    let outside = ndjson(&batch(&rows("acct-1", "camp-1", day(2026, 3, 9), 1, 1, 5)));
    push(&api, &path, "application/x-ndjson", outside)
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-rows");
}

#[tokio::test]
async fn malformed_bodies_get_4xx_problems_and_the_server_keeps_serving() {
    let api = api(|c| c.max_body_bytes = 1 << 20).await;
    let key = Some(api.writer.as_str());
    let huge_line = format!("{{\"platform\":\"{}\"}}\n", "x".repeat(2 << 20));
    let latin1: &'static [u8] = b"platform,campaign_name\ngoogle_ads,Caf\xe9\n";
    // (what, content type, body, status, problem kind)
    type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (
            "empty body",
            Some("application/x-ndjson"),
            vec![],
            StatusCode::BAD_REQUEST,
            "bad-request",
        ),
        (
            "no content type",
            None,
            b"{}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        (
            "JSON, not NDJSON's type",
            Some("application/xml"),
            b"<a/>".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        (
            "broken JSON",
            Some("application/x-ndjson"),
            b"{\"platform\": \"google_ads\"\n".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unreadable-rows",
        ),
        (
            "NDJSON nested 100k arrays deep",
            Some("application/x-ndjson"),
            "[".repeat(100_000).into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unreadable-rows",
        ),
        (
            "NDJSON nested 50k objects deep",
            Some("application/x-ndjson"),
            "{\"a\":".repeat(50_000).into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unreadable-rows",
        ),
        (
            "a CSV header of 100k columns",
            Some("text/csv"),
            format!("{}\n", vec!["clicks"; 100_000].join(",")).into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unreadable-rows",
        ),
        (
            "a JSON array",
            Some("application/x-ndjson"),
            b"[1, 2, 3]\n".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unreadable-rows",
        ),
        (
            "wrong types",
            Some("application/x-ndjson"),
            b"{\"impressions\": true}\n".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unreadable-rows",
        ),
        (
            "missing columns",
            Some("application/x-ndjson"),
            b"{\"platform\": \"google_ads\"}\n".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-rows",
        ),
        (
            "Latin-1 CSV",
            Some("text/csv"),
            latin1.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unreadable-rows",
        ),
        (
            "CSV without a header",
            Some("text/csv"),
            b"google_ads,1,2\n".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unreadable-rows",
        ),
        (
            "not Parquet",
            Some("application/vnd.apache.parquet"),
            b"PAR1 nope".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unreadable-rows",
        ),
        (
            "not Arrow",
            Some("application/vnd.apache.arrow.stream"),
            b"\xff\xff\xff\xff garbage".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unreadable-rows",
        ),
        (
            "a line past the body limit",
            Some("application/x-ndjson"),
            huge_line.into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
        ),
    ];
    for (what, content_type, body, status, kind) in cases {
        let answer = call(&api.app, request("POST", ROWS, key, content_type, body)).await;
        eprintln!("case: {what}");
        answer.problem(status, kind);
    }
    // Past the limit on ingests in progress: 503 before the body is read.
    let acme = gyrus_engine::TenantId::new("acme").unwrap();
    let held: Vec<_> = (0..2)
        .map(|_| api.state.admission.admit_ingest(&acme).unwrap())
        .collect();
    let busy = call(
        &api.app,
        request("POST", ROWS, key, Some("application/x-ndjson"), "{}"),
    )
    .await;
    busy.problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(busy.retry_after, Some(1));
    drop(held);
    let ndjson_type = Some("application/x-ndjson");
    let body = || ndjson(&batch(&rows("acct-9", "c", day(2026, 4, 1), 1, 1, 1)));
    for (what, path, status, kind) in [
        (
            "unknown table",
            "/api/v1/tables/nope/rows",
            StatusCode::NOT_FOUND,
            "unknown-table",
        ),
        (
            "half a slice",
            "/api/v1/tables/ad_performance/rows?replace_from=2026-04-01",
            StatusCode::BAD_REQUEST,
            "bad-request",
        ),
        (
            "a bad day",
            "/api/v1/tables/ad_performance/rows?replace_from=April&replace_to=2026-04-02",
            StatusCode::BAD_REQUEST,
            "bad-request",
        ),
        (
            "an unknown parameter",
            "/api/v1/tables/ad_performance/rows?mode=upsert",
            StatusCode::BAD_REQUEST,
            "bad-request",
        ),
        (
            "a slice column that is not one",
            "/api/v1/tables/ad_performance/rows?replace_from=2026-04-01&replace_to=2026-04-01&match=clicks=1",
            StatusCode::BAD_REQUEST,
            "invalid-slice",
        ),
    ] {
        let answer = call(&api.app, request("POST", path, key, ndjson_type, body())).await;
        eprintln!("case: {what}");
        answer.problem(status, kind);
    }
    let mut long_key = request("POST", ROWS, key, ndjson_type, body());
    long_key
        .headers_mut()
        .insert("idempotency-key", "k".repeat(300).parse().unwrap());
    call(&api.app, long_key)
        .await
        .problem(StatusCode::BAD_REQUEST, "bad-request");
    // Still serving, and nothing landed.
    let ok = call(&api.app, request("POST", ROWS, key, ndjson_type, body())).await;
    assert_eq!(ok.status, StatusCode::CREATED);
    assert_eq!(count(&api, &api.reader, "account_id = 'acct-9'").await, 1);
    let _: Value = ok.json();
}
