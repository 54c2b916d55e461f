"""Kill test (issue 18): `gyrus serve` SIGKILLed at random moments while
clients ingest over HTTP and Flight SQL, a client saves budget plans, a
connector syncs from a platform fake, and `gyrus train`, `gyrus optimize` and `gyrus vacuum` run beside it
(they are killed at the same moment). Afterwards every acknowledged row is
there exactly once, every unacknowledged batch sent again with its
idempotency key lands exactly once, every acknowledged plan is there whole
and no plan is there in part, training and the connector finish, and
the server starts and serves.

    python tests/e2e/chaos.py --kills 50 [--seed 1] [--data DIR]

prints the figures as JSON; tests/e2e/test_kill.py runs a few kills in CI.
"""

import argparse
import datetime
import http.server
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import GYRUS, Server, create_key, run_gyrus  # noqa: E402

TENANT = "acme"
CHARGES_PER_DAY = 4
SYNC_DAYS = 20


def request(base, path, key=None, body=None, method=None, headers=None, content_type=None, timeout=30):
    sent = dict(headers or {})
    if key is not None:
        sent["Authorization"] = f"Bearer {key.whole}"
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent["Content-Type"] = content_type or "application/json"
    req = urllib.request.Request(base + path, data=data, headers=sent, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


class StripeFake(http.server.ThreadingHTTPServer):
    """Stripe's list API for charges (CHARGES_PER_DAY succeeded charges a
    day, two per page) and an empty list of refunds."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), StripeHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()


class StripeHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        items = []
        if url.path == "/v1/charges":
            gte, lt = int(q["created[gte]"]), int(q["created[lt]"])
            day = gte - gte % 86400
            while day < lt:
                for i in range(CHARGES_PER_DAY):
                    created = day + 3600 * (i + 1)
                    if gte <= created < lt:
                        items.append({"id": f"ch_{created}", "object": "charge", "status": "succeeded", "amount": 1000 + i,
                                      "currency": "usd", "created": created, "customer": f"cus_{i}", "refunded": False,
                                      "metadata": {}})
                day += 86400
        after = q.get("starting_after")
        if after:
            ids = [c["id"] for c in items]
            items = items[ids.index(after) + 1:] if after in ids else []
        page, more = items[:2], len(items) > 2
        # A platform that is slow to answer: a kill lands mid-sync more often.
        time.sleep(0.02)
        body = json.dumps({"object": "list", "data": page, "has_more": more}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def ad_rows(batch, n):
    return [{"platform": "tiktok_ads", "account_id": batch, "campaign_id": f"{batch}-c", "campaign_name": "Kill test",
             "ad_id": f"{batch}-{i}", "channel": "social", "date": "2026-05-01", "impressions": 100 + i, "clicks": 3,
             "spend": "4.25", "currency": "USD", "conversions": 1, "conversion_value": "19.90"} for i in range(n)]


class Ledger:
    """What clients sent and what the server acknowledged, per batch."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent = {}  # batch -> (surface, rows)
        self.acked = set()
        self.counter = 0

    def next(self, surface, rows):
        with self.lock:
            self.counter += 1
            batch = f"kill-{surface}-{self.counter}"
            self.sent[batch] = (surface, rows)
            return batch

    def ack(self, batch):
        with self.lock:
            self.acked.add(batch)


def push_http(server, writer, batch, n):
    body = "\n".join(json.dumps(r) for r in ad_rows(batch, n)).encode()
    status, answer = request(server.http, "/api/v1/tables/ad_performance/rows", writer, body,
                             content_type="application/x-ndjson", headers={"Idempotency-Key": batch})
    if status not in (200, 201):
        raise RuntimeError(f"HTTP ingest answered {status}: {answer[:300]!r}")
    return json.loads(answer)


def push_flight(server, writer, batch, n, schema):
    import pyarrow as pa
    import pyarrow.flight as fl

    rows = ad_rows(batch, n)
    for r in rows:
        r["date"] = datetime.date(2026, 5, 1)
        import decimal
        r["spend"] = decimal.Decimal(r["spend"])
        r["conversion_value"] = decimal.Decimal(r["conversion_value"])
        r["conversions"] = float(r["conversions"])
    table = pa.Table.from_pylist(rows, schema=schema)
    client = fl.FlightClient(server.uri)
    try:
        options = fl.FlightCallOptions(timeout=30, headers=[(b"authorization", f"Bearer {writer.whole}".encode()),
                                                            (b"x-idempotency-key", batch.encode())])
        stream, reader = client.do_put(fl.FlightDescriptor.for_path("ad_performance"), schema, options)
        stream.write_table(table)
        stream.done_writing()
        reader.read()
        stream.close()
    finally:
        client.close()


def flight_schema(server, reader):
    import adbc_driver_flightsql.dbapi as flightsql

    with flightsql.connect(server.uri, db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {reader.whole}"}) as conn:
        return conn.adbc_get_table_schema("ad_performance")


def count_rows(server, reader, where):
    status, body = request(server.http, "/api/v1/sql", reader,
                           {"sql": f"SELECT account_id, count(*) AS n FROM ad_performance WHERE {where} GROUP BY 1"}, timeout=120)
    assert status == 200, body
    return {r["account_id"]: int(r["n"]) for r in json.loads(body)["rows"]}


def scalar(server, reader, sql):
    status, body = request(server.http, "/api/v1/sql", reader, {"sql": sql}, timeout=120)
    assert status == 200, body
    row = json.loads(body)["rows"][0]
    return next(iter(row.values()))


def wait_healthy(server, seconds=60):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            status, body = request(server.http, "/healthz", timeout=5)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("the server did not answer /healthz")


def start(data):
    server = Server(data, ["--allow-connector-urls"])
    wait_healthy(server)
    return server


def run(kills, seed, data):
    rng = random.Random(seed)
    fake = StripeFake()
    run_gyrus(data, "demo", "--no-serve", "--tenants", TENANT)
    writer = create_key(data, TENANT, "writer")
    reader = create_key(data, TENANT, "reader")
    admin = create_key(data, TENANT, "admin")
    ledger = Ledger()
    figures = {"kills": 0, "kills_during": {"http_ingest": 0, "flight_ingest": 0, "train": 0, "optimize_vacuum": 0,
                                            "connector_sync": 0, "budget_plan": 0}, "restart_seconds": []}
    plans = {}  # acknowledged plan id -> (entities, recommended spend in total)

    server = start(data)
    schema = flight_schema(server, reader)
    start_date = (datetime.date.today() - datetime.timedelta(days=SYNC_DAYS - 1)).isoformat()
    status, body = request(server.http, "/api/v1/connectors", admin,
                           {"platform": "stripe", "account": "acct_kill", "credentials": {"api_key": "sk_test_kill"},
                            "base_url": fake.url, "start_date": start_date, "schedule_minutes": 0,
                            "settings": {"window_days": "2", "requests_per_second": "1000"}})
    assert status == 201, body
    connector = json.loads(body)["id"]
    today = float(scalar(server, reader, "SELECT sum(CAST(current_spend AS DOUBLE)) AS s FROM budget_plans "
                                         "WHERE plan_id = 'automatic' AND entity_type = 'campaign'"))

    for life in range(kills):
        stop = threading.Event()
        busy = {k: threading.Event() for k in figures["kills_during"]}

        def ingest(surface, push):
            while not stop.is_set():
                n = rng.randint(1, 30)
                batch = ledger.next(surface, n)
                busy[f"{surface}_ingest"].set()
                try:
                    push(batch, n)
                    ledger.ack(batch)
                except Exception:
                    if not stop.is_set():
                        time.sleep(0.05)
                finally:
                    busy[f"{surface}_ingest"].clear()

        def syncs():
            while not stop.is_set():
                try:
                    status, _ = request(server.http, f"/api/v1/connectors/{connector}/sync", admin, method="POST", body=b"",
                                        timeout=10)
                    if status == 202:
                        busy["connector_sync"].set()
                    status, body = request(server.http, f"/api/v1/connectors/{connector}", admin, timeout=10)
                    run = json.loads(body).get("last_run") if status == 200 else None
                    if run and run.get("status") != "running":
                        busy["connector_sync"].clear()
                except Exception:
                    pass
                time.sleep(0.2)

        def save_plans():
            while not stop.is_set():
                busy["budget_plan"].set()
                try:
                    status, body = request(server.http, "/api/v1/reflexes/budget", writer,
                                           {"total_budget": round(today * rng.uniform(0.95, 1.05), 2),
                                            "objective": "conversions", "entity_type": "campaign", "save": True})
                    if status == 200:
                        plan = json.loads(body)
                        if plan["saved"]:
                            plans[plan["plan_id"]] = (len(plan["entities"]),
                                                      sum(e["recommended_spend"] for e in plan["entities"]))
                except Exception:
                    if not stop.is_set():
                        time.sleep(0.05)
                finally:
                    busy["budget_plan"].clear()

        threads = [
            threading.Thread(target=save_plans),
            threading.Thread(target=ingest, args=("http", lambda b, n: push_http(server, writer, b, n))),
            threading.Thread(target=ingest, args=("flight", lambda b, n: push_flight(server, writer, b, n, schema))),
            threading.Thread(target=syncs),
        ]
        # Training, then compaction and vacuum, as other processes on the same data.
        side = subprocess.Popen([GYRUS, "--data", str(data), "train", "--tenant", TENANT],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) if life % 2 == 0 else \
            subprocess.Popen(["sh", "-c", f"'{GYRUS}' --data '{data}' optimize --tenant {TENANT} && "
                                          f"'{GYRUS}' --data '{data}' vacuum --tenant {TENANT}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        for t in threads:
            t.start()
        # Compaction and vacuum of the small kill-test tables take about a
        # second: their lives are cut short so that the kill often lands in them.
        time.sleep(rng.uniform(0.5, 4.0) if life % 2 == 0 else rng.uniform(0.1, 1.2))
        for name, event in busy.items():
            if event.is_set():
                figures["kills_during"][name] += 1
        if side.poll() is None:
            figures["kills_during"]["train" if life % 2 == 0 else "optimize_vacuum"] += 1
        # The moment: the server and whatever runs beside it, at once.
        server.proc.kill()
        try:
            os.killpg(side.pid, signal.SIGKILL) if life % 2 else side.kill()
        except ProcessLookupError:
            pass
        side.wait()
        server.proc.wait()
        figures["kills"] += 1
        stop.set()
        for t in threads:
            t.join(timeout=60)
        began = time.monotonic()
        server = start(data)
        figures["restart_seconds"].append(round(time.monotonic() - began, 2))

    # Every acknowledged batch is there exactly once.
    found = count_rows(server, reader, "account_id LIKE 'kill-%'")
    acked = sorted(ledger.acked)
    lost = [b for b in acked if found.get(b, 0) < ledger.sent[b][1]]
    duplicated = [b for b in ledger.sent if found.get(b, 0) > ledger.sent[b][1]]
    partial = [b for b in ledger.sent if 0 < found.get(b, 0) < ledger.sent[b][1]]
    figures.update({
        "batches_sent": len(ledger.sent),
        "batches_acknowledged": len(acked),
        "rows_acknowledged": sum(ledger.sent[b][1] for b in acked),
        "acknowledged_by_surface": {s: sum(1 for b in acked if ledger.sent[b][0] == s) for s in ("http", "flight")},
        "lost_batches": lost,
        "duplicated_batches": duplicated,
        "partial_batches": partial,
    })
    # Every acknowledged plan is there whole; no plan is there in part (a
    # plan's rows are one commit: plans of one model version cover the same
    # campaigns, each once).
    status, body = request(server.http, "/api/v1/sql", reader, {"sql": (
        "SELECT plan_id, model_version, count(*) AS n, count(DISTINCT entity_id) AS entities, "
        "sum(CAST(recommended_spend AS DOUBLE)) AS total FROM budget_plans "
        "WHERE plan_id <> 'automatic' AND entity_type = 'campaign' GROUP BY 1, 2")}, timeout=120)
    assert status == 200, body
    saved = {r["plan_id"]: r for r in json.loads(body)["rows"]}
    counts_by_version = {}
    for r in saved.values():
        counts_by_version.setdefault(r["model_version"], set()).add(int(r["n"]))
    figures.update({
        "plans_acknowledged": len(plans),
        "plans_saved": len(saved),
        "lost_plans": [p for p, (n, total) in plans.items()
                       if p not in saved or int(saved[p]["n"]) != n
                       or abs(float(saved[p]["total"]) - total) > 1e-6 * max(total, 1.0)],
        "partial_plans": [p for p, r in saved.items() if int(r["n"]) != int(r["entities"])
                          or len(counts_by_version[r["model_version"]]) != 1],
    })

    # A client sends again what was never acknowledged, with the same key.
    for batch, (surface, n) in sorted(ledger.sent.items()):
        if batch not in ledger.acked:
            if surface == "http":
                push_http(server, writer, batch, n)
            else:
                push_flight(server, writer, batch, n, schema)
    found = count_rows(server, reader, "account_id LIKE 'kill-%'")
    figures["after_resend_wrong"] = [b for b, (_, n) in ledger.sent.items() if found.get(b, 0) != n]
    figures["rows_total"] = sum(found.values())

    # Training publishes, and its tables answer.
    out = subprocess.run([GYRUS, "--data", str(data), "train", "--tenant", TENANT], capture_output=True, text=True)
    figures["train_after"] = out.returncode
    figures["forecast_rows"] = int(scalar(server, reader, "SELECT count(*) AS n FROM forecasts"))
    # The connector finishes a sync, and holds each charge exactly once.
    run_id = None
    for _ in range(600):
        status, body = request(server.http, f"/api/v1/connectors/{connector}/sync", admin, method="POST", body=b"")
        if status == 202:
            run_id = json.loads(body)["run_id"]
            break
        time.sleep(0.2)
    # Follow this run (not the one a kill interrupted) to its end.
    for _ in range(1200):
        status, body = request(server.http, f"/api/v1/connectors/{connector}", admin)
        last = json.loads(body)["last_run"]
        if last and last.get("run_id") == run_id and last["status"] != "running":
            break
        time.sleep(0.1)
    figures["connector_last_run"] = last["status"] if last else None
    figures["connector_sync"] = {"run_id": run_id, "last_run": last}
    figures["connector_orders"] = int(scalar(server, reader, "SELECT count(*) AS n FROM orders WHERE source = 'stripe'"))
    figures["connector_distinct_orders"] = int(scalar(
        server, reader, "SELECT count(DISTINCT order_id) AS n FROM orders WHERE source = 'stripe'"))
    figures["connector_expected_orders"] = CHARGES_PER_DAY * SYNC_DAYS
    status, _ = request(server.http, "/healthz")
    figures["serves_after"] = status == 200
    assert server.stop() == 0
    fake.shutdown()
    return figures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data")
    args = parser.parse_args()
    data = args.data or tempfile.mkdtemp(prefix="gyrus-kill-")
    began = time.monotonic()
    figures = run(args.kills, args.seed, data)
    figures["seconds"] = round(time.monotonic() - began, 1)
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
