"""Gyrus on an S3-compatible object store (moto's S3 server on loopback).

The same Delta tables, keys and queries as on a local folder, with commits
made atomic by S3's conditional put; racing writers of one file land once.
"""

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

GYRUS = os.environ.get("GYRUS_BIN", "target/debug/gyrus")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_env():
    port = free_port()
    server = os.path.join(os.path.dirname(sys.executable), "moto_server")
    proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ALLOW_HTTP="true", AWS_ACCESS_KEY_ID="test",
               AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1")
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                      region_name="us-east-1")
    for _ in range(100):
        try:
            s3.create_bucket(Bucket="gyrus")
            break
        except Exception:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("moto's S3 server did not start")
    yield env, s3
    proc.kill()
    proc.wait()


def gyrus(env, *args, check=True):
    out = subprocess.run([GYRUS, *args], capture_output=True, text=True, env=env)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def test_demo_queries_and_keys_on_s3(s3_env):
    env, s3 = s3_env
    root = "s3://gyrus/demo"
    out = gyrus(env, "--data", root, "demo", "--no-serve", "--tenants", "acme").stdout
    key = [line for line in out.splitlines() if line.startswith("gyr_")][-1]
    listed = s3.list_objects_v2(Bucket="gyrus", Prefix="demo/tenants/acme/ad_performance/_delta_log/")
    assert listed["KeyCount"] >= 2
    count = gyrus(env, "--data", root, "sql", "--tenant", "acme", "--format", "csv",
                  "SELECT count(*) AS n FROM ad_performance").stdout
    assert int(count.splitlines()[1]) > 3000
    keys = gyrus(env, "--data", root, "keys", "list").stdout
    assert key.split("_")[1] in keys
    again = gyrus(env, "--data", root, "demo", "--no-serve", "--tenants", "acme")
    assert "already loaded" in again.stdout
    assert "ERROR" not in again.stderr


def test_racing_ingests_of_one_file_land_once_on_s3(s3_env, tmp_path):
    env, _ = s3_env
    root = "s3://gyrus/race"
    header = "platform,account_id,campaign_id,campaign_name,channel,date,impressions,clicks,spend,currency,conversions,conversion_value"
    rows = [f"google_ads,a1,c1,Brand,search,2026-01-{d:02d},100,7,12.50,USD,1,40" for d in range(1, 29)]
    path = tmp_path / "ads.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(
            lambda _: gyrus(env, "--data", root, "ingest", "--tenant", "acme", "--table", "ad_performance",
                            str(path), check=False),
            range(4)))
    wrote = [r for r in results if "wrote 28 rows" in r.stdout]
    assert len(wrote) == 1, [(r.returncode, r.stdout, r.stderr) for r in results]
    for r in results:
        assert r.returncode == 0 or "retry" in r.stderr, r.stderr
    count = gyrus(env, "--data", root, "sql", "--tenant", "acme", "--format", "csv",
                  "SELECT count(*) AS n FROM ad_performance").stdout
    assert count.splitlines()[1] == "28"
