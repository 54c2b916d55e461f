"""DuckDB reads the Parquet files of Gyrus's Delta tables and agrees with Gyrus.

Design promise: a user who outgrows one machine keeps the data where it is;
other engines read the same tables. The files of each table's current Delta
version (from its transaction log) are handed to DuckDB, and the answers of
both engines are compared to the cent.
"""

import json
import os
import subprocess
from decimal import Decimal

import duckdb
import pytest

from delta_log import active_files

GYRUS = os.environ.get("GYRUS_BIN", "target/debug/gyrus")


def gyrus(data, *args):
    out = subprocess.run([GYRUS, "--data", str(data), *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("gyrus")
    gyrus(root, "demo", "--no-serve", "--tenants", "acme,globex")
    return root


@pytest.mark.parametrize(
    "table,sql",
    [
        ("ad_performance", "SELECT platform, sum(spend) AS s, sum(clicks) AS c FROM {t} GROUP BY platform ORDER BY platform"),
        ("orders", "SELECT status, count(*) AS n, sum(amount) AS s FROM {t} GROUP BY status ORDER BY status"),
        ("crm_deals", "SELECT count(*) AS n, sum(CASE WHEN is_won THEN 1 ELSE 0 END) AS won FROM {t}"),
    ],
)
def test_duckdb_and_gyrus_agree(data, table, sql):
    files = active_files(os.path.join(data, "tenants", "acme", table))
    assert files, "the table has no files"
    con = duckdb.connect()
    listed = ", ".join(f"'{f}'" for f in files)
    duck = con.execute(sql.format(t=f"read_parquet([{listed}])")).fetchall()
    ours = json.loads(gyrus(data, "sql", "--tenant", "acme", "--format", "json", sql.format(t=table)))
    assert len(ours) == len(duck) > 0
    for mine, theirs in zip(ours, duck):
        for value, other in zip(mine.values(), theirs):
            if isinstance(other, Decimal):
                assert Decimal(str(value)) == other
            else:
                assert value == other


def test_tenants_have_separate_files(data):
    acme = active_files(os.path.join(data, "tenants", "acme", "ad_performance"))
    globex = active_files(os.path.join(data, "tenants", "globex", "ad_performance"))
    assert not set(acme) & set(globex)
    con = duckdb.connect()
    currencies = con.execute(
        "SELECT DISTINCT currency FROM read_parquet([" + ", ".join(f"'{f}'" for f in globex) + "])"
    ).fetchall()
    assert currencies == [("EUR",)]
