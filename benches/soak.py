#!/usr/bin/env python3
"""Soak (issue 18): a mixed load from three tenants on one `gyrus serve` for
--minutes (30 by default): Flight SQL queries (ADBC), HTTP SQL, idempotent
NDJSON ingest over HTTP (a tenth of them replayed), DoPut ingest over Flight,
connector syncs from a Stripe fake, and `gyrus train` beside it every two
minutes. Prints requests per route, 5xx (and Flight INTERNAL/UNKNOWN/
UNAVAILABLE) count, 429/RESOURCE_EXHAUSTED count, p50/p99 per route, RSS
samples (start after warm-up, end, max, slope over the second half), the
server's thread count (--optimize-minutes N also compacts and vacuums every
tenant every N minutes), then --idle-minutes (2) of the idle server's RSS and
threads, and checks afterwards that every acknowledged batch is there exactly
once. --rss-trace writes every five-second sample to a CSV.

    GYRUS_BIN=target/release/gyrus .venv/bin/python benches/soak.py --minutes 30
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "e2e"))
from chaos import (StripeFake, Ledger, count_rows, flight_schema, push_flight, push_http,  # noqa: E402
                   request, start)
from conftest import GYRUS, create_key, run_gyrus  # noqa: E402

TENANTS = ["acme", "globex", "initech"]
QUERIES = [
    "SELECT 1",
    "SELECT platform, sum(spend) AS spend, sum(clicks) AS clicks FROM ad_performance GROUP BY 1 ORDER BY 1",
    "SELECT date_trunc('week', date) AS week, sum(conversions) AS c FROM ad_performance "
    "WHERE date >= DATE '2025-06-01' GROUP BY 1 ORDER BY 1",
    "SELECT campaign_id, sum(spend) / NULLIF(sum(conversions), 0) AS cpa FROM ad_performance GROUP BY 1 ORDER BY 2 DESC LIMIT 10",
    "SELECT count(*) AS n, sum(amount) AS revenue FROM orders",
]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency = {}
        self.outcomes = {}

    def record(self, route, seconds, outcome):
        with self.lock:
            self.latency.setdefault(route, []).append(seconds)
            key = (route, outcome)
            self.outcomes[key] = self.outcomes.get(key, 0) + 1


def classify_flight(err):
    text = str(err)
    if "RESOURCE_EXHAUSTED" in text or "resource exhausted" in text.lower():
        return "429"
    for grave in ("INTERNAL", "UNKNOWN", "UNAVAILABLE", "Internal", "Unknown", "Unavailable"):
        if grave in text:
            return "5xx"
    return "4xx"


def rss_and_threads(pid):
    """The process's resident set in MB and its thread count, from one read
    of /proc/<pid>/status."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "Threads"):
                fields[name] = int(rest.split()[0])
    return fields.get("VmRSS", float("nan")) / 1024, fields.get("Threads", -1)


def slope_mb_per_min(samples):
    if len(samples) < 3:
        return float("nan")
    xs = [t / 60 for t, _ in samples]
    ys = [m for _, m in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else float("nan")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--optimize-minutes", type=float, default=0,
                        help="run `gyrus optimize` and `gyrus vacuum` on every tenant this often (0: never)")
    parser.add_argument("--idle-minutes", type=float, default=2,
                        help="after the load, sample the idle server this long (RSS should fall back)")
    parser.add_argument("--rss-trace",
                        help="write every five-second sample (seconds, rss_mb, threads, phase) to this file as CSV")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    data = tempfile.mkdtemp(prefix="gyrus-soak-")
    run_gyrus(data, "demo", "--no-serve", "--tenants", ",".join(TENANTS))
    keys = {t: {r: create_key(data, t, r) for r in ("reader", "writer", "admin")} for t in TENANTS}
    fake = StripeFake()
    server = start(data)
    schema = flight_schema(server, keys["acme"]["reader"])
    connectors = {}
    for t in TENANTS:
        status, body = request(server.http, "/api/v1/connectors", keys[t]["admin"],
                               {"platform": "stripe", "account": f"acct_{t}", "credentials": {"api_key": "sk_test_soak"},
                                "base_url": fake.url, "schedule_minutes": 0, "lookback_days": 3,
                                "settings": {"window_days": "30", "requests_per_second": "1000"}})
        assert status == 201, body
        connectors[t] = json.loads(body)["id"]

    stats = Stats()
    ledger = Ledger()
    end = time.monotonic() + args.minutes * 60
    began = time.monotonic()
    rss = []

    def timed(route, call):
        t0 = time.perf_counter()
        try:
            outcome = call()
        except Exception as err:  # Flight errors, connection errors
            outcome = classify_flight(err)
        stats.record(route, time.perf_counter() - t0, outcome)
        return outcome

    def http_sql():
        while time.monotonic() < end:
            t = rng.choice(TENANTS)
            sql = rng.choice(QUERIES)
            timed("POST /api/v1/sql", lambda: str(request(server.http, "/api/v1/sql", keys[t]["reader"], {"sql": sql})[0]))

    def flight_sql():
        import adbc_driver_flightsql.dbapi as flightsql
        conns = {t: flightsql.connect(server.uri, db_kwargs={
            "adbc.flight.sql.authorization_header": f"Bearer {keys[t]['reader'].whole}"}) for t in TENANTS}
        try:
            while time.monotonic() < end:
                t = rng.choice(TENANTS)
                sql = rng.choice(QUERIES)

                def go():
                    with conns[t].cursor() as cur:
                        cur.execute(sql)
                        cur.fetch_arrow_table()
                    return "200"
                timed("Flight SQL query", go)
        finally:
            for c in conns.values():
                c.close()

    def http_ingest():
        while time.monotonic() < end:
            t = rng.choice(TENANTS)
            n = rng.randint(1, 200)
            batch = ledger.next(f"http:{t}", n)

            def go():
                answer = push_http(server, keys[t]["writer"], batch, n)
                ledger.ack(batch)
                if rng.random() < 0.1:  # a client that retries anyway
                    again = push_http(server, keys[t]["writer"], batch, n)
                    assert again["replayed"] is True, again
                return "201" if not answer["replayed"] else "200"
            outcome = timed("POST /api/v1/tables/{table}/rows", go)
            if outcome == "5xx":
                time.sleep(0.5)

    def flight_ingest():
        while time.monotonic() < end:
            t = rng.choice(TENANTS)
            n = rng.randint(1, 200)
            batch = ledger.next(f"flight:{t}", n)

            def go():
                push_flight(server, keys[t]["writer"], batch, n, schema)
                ledger.ack(batch)
                return "200"
            timed("Flight DoPut", go)

    def syncs():
        while time.monotonic() < end:
            t = rng.choice(TENANTS)
            timed("POST /api/v1/connectors/{id}/sync",
                  lambda: str(request(server.http, f"/api/v1/connectors/{connectors[t]}/sync", keys[t]["admin"],
                                      method="POST", body=b"")[0]))
            time.sleep(20)

    def training():
        i = 0
        while time.monotonic() < end:
            t = TENANTS[i % len(TENANTS)]
            i += 1
            t0 = time.perf_counter()
            out = subprocess.run([GYRUS, "--data", data, "train", "--tenant", t], capture_output=True, text=True)
            stats.record("gyrus train (CLI)", time.perf_counter() - t0, "ok" if out.returncode == 0 else "failed")
            time.sleep(max(0, min(120 - (time.perf_counter() - t0), end - time.monotonic())))

    def compaction():
        # What an operator runs on a schedule: compaction, then vacuum, of
        # every tenant, as other processes on the same data.
        while args.optimize_minutes > 0 and time.monotonic() < end:
            time.sleep(max(0, min(args.optimize_minutes * 60, end - time.monotonic())))
            for t in TENANTS:
                for command in ("optimize", "vacuum"):
                    if time.monotonic() >= end:
                        return
                    t0 = time.perf_counter()
                    out = subprocess.run([GYRUS, "--data", data, command, "--tenant", t],
                                         capture_output=True, text=True)
                    stats.record(f"gyrus {command} (CLI)", time.perf_counter() - t0,
                                 "ok" if out.returncode == 0 else "failed")

    def sample(into, until):
        """Every five seconds until `until`: (seconds since start, RSS MB, threads)."""
        while time.monotonic() < until:
            into.append((time.monotonic() - began, *rss_and_threads(server.proc.pid)))
            time.sleep(5)

    def sample_rss():
        sample(rss, end)

    workers = [http_sql, http_sql, flight_sql, flight_sql, http_ingest, flight_ingest, syncs, training, compaction,
               sample_rss]
    threads = [threading.Thread(target=w, daemon=True) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # Idle: nothing but the sampler, so that memory held by the load shows
    # as falling (released) or flat (kept).
    idle = []
    sample(idle, time.monotonic() + args.idle_minutes * 60)

    status, _ = request(server.http, "/healthz")
    found = {}
    for t in TENANTS:
        found.update(count_rows(server, keys[t]["reader"], "account_id LIKE 'kill-%'"))
    lost = [b for b in ledger.acked if found.get(b, 0) < ledger.sent[b][1]]
    duplicated = [b for b in ledger.sent if found.get(b, 0) > ledger.sent[b][1]]
    assert server.stop() == 0
    fake.shutdown()

    warm = [m for t, m, _ in rss if t >= 60] or [m for _, m, _ in rss]
    second_half = [(t, m) for t, m, _ in rss if t >= args.minutes * 30]
    routes = {}
    for route, lat in sorted(stats.latency.items()):
        lat = sorted(lat)
        routes[route] = {
            "requests": len(lat),
            "p50_ms": round(lat[len(lat) // 2] * 1000, 1),
            "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 1),
            "outcomes": {o: c for (r, o), c in stats.outcomes.items() if r == route},
        }
    figures = {
        "minutes": args.minutes,
        "binary": GYRUS,
        "routes": routes,
        "server_errors": sum(c for (_, o), c in stats.outcomes.items() if o.startswith("5")),
        "refused_429": sum(c for (_, o), c in stats.outcomes.items() if o == "429"),
        "rss_mb": {"start_after_warmup": round(warm[0], 1), "end": round(rss[-1][1], 1),
                   "max": round(max(m for _, m, _ in rss), 1),
                   "slope_second_half_mb_per_min": round(slope_mb_per_min(second_half), 2)},
        "threads": {"end": rss[-1][2], "max": max(n for _, _, n in rss)},
        "idle": {"minutes": args.idle_minutes,
                 "rss_mb_end": round(idle[-1][1], 1) if idle else None,
                 "threads_end": idle[-1][2] if idle else None},
        "batches_acknowledged": len(ledger.acked),
        "rows_acknowledged": sum(ledger.sent[b][1] for b in ledger.acked),
        "lost_batches": len(lost),
        "duplicated_batches": len(duplicated),
        "healthz_after": status,
    }
    if args.rss_trace:
        with open(args.rss_trace, "w") as f:
            f.write("seconds,rss_mb,threads,phase\n")
            f.writelines(f"{t:.0f},{m:.1f},{n},load\n" for t, m, n in rss)
            f.writelines(f"{t:.0f},{m:.1f},{n},idle\n" for t, m, n in idle)
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
