"""The bundled sample as the streams agents read it: normalized, Avro-encoded events, partitioned by key."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta

from ingest.replay import SAMPLE, read_captured
from schemas import topics
from schemas.codec import SingleObjectCodec
from schemas.normalize import normalize
from streams.batch.events import Event

AVRO = SingleObjectCodec()
PARTITIONS = 3
RECEIVED = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def sample_events(limit: int | None = None, tenant: str = "t1") -> tuple[list[Event], list[Event]]:
    """(entity-topic events, balance alerts) of the sample's first ``limit`` lines (all: None)."""
    entity: list[Event] = []
    alerts: list[Event] = []
    for offset, item in enumerate(read_captured(SAMPLE)[:limit]):
        normalized = normalize(item.kind, tenant, item.body, RECEIVED + timedelta(seconds=offset))
        topic = normalized.topic
        event = Event(topic.name, zlib.crc32(normalized.key.encode()) % PARTITIONS, offset,
                      AVRO.encode(topic.name, topic.schema, normalized.record))
        (alerts if topic is topics.BALANCE_ALERTS else entity).append(event)
    return entity, alerts
