#!/usr/bin/env python3
"""Comparison harness: the dashboard query set through Gyrus and DuckDB.

Runs `gyrus-compare` (release build), which loads the dataset into a Gyrus
tenant if needed and times every query of dashboard_queries.sql through a
Gyrus session; then runs the same queries with DuckDB over the very Parquet
files of that tenant's Delta table, in the same run on the same machine, and
appends the ratios to benches/RESULTS.md.

    cargo build --release --workspace --all-targets
    .venv/bin/python benches/compare.py --scale large --data ./gyrus-bench-data
"""

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

import duckdb

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def parse_queries(path):
    queries, name, lines = [], None, []
    for line in open(path, encoding="utf-8"):
        if line.startswith("-- name:"):
            if name:
                queries.append((name, "".join(lines).strip().rstrip(";")))
            name, lines = line.split(":", 1)[1].strip(), []
        elif name and not line.startswith("--"):
            lines.append(line)
    if name:
        queries.append((name, "".join(lines).strip().rstrip(";")))
    return queries


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.path.join(ROOT, "gyrus-bench-data"))
    parser.add_argument("--tenant", default="bench")
    parser.add_argument("--scale", default="large", choices=["small", "medium", "large"])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "gyrus-compare"))
    parser.add_argument("--results", default=os.path.join(HERE, "RESULTS.md"))
    args = parser.parse_args()

    queries_path = os.path.join(HERE, "dashboard_queries.sql")
    out = os.path.join(args.data, "gyrus-compare.json")
    os.makedirs(args.data, exist_ok=True)
    started = time.time()
    subprocess.run(
        [args.binary, "--data", args.data, "--tenant", args.tenant, "--scale", args.scale,
         "--runs", str(args.runs), "--queries", queries_path, "--out", out],
        check=True,
    )
    gyrus = json.load(open(out, encoding="utf-8"))

    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")
    files = ", ".join("'" + f.replace("'", "''") + "'" for f in gyrus["files"])
    con.execute(f"CREATE VIEW ad_performance AS SELECT * FROM read_parquet([{files}])")
    duck = {}
    for name, sql in parse_queries(queries_path):
        con.execute(sql).fetchall()  # warm-up
        times, rows = [], 0
        for _ in range(args.runs):
            t0 = time.perf_counter()
            rows = len(con.execute(sql).fetchall())
            times.append(time.perf_counter() - t0)
        duck[name] = (times, rows)
        print(f"duckdb {name}: {times}", file=sys.stderr)

    lines, ratios = [], []
    for q in gyrus["queries"]:
        d_times, d_rows = duck[q["name"]]
        g, d = statistics.median(q["seconds"]), statistics.median(d_times)
        ratio = g / d
        ratios.append(ratio)
        same = "yes" if d_rows == q["rows"] else f"NO ({q['rows']} vs {d_rows})"
        lines.append(f"| {q['name']} | {g * 1000:.1f} | {d * 1000:.1f} | {ratio:.2f} | {same} |")
    geomean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))

    load = ""
    if gyrus.get("load_seconds") is not None:
        load = (f"- generated in {gyrus['generate_seconds']:.1f} s and loaded in {gyrus['load_seconds']:.1f} s "
                f"(all five tables; {gyrus['rows']:,} ad_performance rows)\n")
    section = (
        f"\n## Dashboard queries, scale `{args.scale}` — {datetime.date.today().isoformat()}\n\n"
        f"`{' '.join(['.venv/bin/python', 'benches/compare.py', '--scale', args.scale])}` on {platform.machine()}, "
        f"{os.cpu_count()} cores; DuckDB {duckdb.__version__} with {args.threads} threads over the same "
        f"{len(gyrus['files'])} Parquet files of the Delta table ({gyrus['rows']:,} rows); median of {args.runs} runs "
        f"after one warm-up, both in-process.\n\n{load}\n"
        "| query | Gyrus ms | DuckDB ms | Gyrus / DuckDB | same row count |\n|---|---:|---:|---:|---|\n"
        + "\n".join(lines)
        + f"\n\nGeometric mean of the ratios: **{geomean:.2f}** (goal: below 1.0). "
        f"Harness wall time {time.time() - started:.0f} s.\n"
    )
    with open(args.results, "a", encoding="utf-8") as f:
        f.write(section)
    print(section)


if __name__ == "__main__":
    main()
