"""The HTTP API of a running `gyrus serve` (same process as Flight SQL), over real HTTP."""

import json
import urllib.error
import urllib.request


def request(server, path, key=None, body=None, accept="application/json"):
    headers = {"Accept": accept}
    if key is not None:
        headers["Authorization"] = f"Bearer {key.whole}"
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    req = urllib.request.Request(server.http + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


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
