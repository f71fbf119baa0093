"""What the agents' batch code takes and gives: events (and ticks) in, a `Batch` of records out. Plain data: the
Faust adapter (streams/faustapp/app.py) turns Faust's events into these and sends what a `Batch` lists."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from schemas.topics import Topic
from streams.domain.billing.metrics import WindowKey, WindowSum
from streams.domain.records import Record


@dataclass(frozen=True)
class Output:
    """A derived record and the topic and key it is published with."""

    topic: Topic
    key: str
    record: Record


@dataclass(frozen=True)
class Event:
    topic: str
    partition: int
    offset: int
    value: bytes


@dataclass(frozen=True)
class Tick:
    partition: int
    now: datetime


@dataclass(frozen=True)
class Late:
    """A rated record left out of the metrics because it would change a closed window or its entity's metrics
    are settled (docs/DESIGN.md, "Late events"); the record itself is published as usual."""

    entity: str
    key: str
    record: Record
    reason: str


@dataclass
class Batch:
    """What a batch produced. Records are kept per (topic, tenant, key, part), so that only the last version is
    sent: provider ids are global, so one batch can hold two tenants' records under one key (a replay of one
    tenant's webhooks under another), and neither may replace the other."""

    outputs: dict[tuple[str, str, str, str], Output] = field(default_factory=dict)
    feed: dict[tuple[str, str], tuple[str, Record]] = field(default_factory=dict)
    """(entity, id) -> (entity, rated record), for the per-tenant metrics and balance."""
    failures: list[tuple[Event, Exception]] = field(default_factory=list)
    shares: list[tuple[int, WindowKey, WindowSum]] = field(default_factory=list)
    """(partition, window, that partition's share of the window) for every share the batch changed."""
    late: list[Late] = field(default_factory=list)
    late_shares: int = 0
    """Window shares dropped because their window was already closed."""
    evicted: Counter[str] = field(default_factory=Counter)
    """State keys evicted, by table."""

    def publish(self, output: Output, part: str = "") -> None:
        """`part` tells apart records of one key that are not versions of each other (conference sessions)."""
        self.outputs[(output.topic.name, str(output.record.get("tenant")), output.key, part)] = output

    def feed_tenant(self, entity: str, key: str, record: Record) -> None:
        self.feed[(entity, key)] = (entity, record)
