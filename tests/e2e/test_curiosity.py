"""CURIOSITY end to end: `gyrus train --family curiosity`, the `insights`
table over Flight SQL (ADBC), the HTTP endpoints, and drivers checked
against DuckDB's own sums over the same rows.
"""

import json
import subprocess

import adbc_driver_flightsql.dbapi as flightsql
import duckdb
import pytest

from conftest import run_gyrus, GYRUS
from test_http_api import request


def fetch(flight, sql, key="acme_reader"):
    whole = flight.keys[key].whole
    with flightsql.connect(flight.uri, db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {whole}"}) as conn:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetch_arrow_table()


def get(flight, path, key="acme_reader"):
    status, _, body = request(flight, path, flight.keys[key])
    return status, json.loads(body)


def test_insights_over_http_are_the_table_over_flight_sql(flight):
    table = fetch(flight, "SELECT insight_id, kind, severity, explanation FROM insights")
    assert table.num_rows > 0, "the demo trains CURIOSITY"
    ids, cursor = [], None
    while True:
        path = "/api/v1/curiosity/insights?limit=50" + (f"&cursor={cursor}" if cursor else "")
        status, page = get(flight, path)
        assert status == 200, page
        ids += [i["insight_id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(ids) == sorted(table.column("insight_id").to_pylist())
    for explanation in table.column("explanation").to_pylist():
        assert any(c.isdigit() for c in explanation), explanation
    status, high = get(flight, "/api/v1/curiosity/insights?severity=high&limit=1000")
    assert status == 200
    assert all(i["severity"] >= 2 / 3 for i in high["items"])
    # globex's key sees globex's insights: its own table, not acme's.
    globex_table = fetch(flight, "SELECT insight_id, explanation FROM insights", key="globex_reader")
    status, globex = get(flight, "/api/v1/curiosity/insights?limit=1000", key="globex_reader")
    assert status == 200
    assert sorted(i["insight_id"] for i in globex["items"]) == sorted(globex_table.column("insight_id").to_pylist())
    assert set(globex_table.column("explanation").to_pylist()) != set(table.column("explanation").to_pylist())


def test_drivers_agree_with_duckdb_on_the_same_rows(flight):
    rows = fetch(flight, "SELECT campaign_id, date, CAST(spend AS DOUBLE) AS spend, conversions FROM ad_performance")
    last = max(rows.column("date").to_pylist())
    con = duckdb.connect()
    con.register("ads", rows)
    end_b = str(last)
    start_b, end_a, start_a = con.execute(
        "SELECT (?::DATE - 6)::VARCHAR, (?::DATE - 7)::VARCHAR, (?::DATE - 13)::VARCHAR", [end_b, end_b, end_b]).fetchone()
    peer = con.execute(
        """SELECT campaign_id,
                  SUM(spend) FILTER (WHERE date BETWEEN ?::DATE AND ?::DATE) AS sa,
                  SUM(conversions) FILTER (WHERE date BETWEEN ?::DATE AND ?::DATE) AS ca,
                  SUM(spend) FILTER (WHERE date BETWEEN ?::DATE AND ?::DATE) AS sb,
                  SUM(conversions) FILTER (WHERE date BETWEEN ?::DATE AND ?::DATE) AS cb
           FROM ads GROUP BY campaign_id""",
        [start_a, end_a, start_a, end_a, start_b, end_b, start_b, end_b]).df().fillna(0.0)
    cpa_a = peer["sa"].sum() / peer["ca"].sum()
    cpa_b = peer["sb"].sum() / peer["cb"].sum()

    status, _, body = request(flight, "/api/v1/curiosity/drivers", flight.keys["acme_reader"], body={
        "metric": "cpa", "period_a": {"start": start_a, "end": end_a},
        "period_b": {"start": start_b, "end": end_b}, "dimensions": ["campaign"], "limit": 1000})
    assert status == 200, body
    split = json.loads(body)["dimensions"][0]
    assert split["total_a"] == pytest.approx(cpa_a, rel=1e-9)
    assert split["total_b"] == pytest.approx(cpa_b, rel=1e-9)
    assert sum(c["contribution"] for c in split["contributions"]) == pytest.approx(cpa_b - cpa_a, rel=1e-9, abs=1e-9)
    by_campaign = peer.set_index("campaign_id")
    for c in split["contributions"]:
        p = by_campaign.loc[c["value"]]
        if p["ca"] > 0:
            assert c["a"] == pytest.approx(p["sa"] / p["ca"], rel=1e-9)
        # The value's contribution, from DuckDB's sums: (ΔN − CPA_a ΔD) / D_b.
        expected = ((p["sb"] - p["sa"]) - cpa_a * (p["cb"] - p["ca"])) / peer["cb"].sum()
        assert c["contribution"] == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_train_curiosity_from_the_cli_and_its_errors(tmp_path):
    run_gyrus(tmp_path, "demo", "--no-serve", "--no-train", "--scale", "medium", "--tenants", "initech")
    report = run_gyrus(tmp_path, "train", "--tenant", "initech", "--family", "curiosity", "--json")
    runs = [json.loads(line) for line in report.splitlines() if line.startswith("{")]
    assert [r["family"] for r in runs] == ["curiosity"]
    assert runs[0]["status"] == "good", runs[0]
    assert runs[0]["metrics"]["series_scanned"] > 500
    assert runs[0]["metrics"]["insights"]["segment"] > 0
    out = subprocess.run([GYRUS, "--data", str(tmp_path), "train", "--family", "curiosity", "--anomaly-alpha", "0.7"],
                         capture_output=True, text=True)
    assert out.returncode != 0
    assert "--anomaly-alpha" in out.stderr
