"""REFLEXES against SciPy: `gyrus allocate` and SLSQP on the same 100
random problems (concave curves; a third with binding bounds, a third with
a CPA target). Gyrus's objective must be at least SciPy's minus 1e-6
relative on every problem where SciPy's point is feasible, and Gyrus's
points must be feasible. S-shaped curves (not concave, where both are
heuristics) are compared and reported, not asserted."""

from allocation_problems import compare, problems
from conftest import GYRUS


def test_allocation_matches_or_beats_slsqp_on_100_problems(tmp_path):
    rows, _ = compare(GYRUS, problems(100, seed=7), tmp_path / "problems.json")
    assert len(rows) == 100
    for kind in ("budget", "bounds", "target"):
        assert sum(r["kind"] == kind for r in rows) >= 33
    for i, r in enumerate(rows):
        assert r["gyrus_violation"] <= 1e-9, (i, r)
        if r["scipy_feasible"]:
            assert r["gap"] >= -1e-6, (i, r)
    assert sum(r["scipy_feasible"] for r in rows) >= 90


def test_s_shaped_curves_are_solved_feasibly(tmp_path):
    rows, _ = compare(GYRUS, problems(30, seed=11, shapes=(0.5, 3.0)), tmp_path / "s.json")
    for r in rows:
        assert r["gyrus_violation"] <= 1e-9, r
    better = sum(r["gap"] >= -1e-6 for r in rows if r["scipy_feasible"])
    feasible = sum(r["scipy_feasible"] for r in rows)
    print(f"S-shaped: Gyrus at least SciPy's objective on {better} of {feasible}")
    assert better >= 0.8 * feasible


def test_a_saved_plan_over_http_is_the_table_over_flight_sql(flight):
    """The demo trains REFLEXES: a writer's plan is saved, and the rows
    Flight SQL reads are the plan HTTP answered; pacing uses it."""
    import json

    from test_curiosity import fetch
    from test_http_api import request

    auto = fetch(flight, "SELECT entity_id, current_spend, recommended_spend FROM budget_plans WHERE plan_id = 'automatic'")
    assert auto.num_rows > 0, "each training run writes its automatic plan"
    current = sum(float(v) for v in auto.column("current_spend").to_pylist())
    status, _, body = request(flight, "/api/v1/reflexes/budget", flight.keys["acme_writer"], body={
        "total_budget": current * 1.1, "objective": "conversions", "bounds": {"share": 0.4}})
    assert status == 200, body
    plan = json.loads(body)
    assert plan["saved"] is True
    rows = fetch(flight, f"SELECT entity_id, CAST(recommended_spend AS DOUBLE) AS r, expected_recommended "
                         f"FROM budget_plans WHERE plan_id = '{plan['plan_id']}'").to_pylist()
    by_id = {r["entity_id"]: r for r in rows}
    assert len(by_id) == len(plan["entities"])
    for e in plan["entities"]:
        assert abs(by_id[e["entity_id"]]["r"] - e["recommended_spend"]) < 1e-6
        assert abs(by_id[e["entity_id"]]["expected_recommended"] - e["expected_recommended"]) < 1e-9
    assert abs(sum(e["recommended_spend"] for e in plan["entities"]) - current * 1.1) < 1e-6 * current
    status, _, body = request(flight, f"/api/v1/reflexes/pacing?plan_id={plan['plan_id']}", flight.keys["acme_reader"])
    assert status == 200, body
    pacing = json.loads(body)
    assert pacing["plan_id"] == plan["plan_id"]
    assert all(e["status"] in ("on_track", "over", "under", "no_budget") for e in pacing["entities"])
    # A reader may not save; globex has its own (automatic) plan, not acme's.
    status, _, _ = request(flight, "/api/v1/reflexes/budget", flight.keys["acme_reader"], body={
        "total_budget": 10.0, "objective": "conversions", "save": True})
    assert status == 403
    globex = fetch(flight, "SELECT DISTINCT plan_id FROM budget_plans", key="globex_reader").column("plan_id").to_pylist()
    assert plan["plan_id"] not in globex
