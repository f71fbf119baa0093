"""The sink's tables, writer and query server against the embedded engine (chdb 26.9).

One process can hold one chdb directory at a time, so every sink test uses the same per-process directory and
each test gets a database of its own. No Kafka: batches are built with the batcher directly."""

from __future__ import annotations

import json
import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError

from schemas import topics
from schemas.avro_schemas import AVRO_DIR
from schemas.codec import CodecError
from sinks.clickhouse import connect
from sinks.schema.ddl import cluster_ddl, write_migration
from sinks.schema.migrate import migrate
from sinks.schema.tables import Catalog, Engine, TableRule, load_catalog
from sinks.tools import sql
from sinks.tools.query_server import QueryServer
from sinks.write.batcher import Batcher, InsertBatch
from sinks.write.writer import FatalWriteError, RetryableWriteError, Writer
from tests.conftest import CHDB_URL

TOPIC = topics.OUT_CALLS
AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
THING: dict[str, Any] = {
    "type": "record",
    "name": "Call",  # the record name of TOPIC
    "doc": "a small versioned test record",
    "fields": [
        {"name": "tenant", "type": "string", "doc": "tenant"},
        {"name": "call_id", "type": "long", "doc": "identity"},
        {"name": "version", "type": "long", "doc": "version"},
        {"name": "created_at", "type": {"type": "long", "logicalType": "timestamp-millis"}, "doc": "created"},
        {
            "name": "price",
            "type": ["null", {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 6}],
            "default": None,
        },
        {
            "name": "origin",
            "type": [
                "null",
                {"type": "record", "name": "Leg", "fields": [{"name": "number", "type": ["null", "string"]}]},
            ],
            "default": None,
        },
    ],
}
RULES = (
    TableRule(
        "dead_letters", topics.DEADLETTER, Engine.APPEND, ("stage", "tenant", "received_at"), "received_at"
    ),
    TableRule("things", TOPIC, Engine.VERSIONED, ("tenant", "call_id")),
)




@pytest.fixture
def contracts(tmp_path: Path) -> Path:
    avro = tmp_path / "avro"
    avro.mkdir()
    shutil.copy(AVRO_DIR / "DeadLetter.avsc", avro)
    (avro / "out_Call.avsc").write_text(json.dumps(THING))
    return avro


@pytest.fixture
def catalogue(clickhouse: Client, contracts: Path, tmp_path: Path) -> Catalog:
    cat = load_catalog(contracts, RULES)
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    assert write_migration("initial", migrations, cat, clickhouse) is not None
    migrate(clickhouse, migrations)
    return cat


def thing(call_id: int, version: int, **extra: Any) -> dict[str, Any]:
    return {"tenant": "t1", "call_id": call_id, "version": version, "created_at": AT, **extra}


def batch_of(records: list[Any], first_offset: int = 0, partition: int = 0) -> InsertBatch:
    batcher = Batcher(lambda topic: "things", max_age_s=0)
    for i, record in enumerate(records):
        batcher.add(
            TOPIC.name, partition, first_offset + i, record, json.dumps(record, default=str).encode(), 0.0
        )
    [batch] = batcher.ready(now=0.0)
    return batch


def count(clickhouse: Client, sql_text: str) -> int:
    return int(clickhouse.query(sql_text).result_rows[0][0])


def test_generated_migration_adds_new_fields_and_refreshes_the_view(
    clickhouse: Client, catalogue: Catalog, contracts: Path, tmp_path: Path
) -> None:
    migrations = tmp_path / "migrations"
    assert write_migration("again", migrations, catalogue, clickhouse) is None
    evolved = {
        **THING,
        "fields": [*THING["fields"], {"name": "note", "type": ["null", "string"], "default": None}],
    }
    (contracts / "out_Call.avsc").write_text(json.dumps(evolved))
    path = write_migration("add note", migrations, load_catalog(contracts, RULES), clickhouse)
    assert path is not None and path.name == "0002_add_note.sql"
    text = path.read_text()
    assert (
        "ALTER TABLE `things` ADD COLUMN IF NOT EXISTS `note` Nullable(String) COMMENT '' "
        "AFTER `origin_number`" in text
    )
    assert "CREATE OR REPLACE VIEW `v_things` AS SELECT * FROM `things` FINAL" in text
    assert [m.version for m in migrate(clickhouse, migrations)] == [2]
    assert "note" in {row[0] for row in clickhouse.query("DESCRIBE v_things").result_rows}


def test_same_dedup_token_inserts_once_also_after_reopening_the_client(
    clickhouse: Client, catalogue: Catalog
) -> None:
    batch = batch_of([thing(1, 1), thing(2, 1)], first_offset=100)
    assert Writer(clickhouse, catalogue).write(batch).rows_inserted == 2
    Writer(clickhouse, catalogue).write(batch)
    database = clickhouse.database
    clickhouse.close()
    reopened = connect(CHDB_URL)
    reopened.database = database
    try:
        Writer(reopened, catalogue).write(batch)
        assert count(reopened, "SELECT count() FROM things") == 2
        Writer(reopened, catalogue).write(batch_of([thing(1, 1), thing(2, 1)], first_offset=102))
        assert count(reopened, "SELECT count() FROM things") == 4  # other offsets: a different token
    finally:
        reopened.close()


def test_view_shows_the_latest_version_only(clickhouse: Client, catalogue: Catalog) -> None:
    writer = Writer(clickhouse, catalogue)
    writer.write(batch_of([thing(1, 2, price=Decimal("1.5")), thing(2, 1)], first_offset=0))
    writer.write(
        batch_of([thing(1, 1, price=Decimal("9")), thing(1, 3, price=Decimal("2.25"))], first_offset=2)
    )
    rows = clickhouse.query("SELECT call_id, version, price FROM v_things ORDER BY call_id").result_rows
    assert rows == [(1, 3, Decimal("2.25")), (2, 1, None)]
    assert count(clickhouse, "SELECT count() FROM v_things WHERE version = 2") == 0  # filters after the collapse


def test_a_table_is_described_once_not_before_every_insert(
    clickhouse: Client, catalogue: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    describes = []
    create = clickhouse.create_insert_context

    def counting(table: str, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("column_types") and not (len(args) > 2 and args[2]):  # no types given: a DESCRIBE
            describes.append(table)
        return create(table, *args, **kwargs)

    monkeypatch.setattr(clickhouse, "create_insert_context", counting)
    writer = Writer(clickhouse, catalogue)
    for offset in range(3):
        writer.write(batch_of([thing(offset, 1)], first_offset=offset))
    assert describes == ["things"]
    assert count(clickhouse, "SELECT count() FROM v_things") == 3


def test_bad_records_go_to_dead_letters_and_the_rest_lands(clickhouse: Client, catalogue: Catalog) -> None:
    records = [thing(1, 1), thing("not-a-long", 1), thing(3, 1, price=Decimal("1e20")), thing(4, 1)]  # type: ignore[arg-type]
    batch = batch_of(records, first_offset=40, partition=3)
    result = Writer(clickhouse, catalogue).write(batch)
    assert (result.rows_inserted, result.dead_letters) == (2, 2)
    assert count(clickhouse, "SELECT count() FROM things") == 2
    dead = clickhouse.query(
        "SELECT stage, tenant, source_topic, source_partition, source_offset, error_type, reason, body "
        "FROM dead_letters ORDER BY source_offset"
    ).result_rows
    assert [(d[0], d[1], d[2], d[3], d[4], d[5]) for d in dead] == [
        (
            "sink",
            "t1",
            TOPIC.name,
            3,
            41,
            "RowError",
        ),
        ("sink", "t1", TOPIC.name, 3, 42, "RowError"),
    ]
    assert "call_id" in dead[0][6] and "decimal" in dead[1][6]
    Writer(clickhouse, catalogue).write(batch)  # replay: neither rows nor dead letters twice
    assert (
        count(clickhouse, "SELECT count() FROM dead_letters") == 2
        and count(clickhouse, "SELECT count() FROM things") == 2
    )


def test_an_undecodable_record_is_a_dead_letter_of_its_batch_and_committed_with_it(
    clickhouse: Client, catalogue: Catalog
) -> None:
    """Its offset is committed with the batch's: a partition that held only undecodable records still moves on."""
    batcher = Batcher(lambda topic: "things", max_age_s=0)
    batcher.add(TOPIC.name, 2, 70, thing(7, 1), b"good", 0.0)
    batcher.add(TOPIC.name, 2, 71, {}, b"\x00\x00\x00\x00\x07foreign", 0.0, {"kind": "x"},
                CodecError("not Avro single-object encoded"))
    batcher.add(TOPIC.name, 5, 9, {}, b"alone", 0.0, None, CodecError("not Avro single-object encoded"))
    [batch] = batcher.ready(now=0.0)
    assert batch.commit_offsets == {2: 72, 5: 10}
    result = Writer(clickhouse, catalogue).write(batch)
    assert (result.rows_inserted, result.dead_letters) == (1, 2)
    dead = clickhouse.query("SELECT source_partition, source_offset, error_type, body FROM dead_letters "
                            "ORDER BY source_partition").result_rows
    assert [(d[0], d[1], d[2]) for d in dead] == [(2, 71, "CodecError"), (5, 9, "CodecError")]
    assert dead[1][3] in ("alone", b"alone")


class FlakyClient:
    """Delegates to a real clickhouse; fails inserts of rows that contain a marker, or every insert."""

    def __init__(self, clickhouse: Client, error: Exception, marker: object | None = None) -> None:
        self.clickhouse, self.error, self.marker = clickhouse, error, marker
        self.inserts = 0

    def create_insert_context(self, *args: Any, **kwargs: Any) -> Any:
        return self.clickhouse.create_insert_context(*args, **kwargs)

    def insert(self, table: str, rows: list[list[Any]], **kwargs: Any) -> Any:
        self.inserts += 1
        if self.marker is None or any(self.marker in row for row in rows):
            raise self.error
        return self.clickhouse.insert(table, rows, **kwargs)


def test_insert_level_data_error_is_bisected_to_the_bad_record(clickhouse: Client, catalogue: Catalog) -> None:
    flaky = FlakyClient(clickhouse, ValueError("cannot serialize"), marker=13)
    records = [thing(i, 1) for i in range(10, 18)]
    result = Writer(flaky, catalogue).write(batch_of(records))  # type: ignore[arg-type]
    assert (result.rows_inserted, result.dead_letters) == (7, 1)
    assert clickhouse.query("SELECT source_offset, error_type FROM dead_letters").result_rows == [
        (3, "ValueError")
    ]


def test_connection_errors_are_retryable_and_schema_errors_fatal(clickhouse: Client, catalogue: Catalog) -> None:
    batch = batch_of([thing(1, 1)])
    with pytest.raises(RetryableWriteError):
        Writer(FlakyClient(clickhouse, OperationalError("connection refused")), catalogue).write(batch)  # type: ignore[arg-type]
    clickhouse.command("DROP TABLE things")
    with pytest.raises(FatalWriteError):
        Writer(clickhouse, catalogue).write(batch)


def test_cluster_ddl_parses(clickhouse: Client, catalogue: Catalog) -> None:
    for statement in cluster_ddl(catalogue.tables):
        assert clickhouse.query("SELECT formatQuery({q:String})", parameters={"q": statement}).result_rows


@pytest.fixture
def query_server(clickhouse: Client, catalogue: Catalog) -> Iterator[tuple[QueryServer, threading.Lock]]:
    readonly = connect(CHDB_URL, readonly=True)
    readonly.database = clickhouse.database
    lock = threading.Lock()
    server = QueryServer(readonly, lock, port=0).start()
    yield server, lock
    server.stop()
    readonly.close()


def http(url: str, sql_text: str | None = None, query: str = "") -> tuple[int, str]:
    data = sql_text.encode() if sql_text is not None else None
    try:
        with urllib.request.urlopen(
            urllib.request.Request(f"{url}/query{query}", data=data), timeout=10
        ) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_query_server_answers_selects_and_refuses_writes(
    clickhouse: Client, catalogue: Catalog, query_server: tuple[QueryServer, threading.Lock], capsysbinary: Any
) -> None:
    server, lock = query_server
    Writer(clickhouse, catalogue, lock=lock).write(batch_of([thing(1, 1), thing(2, 1)]))
    assert http(server.url, "SELECT call_id FROM v_things ORDER BY call_id") == (200, "call_id\n1\n2\n")
    status, body = http(server.url, query="?format=JSON&sql=SELECT%20count()%20AS%20n%20FROM%20things")
    assert status == 200 and json.loads(body)["data"] == [{"n": 2}]
    for refused in [
        "INSERT INTO things (tenant, call_id, version, created_at) VALUES ('t', 9, 1, now())",
        "SELECT 1; DROP TABLE things",
        "SELECT 1 INTO OUTFILE '/tmp/x'",
        "DROP TABLE things",
    ]:
        assert http(server.url, refused)[0] == 403, refused
    # Refused at the statement check or by the read-only session: the table is intact and writes still work.
    status, body = http(server.url, "SELECT * FROM file('/etc/hostname', 'LineAsString')")
    assert status == 400 and "readonly" in body.lower()
    Writer(clickhouse, catalogue, lock=lock).write(batch_of([thing(3, 1)], first_offset=10))
    assert sql.main(["SELECT count() FROM things", "--query-url", server.url]) == 0
    assert capsysbinary.readouterr().out == b"count()\n3\n"
