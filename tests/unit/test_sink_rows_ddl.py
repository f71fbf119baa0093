from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from schemas import topics
from sinks.schema.avro import AvroSchemaError, parse_record
from sinks.schema.columns import flatten
from sinks.schema.ddl import clickhouse_type, cluster_ddl, create_table, create_view
from sinks.schema.tables import Engine, TableRule, TableSpec, build_spec, catalog
from sinks.write.rows import RowError, to_row

LEG = {
    "type": "record",
    "name": "Leg",
    "fields": [
        {"name": "number", "type": ["null", "string"], "default": None, "doc": "leg number"},
        {"name": "status", "type": "string"},
        {
            "name": "price",
            "type": ["null", {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 6}],
        },
    ],
}
THING: dict[str, Any] = {
    "type": "record",
    "name": "Thing",
    "namespace": "test.v1",
    "doc": "a test record",
    "fields": [
        {"name": "tenant", "type": "string"},
        {"name": "thing_id", "type": "long"},
        {"name": "version", "type": "long"},
        {"name": "created_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "origin", "type": ["null", LEG], "default": None},
        {"name": "destination", "type": "Leg"},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {
            "name": "history",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Step",
                    "fields": [
                        {"name": "status", "type": "string"},
                        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
                    ],
                },
            },
        },
        {"name": "headers", "type": {"type": "map", "values": "string"}, "default": {}},
        {"name": "count", "type": ["null", "int"], "default": None},
        {"name": "body", "type": "bytes"},
        {"name": "ok", "type": "boolean"},
    ],
}
AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def record(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "tenant": "t1",
        "thing_id": 7,
        "version": 1,
        "created_at": AT,
        "origin": {"number": "551100", "status": "up", "price": Decimal("0.12")},
        "destination": {"number": None, "status": "down", "price": None},
        "tags": ["a"],
        "history": [{"status": "up", "at": AT}],
        "body": b"\x00\x01",
        "ok": True,
    }
    return {**base, **overrides}


def spec() -> TableSpec:
    rule = TableRule("things", topics.OUT_CALLS, Engine.VERSIONED, ("tenant", "thing_id"))
    return build_spec(rule, parse_record(THING))


def test_flatten_names_nested_fields_parent_child_and_resolves_named_references() -> None:
    columns = {c.name: c for c in flatten(parse_record(THING))}
    assert list(columns)[:8] == [
        "tenant",
        "thing_id",
        "version",
        "created_at",
        "origin_number",
        "origin_status",
        "origin_price",
        "destination_number",
    ]
    assert columns["origin_status"].nullable  # the parent record is nullable
    assert not columns["destination_status"].nullable
    assert columns["history"].json and not columns["tags"].json
    assert columns["origin_number"].doc == "leg number"


def test_type_mapping() -> None:
    types = {c.name: clickhouse_type(c) for c in spec().columns}
    assert types == {
        "tenant": "LowCardinality(String)",
        "thing_id": "Int64",
        "version": "Int64",
        "created_at": "DateTime64(3, 'UTC')",
        "origin_number": "Nullable(String)",
        "origin_status": "LowCardinality(Nullable(String))",
        "origin_price": "Nullable(Decimal(18, 6))",
        "destination_number": "Nullable(String)",
        "destination_status": "LowCardinality(String)",
        "destination_price": "Nullable(Decimal(18, 6))",
        "tags": "Array(String)",
        "history": "String",
        "headers": "Map(String, String)",
        "count": "Nullable(Int32)",
        "body": "String",
        "ok": "Bool",
    }


def test_to_row_flattens_converts_and_fills_defaults() -> None:
    s = spec()
    row = dict(zip([c.name for c in s.columns], to_row(record(), list(s.columns)), strict=True))
    assert row["origin_price"] == Decimal("0.120000")
    assert row["destination_number"] is None and row["headers"] == {} and row["count"] is None
    assert row["history"] == '[{"at":"2024-05-01T12:00:00+00:00","status":"up"}]'
    sao_paulo = datetime(2024, 5, 1, 9, 0, tzinfo=timezone(timedelta(hours=-3)))
    assert to_row(record(created_at=sao_paulo), list(s.columns))[3] == AT
    nulled = dict(zip([c.name for c in s.columns], to_row(record(origin=None), list(s.columns)), strict=True))
    assert nulled["origin_status"] is None and nulled["origin_number"] is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"thing_id": "7"}, "expected long"),
        ({"thing_id": 2**63}, "expected long"),
        ({"ok": 1}, "expected boolean"),
        ({"created_at": datetime(2024, 1, 1)}, "tz-aware"),
        ({"origin": {"status": "x", "price": Decimal("1e13")}}, "does not fit decimal"),
        ({"origin": {"status": "x", "price": Decimal("0.0000001")}}, "does not fit decimal"),
        ({"destination": None}, "null in a non-nullable"),
        ({"body": "text"}, "expected bytes"),
    ],
)
def test_to_row_rejects_records_that_do_not_fit(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(RowError, match=message):
        to_row(record(**overrides), list(spec().columns))


def test_missing_required_field_is_a_row_error() -> None:
    r = record()
    del r["thing_id"]
    with pytest.raises(RowError, match="required field thing_id"):
        to_row(r, list(spec().columns))


def test_flattened_name_collision_is_refused() -> None:
    schema = {
        "type": "record",
        "name": "X",
        "fields": [
            {"name": "a_b", "type": "string"},
            {
                "name": "a",
                "type": {"type": "record", "name": "A", "fields": [{"name": "b", "type": "string"}]},
            },
        ],
    }
    with pytest.raises(AvroSchemaError, match="both flatten to column a_b"):
        flatten(parse_record(schema))


def test_engines_keys_partition_and_dedup_window() -> None:
    ddl = create_table(spec())
    assert "ENGINE = ReplacingMergeTree(`version`)" in ddl
    assert "ORDER BY (`tenant`, `thing_id`)" in ddl
    assert "PARTITION BY toYYYYMM(`created_at`)" in ddl
    assert "SETTINGS non_replicated_deduplication_window = 1000" in ddl
    assert create_view(spec()) == "CREATE VIEW IF NOT EXISTS `v_things` AS SELECT * FROM `things` FINAL"
    repo = catalog()
    assert "ReplacingMergeTree()" in create_table(repo.table("call_snapshots"))
    assert "ENGINE = MergeTree()" in create_table(repo.table("dead_letters"))
    assert repo.table("dead_letters").view is None


def test_cluster_variant_is_replicated_distributed_and_sharded_by_identity() -> None:
    local, distributed, view = cluster_ddl([spec()])
    assert "CREATE TABLE IF NOT EXISTS `things_local` ON CLUSTER '{cluster}'" in local
    assert (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/things_local', '{replica}', "
        "`version`)" in local
    )
    assert (
        "Distributed('{cluster}', currentDatabase(), 'things_local', cityHash64(`tenant`, `thing_id`))"
        in distributed
    )
    assert view.startswith(
        "CREATE VIEW IF NOT EXISTS `v_things` ON CLUSTER '{cluster}' AS SELECT * FROM `things` FINAL"
    )


def test_versioned_rule_needs_version_and_non_null_identity() -> None:
    no_version = {**THING, "fields": [f for f in THING["fields"] if f["name"] != "version"]}
    with pytest.raises(AvroSchemaError, match="without a `version`"):
        build_spec(TableRule("x", topics.OUT_CALLS, Engine.VERSIONED, ("tenant",)), parse_record(no_version))
    with pytest.raises(AvroSchemaError, match="must be a non-null"):
        build_spec(TableRule("x", topics.OUT_CALLS, Engine.VERSIONED, ("count",)), parse_record(THING))


def test_every_repo_contract_has_a_table_for_its_topic() -> None:
    from sinks.schema.avro import load_records
    from sinks.schema.tables import RULES

    records = load_records()
    ruled = {r.topic.schema for r in RULES}
    assert set(records) <= ruled, f"records without a table rule: {set(records) - ruled}"
    for rule in RULES:
        if rule.topic.schema in records:
            assert catalog().for_topic(rule.topic.name).name == rule.table
