"""What the `entities` agent does with one batch of events: fold each into its entity's state, and say which
records to publish (the last version of each entity the batch changed) and which to feed to the tenant agent.

Input: normalized events of every entity topic (call, SMS, conference, voicemail, validation…) and ticks. A
tick carries the leader's clock to one partition and settles that partition's calls with events not yet
published (provisional records for calls gone quiet). No Faust or Kafka import: the agent (streams/faustapp/app.py)
decodes nothing itself, writes the staged tables and sends what `Batch` lists.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Container, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from schemas import topics
from streams.batch import metric_state
from streams.batch import state_codec as codec
from streams.batch.events import Batch, Event, Late, Output, Tick
from streams.batch.folds import FEEDS, Fold, folds, state_of
from streams.batch.lifetimes import LATE_REASON, Aging, Clock, LateEvent, aging_tables
from streams.batch.staging import Staged
from streams.batch.window_shares import WindowShares
from streams.domain import billing, correlate
from streams.domain.billing import metrics
from streams.domain.billing.metrics import ENTITY_CALL, MetricEntity
from streams.domain.billing.rating import DEFAULT_PLAN, RatingPlan
from streams.domain.records import Record

# Decoded call states kept beside the `calls` table: the calls in progress, whose next events come soon.
CALL_CACHE_SIZE = 2048
OPEN_CALLS_CACHE_SIZE = 64  # one value per partition


def family_tables(family_folds: dict[str, Fold]) -> list[str]:
    return sorted({fold.table for fold in family_folds.values()})


def table_names() -> list[str]:
    """The agent's state tables (each has a changelog topic)."""
    return ["calls", "open_calls", "metric_entities", *family_tables(folds(DEFAULT_PLAN))]


def state_key(record: Record, entity_id: Any) -> str:
    """Provider ids are global, but tenants are isolated anyway: a replay of one tenant's webhooks under another
    tenant must not merge into the first tenant's entities."""
    return f"{record['tenant']}/{entity_id}"


def sorted_keys(text: bytes) -> list[str]:
    """An `open_calls` value: the sorted list of call keys (written sorted; sorted again to be sure)."""
    return sorted(set(codec.loads(text)))


def with_membership(members: list[str], key: str, present: bool) -> list[str] | None:
    """The sorted list with `key` in it or not; None when it already is as asked (the common case: no write)."""
    i = bisect_left(members, key)
    if (i < len(members) and members[i] == key) == present:
        return None
    return [*members[:i], key, *members[i:]] if present else [*members[:i], *members[i + 1:]]


class Entities:
    """`calls`: call states by tenant/call id; `open_calls`: per partition ("p<n>"), the sorted keys of the calls
    with events not yet published (what ticks look at); `registers`: the metric register of every rated entity,
    from which `shares` derives the partitions' window shares; `tables`: the other families' states
    (batch/folds.py)."""

    def __init__(self, calls: Aging, open_calls: Staged, registers: Staged, tables: dict[str, Aging],
                 folds: dict[str, Fold], decode: Callable[[str, bytes], Record], plan: RatingPlan,
                 inactivity_timeout: timedelta, metric_grace: timedelta, clock: Clock) -> None:
        self.calls, self.open_calls, self.registers = calls, open_calls, registers
        self.tables, self.folds = tables, folds
        self.decode, self.plan, self.timeout = decode, plan, inactivity_timeout
        self.shares = WindowShares(metric_grace)
        self.clock = clock

    @classmethod
    def over(cls, staged: Callable[..., Staged], decode: Callable[[str, bytes], Record], plan: RatingPlan,
             inactivity_timeout: timedelta, metric_grace: timedelta, retention: timedelta) -> Entities:
        """The agent over the tables `staged(name, **options)` makes (Faust tables, or dicts in tests)."""
        family_folds = folds(plan)
        clock = Clock(retention)
        aging = aging_tables(staged, clock)
        return cls(aging("calls", cache=CALL_CACHE_SIZE), staged("open_calls", cache=OPEN_CALLS_CACHE_SIZE,
                                                                  decode=sorted_keys),
                   staged("metric_entities", encode=metric_state.dump_entity, decode=metric_state.load_entity),
                   {name: aging(name) for name in family_tables(family_folds)},
                   family_folds, decode, plan, inactivity_timeout, metric_grace, clock)

    def staged(self) -> Iterable[Staged]:
        return (self.calls, self.open_calls, self.registers, *self.tables.values())

    def recover(self, partitions: Container[int]) -> None:
        """After a changelog recovery: what is derived from the tables (eviction schedules, clocks, window
        shares) again, from the values of the partitions this worker holds (a store may keep others)."""
        for table in (self.calls, *self.tables.values()):
            table.recover(partitions)
        registers = ((key, metric_state.load_entity(value)) for key, value in self.registers.store.items())
        self.shares.rebuild((r["partition"], key, r) for key, r in registers if r["partition"] in partitions)

    def process(self, items: Sequence[Event | Tick], now: datetime) -> Batch:
        """``now``: the processing time the metric registers record (their windows' ``updated_at``)."""
        batch = Batch()
        partitions = set()
        for item in items:
            partitions.add(item.partition)
            if isinstance(item, Tick):
                self.clock.current = None
                self._tick(batch, item, now)
                continue
            try:
                record = self.decode(item.topic, item.value)
                self.clock.observe(item.partition, record)
                if record["kind"] in correlate.CALL_KINDS:
                    self._call_event(batch, item.partition, record, now)
                else:
                    self._entity_event(batch, item.partition, record, now)
            except (ValueError, KeyError, TypeError) as exc:  # a bad event must not stall its partition
                batch.failures.append((item, exc))
        batch.shares = self.shares.drain()
        for partition in sorted(partitions):
            for key in self.shares.expired(partition, self.registers.get):
                self.registers.delete(partition, key)
                batch.evicted["metric_entities"] += 1
            for name, table in (("calls", self.calls), *self.tables.items()):
                for key in table.expired(partition):
                    batch.evicted[name] += 1
                    if table is self.calls:
                        self._track_pending(partition, key, False)
        return batch

    def _refuse_late(self, partition: int, before: object) -> None:
        if before is None and self.clock.is_late(partition):
            raise LateEvent(f"{LATE_REASON}: the event is older than the retention on its partition's clock "
                            "and its entity holds no state (it may have been evicted)")

    def _count(self, batch: Batch, partition: int, entity: str, key: str, record: Record, now: datetime) -> None:
        """Count a rated record in the tenant's balance and in its partition's window shares."""
        batch.feed_tenant(entity, key, record)
        register_key = metrics.entity_key(record, entity)
        old: MetricEntity | None = self.registers.get(register_key)
        new = metrics.revise(old, record, entity, partition, now)
        if new is None:
            if old is not None:
                self.shares.touch(partition, old)
            return
        self.shares.advance(partition, new)
        if self.shares.is_late(partition, old, new):
            batch.late.append(Late(entity, register_key, record))
        elif new["windows"]:
            self.registers.put(partition, register_key, new)
            self.shares.revise(partition, register_key, old, new)

    def _publish_call(self, batch: Batch, partition: int, record: Record, now: datetime) -> None:
        rated = billing.price(ENTITY_CALL, record, self.plan)
        call_id = str(rated["call_id"])
        batch.publish(Output(topics.OUT_CALLS, call_id, rated))
        self._count(batch, partition, ENTITY_CALL, f"{rated['tenant']}/{call_id}", rated, now)

    def _track_pending(self, partition: int, key: str, pending: bool) -> None:
        slot = f"p{partition}"
        members = with_membership(self.open_calls.get(slot) or [], key, pending)
        if members is not None:
            self.open_calls.put(partition, slot, members)

    def _settle(self, batch: Batch, partition: int, key: str, state: correlate.CallState, at: datetime,
                now: datetime) -> None:
        state, record = correlate.emit(state, at, self.timeout)
        self.calls.put(partition, key, state)
        if record is not None:
            self._publish_call(batch, partition, record, now)
        self._track_pending(partition, key, state["emitted_count"] != len(state["event_ids"]))

    def _call_event(self, batch: Batch, partition: int, record: Record, now: datetime) -> None:
        key = state_key(record, record["call_id"])
        before = self.calls.get(key)
        self._refuse_late(partition, before)
        state = correlate.apply(before, record)
        if state is before:
            # A duplicate, e.g. re-read after a crash. The state may have reached the changelog while the record
            # did not reach its topic, or `open_calls` did not (writes, no transaction): publish the record
            # again (the sink keeps one), and make sure a call still waiting is on its partition's list.
            if before["emitted_count"] == len(before["event_ids"]):
                self._publish_call(batch, partition, correlate.build_record(before), now)
            else:
                self._track_pending(partition, key, True)
            return
        self._settle(batch, partition, key, state, record["received_at"], now)

    def _tick(self, batch: Batch, tick: Tick, now: datetime) -> None:
        for key in self.open_calls.get(f"p{tick.partition}") or []:
            state = self.calls.get(key)
            if state is not None:
                self._settle(batch, tick.partition, key, state, tick.now, now)

    def _entity_event(self, batch: Batch, partition: int, record: Record, now: datetime) -> None:
        fold = self.folds[record["kind"]]
        table = self.tables[fold.table]
        entity_id = record[fold.key]
        key = state_key(record, entity_id)
        before = table.get(key)
        self._refuse_late(partition, before)
        result = fold.apply(before, record)
        state = state_of(result)
        if state is not before:  # a duplicate leaves the state as it was; its record is published again below
            table.put(partition, key, state)
        output = Output(fold.out, str(entity_id), fold.to_record(result))
        entity = FEEDS.get(fold.out.name)
        if entity is not None:
            self._count(batch, partition, entity, key, output.record, now)
        # A conference fold returns the participant whose session changed: one record per session, not per key.
        batch.publish(output, result[1] if isinstance(result, tuple) else "")
