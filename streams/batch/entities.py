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
from streams.batch.expiry import ACKNOWLEDGED
from streams.batch.folds import FEEDS, Fold, folds, state_of
from streams.batch.lifetimes import LATE_REASON, Aging, Clock, LateEvent, aging_tables
from streams.batch.staging import Staged
from streams.batch.window_shares import Settled, WindowShares
from streams.domain import billing, correlate
from streams.domain.billing import metrics
from streams.domain.billing.metrics import ENTITY_CALL, MetricEntity
from streams.domain.billing.rating import DEFAULT_PLAN, RatingPlan
from streams.domain.records import Record

# Decoded call states kept beside the `calls` table: the calls in progress, whose next events come soon.
CALL_CACHE_SIZE = 2048
OPEN_CALLS_CACHE_SIZE = 64  # one value per partition
LATE_CLOSED = f"{LATE_REASON}: the record would change a closed metric window"
LATE_SETTLED = f"{LATE_REASON}: the record's entity was evicted and its metrics settled"


def family_tables(family_folds: dict[str, Fold]) -> list[str]:
    return sorted({fold.table for fold in family_folds.values()})


def table_names() -> list[str]:
    """The agent's state tables (each has a changelog topic)."""
    return ["calls", "open_calls", "metric_entities", *family_tables(folds(DEFAULT_PLAN))]


def state_key(record: Record, entity_id: Any) -> str:
    """Provider ids are global, but tenants are isolated anyway: a replay of one tenant's webhooks under another
    tenant must not merge into the first tenant's entities."""
    return f"{record['tenant']}/{entity_id}"


def register_key(entity: str, key: str) -> str:
    """The metric register of the entity whose state key is ``key``: ``<entity>:<tenant>:<id>``."""
    tenant, _, entity_id = key.partition("/")
    return f"{entity}:{tenant}:{entity_id}"


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
    and `settled`, beside them in the same table, the settled sums of the evicted ones, from which `shares` derives
    the partitions' window shares; `tables`: the other families' states (batch/folds.py)."""

    def __init__(self, calls: Aging, open_calls: Staged, registers: Staged, tables: dict[str, Aging],
                 folds: dict[str, Fold], decode: Callable[[str, bytes], Record], plan: RatingPlan,
                 inactivity_timeout: timedelta, metric_grace: timedelta, clock: Clock) -> None:
        self.calls, self.open_calls, self.registers = calls, open_calls, registers
        self.settled = Staged(registers.store, registers.write, encode=metric_state.dump_settled,
                              decode=metric_state.load_settled)
        self.tables, self.folds = tables, folds
        self.rated = {"calls": ENTITY_CALL, **{fold.table: FEEDS[fold.out.name] for fold in folds.values()
                                                if fold.out.name in FEEDS}}
        """entity table -> the kind of metric register its entities have"""
        self.decode, self.plan, self.timeout = decode, plan, inactivity_timeout
        self.shares = WindowShares(metric_grace)
        self.clock = clock
        self._unverified: set[str] = set()
        """Listed calls whose published record a recovery cannot vouch for (see `_tick`)."""

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
        """The tables in the order their writes are flushed: a register's settle mark before the settled sums."""
        return (self.calls, self.open_calls, self.registers, self.settled, *self.tables.values())

    def recover(self, partitions: Container[int]) -> None:
        """After a changelog recovery: what is derived from the tables (eviction schedules, clocks, window
        shares) again, from the values of the partitions this worker holds (a store may keep others)."""
        for table in (self.calls, *self.tables.values()):
            table.recover(partitions)
        self._unverified = {key for slot, text in self.open_calls.store.items()
                            if int(slot[1:]) in partitions for key in sorted_keys(text)}
        registers: list[tuple[int, str, MetricEntity]] = []
        settled: list[Settled] = []
        for key, value in self.registers.store.items():
            if key.startswith(metric_state.SETTLED_PREFIX):
                settled.append(metric_state.load_settled(value))
            else:
                register = metric_state.load_entity(value)
                registers.append((register["partition"], key, register))
        self.shares.rebuild((item for item in registers if item[0] in partitions),
                            (item for item in settled if item["partition"] in partitions))

    def process(self, items: Sequence[Event | Tick], now: datetime, durable: int | None = None) -> Batch:
        """``now``: the processing time the metric registers record (their windows' ``updated_at``);
        ``durable``: the generation (`seal`) through which the agent's writes are acknowledged (None: all of the
        batches before, for stores written at once)."""
        if durable is None:
            self.seal(durable := ACKNOWLEDGED)
        for table in (self.calls, *self.tables.values()):
            table.acknowledged(durable)
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
        self.clock.current = None  # what eviction writes is not an event: it does not age a state
        for partition in sorted(partitions):
            self._evict(batch, partition, durable, now)
        batch.shares = self.shares.drain()
        return batch

    def _evict(self, batch: Batch, partition: int, durable: int, now: datetime) -> None:
        """The partition's expired states, closed windows and settled registers (docs/DESIGN.md, "State
        lifecycle")."""

        def publish_first(key: str, state: correlate.CallState) -> bool:
            """A call with events not yet published (a backfill can outrun the ticks) is published first, as if
            it had gone quiet, and so is one whose record a recovery cannot vouch for."""
            last = state["last_received_at"]
            return last is not None and self._publish_listed(batch, partition, key, state, last + self.timeout, now)

        for key, seq in self.shares.advance_settling(partition, durable):
            register = self.registers.get(key)
            if register is not None and register["settled"] == seq:
                self.registers.delete(partition, key)
                batch.evicted["metric_entities"] += 1
        for key in self.shares.expired(partition, self.registers.get):
            self.registers.delete(partition, key)
            batch.evicted["metric_entities"] += 1
        for name, table in (("calls", self.calls), *self.tables.items()):
            entity = self.rated.get(name)
            for key in table.expired(partition, publish_first if table is self.calls else None):
                batch.evicted[name] += 1
                if table is self.calls:
                    self._track_pending(partition, key, False)
                if entity is not None:
                    self._settle_register(batch, partition, register_key(entity, key))
        writes, dropped = self.shares.settled_writes(partition)
        for settled in writes:
            self.settled.put(partition, metric_state.settled_key(partition, settled["window"]), settled)
        for _, window in dropped:
            self.settled.delete(partition, metric_state.settled_key(partition, window))

    def _settle_register(self, batch: Batch, partition: int, key: str) -> None:
        """Its entity's state is evicted (so its last write, the register's too, is acknowledged)."""
        register: MetricEntity | None = self.registers.get(key)
        if register is None or register["settled"] is not None:
            return
        marked = self.shares.settle(partition, key, register)
        if marked is None:
            self.registers.delete(partition, key)
            batch.evicted["metric_entities"] += 1
        else:
            self.registers.put(partition, key, marked)

    def seal(self, generation: int) -> None:
        """The writes of the batches processed so far are tracked under ``generation`` (see `process`)."""
        self.shares.seal(generation)
        for table in (self.calls, *self.tables.values()):
            table.seal(generation)

    def _refuse_late(self, partition: int, before: object) -> None:
        if before is None and self.clock.is_late(partition):
            raise LateEvent(f"{LATE_REASON}: the event is older than the retention on its partition's clock "
                            "and its entity holds no state (it may have been evicted)")

    def _count(self, batch: Batch, partition: int, entity: str, key: str, record: Record, now: datetime) -> None:
        """Count a rated record in the tenant's balance and in its partition's window shares."""
        batch.feed_tenant(entity, key, record)
        register = register_key(entity, key)
        old: MetricEntity | None = self.registers.get(register)
        if old is not None and old["settled"] is not None:
            # Its entity's state was evicted and an event within the retention started it again: what it counted
            # is settled and stays so (docs/DESIGN.md, "State lifecycle"). A version it counted already is the
            # replay of the batch that settled it (a crash after the mark was written), not a late record.
            if record["version"] > old["version"]:
                batch.late.append(Late(entity, register, record, LATE_SETTLED))
            return
        new = metrics.revise(old, record, entity, partition, now)
        if new is None:
            if old is not None:
                self.shares.touch(partition, old)
            return
        self.shares.advance(partition, new)
        if self.shares.is_late(partition, old, new):
            batch.late.append(Late(entity, register, record, LATE_CLOSED))
        elif new["windows"]:
            self.registers.put(partition, register, new)
            self.shares.revise(partition, old, new)

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
                now: datetime) -> correlate.CallState:
        state, record = correlate.emit(state, at, self.timeout)
        self.calls.put(partition, key, state)
        if record is not None:
            self._publish_call(batch, partition, record, now)
        return state

    def _call_event(self, batch: Batch, partition: int, record: Record, now: datetime) -> None:
        key = state_key(record, record["call_id"])
        before = self.calls.get(key)
        self._refuse_late(partition, before)
        state = correlate.apply(before, record)
        if state is before:
            # A duplicate, e.g. re-read after a crash. The state may have reached the changelog while the record
            # did not reach its topic, or `open_calls` did not (writes, no transaction): publish the record
            # again (the sink keeps one), and make sure a call still waiting is on its partition's list.
            self.calls.changed(key)  # what is published again must be acknowledged before an eviction
            if before["emitted_count"] == len(before["event_ids"]):
                self._publish_call(batch, partition, correlate.build_record(before), now)
            else:
                self._track_pending(partition, key, True)
            return
        state = self._settle(batch, partition, key, state, record["received_at"], now)
        self._track_pending(partition, key, state["emitted_count"] != len(state["event_ids"]))

    def _tick(self, batch: Batch, tick: Tick, now: datetime) -> None:
        """A call a tick published stays listed until its record is acknowledged: a replay of the tick would not
        publish it again (its state says it is published), and a recovery cannot tell whether it reached its
        topic, so after one it is published again first."""
        partition = tick.partition
        for key in self.open_calls.get(f"p{partition}") or []:
            state = self.calls.get(key)
            if state is not None and not self._publish_listed(batch, partition, key, state, tick.now, now):
                self._track_pending(partition, key, False)

    def _publish_listed(self, batch: Batch, partition: int, key: str, state: correlate.CallState, at: datetime,
                        now: datetime) -> bool:
        """A call on `open_calls`: publish it if it has events not yet published and is quiet at ``at``, or
        again if what was published is not acknowledged or a recovery cannot vouch for it. False when it has
        nothing left to publish (it can leave the list)."""
        if state["emitted_count"] != len(state["event_ids"]):
            self._unverified.discard(key)  # what it published before, if anything, is superseded
            self._settle(batch, partition, key, state, at, now)
            return True
        if key in self._unverified or not self.calls.is_acknowledged(key):
            self._unverified.discard(key)
            self._publish_call(batch, partition, correlate.build_record(state), now)
            self.calls.changed(key)
            return True
        return False

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
        else:
            table.changed(key)
        output = Output(fold.out, str(entity_id), fold.to_record(result))
        entity = FEEDS.get(fold.out.name)
        if entity is not None:
            self._count(batch, partition, entity, key, output.record, now)
        # A conference fold returns the participant whose session changed: one record per session, not per key.
        batch.publish(output, result[1] if isinstance(result, tuple) else "")
