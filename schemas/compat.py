"""Can the current schema read data written with an older one? Static Avro resolution check plus a real read.

``problems(reader, writer)`` lists why data written with ``writer`` would not be readable as ``reader``
(Avro schema resolution: missing defaults, narrowed types, changed logical types, lost enum symbols), and
fields dropped from ``writer`` although they had no default (consumers still on the old schema could not read
new data). ``read_problems`` writes generated samples with ``writer`` and reads them with ``reader``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from io import BytesIO
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import expand_schema

from schemas.avro_schemas import short_name

# Avro's allowed promotions: writer type -> reader types that can read it.
_PROMOTIONS: dict[str, set[str]] = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}
_NAMED = {"record", "enum", "fixed"}


def _type(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        return str(schema["type"]) if not isinstance(schema["type"], dict | list) else _type(schema["type"])
    return str(schema)


def _logical(schema: Any) -> tuple[Any, ...] | None:
    if isinstance(schema, dict) and "logicalType" in schema:
        return (schema["logicalType"], schema.get("precision"), schema.get("scale", 0))
    return None


def _same_name(reader: dict[str, Any], writer: dict[str, Any]) -> bool:
    aliases = {short_name(a) for a in reader.get("aliases", [])}
    return short_name(writer["name"]) in {short_name(reader["name"]), *aliases}


def _matches(reader: Any, writer: Any) -> bool:
    """Whether a (non-union) reader branch is the one Avro picks for a (non-union) writer type."""
    r_type, w_type = _type(reader), _type(writer)
    if r_type in _NAMED or w_type in _NAMED:
        return r_type == w_type and _same_name(reader, writer)
    return r_type == w_type or r_type in _PROMOTIONS.get(w_type, set())


def _resolve(reader: Any, writer: Any, path: str, out: list[str]) -> None:
    if isinstance(writer, list):
        for branch in writer:
            _resolve(reader, branch, path, out)
        return
    if isinstance(reader, list):
        branch = next((b for b in reader if _matches(b, writer)), None)
        if branch is None:
            out.append(f"{path}: writer type {_type(writer)} matches no branch of the reader union")
        else:
            _resolve(branch, writer, path, out)
        return
    if not _matches(reader, writer):
        out.append(f"{path}: writer type {_type(writer)} cannot be read as {_type(reader)}")
        return
    if _logical(reader) != _logical(writer):
        out.append(f"{path}: logical type changed from {_logical(writer)} to {_logical(reader)}")
        return
    kind = _type(reader)
    if kind == "record":
        _resolve_record(reader, writer, path, out)
    elif kind == "enum":
        lost = set(writer["symbols"]) - set(reader["symbols"])
        if lost and "default" not in reader:
            out.append(f"{path}: enum symbols {sorted(lost)} removed and the reader has no default")
    elif kind == "fixed" and reader["size"] != writer["size"]:
        out.append(f"{path}: fixed size changed from {writer['size']} to {reader['size']}")
    elif kind == "array":
        _resolve(reader["items"], writer["items"], f"{path}[]", out)
    elif kind == "map":
        _resolve(reader["values"], writer["values"], f"{path}{{}}", out)


def _resolve_record(reader: dict[str, Any], writer: dict[str, Any], path: str, out: list[str]) -> None:
    written = {f["name"]: f for f in writer["fields"]}
    matched: set[str] = set()
    for field in reader["fields"]:
        names = [field["name"], *field.get("aliases", [])]
        source = next((written[n] for n in names if n in written), None)
        if source is None:
            if "default" not in field:
                out.append(f"{path}.{field['name']}: added without a default")
            continue
        matched.add(source["name"])
        _resolve(field["type"], source["type"], f"{path}.{field['name']}", out)
    for name, field in written.items():
        if name not in matched and "default" not in field:
            out.append(f"{path}.{name}: removed although it had no default")


def _expanded(schema: Any) -> Any:
    return expand_schema(parse_schema(schema, named_schemas={}))


def problems(reader: Any, writer: Any) -> list[str]:
    """Static incompatibilities of reading ``writer`` data with ``reader``; empty when compatible."""
    found: list[str] = []
    root = _expanded(reader)
    name = root.get("name", "$") if isinstance(root, dict) else "$"
    _resolve(root, _expanded(writer), short_name(name), found)
    return found


def sample(schema: Any, *, full: bool) -> Any:
    """A datum of ``schema`` (expanded): every optional value set when ``full``, else nulls and empties."""
    if isinstance(schema, list):
        non_null = [b for b in schema if b != "null"]
        if "null" in schema and (not full or not non_null):
            return None
        return sample(non_null[0], full=full)
    logical = _logical(schema)
    if logical is not None:
        by_logical = {
            "timestamp-millis": datetime(2020, 1, 2, 3, 4, 5, 6000, tzinfo=UTC),
            "timestamp-micros": datetime(2020, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
            "date": date(2020, 1, 2),
            "time-millis": time(3, 4, 5, 6000),
            "time-micros": time(3, 4, 5, 6),
            "decimal": Decimal(1).scaleb(-int(logical[2] or 0)),
            "uuid": "00000000-0000-4000-8000-000000000000",
        }
        if logical[0] in by_logical:
            return by_logical[logical[0]]
    kind = _type(schema)
    if kind == "record":
        return {f["name"]: sample(f["type"], full=full) for f in schema["fields"]}
    if kind == "enum":
        return schema["symbols"][0]
    if kind == "fixed":
        return b"\x01" * schema["size"]
    if kind == "array":
        return [sample(schema["items"], full=full)] if full else []
    if kind == "map":
        return {"k": sample(schema["values"], full=full)} if full else {}
    primitives: dict[str, Any] = {
        "null": None,
        "boolean": True,
        "int": 7,
        "long": 7,
        "float": 1.5,
        "double": 1.5,
        "string": "x",
        "bytes": b"x",
    }
    return primitives[kind]


def read_problems(reader: Any, writer: Any) -> list[str]:
    """Write a minimal and a full sample with ``writer``, read them with ``reader``; report failures."""
    parsed_writer = parse_schema(writer, named_schemas={})
    parsed_reader = parse_schema(reader, named_schemas={})
    found = []
    for full in (False, True):
        datum = sample(expand_schema(parsed_writer), full=full)
        buffer = BytesIO()
        try:
            schemaless_writer(buffer, parsed_writer, datum)
            buffer.seek(0)
            schemaless_reader(buffer, parsed_writer, parsed_reader)
        except Exception as exc:  # any failure is the answer: the data is unreadable
            found.append(f"{'full' if full else 'minimal'} sample: {type(exc).__name__}: {exc}")
    return found
