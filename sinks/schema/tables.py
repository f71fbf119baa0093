"""Which record lands in which table, with which engine and key: the sink's one table catalogue.

The columns come from the Avro contract (``sinks.write.rows``); only the engine family, the identity (ORDER BY)
and the partition time column are stated here, because a schema does not say what identifies an entity.
A rule whose Avro schema does not exist yet is skipped, so the catalogue grows as contracts land.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path

from schemas import topics
from schemas.avro_schemas import AVRO_DIR
from sinks.schema.avro import AvroSchemaError, RecordSchema, load_records
from sinks.schema.columns import Column, flatten, logical_type

DEAD_LETTERS = "dead_letters"
VERSION_COLUMN = "version"


class Engine(StrEnum):
    VERSIONED = "versioned"
    """Stream outputs: ReplacingMergeTree(version), the highest version of an identity wins."""
    EVENTS = "events"
    """Normalized input events: ReplacingMergeTree() on (tenant, event_id), so provider retries collapse."""
    APPEND = "append"
    """Raw archive and dead letters: MergeTree, every record is kept."""


@dataclass(frozen=True)
class TableRule:
    table: str
    topic: topics.Topic
    engine: Engine
    order_by: tuple[str, ...]
    time_column: str | None = None
    """Partition time; ``None``: the first non-nullable timestamp of the record. For versioned records it
    must not change between versions, or versions of one entity end up in different partitions, which
    background merges never collapse (FINAL still does)."""


def _events(table: str, topic: topics.Topic) -> TableRule:
    return TableRule(table, topic, Engine.EVENTS, ("tenant", "event_id"), "received_at")


def _versioned(table: str, topic: topics.Topic, *identity: str) -> TableRule:
    return TableRule(table, topic, Engine.VERSIONED, ("tenant", *identity))


RULES: tuple[TableRule, ...] = (
    TableRule("raw_webhooks", topics.RAW, Engine.APPEND, ("tenant", "kind", "received_at"), "received_at"),
    TableRule(
        DEAD_LETTERS, topics.DEADLETTER, Engine.APPEND, ("stage", "tenant", "received_at"), "received_at"
    ),
    _events("call_leg_events", topics.CALL_EVENTS),
    _events("call_snapshots", topics.CALL_SNAPSHOTS),
    _events("single_leg_call_ends", topics.SINGLE_LEG_CALLS),
    _events("extension_call_events", topics.EXTENSION_EVENTS),
    _events("sms_status_events", topics.SMS_STATUS),
    _events("sms_replies", topics.SMS_REPLIES),
    _events("conference_events", topics.CONFERENCE_EVENTS),
    _events("voicemail_events", topics.VOICEMAILS),
    _events("balance_alerts", topics.BALANCE_ALERTS),
    _events("number_validation_events", topics.NUMBER_VALIDATIONS),
    _versioned("calls", topics.OUT_CALLS, "call_id"),
    _versioned("single_leg_calls", topics.OUT_SINGLE_LEG_CALLS, "call_id"),
    _versioned("sms", topics.OUT_SMS, "sms_id"),
    _versioned("conference_sessions", topics.OUT_CONFERENCE_SESSIONS, "conference_id", "participant"),
    _versioned("extension_calls", topics.OUT_EXTENSION_CALLS, "call_id"),
    _versioned("voicemails", topics.OUT_VOICEMAILS, "voicemail_id"),
    _versioned("number_validations", topics.OUT_NUMBER_VALIDATIONS, "validation_id"),
    _versioned("balance_status", topics.OUT_BALANCE),
    _versioned(
        "metric_windows", topics.OUT_METRICS, "window_size", "dimension", "dimension_value", "window_start"
    ),
)


@dataclass(frozen=True)
class TableSpec:
    name: str
    topic: str
    engine: Engine
    order_by: tuple[str, ...]
    time_column: str
    record: RecordSchema
    columns: tuple[Column, ...]

    @property
    def view(self) -> str | None:
        """``v_<table>``: the latest version only; append-only tables have nothing to collapse."""
        return None if self.engine is Engine.APPEND else f"v_{self.name}"

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"{self.name} has no column {name}")


def _is_timestamp(column: Column) -> bool:
    return not column.json and logical_type(column.avro) in {"timestamp-millis", "timestamp-micros"}


def build_spec(rule: TableRule, record: RecordSchema) -> TableSpec:
    columns = tuple(flatten(record))
    by_name = {c.name: c for c in columns}
    problem = f"table {rule.table} (record {record.name})"
    for key in rule.order_by:
        if key not in by_name:
            raise AvroSchemaError(f"{problem}: ORDER BY column {key} is not a field")
        if by_name[key].nullable or by_name[key].json:
            raise AvroSchemaError(f"{problem}: ORDER BY column {key} must be a non-null primitive")
    if rule.engine is Engine.VERSIONED and VERSION_COLUMN not in by_name:
        raise AvroSchemaError(f"{problem}: versioned record without a `{VERSION_COLUMN}` field")
    time_column = rule.time_column or next(
        (c.name for c in columns if _is_timestamp(c) and not c.nullable),
        next((c.name for c in columns if _is_timestamp(c)), None),
    )
    if time_column is None or time_column not in by_name or not _is_timestamp(by_name[time_column]):
        raise AvroSchemaError(f"{problem}: no timestamp column {time_column or ''} to partition by")
    return TableSpec(rule.table, rule.topic.name, rule.engine, rule.order_by, time_column, record, columns)


@dataclass(frozen=True)
class Catalog:
    tables: tuple[TableSpec, ...]

    def for_topic(self, topic: str) -> TableSpec:
        for spec in self.tables:
            if spec.topic == topic:
                return spec
        raise KeyError(f"no table for topic {topic}")

    def table(self, name: str) -> TableSpec:
        for spec in self.tables:
            if spec.name == name:
                return spec
        raise KeyError(f"no table {name}")


def load_catalog(avro_dir: Path = AVRO_DIR, rules: tuple[TableRule, ...] = RULES) -> Catalog:
    records = load_records(avro_dir)
    return Catalog(tuple(build_spec(r, records[r.topic.schema]) for r in rules if r.topic.schema in records))


@cache
def catalog() -> Catalog:
    """The catalogue of the repository's current contracts (read once per process)."""
    return load_catalog()

