"""Reads the Avro record contracts (``*.avsc``) with every named-type reference inlined.

Flattening a record into columns needs the full definition at each use site: a schema may define ``CallLeg``
once and refer to it by name for the second leg.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas.avro_schemas import AVRO_DIR

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "enum", "fixed"})


class AvroSchemaError(ValueError):
    pass


@dataclass(frozen=True)
class RecordSchema:
    name: str
    """Short record name, e.g. ``CallSnapshot``."""
    doc: str
    fields: tuple[dict[str, Any], ...]
    """Avro field objects; their types have every named reference replaced by the definition."""


def _full_name(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _inline(schema: Any, namespace: str | None, names: dict[str, Any], stack: tuple[str, ...]) -> Any:
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return schema
        for candidate in (_full_name(schema, namespace), schema):
            if candidate in names:
                if candidate in stack:
                    raise AvroSchemaError(f"recursive type {candidate} cannot be flattened into columns")
                return names[candidate]
        raise AvroSchemaError(f"unknown Avro type {schema!r}")
    if isinstance(schema, list):
        return [_inline(branch, namespace, names, stack) for branch in schema]
    kind = schema["type"]
    if kind in _NAMED:
        full = _full_name(schema["name"], schema.get("namespace", namespace))
        inner_ns = full.rpartition(".")[0] or None
        resolved = dict(schema)
        if kind == "record":
            # Registered before the fields so that a field refers to it and is caught as recursion.
            names[full] = resolved
            resolved["fields"] = [
                {**f, "type": _inline(f["type"], inner_ns, names, (*stack, full))} for f in schema["fields"]
            ]
        names[full] = resolved
        return resolved
    if kind == "array":
        return {**schema, "items": _inline(schema["items"], namespace, names, stack)}
    if kind == "map":
        return {**schema, "values": _inline(schema["values"], namespace, names, stack)}
    if isinstance(kind, str) and kind in PRIMITIVES:
        return schema
    # {"type": <named reference or nested type>} wraps a type without adding anything.
    return _inline(kind, namespace, names, stack)


def parse_record(schema: dict[str, Any]) -> RecordSchema:
    if schema.get("type") != "record":
        raise AvroSchemaError(f"top-level schema {schema.get('name')!r} is not a record")
    resolved = _inline(schema, None, {}, ())
    return RecordSchema(
        name=str(schema["name"]).rpartition(".")[2],
        doc=str(schema.get("doc", "")),
        fields=tuple(resolved["fields"]),
    )


def load_records(directory: Path = AVRO_DIR) -> dict[str, RecordSchema]:
    """Every current top-level record schema in ``directory`` by short name (``history/`` is not read)."""
    records = [
        parse_record(json.loads(p.read_text(encoding="utf-8"))) for p in sorted(directory.glob("*.avsc"))
    ]
    return {r.name: r for r in records}
