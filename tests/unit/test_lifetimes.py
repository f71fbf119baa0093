"""Entity states live `retention` past their latest event on their partition's event-time clock, then are
evicted with a tombstone; an event older than that for an entity without state is refused as late."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from schemas import topics
from streams.batch.entities import Entities
from streams.batch.events import Event, Tick
from streams.batch.expiry import Pending
from streams.batch.lifetimes import LATE_REASON, LateEvent
from streams.batch.staging import Staged
from streams.domain.billing.rating import DEFAULT_PLAN
from tests.unit.streams_sample import AVRO, PARTITIONS, RECEIVED, sample_events

EVENTS, _ = sample_events()
RETENTION = timedelta(hours=48)


class Stores:
    def __init__(self) -> None:
        self.data: dict[str, dict[str, bytes]] = {}
        self.tombstones: Counter[str] = Counter()

    def staged(self, name: str, **options: Any) -> Staged:
        store = self.data.setdefault(name, {})

        def write(partition: int, key: str, value: bytes | None) -> None:
            if value is None:
                self.tombstones[name] += 1
                store.pop(key, None)
            else:
                store[key] = value

        return Staged(store, write, **options)


def agent(stores: Stores) -> Entities:
    return Entities.over(stores.staged, AVRO.decode, DEFAULT_PLAN, timedelta(seconds=120), RETENTION, RETENTION)


def run(entities: Entities, items: Sequence[Event | Tick]) -> Any:
    batch = entities.process(items, RECEIVED)
    for table in entities.staged():
        table.flush()
    return batch


def later(event: Event, shift: timedelta, new_id: int) -> Event:
    """The event with every provider time shifted and another SMS id (a new entity, ``shift`` later)."""
    record = AVRO.decode(event.topic, event.value)
    moved = {k: (v + shift if k.endswith("_at") and v is not None else v) for k, v in record.items()}
    moved.update(sms_id=new_id, event_id=f"{record['event_id']}-later")
    topic = topics.BY_NAME[event.topic]
    return Event(event.topic, event.partition, 10**6, AVRO.encode(topic.name, topic.schema, moved))


SMS = next(e for e in EVENTS if e.topic == topics.SMS_STATUS.name)


def test_states_past_the_retention_are_evicted_and_late_events_refused() -> None:
    stores = Stores()
    entities = agent(stores)
    run(entities, EVENTS)
    held = {name: len(stores.data[name]) for name in ("calls", "sms", "single_leg")}
    assert all(held.values()), held

    # Within the retention, a provider retry of an old event is a duplicate: no failure, no new version.
    retry = run(entities, [later(SMS, timedelta(hours=1), 1), SMS])
    assert not retry.failures

    # Three days later on every partition: everything of the sample is evicted, with tombstones.
    fresh = [later(SMS, timedelta(days=3), 2 + p) for p in range(PARTITIONS)]
    fresh = [Event(e.topic, p, e.offset, e.value) for p, e in enumerate(fresh)]
    batch = run(entities, fresh)
    # Calls still waiting for their end webhook (no tick came) are published first and go at the next batch.
    waiting = {o.key for o in batch.outputs.values() if o.topic is topics.OUT_CALLS}
    assert waiting and batch.evicted["calls"] == held["calls"] - len(waiting)
    assert all(o.record["provisional"] for o in batch.outputs.values() if o.topic is topics.OUT_CALLS)
    after = run(entities, [Tick(p, RECEIVED + timedelta(days=3)) for p in range(PARTITIONS)])
    assert after.evicted["calls"] == len(waiting) and stores.tombstones["calls"] == held["calls"]
    assert stores.data["calls"] == {}
    assert len(stores.data["sms"]) == PARTITIONS  # only the three new SMS: the one an hour later is past it too
    assert all(not entities.open_calls.get(f"p{p}") for p in range(PARTITIONS))

    # The old event again: its entity holds no state and it is older than the retention: late, not folded.
    again = run(entities, [Event(SMS.topic, 0, SMS.offset, SMS.value)])
    assert [type(exc) for _, exc in again.failures] == [LateEvent]
    assert str(again.failures[0][1]).startswith(LATE_REASON)
    assert not again.outputs


def test_a_recovered_agent_evicts_what_the_store_holds() -> None:
    stores = Stores()
    run(agent(stores), EVENTS)
    calls = len(stores.data["calls"])
    restarted = agent(stores)
    restarted.recover(range(PARTITIONS))
    fresh = [Event(SMS.topic, p, 0, later(SMS, timedelta(days=3), 100 + p).value) for p in range(PARTITIONS)]
    evicted = run(restarted, fresh).evicted["calls"]
    ticks = [Tick(p, RECEIVED + timedelta(days=3)) for p in range(PARTITIONS)]
    assert evicted < calls and evicted + run(restarted, ticks).evicted["calls"] == calls
    assert stores.data["calls"] == {}


def test_pending_items_wait_for_their_generation_in_order() -> None:
    pending: Pending[str, int] = Pending()
    pending.put("a", 1)
    pending.put("b", 2)
    pending.seal(7)
    pending.put("c", 3)
    pending.put("a", 4)  # written again: waits for the new writes
    assert pending.take(6) == []
    assert pending.take(7) == [2]
    pending.seal(8)
    assert "a" in pending and "b" not in pending
    assert pending.take(9) == [3, 4]
    assert "a" not in pending
