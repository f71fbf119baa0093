"""When a partition's keys may expire: the eviction schedule that entity states, metric registers and metric
windows share. Each is a per-partition heap of (deadline, key); a key is pushed again whenever its deadline
moves, so an entry popped from the heap may be stale, and the caller checks the key's current state before
evicting it. Entries are bounded by the changes within one retention, since every entry leaves when its
deadline passes. Derived data: rebuilt from the tables after every recovery."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import datetime
from typing import Generic, TypeVar

Instant = TypeVar("Instant", int, datetime)
"""Epoch ms (entity states) or a UTC datetime (metric windows and registers)."""


class ExpirySchedule(Generic[Instant]):
    def __init__(self) -> None:
        self._heaps: dict[int, list[tuple[Instant, str]]] = {}

    def add(self, partition: int, deadline: Instant, key: str) -> None:
        heapq.heappush(self._heaps.setdefault(partition, []), (deadline, key))

    def due(self, partition: int, clock: Instant | None) -> Iterator[str]:
        """Pop the partition's keys whose deadline is at or before ``clock`` (None: the clock has not started)."""
        heap = self._heaps.get(partition, [])
        while clock is not None and heap and heap[0][0] <= clock:
            yield heapq.heappop(heap)[1]

    def clear(self) -> None:
        self._heaps = {}
