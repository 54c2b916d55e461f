"""ORACLE through a running server: the demo trained it, so the `forecasts`
table answers over Flight SQL (ADBC) and the forecast endpoint over HTTP."""

import json

import adbc_driver_flightsql.dbapi as flightsql

from test_http_api import request


def test_the_demo_trained_oracle_and_forecasts_answer_over_flight_sql(flight):
    key = flight.keys["acme_reader"]
    with flightsql.connect(flight.uri, db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {key.whole}"}) as conn:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT entity_type, metric, COUNT(*) AS n, MIN(date) AS first, "
                "COUNT(DISTINCT interval_level) AS levels FROM forecasts GROUP BY 1, 2"
            )
            rows = cur.fetch_arrow_table().to_pylist()
    by = {(r["entity_type"], r["metric"]): r for r in rows}
    assert ("campaign", "spend") in by and ("business", "revenue") in by
    assert ("campaign", "cpa") in by, "ratios are derived from their parts"
    assert all(r["levels"] == 2 for r in rows)
    assert str(by[("campaign", "spend")]["first"]) == "2026-11-01"


def test_forecast_endpoint_serves_the_trained_model_and_series_sent_in(flight):
    key = flight.keys["acme_reader"]
    status, _, body = request(flight, "/api/v1/oracle/forecast", key,
                              {"metric": "roas", "entity_type": "platform", "horizon": 14, "levels": [0.8]})
    assert status == 200, body
    answer = json.loads(body)
    assert answer["model_version"].startswith("oracle-v")
    assert answer["forecasts"] and all(len(f["points"]) == 14 for f in answer["forecasts"])

    series = [{"date": f"2026-01-{d:02d}", "value": 10 + d} for d in range(1, 29)]
    status, _, body = request(flight, "/api/v1/oracle/forecast", key, {"series": series, "horizon": 3})
    assert status == 200, body
    points = json.loads(body)["forecasts"][0]["points"]
    assert [p["date"] for p in points] == ["2026-01-29", "2026-01-30", "2026-01-31"]
    assert 35 < points[0]["yhat"] < 42

    status, headers, body = request(flight, "/api/v1/oracle/forecast", key, {"metric": "spend", "horizon": 3})
    assert status == 422 and headers["Content-Type"] == "application/problem+json"
