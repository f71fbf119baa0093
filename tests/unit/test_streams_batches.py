"""The agents' batch code (streams/batch/entities.py and tenants.py) over dict-backed tables, with the sample.

Batching must be invisible downstream: however the events are cut into batches, the final states and the last
record published per key are those of one event at a time; each state changed by a batch is written once.
"""

from __future__ import annotations

import zlib
from collections import Counter
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import topics
from streams.batch import metric_state
from streams.batch import state_codec as codec
from streams.batch import tenants as tenants_module
from streams.batch.entities import Entities
from streams.batch.events import Batch, Event, Output, Tick
from streams.batch.folds import FEEDS
from streams.batch.staging import Staged
from streams.batch.tenants import Tenants
from streams.batch.tenants import messages as tenant_messages
from streams.domain.billing import metrics
from streams.domain.billing.rating import DEFAULT_PLAN
from tests import metrics_oracle as oracle
from tests.unit.streams_sample import AVRO, PARTITIONS, RECEIVED, sample_events

LATER = RECEIVED + timedelta(days=1)  # a tick long after the sample: every quiet call goes provisional

ENTITY_EVENTS, ALERTS = sample_events()


class Tables:
    """The stores behind an agent's staged tables, and every write made to them."""

    def __init__(self) -> None:
        self.stores: dict[str, dict[str, bytes]] = {}
        self.writes: Counter[tuple[str, str]] = Counter()

    def staged(self, name: str, **options: Any) -> Staged:
        store = self.stores.setdefault(name, {})

        def write(partition: int, key: str, value: bytes | None) -> None:
            assert partition in range(PARTITIONS) and value is not None
            store[key] = value
            self.writes[(name, key)] += 1

        return Staged(store, write, **options)


GRACE = timedelta(hours=48)


def entities(tables: Tables) -> Entities:
    return Entities.over(tables.staged, AVRO.decode, DEFAULT_PLAN, timedelta(seconds=120), GRACE, GRACE)


def tenants(tables: Tables) -> Tenants:
    return Tenants.over(tables.staged, AVRO.decode, GRACE, GRACE)


def tenant_inputs(agent: Entities, batch: Batch) -> list[Event]:
    """What a batch of the entities agent sends to the tenants agent: tenant-feed bundles, then window shares'."""
    return [Event(m.topic, m.partition, 0, m.value)
            for m in tenant_messages(batch, agent.shares.clocks, lambda key: zlib.crc32(key) % PARTITIONS)]


def cuts(n: int, sizes: list[int]) -> list[slice]:
    """`n` items cut into consecutive batches of the given sizes (cycled)."""
    out, start, i = [], 0, 0
    while start < n:
        size = sizes[i % len(sizes)]
        out.append(slice(start, start + size))
        start, i = start + size, i + 1
    return out


def run_entities(sizes: list[int], tables: Tables) -> tuple[dict[Any, Output], list[Event]]:
    """The sample through the entities agent in batches, then a final tick per partition; the last record per
    key and everything sent to the tenants agent, in order."""
    agent = entities(tables)
    last: dict[Any, Output] = {}
    sent: list[Event] = []
    items: list[Event | Tick] = [*ENTITY_EVENTS, *(Tick(p, LATER) for p in range(PARTITIONS))]
    for part in cuts(len(items), sizes):
        batch = agent.process(items[part], RECEIVED)
        assert not batch.failures and not batch.late
        for table in agent.staged():
            table.flush()
        last.update(batch.outputs)
        sent += tenant_inputs(agent, batch)
    return last, sent


def run_tenants(sizes: list[int], sent: list[Event], tables: Tables) -> dict[Any, Output]:
    agent = tenants(tables)
    items = [*ALERTS, *sent]
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
    by_topic = Counter(topic for topic, _, _, _ in ONE_BY_ONE_OUT)
    calls = {key for topic, _, key, _ in ONE_BY_ONE_OUT if topic == topics.OUT_CALLS.name}
    assert len(calls) == len(ONE_BY_ONE.stores["calls"])
    sessions = [part for topic, _, _, part in ONE_BY_ONE_OUT if topic == topics.OUT_CONFERENCE_SESSIONS.name]
    assert sessions and all(sessions)  # one record per participant, not one per conference
    assert {topics.OUT_SMS.name, topics.OUT_SINGLE_LEG_CALLS.name, topics.OUT_VOICEMAILS.name} <= set(by_topic)


def test_one_batch_writes_each_changed_state_once() -> None:
    tables = Tables()
    run_entities([len(ENTITY_EVENTS) + PARTITIONS], tables)
    assert set(tables.writes.values()) == {1}
    assert len(tables.writes) == sum(len(store) for store in tables.stores.values())


def place(key: bytes) -> int:
    return zlib.crc32(key) % PARTITIONS


def test_a_batch_sends_the_tenants_agent_one_bundle_per_topic_and_partition(monkeypatch: Any) -> None:
    agent = entities(Tables())
    batch = agent.process(ENTITY_EVENTS, RECEIVED)
    sent = tenant_messages(batch, agent.shares.clocks, place)
    assert len(batch.shares) > 50 and len(sent) <= 2 * PARTITIONS
    assert len({(m.topic, m.partition) for m in sent}) == len(sent)
    shares = [(m.partition, item) for m in sent if m.topic == topics.WINDOW_SHARES for item in codec.loads(m.value)]
    feed = [(m.partition, item) for m in sent if m.topic == topics.TENANT_FEED for item in codec.loads(m.value)]
    assert len(shares) == len(batch.shares) and len(feed) == len(batch.feed)
    assert all(p == place(metric_state.dump_key(metric_state.window_key(item["window"])).encode())
               for p, item in shares)
    assert all(p == place(item["record"]["tenant"].encode()) for p, item in feed)
    monkeypatch.setattr(tenants_module, "BUNDLE_ITEMS", 7)
    small = tenant_messages(batch, agent.shares.clocks, place)
    assert max(len(codec.loads(m.value)) for m in small) == 7
    assert [item for m in small for item in codec.loads(m.value)] == [item for _, item in feed + shares]


def test_the_tenants_agent_reads_items_sent_one_per_message_as_before_bundles() -> None:
    singles = [Event(e.topic, e.partition, 0, codec.encode(item)) for e in ONE_BY_ONE_FEED
               for item in codec.loads(e.value)]
    assert len(singles) > len(ONE_BY_ONE_FEED)
    assert records(run_tenants([50], singles, Tables())) == records(run_tenants([50], ONE_BY_ONE_FEED, Tables()))


def test_a_replayed_batch_changes_no_state_and_publishes_the_same_records_again() -> None:
    tables = Tables()
    agent = entities(tables)
    first = agent.process(ENTITY_EVENTS, RECEIVED)
    for table in agent.staged():
        table.flush()
    written = tables.writes.copy()
    again = agent.process(ENTITY_EVENTS, RECEIVED)
    assert sum(table.flush() for table in agent.staged()) == 0 and tables.writes == written
    calls = topics.OUT_CALLS.name
    assert {k: o.record for k, o in again.outputs.items() if k[0] == calls} == \
        {k: o.record for k, o in first.outputs.items() if k[0] == calls}


def test_two_tenants_with_the_same_ids_in_one_batch_each_get_their_records() -> None:
    """Provider ids are global: the same sample under a second tenant, interleaved in the same batches, must
    publish each tenant's last record of every entity (none replacing the other's under its key)."""
    other, _ = sample_events(tenant="t2")
    agent = entities(Tables())
    last: dict[Any, Output] = {}
    mixed = [event for pair in zip(ENTITY_EVENTS, other, strict=True) for event in pair]
    for part in cuts(len(mixed), [80]):
        last.update(agent.process(mixed[part], RECEIVED).outputs)
    last.update(agent.process([Tick(p, LATER) for p in range(PARTITIONS)], RECEIVED).outputs)
    alone = sorted((out.topic.name, out.key, str(out.record)) for out in ONE_BY_ONE_OUT.values())
    for tenant in ("t1", "t2"):
        mine = [(out.topic.name, out.key, str({**out.record, "tenant": "t1"})) for out in last.values()
                if out.record["tenant"] == tenant]
        assert sorted(mine) == alone


def test_a_bad_event_fails_alone() -> None:
    agent = entities(Tables())
    bad = Event(topics.CALL_EVENTS.name, 0, 999_999, b"not avro")
    batch = agent.process([ENTITY_EVENTS[0], bad, ENTITY_EVENTS[1]], RECEIVED)
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


def test_windows_equal_the_aggregate_of_the_final_records() -> None:
    finals = [(out.record, FEEDS.get(topic, metrics.ENTITY_CALL)) for (topic, _, _, _), out in ONE_BY_ONE_OUT.items()
              if topic in (topics.OUT_CALLS.name, *FEEDS)]
    published = [(metric_state.load_key(key), out.record) for (topic, _, key, _), out in TENANTS_ONE_BY_ONE_OUT.items()
                 if topic == topics.OUT_METRICS.name]
    assert len(finals) > 50 and len(published) > 100
    assert oracle.contents(published) == oracle.window_records(oracle.aggregate(finals))


def test_a_replayed_share_republishes_its_window_without_counting_it_again() -> None:
    tables = Tables()
    run_tenants([50], ONE_BY_ONE_FEED, tables)
    windows = dict(tables.stores["metric_windows"])
    agent = tenants(tables)
    share = next(e for e in reversed(ONE_BY_ONE_FEED) if e.topic == topics.WINDOW_SHARES)
    batch = agent.process([share], RECEIVED)
    for table in agent.staged():
        table.flush()
    assert tables.stores["metric_windows"] == windows
    assert any(topic == topics.OUT_METRICS.name for topic, _, _, _ in batch.outputs)
