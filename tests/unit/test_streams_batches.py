"""The agents' batch code (streams/batch/entities.py and tenants.py) over dict-backed tables, with the sample.

Batching must be invisible downstream: however the events are cut into batches, the final states and the last
record published per key are those of one event at a time; each state changed by a batch is written once.
"""

from __future__ import annotations

import zlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.replay import SAMPLE, read_captured
from schemas import topics
from schemas.codec import SingleObjectCodec
from schemas.normalize import normalize
from streams.batch import metric_state, state_codec
from streams.batch.entities import Entities
from streams.batch.events import Event, Output, Tick
from streams.batch.staging import Staged
from streams.batch.tenants import Tenants
from streams.domain.billing import metrics
from streams.domain.billing.rating import DEFAULT_PLAN
from tests.metrics_oracle import MetricsState

AVRO = SingleObjectCodec()
PARTITIONS = 3
RECEIVED = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
LATER = RECEIVED + timedelta(days=1)  # a tick long after the sample: every quiet call goes provisional


def sample_events() -> tuple[list[Event], list[Event]]:
    """(entity-topic events, balance alerts) of the sample, Avro-encoded, partitioned by key."""
    entity: list[Event] = []
    alerts: list[Event] = []
    for offset, item in enumerate(read_captured(SAMPLE)):
        normalized = normalize(item.kind, "t1", item.body, RECEIVED + timedelta(seconds=offset))
        topic = normalized.topic
        event = Event(topic.name, zlib.crc32(normalized.key.encode()) % PARTITIONS, offset,
                      AVRO.encode(topic.name, topic.schema, normalized.record))
        (alerts if topic is topics.BALANCE_ALERTS else entity).append(event)
    return entity, alerts


ENTITY_EVENTS, ALERTS = sample_events()


class Tables:
    """The stores behind an agent's staged tables, and every write made to them."""

    def __init__(self) -> None:
        self.stores: dict[str, dict[str, bytes]] = {}
        self.writes: Counter[tuple[str, str]] = Counter()

    def staged(self, name: str, **options: Any) -> Staged:
        store = self.stores.setdefault(name, {})

        def write(partition: int, key: str, value: bytes) -> None:
            assert partition in range(PARTITIONS)
            store[key] = value
            self.writes[(name, key)] += 1

        return Staged(store, write, **options)


def entities(tables: Tables) -> Entities:
    return Entities.over(tables.staged, AVRO.decode, DEFAULT_PLAN, timedelta(seconds=120))


def tenants(tables: Tables) -> Tenants:
    return Tenants.over(tables.staged, AVRO.decode)


def cuts(n: int, sizes: list[int]) -> list[slice]:
    """`n` items cut into consecutive batches of the given sizes (cycled)."""
    out, start, i = [], 0, 0
    while start < n:
        size = sizes[i % len(sizes)]
        out.append(slice(start, start + size))
        start, i = start + size, i + 1
    return out


def run_entities(sizes: list[int], tables: Tables) -> tuple[dict[Any, Output], list[tuple[str, Any]]]:
    """The sample through the entities agent in batches, then a final tick per partition; the last record per
    key and every tenant-feed item, in order."""
    agent = entities(tables)
    last: dict[Any, Output] = {}
    feed: list[tuple[str, Any]] = []
    items: list[Event | Tick] = [*ENTITY_EVENTS, *(Tick(p, LATER) for p in range(PARTITIONS))]
    for part in cuts(len(items), sizes):
        batch = agent.process(items[part])
        assert not batch.failures
        for table in agent.staged():
            table.flush()
        last.update(batch.outputs)
        feed.extend(batch.feed.values())
    return last, feed


def run_tenants(sizes: list[int], feed: list[tuple[str, Any]], tables: Tables) -> dict[Any, Output]:
    agent = tenants(tables)
    items = [*ALERTS, *(Event(topics.BALANCE_ALERTS.name + ".feed", 0, i,
                              state_codec.encode({"entity": entity, "record": record}))
                        for i, (entity, record) in enumerate(feed))]
    last: dict[Any, Output] = {}
    for part in cuts(len(items), sizes):
        batch = agent.process(items[part], RECEIVED)
        assert not batch.failures
        for table in agent.staged():
            table.flush()
        last.update(batch.outputs)
    return last


def records(outputs: dict[Any, Output], *skip: str) -> dict[Any, Any]:
    return {key: {k: v for k, v in out.record.items() if k not in skip} for key, out in outputs.items()}


ONE_BY_ONE = Tables()
ONE_BY_ONE_OUT, ONE_BY_ONE_FEED = run_entities([1], ONE_BY_ONE)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 400), min_size=1, max_size=5))
def test_entity_batches_of_any_size_give_the_same_states_and_last_records(sizes: list[int]) -> None:
    tables = Tables()
    last, _ = run_entities(sizes, tables)
    assert tables.stores == ONE_BY_ONE.stores
    assert records(last) == records(ONE_BY_ONE_OUT)


def test_calls_families_and_sessions_are_all_published() -> None:
    by_topic = Counter(topic for topic, _, _ in ONE_BY_ONE_OUT)
    calls = {key for topic, key, _ in ONE_BY_ONE_OUT if topic == topics.OUT_CALLS.name}
    assert len(calls) == len(ONE_BY_ONE.stores["calls"])
    sessions = [part for topic, _, part in ONE_BY_ONE_OUT if topic == topics.OUT_CONFERENCE_SESSIONS.name]
    assert sessions and all(sessions)  # one record per participant, not one per conference
    assert {topics.OUT_SMS.name, topics.OUT_SINGLE_LEG_CALLS.name, topics.OUT_VOICEMAILS.name} <= set(by_topic)


def test_one_batch_writes_each_changed_state_once() -> None:
    tables = Tables()
    run_entities([len(ENTITY_EVENTS) + PARTITIONS], tables)
    assert set(tables.writes.values()) == {1}
    assert len(tables.writes) == sum(len(store) for store in tables.stores.values())


def test_a_replayed_batch_changes_no_state_and_publishes_the_same_records_again() -> None:
    tables = Tables()
    agent = entities(tables)
    first = agent.process(ENTITY_EVENTS)
    for table in agent.staged():
        table.flush()
    written = tables.writes.copy()
    again = agent.process(ENTITY_EVENTS)
    assert sum(table.flush() for table in agent.staged()) == 0 and tables.writes == written
    calls = topics.OUT_CALLS.name
    assert {k: o.record for k, o in again.outputs.items() if k[0] == calls} == \
        {k: o.record for k, o in first.outputs.items() if k[0] == calls}


def test_a_bad_event_fails_alone() -> None:
    agent = entities(Tables())
    bad = Event(topics.CALL_EVENTS.name, 0, 999_999, b"not avro")
    batch = agent.process([ENTITY_EVENTS[0], bad, ENTITY_EVENTS[1]])
    assert [failed for failed, _ in batch.failures] == [bad]
    assert sum(table.flush() for table in agent.staged()) > 0  # the good events around it were folded


TENANTS_ONE_BY_ONE = Tables()
TENANTS_ONE_BY_ONE_OUT = run_tenants([1], ONE_BY_ONE_FEED, TENANTS_ONE_BY_ONE)


@settings(max_examples=10, deadline=None)
@given(st.lists(st.integers(1, 300), min_size=1, max_size=5))
def test_tenant_batches_of_any_size_give_the_same_windows_and_balance(sizes: list[int]) -> None:
    tables = Tables()
    last = run_tenants(sizes, ONE_BY_ONE_FEED, tables)
    assert tables.stores == TENANTS_ONE_BY_ONE.stores
    assert records(last) == records(TENANTS_ONE_BY_ONE_OUT)


def test_windows_count_each_final_record_once() -> None:
    """The window state equals the in-memory MetricsState (streams/domain/billing/metrics.py) fed the same records."""
    direct = MetricsState()
    for entity, record in ONE_BY_ONE_FEED:
        direct.upsert(record, entity, RECEIVED)
    stored = {metric_state.load_key(k): state_codec.loads(v)
              for k, v in TENANTS_ONE_BY_ONE.stores["metric_windows"].items()}
    counted = (*metrics.COUNTERS, *metrics.MONEY, "causes", "intervals", "version")
    assert {k: tuple(w[f] for f in counted) for k, w in stored.items()} == \
        {k: tuple(w[f] for f in counted) for k, w in direct.windows.items()}


def test_a_replayed_feed_item_republishes_its_windows_without_counting_it_again() -> None:
    tables = Tables()
    run_tenants([50], ONE_BY_ONE_FEED, tables)
    windows = dict(tables.stores["metric_windows"])
    agent = tenants(tables)
    entity, record = ONE_BY_ONE_FEED[-1]
    batch = agent.process([Event("feed", 0, 0, state_codec.encode({"entity": entity, "record": record}))],
                          RECEIVED)
    for table in agent.staged():
        table.flush()
    assert tables.stores["metric_windows"] == windows
    assert any(topic == topics.OUT_METRICS.name for topic, _, _ in batch.outputs)
