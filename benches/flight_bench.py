#!/usr/bin/env python3
"""Flight SQL throughput: result streaming and ADBC bulk ingest.

In one run on one machine:
1. `SELECT * FROM ad_performance` (10.9M rows at scale `large`) fetched whole
   with ADBC into a pyarrow Table, from a release `gyrus serve` on loopback,
   against pyarrow reading the same Parquet files (the table's current Delta
   version) locally. Reports rows/s, MB/s (Arrow bytes of the result) and the
   ratio Flight / local.
2. ADBC bulk ingest (`adbc_ingest`, mode append) of 1M rows into a fresh
   tenant's ad_performance, timed until the commit is acknowledged.

    cargo build --release --workspace --all-targets
    .venv/bin/python benches/flight_bench.py --data ./gyrus-bench-data
"""

import argparse
import datetime
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flight_sql
import pyarrow as pa
import pyarrow.parquet as pq
from adbc_driver_flightsql import DatabaseOptions

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from delta_log import active_files  # noqa: E402

sys.path.insert(0, HERE)
from gyrus_cli import gyrus, key  # noqa: E402


def timed(runs, fn):
    fn()  # warm-up: caches, connections
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def connect(uri, api_key):
    return flight_sql.connect(uri, db_kwargs={DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {api_key}"})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.path.join(ROOT, "gyrus-bench-data"))
    parser.add_argument("--tenant", default="bench")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ingest-rows", type=int, default=1_000_000)
    parser.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "gyrus"))
    parser.add_argument("--results", default=os.path.join(HERE, "RESULTS.md"))
    args = parser.parse_args()

    table_dir = os.path.join(args.data, "tenants", args.tenant, "ad_performance")
    if not os.path.isdir(table_dir):
        print(f"loading scale-large demo data for {args.tenant} ...", flush=True)
        gyrus(args.binary, args.data, "demo", "--no-serve", "--scale", "large", "--tenants", args.tenant)
    files = active_files(table_dir)
    ingest_tenant = f"{args.tenant}_ingest"
    shutil.rmtree(os.path.join(args.data, "tenants", ingest_tenant), ignore_errors=True)
    reader = key(args.binary, args.data, args.tenant, "reader")
    writer = key(args.binary, args.data, ingest_tenant, "writer")

    server = subprocess.Popen(
        [args.binary, "--data", args.data, "serve", "--flight-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        uri = re.search(r"grpc://\S+", server.stdout.readline()).group(0)

        local_s, local = timed(args.runs, lambda: pq.read_table(files))

        def fetch():
            with connect(uri, reader) as conn, conn.cursor() as cur:
                cur.execute("SELECT * FROM ad_performance")
                return cur.fetch_arrow_table()

        flight_s, remote = timed(args.runs, fetch)
        assert remote.num_rows == local.num_rows, (remote.num_rows, local.num_rows)

        # ADBC sends each batch as one gRPC message (its limit is 16 MiB): 64k-row batches.
        sample = pa.Table.from_batches(remote.slice(0, args.ingest_rows).combine_chunks().to_batches(max_chunksize=65536))

        def ingest():
            with connect(uri, writer) as conn, conn.cursor() as cur:
                return cur.adbc_ingest("ad_performance", sample, mode="append")

        started = time.perf_counter()
        written = ingest()
        ingest_s = time.perf_counter() - started
        assert written == sample.num_rows, written
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)

    rows = remote.num_rows
    mb = remote.nbytes / 1e6
    lines = [
        f"## Flight SQL streaming and ingest — {datetime.date.today()}",
        "",
        f"`.venv/bin/python benches/flight_bench.py` on {platform.machine()}, {os.cpu_count()} cores; release "
        f"`gyrus serve` on loopback (plain gRPC); adbc-driver-flightsql {adbc_driver_flightsql.__version__}, "
        f"pyarrow {pa.__version__}; median of {args.runs} runs after one warm-up.",
        "",
        "| what | rows | Arrow MB | seconds | rows/s | MB/s |",
        "|---|---:|---:|---:|---:|---:|",
        f"| `SELECT * FROM ad_performance` over Flight SQL (ADBC → pyarrow Table) | {rows:,} | {mb:,.0f} | {flight_s:.2f} | {rows / flight_s / 1e6:.2f}M | {mb / flight_s:,.0f} |",
        f"| pyarrow.parquet.read_table of the same {len(files)} Parquet files, local | {local.num_rows:,} | {local.nbytes / 1e6:,.0f} | {local_s:.2f} | {local.num_rows / local_s / 1e6:.2f}M | {local.nbytes / 1e6 / local_s:,.0f} |",
        f"| ADBC bulk ingest (`adbc_ingest`, append) into a fresh tenant, until committed | {sample.num_rows:,} | {sample.nbytes / 1e6:,.0f} | {ingest_s:.2f} | {sample.num_rows / ingest_s / 1e6:.2f}M | {sample.nbytes / 1e6 / ingest_s:,.0f} |",
        "",
        f"Streaming throughput, Flight / local Parquet read: **{local_s / flight_s:.2f}** (goal: 0.5 or better).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    with open(args.results, "a", encoding="utf-8") as f:
        f.write("\n" + text)


if __name__ == "__main__":
    main()
