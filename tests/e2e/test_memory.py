"""MEMORY against the PyPI package lifetimes, and its endpoints over HTTP.

lifetimes, given a tenant's paid orders read back from Gyrus, builds the
same BTYD summaries, fits BG/NBD itself, and predicts each customer's
P(alive) and 90-day purchases: Gyrus's `customer_scores` must agree. The
medium demo scale is used for that (5,000 customers over a year): on the
small one (500 customers, 120 days) the dropout is not identified and
lifetimes' optimiser stops with a ConvergenceError.
"""

import io
import json

import adbc_driver_flightsql.dbapi as flightsql
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.utils import summary_data_from_transaction_data

from conftest import run_gyrus
from test_http_api import request


def query(flight, sql):
    key = flight.keys["acme_reader"]
    with flightsql.connect(flight.uri, db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {key.whole}"}) as conn:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetch_arrow_table().to_pandas()


@pytest.fixture(scope="module")
def medium(tmp_path_factory):
    """A medium demo tenant with MEMORY trained (ORACLE is not needed here)."""
    data = tmp_path_factory.mktemp("memory")
    run_gyrus(data, "demo", "--no-serve", "--no-train", "--scale", "medium", "--tenants", "initech")
    run_gyrus(data, "train", "--tenant", "initech", "--family", "memory")
    return lambda sql: pd.read_csv(io.StringIO(run_gyrus(data, "sql", "--tenant", "initech", "--format", "csv", sql)))


def test_customer_scores_agree_with_lifetimes_on_the_same_orders(medium):
    orders = medium("SELECT customer_id, CAST(created_at AS DATE) AS day, CAST(amount AS DOUBLE) AS amount "
                    "FROM orders WHERE status = 'paid'")
    orders["day"] = pd.to_datetime(orders["day"])
    summary = summary_data_from_transaction_data(orders, "customer_id", "day", monetary_value_col="amount",
                                                 observation_period_end=orders["day"].max(), freq="D")
    scores = medium("SELECT customer_id, frequency, recency_days, tenure_days, p_alive, "
                    "expected_purchases_90d, CAST(monetary AS DOUBLE) AS monetary FROM customer_scores")
    scores = scores.set_index("customer_id").sort_index()
    summary = summary.sort_index()
    assert list(scores.index) == list(summary.index), "every paying customer is scored once"
    # The same summaries: repeat purchase days, recency and tenure in days, mean repeat value.
    assert (scores["frequency"] == summary["frequency"]).all()
    assert (scores["recency_days"] == summary["recency"]).all()
    assert (scores["tenure_days"] == summary["T"]).all()
    assert ((scores["monetary"] - summary["monetary_value"]).abs() < 1e-5).all()

    weeks = summary.assign(recency=summary["recency"] / 7, T=summary["T"] / 7)
    bgf = BetaGeoFitter().fit(weeks["frequency"], weeks["recency"], weeks["T"])
    p_alive = bgf.conditional_probability_alive(weeks["frequency"], weeks["recency"], weeks["T"])
    expected = bgf.conditional_expected_number_of_purchases_up_to_time(
        90 / 7, weeks["frequency"], weeks["recency"], weeks["T"])
    assert (abs(scores["p_alive"] - p_alive) < 0.01).all(), (scores["p_alive"] - p_alive).abs().max()
    assert (abs(scores["expected_purchases_90d"] - expected) < 0.01 + 0.01 * expected).all(), \
        (scores["expected_purchases_90d"] - expected).abs().max()
    repeaters = weeks[weeks["frequency"] > 0]
    GammaGammaFitter().fit(repeaters["frequency"], repeaters["monetary_value"])


def test_memory_endpoints_over_http(flight):
    key = flight.keys["acme_reader"]
    status, _, body = request(flight, "/api/v1/memory/segments", key)
    assert status == 200, body
    segments = json.loads(body)
    assert segments["model_version"].startswith("memory-v") and segments["segments"]
    customer = query(flight, "SELECT customer_id FROM customer_scores ORDER BY clv_365d DESC LIMIT 1")["customer_id"][0]
    status, _, body = request(flight, f"/api/v1/memory/customers/{customer}", key)
    assert status == 200, body
    assert json.loads(body)["customer_id"] == customer
    status, _, body = request(flight, "/api/v1/memory/score", key,
                              {"purchases": [{"date": "2026-09-01", "amount": 40}, {"date": "2026-10-01", "amount": 60}],
                               "as_of": "2026-10-31"})
    assert status == 200, body
    scored = json.loads(body)
    assert scored["frequency"] == 1 and 0 <= scored["p_alive"] <= 1
    status, _, body = request(flight, "/api/v1/memory/leads?limit=3", key)
    assert status == 200, body
    leads = json.loads(body)["items"]
    assert len(leads) == 3 and leads[0]["p_win"] >= leads[2]["p_win"]
    status, headers, _ = request(flight, "/api/v1/memory/score", key, {"summary": {"frequency": 1}})
    assert status == 422 and headers["Content-Type"] == "application/problem+json"
