"""The flattening of an Avro record into ClickHouse columns (the write path's sinks/write/rows.py turns a decoded
record into a row of them).

This is the one place that knows how a record becomes columns; sinks/schema/ddl.py derives the column types
from the same ``Column`` list, so names can never drift between the DDL and the inserts.

Rules:
- a nested record becomes one column per leaf field, named ``<parent>_<child>`` (``origin.number`` ->
  ``origin_number``); when the parent is nullable every child column is nullable;
- arrays and maps of primitives stay ``Array``/``Map`` columns; a null array/map is stored as empty, because
  ClickHouse has no ``Nullable(Array)``/``Nullable(Map)``;
- arrays or maps of records (and unions of several non-null types) are stored as JSON text: a ``Tuple`` column
  cannot gain an element with ``ADD COLUMN``, so every change of the nested record would need a table
  rewrite, while JSON text follows schema evolution for free (decimals are JSON strings, timestamps ISO 8601,
  bytes hex).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sinks.schema.avro import AvroSchemaError, RecordSchema

NO_DEFAULT: Any = object()
SUPPORTED_LOGICAL = frozenset({"timestamp-millis", "timestamp-micros", "date", "decimal", "uuid"})


@dataclass(frozen=True)
class Column:
    name: str
    path: tuple[str, ...]
    """Field names from the record root to the value."""
    avro: Any
    """Non-null Avro type of the value, named references inlined."""
    nullable: bool
    json: bool
    """Stored as JSON text (see module doc)."""
    doc: str
    defaults: tuple[Any, ...]
    """Avro default of each field along ``path`` (``NO_DEFAULT`` when none): used when a key is absent."""


def type_name(avro: Any) -> str:
    return avro if isinstance(avro, str) else str(avro["type"])


def logical_type(avro: Any) -> str | None:
    return None if isinstance(avro, str) else avro.get("logicalType")


def _is_complex(avro: Any) -> bool:
    return isinstance(avro, list) or type_name(avro) in {"record", "array", "map"}


def _split_union(avro: Any) -> tuple[Any, bool, bool]:
    """(non-null type, nullable, needs JSON)."""
    if not isinstance(avro, list):
        return avro, False, False
    branches = [b for b in avro if b != "null"]
    nullable = len(branches) < len(avro)
    if len(branches) == 1:
        return branches[0], nullable, False
    return branches, nullable, True


def _flatten(
    fields: tuple[dict[str, Any], ...] | list[dict[str, Any]],
    prefix: tuple[str, ...],
    defaults: tuple[Any, ...],
    parent_nullable: bool,
) -> list[Column]:
    columns: list[Column] = []
    for field in fields:
        path = (*prefix, field["name"])
        path_defaults = (*defaults, field.get("default", NO_DEFAULT))
        avro, nullable, as_json = _split_union(field["type"])
        nullable = nullable or parent_nullable
        if not as_json and type_name(avro) == "record":
            columns += _flatten(avro["fields"], path, path_defaults, nullable)
            continue
        if not as_json and type_name(avro) == "array":
            as_json = _is_complex(avro["items"])
        if not as_json and type_name(avro) == "map":
            as_json = _is_complex(avro["values"])
        logical = None if as_json else logical_type(avro)
        if logical is not None and logical not in SUPPORTED_LOGICAL:
            raise AvroSchemaError(f"field {'.'.join(path)}: logical type {logical} has no column mapping")
        columns.append(
            Column("_".join(path), path, avro, nullable, as_json, str(field.get("doc", "")), path_defaults)
        )
    return columns


def flatten(record: RecordSchema) -> list[Column]:
    columns = _flatten(record.fields, (), (), False)
    seen: dict[str, Column] = {}
    for column in columns:
        if column.name in seen:
            raise AvroSchemaError(
                f"{record.name}: fields {'.'.join(seen[column.name].path)} and {'.'.join(column.path)} "
                f"both flatten to column {column.name}"
            )
        seen[column.name] = column
    return columns


