"""The Avro contracts in ``schemas/avro``: loaded once, looked up by record name or by fingerprint.

Every ``*.avsc`` directly in ``schemas/avro`` is a current schema (including the ``out_*.avsc`` files of the
streams stage); ``schemas/avro/history/<RecordName>/v<N>.avsc`` keeps every version ever written, so data
written with an old version stays readable.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint as _crc64_hex
from fastavro.schema import to_parsing_canonical_form

AVRO_DIR = Path(__file__).parent / "avro"
HISTORY_DIR = AVRO_DIR / "history"
NAMESPACE = "callpipe.v1"


@dataclass(frozen=True)
class SchemaVersion:
    name: str
    """Short record name, e.g. ``CallLegEvent``."""
    version: int | None
    """``None`` for the current schema, N for ``history/<name>/vN.avsc``."""
    text: str
    """The schema JSON as compact text, logical types and docs included (what a registry stores)."""
    parsed: dict[str, Any]
    """fastavro-parsed schema, ready for schemaless_writer/reader and validation."""
    fingerprint: bytes
    """CRC-64-AVRO of the Parsing Canonical Form, 8 bytes little-endian (as in single-object encoding)."""
    record_unions: tuple[tuple[str, str], ...]
    """(field, record full name) of each top-level field that is a union of null and one record."""

    def tag_unions(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record with each non-null `record_unions` value in fastavro's tuple notation, which names the union
        branch: fastavro otherwise validates the whole nested record against each branch before writing it."""
        if not self.record_unions:
            return record
        tagged = dict(record)
        for field, branch in self.record_unions:
            value = tagged.get(field)
            if value is not None:
                tagged[field] = (branch, value)
        return tagged


@dataclass(frozen=True)
class _Catalog:
    current: dict[str, SchemaVersion]
    history: dict[str, list[SchemaVersion]]
    by_fingerprint: dict[bytes, SchemaVersion]


def _load(path: Path, version: int | None) -> SchemaVersion:
    try:
        return from_text(path.read_text(encoding="utf-8"), version)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def from_text(text: str, version: int | None = None) -> SchemaVersion:
    """A record schema from its JSON text (a file's, or what a registry holds); ValueError when it is none."""
    raw = json.loads(text)
    # A fresh named_schemas per schema: current and historical versions reuse the same record names.
    parsed = parse_schema(raw, named_schemas={})
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        raise ValueError("top-level schema must be a record")
    return SchemaVersion(
        name=short_name(parsed["name"]),
        version=version,
        text=json.dumps(raw, separators=(",", ":"), ensure_ascii=False),
        parsed=parsed,
        fingerprint=bytes.fromhex(_crc64_hex(to_parsing_canonical_form(raw), "CRC-64-AVRO")),
        record_unions=tuple(_record_unions(parsed)),
    )


def _record_unions(parsed: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for field in parsed["fields"]:
        branches = field["type"]
        if not isinstance(branches, list) or len(branches) != 2 or "null" not in branches:
            continue
        other = branches[1] if branches[0] == "null" else branches[0]
        if isinstance(other, dict) and other.get("type") == "record":
            yield field["name"], other["name"]
        elif isinstance(other, str) and "." in other:  # a reference to a record defined earlier (full name)
            yield field["name"], other


def _version_number(path: Path) -> int:
    if not (path.stem.startswith("v") and path.stem[1:].isdigit()):
        raise ValueError(f"{path}: history files must be named v<N>.avsc")
    return int(path.stem[1:])


def read_current(directory: Path = AVRO_DIR) -> dict[str, SchemaVersion]:
    """The current schemas of a contracts directory by short name (``history/`` is not read)."""
    current: dict[str, SchemaVersion] = {}
    for path in sorted(directory.glob("*.avsc")):
        loaded = _load(path, None)
        if loaded.name in current:
            raise ValueError(f"{path}: record {loaded.name} is defined twice")
        current[loaded.name] = loaded
    return current


@cache
def _catalog() -> _Catalog:
    current = read_current()
    history: dict[str, list[SchemaVersion]] = {}
    for path in sorted(HISTORY_DIR.glob("*/v*.avsc")):
        loaded = _load(path, _version_number(path))
        if loaded.name != path.parent.name:
            raise ValueError(f"{path}: holds record {loaded.name}, not {path.parent.name}")
        history.setdefault(loaded.name, []).append(loaded)
    for versions in history.values():
        versions.sort(key=lambda v: v.version or 0)
    by_fp: dict[bytes, SchemaVersion] = {}
    for versions in history.values():
        for old in versions:
            by_fp[old.fingerprint] = old
    # Same canonical form means the same binary layout; the current file wins for its logical types.
    by_fp.update({v.fingerprint: v for v in current.values()})
    return _Catalog(current, history, by_fp)


def short_name(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def names() -> list[str]:
    """Short names of every current record schema."""
    return sorted(_catalog().current)


def current(name: str) -> SchemaVersion:
    """The current version of a record (short or full name); KeyError when unknown."""
    try:
        return _catalog().current[short_name(name)]
    except KeyError:
        raise KeyError(f"no Avro schema named {name!r} in {AVRO_DIR}") from None


def schema(name: str) -> dict[str, Any]:
    return current(name).parsed


def raw_schema(name: str) -> str:
    return current(name).text


def fingerprint(name: str) -> bytes:
    return current(name).fingerprint


def history(name: str) -> list[SchemaVersion]:
    """Historical versions of a record, oldest first (empty when none were kept)."""
    return list(_catalog().history.get(short_name(name), []))


def by_fingerprint(fp: bytes) -> SchemaVersion:
    """The current or historical schema with this CRC-64-AVRO fingerprint; KeyError when unknown."""
    try:
        return _catalog().by_fingerprint[fp]
    except KeyError:
        raise KeyError(f"no Avro schema with fingerprint {fp.hex()}") from None
