#!/usr/bin/env python3
"""Dashboard queries through Flight SQL (ADBC) against DuckDB, in one run.

A release `gyrus serve` answers the eleven queries of dashboard_window.sql
over Flight SQL on loopback, fetched whole with ADBC into pyarrow; DuckDB
runs the same text in process over the Parquet files of the tenant's Delta
table (its current version), with as many threads as the machine has cores.
Every repetition draws a new random date window (and campaign) and both
systems answer that same window, so nothing can be answered from memory of
an earlier answer. Reports the median per query, the ratio Gyrus / DuckDB
and the geometric mean of the ratios, and checks that both return the same
number of rows. Appends the table to benches/RESULTS.md.

    cargo build --release -p gyrus
    .venv/bin/python benches/dashboard_flight.py --scale large
    .venv/bin/python benches/dashboard_flight.py --scale medium
    .venv/bin/python benches/dashboard_flight.py --scale large --queries benches/lookup_window.sql

The last runs lookups below the rollups' grain (one ad group, one ad), which
the table's own layout answers (`gyrus optimize` lays it out for them).

    .venv/bin/python benches/dashboard_flight.py --scale medium --pause 2.5

waits 2.5 s before every query, longer than the server keeps a snapshot
unchecked (2 s): each query is a dashboard opened after a pause, which finds
its tenant's snapshot old (and must check it against storage, or read it
again) where back-to-back queries share one.
"""

import argparse
import datetime
import math
import os
import platform
import random
import re
import signal
import statistics
import subprocess
import sys
import time

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flight_sql
import duckdb
import pyarrow as pa
from adbc_driver_flightsql import DatabaseOptions

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from delta_log import active_files  # noqa: E402

sys.path.insert(0, HERE)
from compare import parse_queries  # noqa: E402
from gyrus_cli import gyrus, key  # noqa: E402


def connect(uri, api_key):
    return flight_sql.connect(uri, db_kwargs={DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {api_key}"})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.path.join(ROOT, "gyrus-bench-data"))
    parser.add_argument("--scale", default="large", choices=["small", "medium", "large"])
    parser.add_argument("--tenant", default=None, help="default: bench_<scale>")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=None, help="of the random windows (default: the time)")
    parser.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "gyrus"))
    parser.add_argument("--results", default=os.path.join(HERE, "RESULTS.md"))
    parser.add_argument("--queries", default=os.path.join(HERE, "dashboard_window.sql"),
                        help="the query set (default: the dashboard set; lookup_window.sql: one ad group's or ad's rows)")
    parser.add_argument("--pause", type=float, default=0.0,
                        help="seconds to wait before every query (default 0: back to back)")
    args = parser.parse_args()
    tenant = args.tenant or f"bench_{args.scale}"
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)

    table_dir = os.path.join(args.data, "tenants", tenant, "ad_performance")
    if not os.path.isdir(table_dir):
        print(f"loading scale-{args.scale} demo data for {tenant} ...", flush=True)
        gyrus(args.binary, args.data, "demo", "--no-serve", "--no-train", "--scale", args.scale, "--tenants", tenant)
    files = active_files(table_dir)
    reader = key(args.binary, args.data, tenant, "reader")
    queries = parse_queries(args.queries)

    duck = duckdb.connect()
    duck.execute(f"SET threads = {os.cpu_count()}")
    listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    duck.execute(f"CREATE VIEW ad_performance AS SELECT * FROM read_parquet([{listed}])")
    first, last, rows = duck.execute("SELECT min(date), max(date), count(*) FROM ad_performance").fetchone()
    def distinct(column):
        return [v for (v,) in duck.execute(f"SELECT DISTINCT {column} FROM ad_performance ORDER BY 1").fetchall()]

    campaigns, ad_groups, ads = distinct("campaign_id"), distinct("ad_group_id"), distinct("ad_id")
    span = (last - first).days

    def window():
        length = rng.randint(7, span)
        lo = first + datetime.timedelta(days=rng.randint(0, span - length))
        hi = lo + datetime.timedelta(days=length)
        mid = lo + datetime.timedelta(days=length // 2)
        return {"lo": lo, "hi": hi, "mid": mid, "campaign": rng.choice(campaigns),
                "ad_group": rng.choice(ad_groups), "ad": rng.choice(ads)}

    server = subprocess.Popen(
        [args.binary, "--data", args.data, "serve", "--flight-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
         "--rate-limit", "0", "--retrain-every", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    times = {name: ([], []) for name, _ in queries}
    try:
        uri = re.search(r"grpc://\S+", server.stdout.readline()).group(0)
        with connect(uri, reader) as conn:
            for rep in range(args.runs + 1):  # the first is a warm-up
                for name, template in queries:
                    sql = template.format(**window())
                    time.sleep(args.pause)
                    started = time.perf_counter()
                    with conn.cursor() as cur:
                        cur.execute(sql)
                        ours = cur.fetch_arrow_table()
                    gyrus_s = time.perf_counter() - started
                    started = time.perf_counter()
                    theirs = duck.execute(sql).to_arrow_table()
                    duck_s = time.perf_counter() - started
                    if ours.num_rows != theirs.num_rows:
                        sys.exit(f"{name}: Gyrus returned {ours.num_rows} rows, DuckDB {theirs.num_rows}\n{sql}")
                    if rep > 0:
                        times[name][0].append(gyrus_s)
                        times[name][1].append(duck_s)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)

    lines = [
        f"## Dashboard queries over Flight SQL, scale `{args.scale}` — {datetime.date.today()}",
        "",
        f"`.venv/bin/python benches/dashboard_flight.py --scale {args.scale} --seed {seed}"
        f"{'' if os.path.basename(args.queries) == 'dashboard_window.sql' else ' --queries benches/' + os.path.basename(args.queries)}"
        f"{f' --pause {args.pause:g}' if args.pause else ''}"
        f"` on {platform.machine()}, "
        f"{os.cpu_count()} cores: release `gyrus serve` on loopback, ADBC (adbc-driver-flightsql "
        f"{adbc_driver_flightsql.__version__}) fetching into pyarrow {pa.__version__}, against DuckDB {duckdb.__version__} "
        f"in process with {os.cpu_count()} threads over the same {len(files)} Parquet files ({rows:,} rows, "
        f"{first} to {last}). Median of {args.runs} repetitions after a warm-up, each on its own random date window "
        "(7 days to the whole history) and campaign, the same for both"
        + (f"; each query sent after a pause of {args.pause:g} s." if args.pause else "."),
        "",
        "| query | Gyrus ms | DuckDB ms | Gyrus / DuckDB |",
        "|---|---:|---:|---:|",
    ]
    ratios = []
    for name, _ in queries:
        ours, theirs = statistics.median(times[name][0]), statistics.median(times[name][1])
        ratios.append(ours / theirs)
        lines.append(f"| {name} | {ours * 1e3:.1f} | {theirs * 1e3:.1f} | {ours / theirs:.2f} |")
    geomean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    lines += ["", f"Geometric mean Gyrus / DuckDB: **{geomean:.2f}**; highest {max(ratios):.2f}.", ""]
    text = "\n".join(lines)
    print(text)
    with open(args.results, "a", encoding="utf-8") as f:
        f.write("\n" + text)


if __name__ == "__main__":
    main()
