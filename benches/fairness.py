#!/usr/bin/env python3
"""Fairness between tenants (issue 18): globex's latency for a dashboard
query over HTTP SQL and Flight SQL (20 a second on each), first with the
server otherwise idle, then while acme saturates it (HTTP and Flight SQL
clients running heavy queries with more concurrency than acme's slots, and
large uploads). Prints globex's p50/p99 in both phases, their ratio,
globex's failures (should be 0) and how many of acme's requests were refused
(429 / RESOURCE_EXHAUSTED).

    GYRUS_BIN=target/release/gyrus .venv/bin/python benches/fairness.py [--seconds 60]
"""

import argparse
import json
import os
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "e2e"))
from chaos import ad_rows, request, start  # noqa: E402
from conftest import create_key, run_gyrus  # noqa: E402

PROBE = "SELECT platform, sum(spend) AS spend, sum(clicks) AS clicks FROM ad_performance GROUP BY 1 ORDER BY 1"
HEAVY = ("SELECT a.campaign_id, count(*) AS n FROM ad_performance a JOIN ad_performance b "
         "ON a.campaign_id = b.campaign_id AND a.platform = b.platform GROUP BY 1 ORDER BY 2 DESC LIMIT 5")
# How many probes globex sends a second on each surface: a dashboard's pace,
# well under the default rate limit of 100 a second per key.
PROBES_PER_SECOND = 20


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] * 1000


def probe(server, reader, seconds, flight_conn, per_second=PROBES_PER_SECOND):
    """globex, one request at a time, alternating HTTP and Flight SQL, at
    most `per_second` of each (a dashboard's pace: a faster probe would
    measure globex's own rate limit, not acme's effect on it)."""
    lat, failures = {"http": [], "flight": []}, 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        t0 = time.perf_counter()
        status, _ = request(server.http, "/api/v1/sql", reader, {"sql": PROBE}, timeout=120)
        lat["http"].append(time.perf_counter() - t0)
        failures += status != 200
        t0 = time.perf_counter()
        try:
            with flight_conn.cursor() as cur:
                cur.execute(PROBE)
                cur.fetch_arrow_table()
        except Exception:
            failures += 1
        lat["flight"].append(time.perf_counter() - t0)
        time.sleep(max(0.0, started + 1 / per_second - time.monotonic()))
    return lat, failures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--flood", type=int, default=16, help="acme's concurrent clients")
    args = parser.parse_args()
    import adbc_driver_flightsql.dbapi as flightsql

    data = tempfile.mkdtemp(prefix="gyrus-fair-")
    run_gyrus(data, "demo", "--no-serve", "--tenants", "acme,globex")
    acme_r, acme_w = create_key(data, "acme", "reader"), create_key(data, "acme", "writer")
    globex = create_key(data, "globex", "reader")
    server = start(data)
    conn = flightsql.connect(server.uri, db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {globex.whole}"})
    probe(server, globex, 5, conn)  # warm caches
    idle, idle_failures = probe(server, globex, args.seconds, conn)

    stop = threading.Event()
    acme = {"ok": 0, "refused": 0, "other": 0}
    # What each of acme's other answers was, and whether it came after the
    # load phase ended (the server is killed under requests in flight).
    others = {}
    lock = threading.Lock()

    def tally(kind, what=None):
        with lock:
            acme[kind] += 1
            if kind == "other":
                key = ("after stop: " if stop.is_set() else "") + str(what)[:160]
                others[key] = others.get(key, 0) + 1

    def attempt(label, call):
        """Makes one of acme's requests and tallies its answer. `call`
        returns HTTP's (status, body), or None for a call that has no status
        (Flight) and answered; an exception is a refusal when Flight says
        RESOURCE_EXHAUSTED, else "other" (a dropped connection, say)."""
        try:
            answer = call()
        except Exception as err:
            refused = not isinstance(err, OSError) and "resource" in str(err).lower()
            kind = "refused" if refused else "other"
            tally(kind, f"{label} {type(err).__name__}: {err}")
            return kind
        if answer is None:
            tally("ok", f"{label} answered")
            return "ok"
        status, body = answer
        kind = "ok" if status in (200, 201) else "refused" if status in (429, 503) else "other"
        tally(kind, f"{label} {status}: {body[:120]!r}")
        return kind

    def http_flood():
        while not stop.is_set():
            sql = lambda: request(server.http, "/api/v1/sql", acme_r, {"sql": HEAVY}, timeout=300)
            if attempt("HTTP", sql) == "refused":
                time.sleep(0.05)

    def flight_flood():
        c = flightsql.connect(server.uri, db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {acme_r.whole}"})

        def query():
            with c.cursor() as cur:
                cur.execute(HEAVY)
                cur.fetch_arrow_table()

        while not stop.is_set():
            if attempt("Flight", query) != "ok":
                time.sleep(0.05)
        c.close()

    def upload_flood():
        i = 0
        while not stop.is_set():
            i += 1
            body = "\n".join(json.dumps(r) for r in ad_rows(f"fair-{i}", 20_000)).encode()
            attempt("upload", lambda: request(server.http, "/api/v1/tables/ad_performance/rows", acme_w, body,
                                              content_type="application/x-ndjson", timeout=300))

    floods = [http_flood] * (args.flood // 2) + [flight_flood] * (args.flood // 2) + [upload_flood] * 2
    threads = [threading.Thread(target=f, daemon=True) for f in floods]
    for t in threads:
        t.start()
    time.sleep(5)
    loaded, loaded_failures = probe(server, globex, args.seconds, conn)
    stop.set()
    conn.close()
    # acme's requests in flight may run for minutes (a debug build): the
    # server is stopped under them rather than waited for.
    server.proc.kill()
    server.proc.wait()
    for t in threads:
        t.join(timeout=10)
    figures = {"binary": os.environ.get("GYRUS_BIN"), "seconds_per_phase": args.seconds, "acme_clients": len(floods)}
    for surface in ("http", "flight"):
        figures[surface] = {
            "requests_idle": len(idle[surface]), "requests_loaded": len(loaded[surface]),
            "p50_idle_ms": round(pct(idle[surface], 0.5), 1), "p99_idle_ms": round(pct(idle[surface], 0.99), 1),
            "p50_loaded_ms": round(pct(loaded[surface], 0.5), 1), "p99_loaded_ms": round(pct(loaded[surface], 0.99), 1),
            "p99_ratio": round(pct(loaded[surface], 0.99) / pct(idle[surface], 0.99), 2),
        }
    figures["globex_failures"] = {"idle": idle_failures, "loaded": loaded_failures}
    figures["acme"] = acme
    figures["acme_other"] = others
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
