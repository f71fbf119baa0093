"""The Avro record contracts with every named-type reference inlined, for flattening into columns.

Flattening a record needs the full definition at each use site: a schema may define ``CallLeg`` once and refer to
it by name for the second leg. The contracts are read by the project's one loader (`schemas/avro_schemas.py`) and
expanded by fastavro's own `expand_schema`; what it leaves as a name is a recursive type, which has no columns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastavro.schema import SchemaParseException, UnknownType, expand_schema

from schemas import avro_schemas

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


class AvroSchemaError(ValueError):
    pass


@dataclass(frozen=True)
class RecordSchema:
    name: str
    """Short record name, e.g. ``CallSnapshot``."""
    doc: str
    fields: tuple[dict[str, Any], ...]
    """Avro field objects; their types have every named reference replaced by the definition."""


def _refuse_references(schema: Any) -> None:
    """A name left after expansion refers to a record being defined: recursion."""
    if isinstance(schema, str):
        if schema not in PRIMITIVES:
            raise AvroSchemaError(f"recursive type {schema} cannot be flattened into columns")
    elif isinstance(schema, list):
        for branch in schema:
            _refuse_references(branch)
    elif isinstance(schema, dict):
        kind = schema["type"]
        if kind == "record":
            for field in schema["fields"]:
                _refuse_references(field["type"])
        elif kind == "array":
            _refuse_references(schema["items"])
        elif kind == "map":
            _refuse_references(schema["values"])
        elif kind not in ("enum", "fixed"):
            _refuse_references(kind)


def parse_record(schema: dict[str, Any]) -> RecordSchema:
    if schema.get("type") != "record":
        raise AvroSchemaError(f"top-level schema {schema.get('name')!r} is not a record")
    try:
        resolved: dict[str, Any] = expand_schema(schema)  # type: ignore[assignment]  # a record stays a dict
    except (SchemaParseException, UnknownType) as exc:
        raise AvroSchemaError(f"{schema.get('name')}: {exc}") from exc
    _refuse_references(resolved)
    return RecordSchema(
        name=avro_schemas.short_name(str(schema["name"])),
        doc=str(schema.get("doc", "")),
        fields=tuple(resolved["fields"]),
    )


def load_records(directory: Path = avro_schemas.AVRO_DIR) -> dict[str, RecordSchema]:
    """Every current top-level record schema of a contracts directory by short name."""
    return {name: parse_record(json.loads(version.text))
            for name, version in avro_schemas.read_current(directory).items()}
