"""Gyrus's Flight SQL server through the real clients analysts use:
ADBC (adbc-driver-flightsql), pyarrow.flight, and SQLAlchemy through
flightsql-dbapi (the dialect Apache Superset uses)."""

import datetime
import decimal

import adbc_driver_flightsql.dbapi as flight_sql
import pyarrow.compute as pc
import pyarrow as pa
import pyarrow.flight as fl
import pytest
from adbc_driver_flightsql import DatabaseOptions
from adbc_driver_manager import ProgrammingError, DatabaseError, OperationalError

from conftest import run_gyrus


def connect(server, key=None, basic=None):
    kwargs = {}
    if key is not None:
        kwargs[DatabaseOptions.AUTHORIZATION_HEADER.value] = f"Bearer {key.whole}"
    if basic is not None:
        kwargs["username"], kwargs["password"] = basic
    return flight_sql.connect(server.uri, db_kwargs=kwargs)


def scalar(conn, sql, parameters=None):
    with conn.cursor() as cur:
        cur.execute(sql, parameters)
        return cur.fetchone()[0]


def test_bearer_and_basic_auth(flight):
    reader = flight.keys["acme_reader"]
    with connect(flight, key=reader) as conn:
        by_bearer = scalar(conn, "SELECT count(*) FROM ad_performance")
    assert by_bearer > 0
    for user in (reader.id, "acme"):
        with connect(flight, basic=(user, reader.secret)) as conn:
            assert scalar(conn, "SELECT count(*) FROM ad_performance") == by_bearer
    with pytest.raises((DatabaseError, OperationalError, ProgrammingError)) as err:
        with connect(flight, basic=("acme", "0" * 64)) as conn:
            scalar(conn, "SELECT 1")
    assert "UNAUTHENTICATED" in str(err.value).upper()


def test_tenants_see_only_their_own_rows(flight):
    sql = "SELECT sum(clicks) FROM ad_performance"
    seen = {}
    for tenant in ("acme", "globex"):
        with connect(flight, key=flight.keys[f"{tenant}_reader"]) as conn:
            seen[tenant] = scalar(conn, sql)
        cli = run_gyrus(flight.data, "sql", "--tenant", tenant, "--format", "csv", sql)
        assert int(cli.strip().splitlines()[-1]) == seen[tenant]
    assert seen["acme"] != seen["globex"]
    # Naming another tenant's catalog or files gets nowhere.
    with connect(flight, key=flight.keys["acme_reader"]) as conn:
        for sql in (
            "SELECT count(*) FROM globex.public.ad_performance",
            f"SELECT count(*) FROM '{flight.data}/tenants/globex/ad_performance'",
        ):
            with pytest.raises(ProgrammingError):
                scalar(conn, sql)


def test_get_objects_at_every_depth(flight):
    with connect(flight, key=flight.keys["acme_reader"]) as conn:
        catalogs = conn.adbc_get_objects(depth="catalogs").read_all().to_pylist()
        assert [c["catalog_name"] for c in catalogs] == ["gyrus"]

        schemas = conn.adbc_get_objects(depth="db_schemas").read_all().to_pylist()
        names = {s["db_schema_name"] for s in schemas[0]["catalog_db_schemas"]}
        assert names == {"public", "information_schema"}

        tables = conn.adbc_get_objects(depth="tables", db_schema_filter="public").read_all().to_pylist()
        public = tables[0]["catalog_db_schemas"][0]
        listed = {t["table_name"]: t["table_type"] for t in public["db_schema_tables"]}
        assert listed["ad_performance"] == "TABLE"
        assert {"orders", "customers", "crm_deals", "forecasts", "budget_plans"} <= set(listed)

        columns = conn.adbc_get_objects(depth="columns", table_name_filter="ad_performance").read_all().to_pylist()
        table = next(t for s in columns[0]["catalog_db_schemas"] for t in s["db_schema_tables"] if t["table_name"] == "ad_performance")
        cols = {c["column_name"]: c for c in table["table_columns"]}
        assert list(cols)[:3] == ["platform", "account_id", "campaign_id"]
        assert cols["spend"]["ordinal_position"] > cols["platform"]["ordinal_position"]

        everything = conn.adbc_get_objects(depth="all").read_all()
        assert everything.num_rows == 1


def test_table_schema_and_info(flight):
    with connect(flight, key=flight.keys["acme_reader"]) as conn:
        schema = conn.adbc_get_table_schema("ad_performance")
        assert schema.field("date").type == pa.date32()
        assert schema.field("spend").type == pa.decimal128(18, 6)
        assert schema.field("platform").type == pa.string()
        assert not schema.field("platform").nullable
        assert schema.field("ad_id").nullable
        with conn.cursor() as cur:
            result = cur.adbc_execute_schema("SELECT date, sum(spend) AS spend FROM ad_performance GROUP BY date")
        assert result.names == ["date", "spend"] and result.field("date").type == pa.date32()
        info = conn.adbc_get_info()
        assert info["vendor_name"] == "Gyrus"
        assert info["vendor_version"]
        assert info["driver_name"]


def test_query_types_and_answer(flight):
    with connect(flight, key=flight.keys["acme_reader"]) as conn:
        cur = conn.cursor()
        cur.execute(
            "SELECT platform, date, sum(spend) AS spend, sum(clicks) AS clicks FROM ad_performance "
            "GROUP BY platform, date ORDER BY date, platform"
        )
        table = cur.fetch_arrow_table()
    assert table.schema.field("date").type == pa.date32()
    assert pa.types.is_decimal(table.schema.field("spend").type)
    assert table.schema.field("platform").type == pa.string()
    first = table.slice(0, 1).to_pylist()[0]
    assert isinstance(first["date"], datetime.date) and isinstance(first["spend"], decimal.Decimal)
    # The same answer as the CLI over the same tables.
    cli = run_gyrus(flight.data, "sql", "--tenant", "acme", "--format", "csv", "SELECT sum(clicks) FROM ad_performance")
    assert int(cli.strip().splitlines()[-1]) == sum(table.column("clicks").to_pylist())


def test_prepared_statement_with_parameters_runs_twice(flight):
    with connect(flight, key=flight.keys["acme_reader"]) as conn:
        platforms = [r[0] for r in conn.cursor().execute("SELECT DISTINCT platform FROM ad_performance ORDER BY 1").fetchall()]
        assert len(platforms) >= 2
        cur = conn.cursor()
        sql = "SELECT count(*), sum(clicks) FROM ad_performance WHERE platform = ? AND date >= ?"
        answers = []
        for platform in platforms[:2]:
            cur.execute(sql, parameters=(platform, datetime.date(2025, 1, 1)))
            answers.append(cur.fetchone())
            expected = scalar(conn, f"SELECT count(*) FROM ad_performance WHERE platform = '{platform}' AND date >= DATE '2025-01-01'")
            assert answers[-1][0] == expected
        assert answers[0] != answers[1]


def test_ingest_and_read_back(flight):
    writer = flight.keys["acme_writer"]
    with connect(flight, key=writer) as conn:
        schema = conn.adbc_get_table_schema("ad_performance")
        before = scalar(conn, "SELECT count(*) FROM ad_performance WHERE account_id = 'adbc-ingest'")
        assert before == 0
        n = 6
        rows = {
            "platform": ["meta_ads"] * n,
            "account_id": ["adbc-ingest"] * n,
            "campaign_id": ["c-1"] * n,
            "campaign_name": ["ADBC campaign"] * n,
            "ad_group_id": ["g-1"] * n,
            "ad_id": [f"ad-{i}" for i in range(n)],
            "channel": ["social"] * n,
            "date": [datetime.date(2026, 5, 1)] * n,
            "impressions": [1000 + i for i in range(n)],
            "clicks": [10 + i for i in range(n)],
            "spend": [decimal.Decimal("12.345678")] * n,
            "currency": ["EUR"] * n,
            "conversions": [0.5] * n,
            "conversion_value": [decimal.Decimal("40")] * n,
            "video_views": [None] * n,
        }
        table = pa.Table.from_pydict(rows, schema=schema)
        with conn.cursor() as cur:
            written = cur.adbc_ingest("ad_performance", table, mode="append")
        conn.commit()
        assert written == n
        assert scalar(conn, "SELECT count(*) FROM ad_performance WHERE account_id = 'adbc-ingest'") == n
        assert scalar(conn, "SELECT sum(spend) FROM ad_performance WHERE account_id = 'adbc-ingest'") == decimal.Decimal("74.074068")

        # Invalid rows: refused whole, nothing written.
        bad = table.set_column(table.schema.get_field_index("currency"), "currency", pa.array(["EURO"] * n))
        with pytest.raises(Exception) as err, conn.cursor() as cur:
            cur.adbc_ingest("ad_performance", bad, mode="append")
        assert "currency" in str(err.value)
        assert scalar(conn, "SELECT count(*) FROM ad_performance WHERE account_id = 'adbc-ingest'") == n

    # Reader keys cannot write.
    with connect(flight, key=flight.keys["acme_reader"]) as conn:
        with pytest.raises(Exception) as err, conn.cursor() as cur:
            cur.adbc_ingest("ad_performance", table, mode="append")
        assert "writer" in str(err.value)


def test_ten_million_rows_fetched_whole(flight):
    with connect(flight, key=flight.keys["acme_reader"]) as conn:
        cur = conn.cursor()
        cur.execute("SELECT value, value % 7 AS bucket FROM generate_series(1, 10000000)")
        table = cur.fetch_arrow_table()
    assert table.num_rows == 10_000_000
    # No ORDER BY: partitions may interleave; every value arrives once.
    values = table.column("value")
    assert pc.min(values).as_py() == 1 and pc.max(values).as_py() == 10_000_000
    assert pc.count_distinct(values).as_py() == 10_000_000


def flight_sql_command(message):
    """A Flight SQL command as a FlightDescriptor (protobuf `Any`)."""
    from google.protobuf import any_pb2

    wrapped = any_pb2.Any()
    wrapped.Pack(message)
    return fl.FlightDescriptor.for_command(wrapped.SerializeToString())


def test_pyarrow_flight_basic_token_query_and_put(flight):
    import flightsql.flightsql_pb2 as pb

    writer = flight.keys["acme_writer"]
    client = fl.FlightClient(flight.uri)
    with pytest.raises(fl.FlightUnauthenticatedError):
        client.get_flight_info(flight_sql_command(pb.CommandStatementQuery(query="SELECT 1")))
    header = client.authenticate_basic_token(writer.id, writer.secret)
    assert header[0] == b"authorization" and header[1].startswith(b"Bearer gys_")
    options = fl.FlightCallOptions(headers=[header])

    info = client.get_flight_info(flight_sql_command(pb.CommandStatementQuery(query="SELECT count(*) AS n FROM orders")), options)
    table = client.do_get(info.endpoints[0].ticket, options).read_all()
    assert info.schema == table.schema
    assert table.column("n")[0].as_py() > 0

    # A plain DoPut to a table's path appends, like bulk ingest.
    schema = client.get_flight_info(
        flight_sql_command(pb.CommandStatementQuery(query="SELECT * FROM web_sessions LIMIT 0")), options
    ).schema
    rows = pa.Table.from_pylist(
        [
            {
                "date": datetime.date(2026, 6, 1), "property_id": "pyarrow-put", "source": "google", "medium": "cpc",
                "campaign": "x", "sessions": 10, "users": 8, "new_users": 3, "engaged_sessions": 6,
                "conversions": 1.0, "revenue": decimal.Decimal("9.99"), "currency": "USD",
            }
        ],
        schema=schema,
    )
    writer_stream, reader = client.do_put(fl.FlightDescriptor.for_path("web_sessions"), schema, options)
    writer_stream.write_table(rows)
    writer_stream.done_writing()
    result = reader.read()
    writer_stream.close()
    update = pb.DoPutUpdateResult()
    update.ParseFromString(result.to_pybytes())
    assert update.record_count == 1


def test_sqlalchemy_through_flightsql_dbapi(flight):
    import sqlalchemy

    key = flight.keys["acme_reader"]
    engine = sqlalchemy.create_engine(f"datafusion://{flight.host}:{flight.port}?insecure=true&token={key.whole}")
    inspector = sqlalchemy.inspect(engine)
    assert "public" in inspector.get_schema_names()
    tables = inspector.get_table_names(schema="public")
    assert "ad_performance" in tables and "orders" in tables
    columns = {c["name"]: c for c in inspector.get_columns("ad_performance", schema="public")}
    assert {"platform", "date", "spend", "clicks"} <= set(columns)
    with engine.connect() as conn:
        rows = conn.execute(sqlalchemy.text("SELECT channel, sum(spend) AS spend FROM ad_performance GROUP BY channel ORDER BY 2 DESC")).fetchall()
    assert rows and all(r[1] > 0 for r in rows)


def test_system_tables_through_adbc_for_admins_only(flight):
    """The operational state as SQL: an admin reads its tenant's model runs
    and recent queries through ADBC; a reader is refused."""
    from conftest import create_key

    admin = create_key(flight.data, "acme", "admin")
    reader = flight.keys["acme_reader"]
    with connect(flight, key=reader) as conn:
        marker = scalar(conn, "SELECT count(*) AS system_e2e_marker FROM ad_performance")
        with pytest.raises((ProgrammingError, DatabaseError, OperationalError)) as err:
            scalar(conn, "SELECT count(*) FROM system.model_runs")
        assert "admin key" in str(err.value)
    with connect(flight, key=admin) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT family, run_id, status, serving FROM system.model_runs ORDER BY family")
            runs = cur.fetch_arrow_table().to_pylist()
            # The demo trained every family once; each run serves.
            assert {r["family"] for r in runs} == {"oracle", "curiosity", "memory", "reflexes"}, runs
            assert all(r["serving"] and r["status"] == "good" for r in runs), runs
            cur.execute(
                "SELECT surface, key_id, status, rows, sql FROM system.queries "
                "WHERE sql LIKE '%system_e2e_marker%'"
            )
            queries = cur.fetch_arrow_table().to_pylist()
            mine = [q for q in queries if q["key_id"] == reader.id and q["status"] == "ok"]
            assert len(mine) == 1 and mine[0]["surface"] == "flight_sql" and mine[0]["rows"] == 1, queries
            cur.execute("SELECT table_name, rows FROM system.tables WHERE table_name = 'ad_performance'")
            assert cur.fetchone()[1] == marker
            cur.execute("SELECT count(*) FROM system.api_keys WHERE key_id = ?", parameters=(flight.keys["globex_reader"].id,))
            assert cur.fetchone()[0] == 0
