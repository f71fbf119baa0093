"""One tenant's metric work spreads over the partitions: its registers live on the partitions of its calls and
SMS, its windows on the partitions of their keys (docs/DESIGN.md, "Metric windows"), placed here by Kafka's own
partitioner (murmur2, what aiokafka and the `murmur2_random` producers use)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from aiokafka.partitioner import DefaultPartitioner

from ingest.replay import SAMPLE, read_captured
from schemas import topics
from schemas.normalize import normalize
from streams.batch import metric_state
from streams.batch.entities import Entities
from streams.batch.events import Event
from streams.batch.staging import Staged
from streams.domain.billing.rating import DEFAULT_PLAN
from tests.unit.streams_sample import AVRO, RECEIVED

PARTITIONS = list(range(topics.PARTITIONS))


def partition(key: str) -> int:
    return int(DefaultPartitioner()(key.encode(), PARTITIONS, PARTITIONS))


def test_one_tenants_metric_updates_land_on_most_partitions() -> None:
    events = []
    for offset, item in enumerate(read_captured(SAMPLE)):
        normalized = normalize(item.kind, "one-account", item.body, RECEIVED + timedelta(seconds=offset))
        if normalized.topic in topics.INPUT_TOPICS and normalized.topic is not topics.BALANCE_ALERTS:
            events.append(Event(normalized.topic.name, partition(normalized.key), offset,
                                AVRO.encode(normalized.topic.name, normalized.topic.schema, normalized.record)))
    registers: Counter[int] = Counter()
    stores: dict[str, dict[str, bytes]] = {}

    def staged(name: str, **options: Any) -> Staged:
        store = stores.setdefault(name, {})

        def write(p: int, key: str, value: bytes | None) -> None:
            if name == "metric_entities":
                registers[p] += 1
            if value is not None:
                store[key] = value

        return Staged(store, write, **options)

    agent = Entities.over(staged, AVRO.decode, DEFAULT_PLAN, timedelta(seconds=120), timedelta(hours=48),
                          timedelta(hours=48))
    windows: Counter[int] = Counter()
    for start in range(0, len(events), 50):
        batch = agent.process(events[start:start + 50], RECEIVED)
        for table in agent.staged():
            table.flush()
        windows.update(partition(metric_state.dump_key(window)) for _, window, _ in batch.shares)
    clients = {metric_state.load_key(k)[4] for k in (metric_state.dump_key(w) for (_, w) in agent.shares.sums)
               if metric_state.load_key(k)[3] == "client"}
    assert len(clients) >= 2
    assert len(registers) >= 4, registers  # where the registers are written (and the shares derived)
    assert len(windows) >= 4, windows  # where the windows are added up
