"""The HTTP API of a running `gyrus serve` (same process as Flight SQL), over real HTTP."""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import adbc_driver_flightsql.dbapi as flightsql
from openapi_spec_validator import validate

from conftest import create_key


def request(server, path, key=None, body=None, accept="application/json", method=None, content_type=None, headers=None):
    sent = {"Accept": accept, **(headers or {})}
    if key is not None:
        sent["Authorization"] = f"Bearer {key.whole}"
    data = None
    if body is not None:
        if isinstance(body, bytes):
            data = body
        else:
            data = json.dumps(body).encode()
            content_type = content_type or "application/json"
        sent["Content-Type"] = content_type
    req = urllib.request.Request(server.http + path, data=data, headers=sent, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def flight_count(server, key, sql):
    with flightsql.connect(server.uri, db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {key.whole}"}) as conn:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()[0]


def test_health_and_sql_over_http(flight):
    status, _, body = request(flight, "/healthz")
    assert status == 200 and body == b"ok\n"
    status, headers, body = request(flight, "/api/v1/sql", body={"sql": "SELECT 1"})
    assert status == 401 and headers["Content-Type"] == "application/problem+json"
    assert json.loads(body)["request_id"] == headers["x-request-id"]

    key = flight.keys["acme_reader"]
    sql = {"sql": "SELECT platform, sum(spend) AS spend FROM ad_performance WHERE date >= ? GROUP BY 1 ORDER BY 1", "params": ["2025-01-01"]}
    status, _, body = request(flight, "/api/v1/sql", key, sql)
    assert status == 200, body
    rows = json.loads(body)["rows"]
    assert rows and all(isinstance(r["spend"], str) for r in rows)
    status, headers, body = request(flight, "/api/v1/sql", key, sql, accept="text/csv")
    assert status == 200 and body.decode().splitlines()[0] == "platform,spend"


def test_ndjson_ingest_is_seen_over_flight_sql_at_once_and_replays_safely(flight):
    writer, reader = flight.keys["acme_writer"], flight.keys["acme_reader"]
    row = {"platform": "tiktok_ads", "account_id": "e2e-http", "campaign_id": "e2e-http-1", "campaign_name": "HTTP push",
           "channel": "social", "date": "2026-05-01", "impressions": 100, "clicks": 3, "spend": "4.25", "currency": "USD",
           "conversions": 1, "conversion_value": "19.90"}
    body = "\n".join(json.dumps({**row, "date": f"2026-05-{d:02}"}) for d in range(1, 8)).encode()
    push = lambda: request(flight, "/api/v1/tables/ad_performance/rows", writer, body, content_type="application/x-ndjson",
                           headers={"Idempotency-Key": "e2e-http-batch-1"})
    status, _, answer = push()
    assert status == 201, answer
    first = json.loads(answer)
    assert first["rows"] == 7 and first["replayed"] is False
    # The same process serves Flight SQL and shares its table cache: no wait.
    sql = "SELECT count(*) FROM ad_performance WHERE account_id = 'e2e-http'"
    assert flight_count(flight, reader, sql) == 7
    # Answered from the account rollup the write kept, on both surfaces.
    status, _, plan = request(flight, "/api/v1/sql", reader, {"sql": "EXPLAIN " + sql})
    assert status == 200 and "ad_performance_by_account_day" in plan.decode(), plan
    status, _, counted = request(flight, "/api/v1/sql", reader, {"sql": sql.replace("count(*)", "count(*) AS n")})
    assert status == 200 and json.loads(counted)["rows"] == [{"n": 7}], counted
    status, _, answer = push()
    assert status == 200 and json.loads(answer) == {**first, "replayed": True}
    assert flight_count(flight, reader, sql) == 7
    # globex sees none of it.
    assert flight_count(flight, flight.keys["globex_reader"], sql) == 0


def test_a_key_revoked_over_http_stops_working_over_flight_sql_at_once(flight):
    admin = create_key(flight.data, "acme", "admin")
    status, _, body = request(flight, "/api/v1/keys", admin, {"role": "reader"})
    assert status == 201, body
    made = json.loads(body)
    from conftest import Key
    fresh = Key(made["secret"])
    assert flight_count(flight, fresh, "SELECT count(*) FROM ad_performance") > 0
    status, _, body = request(flight, f"/api/v1/keys/{made['id']}", admin, method="DELETE")
    assert status == 200 and json.loads(body)["revoked"] is True
    try:
        flight_count(flight, fresh, "SELECT 1")
        raise AssertionError("a revoked key still works over Flight SQL")
    except flightsql.Error as err:
        assert "UNAUTHENTICATED" in str(err) or "revoked" in str(err), err


def test_connectors_are_added_listed_and_removed_without_their_credentials(flight):
    admin = create_key(flight.data, "connectors", "admin")
    credentials = {"client_id": "cid-e2e", "client_secret": "secret-e2e-3f9a", "refresh_token": "refresh-e2e-77c1",
                   "developer_token": "devtoken-e2e-0b2d"}
    body = {"platform": "google_ads", "account": "1234567890", "credentials": credentials, "schedule_minutes": 0}
    status, _, created = request(flight, "/api/v1/connectors", admin, body)
    assert status == 201, created
    connector = json.loads(created)
    assert connector["platform"] == "google_ads" and connector["table"] == "ad_performance"
    # A base URL of the caller's choosing needs --allow-connector-urls.
    status, _, refused = request(flight, "/api/v1/connectors", admin, {**body, "base_url": "http://169.254.169.254"})
    assert status == 403, refused
    status, _, listed = request(flight, "/api/v1/connectors", admin)
    assert status == 200 and [c["id"] for c in json.loads(listed)] == [connector["id"]]
    status, _, detail = request(flight, f"/api/v1/connectors/{connector['id']}", admin)
    assert status == 200 and json.loads(detail)["last_run"] is None, detail
    for answer in (created, listed, detail):
        assert not any(secret.encode() in answer for secret in credentials.values()), answer
    # Another tenant's admin does not see it; a reader may not manage connectors.
    other = create_key(flight.data, "rivals", "admin")
    status, _, listed = request(flight, "/api/v1/connectors", other)
    assert status == 200 and json.loads(listed) == []
    status, _, _ = request(flight, f"/api/v1/connectors/{connector['id']}", other)
    assert status == 404
    status, _, _ = request(flight, "/api/v1/connectors", flight.keys["acme_reader"])
    assert status == 403
    status, _, _ = request(flight, f"/api/v1/connectors/{connector['id']}", admin, method="DELETE")
    assert status == 200
    status, _, listed = request(flight, "/api/v1/connectors", admin)
    assert status == 200 and json.loads(listed) == []


def test_the_openapi_document_validates_and_the_docs_page_is_offline(flight):
    status, headers, body = request(flight, "/api/v1/openapi.json")
    assert status == 200 and headers["Content-Type"] == "application/json"
    spec = json.loads(body)
    assert spec["openapi"].startswith("3.1")
    validate(spec)  # raises on any violation of the OpenAPI 3.1 schema
    status, headers, page = request(flight, "/docs", accept="text/html")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    html = page.decode()
    for path in spec["paths"]:
        assert f"<code>{path}</code>" in html
    assert "<script" not in html and "https://" not in html


def test_schemathesis_finds_no_server_error_and_no_answer_off_the_document(flight, tmp_path):
    """Property-based requests from the OpenAPI document, many malformed, as an
    admin of a tenant of its own: never a 5xx, every answer as documented, and
    the server keeps serving."""
    admin = create_key(flight.data, "fuzz", "admin")
    st = os.path.join(os.path.dirname(sys.executable), "st")
    out = subprocess.run(
        [st, "run", f"{flight.http}/api/v1/openapi.json",
         "--header", f"Authorization: Bearer {admin.whole}",
         "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
         "--max-examples", "40", "--seed", "7", "--request-timeout", "30", "--no-color",
         # Hypothesis, not the API: header values (Idempotency-Key) must be
         # printable ASCII, so many generated ones are dropped before sending.
         "--suppress-health-check", "filter_too_much"],
        capture_output=True, text=True, timeout=900, env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )
    assert out.returncode == 0, out.stdout[-8000:] + out.stderr[-2000:]
    status, _, body = request(flight, "/healthz")
    assert status == 200 and body == b"ok\n"
