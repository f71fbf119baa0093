"""ClickHouse DDL derived from the table catalogue (Avro contracts + ``sinks.schema.tables`` rules).

``python -m sinks.schema.ddl --write-migration NAME`` writes the next ``sinks/migrations/NNNN_NAME.sql`` with what
the current contracts need beyond the committed migrations (new tables, new columns, changed types or docs);
``python -m sinks.schema.ddl --cluster`` prints the replicated + distributed variant of the whole schema.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from clickhouse_connect.driver.client import Client

from sinks.clickhouse import connect
from sinks.schema.columns import Column, logical_type, type_name
from sinks.schema.migrate import MIGRATIONS_DIR, migrate, migration_files
from sinks.schema.tables import VERSION_COLUMN, Catalog, Engine, TableSpec, catalog

LOW_CARDINALITY_FIELDS = frozenset(
    {"kind", "tenant", "status", "type", "stage", "error_type", "event", "overall_status", "disconnect_text"}
)
"""String fields with a handful of distinct values (by leaf field name, so ``origin_status`` counts too)."""
DEDUP_WINDOW = 1000
CLUSTER = "'{cluster}'"
_PRIMITIVE_TYPES = {
    "int": "Int32",
    "long": "Int64",
    "float": "Float32",
    "double": "Float64",
    "boolean": "Bool",
    "bytes": "String",
    "fixed": "String",
    "string": "String",
}


def quote_ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_string(text: str) -> str:
    # Newlines are escaped too: migration files are split into statements at a `;` that ends a line.
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{escaped}'"


def _value_type(avro: object) -> str:
    kind, logical = type_name(avro), logical_type(avro)
    if logical == "timestamp-millis":
        return "DateTime64(3, 'UTC')"
    if logical == "timestamp-micros":
        return "DateTime64(6, 'UTC')"
    if logical == "date":
        return "Date32"
    if logical == "decimal":
        assert isinstance(avro, dict)
        return f"Decimal({int(avro['precision'])}, {int(avro.get('scale', 0))})"
    if kind == "array":
        assert isinstance(avro, dict)
        return f"Array({_value_type(avro['items'])})"
    if kind == "map":
        assert isinstance(avro, dict)
        return f"Map(String, {_value_type(avro['values'])})"
    if kind == "enum":
        return "LowCardinality(String)"
    return _PRIMITIVE_TYPES[kind]


def clickhouse_type(column: Column) -> str:
    if column.json:
        return "Nullable(String)" if column.nullable else "String"
    base = _value_type(column.avro)
    low_cardinality = (
        base == "String" and type_name(column.avro) == "string" and column.path[-1] in LOW_CARDINALITY_FIELDS
    )
    if base.startswith("LowCardinality("):
        low_cardinality, base = True, "String"
    # ClickHouse has no Nullable(Array)/Nullable(Map): sinks/write/rows.py stores null as empty instead.
    if column.nullable and not base.startswith(("Array(", "Map(")):
        base = f"Nullable({base})"
    return f"LowCardinality({base})" if low_cardinality else base


def column_definition(column: Column) -> str:
    return f"{quote_ident(column.name)} {clickhouse_type(column)} COMMENT {quote_string(column.doc)}"


def _engine(spec: TableSpec, local_name: str, replicated: bool) -> str:
    family = {
        Engine.VERSIONED: "ReplacingMergeTree",
        Engine.EVENTS: "ReplacingMergeTree",
        Engine.APPEND: "MergeTree",
    }
    args = [quote_ident(VERSION_COLUMN)] if spec.engine is Engine.VERSIONED else []
    if replicated:
        args = [quote_string(f"/clickhouse/tables/{{shard}}/{{database}}/{local_name}"), "'{replica}'", *args]
    name = ("Replicated" if replicated else "") + family[spec.engine]
    time = quote_ident(spec.time_column)
    if spec.column(spec.time_column).nullable:
        time = f"ifNull({time}, toDateTime64(0, 3, 'UTC'))"
    return (
        f"ENGINE = {name}({', '.join(args)})\n"
        f"PARTITION BY toYYYYMM({time})\n"
        f"ORDER BY ({', '.join(quote_ident(c) for c in spec.order_by)})\n"
        f"SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}"
    )


def _create_table(spec: TableSpec, name: str, on_cluster: str, replicated: bool) -> str:
    columns = ",\n".join(f"    {column_definition(c)}" for c in spec.columns)
    return (
        f"CREATE TABLE IF NOT EXISTS {quote_ident(name)}{on_cluster}\n(\n{columns}\n)\n"
        f"{_engine(spec, name, replicated)}\n"
        f"COMMENT {quote_string(spec.record.doc)}"
    )


def create_table(spec: TableSpec) -> str:
    return _create_table(spec, spec.name, "", replicated=False)


def create_view(spec: TableSpec, replace: bool = False, on_cluster: str = "") -> str:
    """FINAL, not argMax: it keeps every column without listing them and returns the row of the highest
    version (ties: the last inserted), across partitions; a WHERE on the view filters after the collapse."""
    assert spec.view is not None
    verb = "CREATE OR REPLACE VIEW" if replace else "CREATE VIEW IF NOT EXISTS"
    return f"{verb} {quote_ident(spec.view)}{on_cluster} AS SELECT * FROM {quote_ident(spec.name)} FINAL"


def _sharding_key(spec: TableSpec) -> str:
    # All versions of one entity must live on one shard, or FINAL cannot collapse them.
    if spec.engine is Engine.APPEND:
        return "rand()"
    return f"cityHash64({', '.join(quote_ident(c) for c in spec.order_by)})"


def cluster_ddl(specs: Iterable[TableSpec]) -> list[str]:
    """Replicated local tables ``<table>_local``, a Distributed ``<table>`` over them and the views, all
    ``ON CLUSTER '{cluster}'``: the sink and analysts use the same names as on a single node."""
    on_cluster = f" ON CLUSTER {CLUSTER}"
    statements: list[str] = []
    for spec in specs:
        local = f"{spec.name}_local"
        statements.append(_create_table(spec, local, on_cluster, replicated=True))
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {quote_ident(spec.name)}{on_cluster} AS {quote_ident(local)}\n"
            f"ENGINE = Distributed({CLUSTER}, currentDatabase(), {quote_string(local)}, "
            f"{_sharding_key(spec)})"
        )
        if spec.view is not None:
            statements.append(create_view(spec, on_cluster=on_cluster))
    return statements


@dataclass(frozen=True)
class ExistingColumn:
    type: str
    comment: str


def existing_columns(client: Client) -> dict[str, dict[str, ExistingColumn]]:
    """Columns of the tables in the client's current database (views and ``schema_migrations`` included)."""
    result = client.query(
        "SELECT table, name, type, comment FROM system.columns WHERE database = currentDatabase() "
        "ORDER BY table, position"
    )
    tables: dict[str, dict[str, ExistingColumn]] = {}
    for table, name, type_, comment in result.result_rows:
        tables.setdefault(table, {})[name] = ExistingColumn(type_, comment)
    return tables


def pending_statements(client: Client, specs: Iterable[TableSpec]) -> list[str]:
    """What the database behind ``client`` lacks for ``specs``: new tables and views, new columns (placed
    after their predecessor), changed types and docs; views are recreated when their table changed, because
    a view's column list is fixed when it is created (checked on ClickHouse 26.9)."""
    existing = existing_columns(client)
    statements: list[str] = []
    for spec in specs:
        have = existing.get(spec.name)
        if have is None:
            statements.append(create_table(spec))
            if spec.view is not None:
                statements.append(create_view(spec))
            continue
        table, changed = quote_ident(spec.name), False
        previous: str | None = None
        for column in spec.columns:
            wanted, current = clickhouse_type(column), have.get(column.name)
            if current is None:
                place = f" AFTER {quote_ident(previous)}" if previous else " FIRST"
                statements.append(
                    f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column_definition(column)}{place}"
                )
                changed = True
            elif current.type != wanted:
                statements.append(f"ALTER TABLE {table} MODIFY COLUMN {column_definition(column)}")
                changed = True
            elif current.comment != column.doc:
                comment = quote_string(column.doc)
                statements.append(f"ALTER TABLE {table} COMMENT COLUMN {quote_ident(column.name)} {comment}")
            previous = column.name
        if spec.view is not None and (changed or spec.view not in existing):
            statements.append(create_view(spec, replace=True))
    return statements


def render_migration(name: str, statements: list[str]) -> str:
    header = f"-- {name}: written by `python -m sinks.schema.ddl --write-migration` from schemas/avro; review it.\n"
    return header + "".join(f"\n{statement};\n" for statement in statements)


def migration_gap(client: Client, directory: Path, catalogue: Catalog) -> list[str]:
    """What the committed migrations lack for ``catalogue``: they are applied to a scratch database of
    ``client`` (dropped afterwards), which is compared with the contracts."""
    scratch, database = f"sinks_ddl_{uuid.uuid4().hex}", client.database
    client.command(f"CREATE DATABASE {scratch}")
    try:
        client.database = scratch
        migrate(client, directory)
        return pending_statements(client, catalogue.tables)
    finally:
        client.database = database or "default"
        client.command(f"DROP DATABASE IF EXISTS {scratch}")


def write_migration(name: str, directory: Path, catalogue: Catalog, client: Client) -> Path | None:
    """Write the next numbered migration; ``None`` when the migrations already match the contracts."""
    statements = migration_gap(client, directory, catalogue)
    if not statements:
        return None
    number = max((m.version for m in migration_files(directory)), default=0) + 1
    slug = "".join(ch if ch.isalnum() else "_" for ch in name.lower()).strip("_")
    path = directory / f"{number:04d}_{slug}.sql"
    path.write_text(render_migration(path.stem, statements), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sinks.schema.ddl", description=__doc__)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write-migration", metavar="NAME", help="write the next migration file")
    action.add_argument("--cluster", action="store_true", help="print the ON CLUSTER DDL")
    parser.add_argument("--migrations-dir", type=Path, default=MIGRATIONS_DIR)
    args = parser.parse_args(argv)
    if args.cluster:
        sys.stdout.write("".join(f"{s};\n\n" for s in cluster_ddl(catalog().tables)))
        return 0
    with tempfile.TemporaryDirectory(prefix="sinks-ddl-") as scratch:
        client = connect(f"chdb://{scratch}")
        try:
            path = write_migration(args.write_migration, args.migrations_dir, catalog(), client)
        finally:
            client.close()
    print(f"wrote {path}" if path else "migrations already match the Avro schemas; nothing written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
