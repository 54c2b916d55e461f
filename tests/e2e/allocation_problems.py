"""Random budget-allocation problems, solved by SciPy's SLSQP and by
`gyrus allocate`, for the comparison test (tests/e2e/test_reflexes.py) and
the bench (benches/reflexes.py).

A problem: maximise sum_i f_i(x_i) subject to sum_i x_i <= budget,
lower_i <= x_i <= upper_i and, with an efficiency a, sum_i (a c_i f_i(x_i) - x_i) >= 0
(a CPA target: spend per response at most a). Curves are Hill curves of
steady adstock: f(x) = baseline + beta * h(x / (1 - adstock)),
h(a) = a^s / (a^s + K^s).
"""

import json
import subprocess
import time

import numpy as np
from scipy.optimize import minimize


def response(curve, x):
    a = np.maximum(np.asarray(x, dtype=float), 0.0) / (1.0 - curve["adstock"])
    u = (a / curve["half_saturation"]) ** curve["shape"]
    return curve["baseline"] + curve["beta"] * u / (1.0 + u)


def marginal(curve, x):
    x = np.maximum(np.asarray(x, dtype=float), 1e-12)
    k = curve["half_saturation"] * (1.0 - curve["adstock"])
    u = (x / k) ** curve["shape"]
    return curve["beta"] * curve["shape"] * u / (x * (1.0 + u) ** 2)


def problems(n, seed, shapes=(0.5, 1.0)):
    """n problems: a third with only the budget binding, a third with
    binding bounds (a share of current spend), a third with a CPA target
    below the budget optimum's."""
    rng = np.random.default_rng(seed)
    out = []
    for p in range(n):
        m = int(rng.integers(5, 31))
        current = rng.lognormal(np.log(200.0), 0.8, m)
        entities = []
        for i in range(m):
            curve = {
                "baseline": float(rng.uniform(0.0, 2.0)),
                "beta": float(current[i] / rng.uniform(15.0, 80.0) * rng.uniform(1.5, 4.0)),
                "half_saturation": float(current[i] * rng.uniform(0.5, 3.0)),
                "shape": float(rng.uniform(*shapes)),
                "adstock": float(rng.uniform(0.0, 0.7)),
            }
            entity = {"id": f"e{i}", "curve": curve}
            if p % 3 == 1:
                share = float(rng.uniform(0.1, 0.5))
                entity["lower"] = float(current[i] * (1.0 - share))
                entity["upper"] = float(current[i] * (1.0 + share))
            entities.append(entity)
        budget = float(current.sum() * rng.uniform(0.7, 1.5))
        # Feasible: the lower bounds leave room in the budget.
        budget = max(budget, 1.05 * sum(e.get("lower", 0.0) for e in entities))
        problem = {"budget": budget, "entities": entities, "_current": current.tolist()}
        if p % 3 == 2:
            # A CPA 10% below what spending the whole budget well gives.
            free = solve_scipy({"budget": budget, "entities": entities, "_current": current.tolist()})
            cpa = budget / objective(problem, free["x"])
            problem["efficiency"] = float(cpa * 0.9)
        out.append(problem)
    return out


def objective(problem, x):
    return float(sum(response(e["curve"], xi) for e, xi in zip(problem["entities"], x)))


def violation(problem, x):
    """The largest constraint violation, relative to the budget."""
    budget = problem["budget"]
    worst = max(0.0, sum(x) - budget)
    for e, xi in zip(problem["entities"], x):
        worst = max(worst, e.get("lower", 0.0) - xi, xi - e.get("upper", np.inf))
    a = problem.get("efficiency")
    if a is not None:
        worst = max(worst, sum(x) - a * objective(problem, x))
    return worst / max(budget, 1.0)


def solve_scipy(problem):
    entities = problem["entities"]
    m = len(entities)
    bounds = [(e.get("lower", 0.0), e.get("upper", None)) for e in entities]
    current = np.array(problem["_current"])
    x0 = current * problem["budget"] / current.sum()
    x0 = np.array([min(max(v, lo), hi if hi is not None else np.inf) for v, (lo, hi) in zip(x0, bounds)])
    a = problem.get("efficiency")
    if a is not None:
        x0 = x0 * 0.5

    def f(x):
        return -objective(problem, x)

    def grad(x):
        return -np.array([marginal(e["curve"], xi) for e, xi in zip(entities, x)])

    constraints = [{"type": "ineq", "fun": lambda x: problem["budget"] - x.sum(), "jac": lambda x: -np.ones(m)}]
    if a is not None:
        constraints.append({
            "type": "ineq",
            "fun": lambda x: a * objective(problem, x) - x.sum(),
            "jac": lambda x: a * np.array([marginal(e["curve"], xi) for e, xi in zip(entities, x)]) - 1.0,
        })
    started = time.perf_counter()
    found = minimize(f, x0, jac=grad, bounds=bounds, constraints=constraints, method="SLSQP",
                     options={"maxiter": 1000, "ftol": 1e-12})
    seconds = time.perf_counter() - started
    return {"x": found.x.tolist(), "seconds": seconds, "success": bool(found.success)}


def solve_gyrus(binary, problems_, path):
    """Solves every problem with one `gyrus allocate` run; returns the
    spends, the solve seconds (timed inside Gyrus) and the process's wall time."""
    clean = [{k: v for k, v in p.items() if not k.startswith("_")} for p in problems_]
    path.write_text(json.dumps(clean))
    started = time.perf_counter()
    out = subprocess.run([binary, "allocate", str(path)], capture_output=True, text=True)
    wall = time.perf_counter() - started
    assert out.returncode == 0, out.stderr
    answers = [json.loads(line) for line in out.stdout.splitlines()]
    return answers, wall


def compare(binary, problems_, path):
    """Per problem: Gyrus's and SciPy's objectives (SciPy's only when its
    point is feasible to 1e-6), and the times."""
    answers, wall = solve_gyrus(binary, problems_, path)
    rows = []
    for problem, answer in zip(problems_, answers):
        scipy_found = solve_scipy(problem)
        ours = objective(problem, answer["spend"])
        theirs = objective(problem, scipy_found["x"])
        rows.append({
            "gyrus": ours,
            "gyrus_violation": violation(problem, answer["spend"]),
            "scipy": theirs,
            "scipy_feasible": violation(problem, scipy_found["x"]) <= 1e-6,
            "gap": (ours - theirs) / abs(theirs),
            "gyrus_seconds": answer["seconds"],
            "scipy_seconds": scipy_found["seconds"],
            "kind": ("budget", "bounds", "target")[len(rows) % 3],
        })
    return rows, wall
