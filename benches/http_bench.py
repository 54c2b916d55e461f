#!/usr/bin/env python3
"""HTTP API throughput, in one run on one machine, against a release `gyrus serve`:

1. `wrk` on loopback: requests/s and p99 latency for `GET /healthz`, for a
   trivial `POST /api/v1/sql` (`SELECT 1`) and for a small query on the
   tenant's table, in the same run; each SQL figure as a ratio to /healthz.
2. NDJSON ingest: rows/s into a committed `ad_performance` (each request is
   one Delta commit, acknowledged with 201), in requests of 100k rows and in
   one request of 1M rows.

The server runs with `--rate-limit 0` (the per-key limit would otherwise
answer most of wrk's requests with 429) and its log on stderr to /dev/null.
wrk and the server share the machine's cores.

    cargo build --release --workspace --all-targets
    .venv/bin/python benches/http_bench.py
"""

import argparse
import datetime
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from gyrus_cli import gyrus, key  # noqa: E402


def wrk(url, seconds, connections, threads, script=None):
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        args += ["-s", script]
    out = subprocess.run(args + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p99_ms": float(p99.group(1)) * scale,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
wrk.body = {body}
"""


def lua_script(directory, name, key, body):
    path = os.path.join(directory, f"{name}.lua")
    with open(path, "w") as f:
        f.write(LUA.format(key=key, body=json.dumps(json.dumps(body))))
    return path


def ndjson_rows(n, seed):
    rng = random.Random(seed)
    start = datetime.date(2025, 1, 1)
    lines = []
    for i in range(n):
        day = start + datetime.timedelta(days=i % 365)
        campaign = i // 365
        clicks = rng.randint(0, 500)
        lines.append(json.dumps({
            "platform": "meta_ads", "account_id": f"bench-{seed}", "campaign_id": f"c{campaign}",
            "campaign_name": f"Campaign {campaign}", "channel": "social", "date": day.isoformat(),
            "impressions": clicks * 40, "clicks": clicks, "spend": f"{clicks * 0.37:.2f}", "currency": "USD",
            "conversions": clicks // 20, "conversion_value": f"{clicks * 1.9:.2f}",
        }))
    return ("\n".join(lines) + "\n").encode()


def ingest(http, writer, body):
    req = urllib.request.Request(
        f"{http}/api/v1/tables/ad_performance/rows", data=body, method="POST",
        headers={"Authorization": f"Bearer {writer}", "Content-Type": "application/x-ndjson"})
    started = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as resp:
        answer = json.loads(resp.read())
        assert resp.status == 201, answer
    return time.perf_counter() - started, answer["rows"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "gyrus"))
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")

    work = tempfile.mkdtemp(prefix="gyrus-http-bench-")
    data = os.path.join(work, "data")
    gyrus(args.binary, data, "demo", "--no-serve", "--tenants", "acme")
    reader, writer = key(args.binary, data, "acme", "reader"), key(args.binary, data, "acme", "writer")
    server = subprocess.Popen(
        [args.binary, "--data", data, "serve", "--flight-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
         "--rate-limit", "0", "--tenant-rate-limit", "0", "--retrain-every", "0", "--max-body-mb", "1024"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        server.stdout.readline()
        http = "http://" + re.search(r"http://([\d.:]+)", server.stdout.readline()).group(1)
        print(f"# HTTP API bench, {datetime.date.today()}, {os.cpu_count()} cores; wrk -t{args.threads} "
              f"-c{args.connections} -d{args.seconds}s; server: release, --rate-limit 0")
        small = "SELECT platform, sum(clicks) AS clicks FROM ad_performance WHERE date = DATE '2026-01-15' GROUP BY platform"
        cases = [
            ("GET /healthz", f"{http}/healthz", None),
            ("POST /api/v1/sql SELECT 1", f"{http}/api/v1/sql", lua_script(work, "one", reader, {"sql": "SELECT 1"})),
            ("POST /api/v1/sql small query", f"{http}/api/v1/sql", lua_script(work, "small", reader, {"sql": small})),
        ]
        results = {}
        for name, url, script in cases:
            results[name] = r = wrk(url, args.seconds, args.connections, args.threads, script)
            assert r["non_2xx"] == 0, f"{name}: {r['non_2xx']} non-2xx answers"
        base = results["GET /healthz"]
        print("\n| request | requests/s | p99 | requests/s ratio to /healthz |")
        print("|---|---|---|---|")
        for name, r in results.items():
            print(f"| {name} | {r['rps']:,.0f} | {r['p99_ms']:.2f} ms | {r['rps'] / base['rps']:.3f} |")

        print("\n| NDJSON ingest | rows | bytes | seconds | rows/s |")
        print("|---|---|---|---|---|")
        chunk = 100_000
        bodies = [ndjson_rows(chunk, seed) for seed in range(10)]
        total_time, total_rows = 0.0, 0
        for body in bodies:
            seconds, rows = ingest(http, writer, body)
            total_time += seconds
            total_rows += rows
        size = sum(len(b) for b in bodies)
        print(f"| 10 requests of {chunk:,} rows | {total_rows:,} | {size / 1e6:.0f} MB | {total_time:.2f} | {total_rows / total_time:,.0f} |")
        body = ndjson_rows(1_000_000, 99)
        seconds, rows = ingest(http, writer, body)
        print(f"| 1 request of 1,000,000 rows | {rows:,} | {len(body) / 1e6:.0f} MB | {seconds:.2f} | {rows / seconds:,.0f} |")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
