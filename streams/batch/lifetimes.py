"""How long an entity's state lives: each value of an entity table is held with the event time of the entity's
latest event and its partition, and evicted (a changelog tombstone, which compaction then drops) once its
partition's event-time clock is `retention` past that time.

Clock (docs/DESIGN.md, "State lifecycle"): per partition, the latest event time seen (an event's own provider
times, capped at its ingest time plus `FUTURE_SKEW`); derived from the held values after a recovery. An event
that carries no provider time neither moves the clock nor ages its entity. An event older than the retention
whose entity holds no state is late: its entity may have been evicted, and folding it would publish a partial
record over the complete one, so the caller dead-letters it instead.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, TypedDict

from streams.batch import state_codec as codec
from streams.batch.expiry import ExpirySchedule
from streams.batch.staging import Staged, StoreWrite
from streams.domain.records import Record, epoch_ms, event_time

FUTURE_SKEW = timedelta(hours=1)


LATE_REASON = "late-after-retention"


class LateEvent(ValueError):
    """An event older than the retention for an entity that holds no state (its state may have been evicted)."""


class Held(TypedDict):
    state: Any
    at: int | None
    """Event time of the entity's latest event, epoch ms; None before any event that carried one."""
    partition: int


def dump_held(held: Held) -> bytes:
    return codec.encode({"s": held["state"], "t": held["at"], "p": held["partition"]})


def load_held(text: bytes) -> Held:
    return held_value(codec.loads(text))


def held_value(data: Any) -> Held:
    return Held(state=data["s"], at=data["t"], partition=data["p"])


class Clock:
    """The partitions' event-time clocks (epoch ms) and the event time of the event being folded."""

    def __init__(self, retention: timedelta) -> None:
        self.retention_ms = int(retention / timedelta(milliseconds=1))
        self.partitions: dict[int, int] = {}
        self.current: int | None = None

    def observe(self, partition: int, record: Record) -> None:
        at = event_time(record)
        received = record.get("received_at")
        if at is not None and isinstance(received, datetime):
            at = min(at, received + FUTURE_SKEW)
        self.current = None if at is None else epoch_ms(at)
        self.advance(partition, self.current)

    def advance(self, partition: int, at: int | None) -> None:
        if at is not None and at > self.partitions.get(partition, at - 1):
            self.partitions[partition] = at

    def is_late(self, partition: int) -> bool:
        clock = self.partitions.get(partition)
        return self.current is not None and clock is not None and self.current + self.retention_ms <= clock


class Aging(Staged):
    """A staged entity table: `get` and `put` take and give the entity's state; the store holds it as `Held`."""

    def __init__(self, store: Mapping[str, bytes], write: StoreWrite, clock: Clock, *, cache: int = 0) -> None:
        super().__init__(store, write, cache=cache, encode=dump_held, decode=load_held)
        self.clock = clock
        self._expiry: ExpirySchedule[int] = ExpirySchedule()

    def get(self, key: str) -> Any:
        held = super().get(key)
        return None if held is None else held["state"]

    def put(self, partition: int, key: str, value: Any) -> None:
        held: Held | None = super().get(key)
        before = held["at"] if held else None
        known = [t for t in (before, self.clock.current) if t is not None]
        at = max(known) if known else None
        super().put(partition, key, Held(state=value, at=at, partition=partition))
        self.changed(key)
        if at is not None and at != before:
            self._expiry.add(partition, at + self.clock.retention_ms, key)

    def changed(self, key: str) -> None:
        """The key's state is unchanged but its record was published again: evict it only once that is acknowledged."""
        self._expiry.changed(key)

    def is_acknowledged(self, key: str) -> bool:
        return self._expiry.is_acknowledged(key)

    def seal(self, generation: int) -> None:
        self._expiry.seal(generation)

    def acknowledged(self, durable: int) -> None:
        self._expiry.acknowledged(durable)

    def expired(self, partition: int, hold: Callable[[str, Any], bool] | None = None) -> Iterator[str]:
        """Delete the partition's keys past the retention whose latest write is acknowledged (streams/batch/
        expiry.py); yields each deleted key. ``hold(key, state)`` may keep a key one more time, having written
        what must go out before its state goes (it is evicted once that is acknowledged)."""
        clock = self.clock.partitions.get(partition)
        if clock is None:
            return
        for key in self._expiry.due(partition, clock):
            held: Held | None = super().get(key)
            if held is None or held["at"] is None or held["at"] + self.clock.retention_ms > clock:
                continue
            if hold is not None and hold(key, held["state"]):
                self._expiry.add(partition, held["at"] + self.clock.retention_ms, key)
                continue
            self.delete(partition, key)
            yield key

    def recover(self, partitions: Container[int]) -> None:
        """After a changelog recovery: the eviction schedule and the clocks from what the store holds."""
        self._expiry.clear()
        for key, text in self.store.items():
            held = load_held(text)
            if held["partition"] in partitions and held["at"] is not None:
                self._expiry.add(held["partition"], held["at"] + self.clock.retention_ms, key)
                self.clock.advance(held["partition"], held["at"])


def aging_tables(staged: Callable[..., Staged], clock: Clock) -> Callable[..., Aging]:
    """`staged(name, **options)` for entity tables: the same store and writer, held values with their age."""

    def make(name: str, cache: int = 0) -> Aging:
        plain = staged(name)
        return Aging(plain.store, plain.write, clock, cache=cache)

    return make
