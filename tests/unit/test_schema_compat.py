"""Schema contracts: conventions of every .avsc, backward compatibility with history, DESIGN.md in sync."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from schemas import avro_schemas, compat
from schemas.topics import (
    ALL_TOPICS,
    DEADLETTER,
    INPUT_TOPICS,
    KIND_TOPICS,
    OUTPUT_TOPICS,
    RAW,
    markdown_table,
)

DESIGN = Path(__file__).parents[2] / "docs" / "DESIGN.md"
OWN_RECORDS = sorted({t.schema for t in (RAW, *INPUT_TOPICS, DEADLETTER)})
ENVELOPE = ["event_id", "kind", "tenant", "received_at", "extra_json"]
TIMESTAMP = {"type": "long", "logicalType": "timestamp-millis"}
MONEY = {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 6}


def raw(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(avro_schemas.raw_schema(name))
    return loaded


def all_fields(schema: Any) -> list[dict[str, Any]]:
    """Fields of a raw schema, nested records included."""
    found: list[dict[str, Any]] = []
    if isinstance(schema, list):
        for branch in schema:
            found += all_fields(branch)
    elif isinstance(schema, dict) and schema.get("type") == "record":
        for field in schema["fields"]:
            found.append(field)
            found += all_fields(field["type"])
    return found


# --- conventions


def test_every_topic_record_of_this_stage_has_a_schema_file() -> None:
    assert set(OWN_RECORDS) <= set(avro_schemas.names())
    for name in OWN_RECORDS:
        assert (avro_schemas.AVRO_DIR / f"{name}.avsc").is_file()


def test_every_schema_file_parses_into_one_record() -> None:
    """Includes the streams stage's out_*.avsc: the loader picks up every file in schemas/avro."""
    files = sorted(avro_schemas.AVRO_DIR.glob("*.avsc"))
    assert len(files) == len(avro_schemas.names())


@pytest.mark.parametrize("name", OWN_RECORDS)
def test_schema_conventions(name: str) -> None:
    schema = raw(name)
    assert schema["namespace"] == "callpipe.v1"
    for field in all_fields(schema):
        assert field.get("doc"), f"{name}.{field['name']} has no doc naming its source"
        branches = field["type"] if isinstance(field["type"], list) else [field["type"]]
        if "null" in branches:
            assert branches[0] == "null" and field.get("default", "missing") is None, (
                f"{name}.{field['name']}"
            )
        if field["name"].endswith("_at"):
            assert TIMESTAMP in branches, f"{name}.{field['name']} is not timestamp-millis"
        if field["name"] in ("price", "balance"):
            assert MONEY in branches, f"{name}.{field['name']} is not decimal(18,6)"


@pytest.mark.parametrize("name", sorted(set(OWN_RECORDS) - {"RawWebhook", "DeadLetter"}))
def test_normalized_records_start_with_the_envelope(name: str) -> None:
    assert [f["name"] for f in raw(name)["fields"][:5]] == ENVELOPE


def test_lookup_by_name_and_fingerprint() -> None:
    for name in avro_schemas.names():
        current = avro_schemas.current(name)
        assert avro_schemas.schema(f"callpipe.v1.{name}") is current.parsed
        assert avro_schemas.by_fingerprint(current.fingerprint) is current
    with pytest.raises(KeyError, match="NoSuchRecord"):
        avro_schemas.schema("NoSuchRecord")
    with pytest.raises(KeyError):
        avro_schemas.by_fingerprint(bytes(8))


# --- history and backward compatibility


@pytest.mark.parametrize("name", OWN_RECORDS)
def test_current_schema_is_kept_in_history(name: str) -> None:
    """Data written with the current schema must stay readable after the next change: keep a copy of it."""
    versions = avro_schemas.history(name)
    assert versions, f"copy the {name} schema file to schemas/avro/history/{name}/v1.avsc"
    latest = versions[-1]
    assert latest.fingerprint == avro_schemas.fingerprint(name), (
        f"the {name} schema changed: add it as history/{name}/v{(latest.version or 0) + 1}.avsc"
    )
    assert [v.version for v in versions] == list(range(1, len(versions) + 1))


HISTORY = [(name, old) for name in avro_schemas.names() for old in avro_schemas.history(name)]


@pytest.mark.parametrize(("name", "old"), HISTORY, ids=[f"{n}-v{o.version}" for n, o in HISTORY])
def test_current_schema_reads_every_historical_version(name: str, old: avro_schemas.SchemaVersion) -> None:
    current = json.loads(avro_schemas.raw_schema(name))
    written = json.loads(old.text)
    assert compat.problems(current, written) == []
    assert compat.read_problems(current, written) == []


# --- the checker can fail


def base() -> dict[str, Any]:
    return {
        "type": "record",
        "name": "Thing",
        "namespace": "callpipe.v1",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "count", "type": "int"},
            {"name": "note", "type": ["null", "string"], "default": None},
            {"name": "price", "type": ["null", MONEY], "default": None},
            {"name": "when", "type": TIMESTAMP},
            {"name": "state", "type": {"type": "enum", "name": "State", "symbols": ["A", "B"]}},
            {
                "name": "leg",
                "type": {"type": "record", "name": "Leg", "fields": [{"name": "n", "type": "string"}]},
            },
        ],
    }


def changed(edit: Any) -> dict[str, Any]:
    schema = copy.deepcopy(base())
    edit({f["name"]: f for f in schema["fields"]}, schema)
    return schema


INCOMPATIBLE = {
    "field added without default": (
        lambda f, s: s["fields"].append({"name": "extra", "type": "string"}),
        "Thing.extra: added without a default",
    ),
    "type narrowed long -> int": (lambda f, s: f["id"].update(type="int"), "Thing.id: writer type long"),
    "nullable made required": (
        lambda f, s: f["note"].update(type="string", default=""),
        "Thing.note: writer type null",
    ),
    "required field removed": (lambda f, s: s["fields"].remove(f["count"]), "Thing.count: removed"),
    "decimal scale changed": (
        lambda f, s: f["price"].update(type=["null", {**MONEY, "scale": 2}]),
        "Thing.price: logical type changed",
    ),
    "timestamp became plain long": (lambda f, s: f["when"].update(type="long"), "Thing.when: logical type"),
    "enum symbol removed": (
        lambda f, s: f["state"]["type"].update(symbols=["A"]),
        "Thing.state: enum symbols",
    ),
    "nested field retyped": (
        lambda f, s: f["leg"]["type"]["fields"][0].update(type="int"),
        "Thing.leg.n: writer type string",
    ),
    "record renamed": (lambda f, s: s.update(name="Other"), "Other: writer type record"),
}


@pytest.mark.parametrize("case", sorted(INCOMPATIBLE))
def test_checker_reports_incompatible_changes(case: str) -> None:
    edit, expected = INCOMPATIBLE[case]
    found = compat.problems(changed(edit), base())
    assert any(p.startswith(expected) for p in found), found


def test_checker_accepts_compatible_changes() -> None:
    def evolve(f: dict[str, Any], s: dict[str, Any]) -> None:
        f["count"].update(type="long")  # promotion
        f["note"].update(type=["null", "string", "long"])  # widened union
        f["state"]["type"].update(symbols=["A", "B", "C"])
        s["fields"].append({"name": "added", "type": ["null", "long"], "default": None, "doc": "new"})
        s["fields"].append({"name": "with_default", "type": "string", "default": ""})

    newer = changed(evolve)
    assert compat.problems(newer, base()) == []
    assert compat.read_problems(newer, base()) == []


def test_read_check_fails_on_data_it_cannot_read() -> None:
    newer = changed(lambda f, s: s["fields"].append({"name": "extra", "type": "string"}))
    assert compat.read_problems(newer, base())


# --- topics and DESIGN.md


def test_design_md_contains_the_generated_topic_rows() -> None:
    design = DESIGN.read_text(encoding="utf-8")
    table = markdown_table((RAW, *INPUT_TOPICS, DEADLETTER))
    assert table in design, "docs/DESIGN.md's topic table is out of sync with schemas/topics.py:\n" + table


def test_topic_sets() -> None:
    names = [t.name for t in ALL_TOPICS]
    assert len(names) == len(set(names)) == 21
    assert set(KIND_TOPICS.values()) == set(INPUT_TOPICS)
    assert all(t.name.startswith("callpipe.out.") and t.partitions == 6 for t in OUTPUT_TOPICS)
    assert {t.name for t in OUTPUT_TOPICS} >= {"callpipe.out.calls.v1", "callpipe.out.metrics.v1"}
