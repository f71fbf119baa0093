"""When a partition's keys may expire: the eviction schedule that entity states, metric registers and metric
windows share. Each is a per-partition heap of (deadline, key); a key is pushed again whenever its deadline
moves, so an entry popped from the heap may be stale, and the caller checks the key's current state before
evicting it. Entries are bounded by the changes within one retention, since every entry leaves when its
deadline passes. Derived data: rebuilt from the tables after every recovery.

A key is not evicted while what was last written or published for it is unacknowledged (`changed`, then
`seal` with the generation its writes were tracked under, `acknowledged` once they are): otherwise a crash could
keep the tombstone and lose that write or record (the replay finds no state to publish it from again)."""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterator
from datetime import datetime
from typing import Generic, TypeVar

ACKNOWLEDGED = -1
"""The generation of writes known to be acknowledged: those a recovery read, or any where stores are written at
once (tests)."""

Instant = TypeVar("Instant", int, datetime)
"""Epoch ms (entity states) or a UTC datetime (metric windows and registers)."""

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Pending(Generic[K, V]):
    """What waits for writes to be acknowledged, in the order it came: `put` when the writes are made, `seal`
    with the generation they were tracked under, `take` once that generation is acknowledged. Putting a key
    again waits for the new writes."""

    def __init__(self) -> None:
        self._items: dict[K, tuple[V, int | None]] = {}

    def put(self, key: K, value: V, generation: int | None = None) -> None:
        self._items.pop(key, None)
        self._items[key] = (value, generation)

    def __contains__(self, key: K) -> bool:
        return key in self._items

    def seal(self, generation: int) -> None:
        for key, (value, sealed) in self._items.items():
            if sealed is None:
                self._items[key] = (value, generation)

    def take(self, durable: int) -> list[V]:
        """Remove and return, in order, what was sealed at or before ``durable``."""
        ready = [k for k, (_, g) in self._items.items() if g is not None and g <= durable]
        return [self._items.pop(k)[0] for k in ready]


class ExpirySchedule(Generic[Instant]):
    def __init__(self) -> None:
        self._heaps: dict[int, list[tuple[Instant, str]]] = {}
        self._unacknowledged: Pending[str, str] = Pending()
        """Keys whose latest write is unacknowledged."""
        self._held: dict[int, list[str]] = {}
        """Per partition, keys that were due while their latest write was unacknowledged."""

    def add(self, partition: int, deadline: Instant, key: str) -> None:
        heapq.heappush(self._heaps.setdefault(partition, []), (deadline, key))

    def changed(self, key: str) -> None:
        self._unacknowledged.put(key, key)

    def is_acknowledged(self, key: str) -> bool:
        return key not in self._unacknowledged

    def seal(self, generation: int) -> None:
        self._unacknowledged.seal(generation)

    def acknowledged(self, durable: int) -> None:
        """The writes sealed at or before ``durable`` are acknowledged."""
        self._unacknowledged.take(durable)

    def due(self, partition: int, clock: Instant | None) -> Iterator[str]:
        """Pop the partition's keys whose deadline is at or before ``clock`` (None: the clock has not started)
        and whose latest write is acknowledged."""
        held = self._held.pop(partition, [])
        heap = self._heaps.get(partition, [])
        while clock is not None and heap and heap[0][0] <= clock:
            held.append(heapq.heappop(heap)[1])
        for key in held:
            if key in self._unacknowledged:
                self._held.setdefault(partition, []).append(key)
            else:
                yield key

    def clear(self) -> None:
        self._heaps, self._unacknowledged, self._held = {}, Pending(), {}
