"""Migrations against the embedded engine. One process can hold one chdb directory at a time, so every test
file of the sink uses the same per-process directory and each test gets a database of its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from sinks.schema.data_dictionary import PATH, render
from sinks.schema.ddl import migration_gap
from sinks.schema.migrate import MIGRATIONS_DIR, MigrationError, migrate
from sinks.schema.tables import catalog


def test_committed_migrations_cover_every_field_of_the_current_avro_schemas(clickhouse: Client) -> None:
    gap = migration_gap(clickhouse, MIGRATIONS_DIR, catalog())
    assert gap == [], "run `python -m sinks.schema.ddl --write-migration <name>` and commit the file:\n" + "\n".join(
        gap
    )


def test_migrations_apply_once_and_re_apply_as_a_no_op(clickhouse: Client) -> None:
    applied = migrate(clickhouse)
    assert [m.version for m in applied] == list(range(1, len(applied) + 1))
    assert migrate(clickhouse) == []
    tables = {
        r[0]
        for r in clickhouse.query("SELECT name FROM system.tables WHERE database = currentDatabase()").result_rows
    }
    assert {"schema_migrations", "calls", "v_calls", "dead_letters", "call_snapshots"} <= tables


def test_edited_or_unknown_applied_migration_stops_the_migration(clickhouse: Client, tmp_path: Path) -> None:
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE IF NOT EXISTS a (x Int8) ENGINE = Memory;\n")
    assert [m.name for m in migrate(clickhouse, tmp_path)] == ["first"]
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE IF NOT EXISTS a (x Int16) ENGINE = Memory;\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(clickhouse, tmp_path)
    (tmp_path / "0001_first.sql").unlink()
    with pytest.raises(MigrationError, match="does not know"):
        migrate(clickhouse, tmp_path)


def test_failed_migration_is_not_recorded_and_runs_again(clickhouse: Client, tmp_path: Path) -> None:
    (tmp_path / "0001_x.sql").write_text(
        "-- two statements, the second fails\nCREATE TABLE IF NOT EXISTS a (x Int8) ENGINE = Memory;\n"
        "SELECT no_such_function();\n"
    )
    with pytest.raises(Exception, match="no_such_function"):
        migrate(clickhouse, tmp_path)
    (tmp_path / "0001_x.sql").write_text("CREATE TABLE IF NOT EXISTS a (x Int8) ENGINE = Memory;\n")
    assert [m.version for m in migrate(clickhouse, tmp_path)] == [1]


def test_data_dictionary_is_up_to_date() -> None:
    assert PATH.read_text(encoding="utf-8") == render(catalog()), (
        "run `python -m sinks.schema.data_dictionary --write`"
    )
