"""Accumulates consumed records into insert batches; pure (no I/O, the caller passes the clock).

One batch never mixes tables, topics or partitions: its insert deduplication token is then a function of
(table, topic, partition, first offset, last offset) alone, and the consumer commits ``commit_offset`` of each
partition after the batch's insert was confirmed. Batches of one partition must be written in the order
``ready`` returns them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MAX_ROWS = 10_000
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_AGE_S = 1.0


@dataclass(frozen=True)
class Entry:
    offset: int
    record: Mapping[str, Any]
    """The decoded Avro record."""
    raw: bytes
    """The message value as consumed: sizes the batch and is the body of a dead letter."""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Batch:
    table: str
    topic: str
    partition: int
    entries: tuple[Entry, ...]

    @property
    def first_offset(self) -> int:
        return self.entries[0].offset

    @property
    def last_offset(self) -> int:
        return self.entries[-1].offset

    @property
    def commit_offset(self) -> int:
        """The offset to commit for this partition once the batch is written (Kafka: next to read)."""
        return self.last_offset + 1

    @property
    def token(self) -> str:
        """Insert deduplication token: the same messages replayed as the same batch give the same token."""
        return f"{self.table}/{self.topic}/{self.partition}/{self.first_offset}-{self.last_offset}"

    @property
    def size_bytes(self) -> int:
        return sum(len(e.raw) for e in self.entries)


@dataclass
class _Buffer:
    table: str
    started: float
    entries: list[Entry] = field(default_factory=list)
    size_bytes: int = 0


class Batcher:
    def __init__(
        self,
        table_of: Callable[[str], str],
        max_rows: int = DEFAULT_MAX_ROWS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_age_s: float = DEFAULT_MAX_AGE_S,
    ) -> None:
        """``table_of(topic)`` names the target table (``lambda t: table_for_topic(t).name`` in the sink)."""
        if max_rows < 1 or max_bytes < 1 or max_age_s < 0:
            raise ValueError("batch bounds must be positive")
        self._table_of = table_of
        self._max_rows, self._max_bytes, self._max_age_s = max_rows, max_bytes, max_age_s
        self._open: dict[tuple[str, int], _Buffer] = {}
        self._sealed: list[Batch] = []

    def add(
        self,
        topic: str,
        partition: int,
        offset: int,
        record: Mapping[str, Any],
        raw: bytes,
        now: float,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        key = (topic, partition)
        buffer = self._open.get(key)
        last = buffer.entries[-1].offset if buffer else self._last_sealed_offset(key)
        if last is not None and offset <= last:
            raise ValueError(
                f"{topic}[{partition}] offset {offset} after {last}: drop() a revoked or seeked partition"
            )
        if buffer is not None and buffer.size_bytes + len(raw) > self._max_bytes:
            self._seal(key)
            buffer = None
        if buffer is None:
            buffer = self._open[key] = _Buffer(self._table_of(topic), now)
        buffer.entries.append(Entry(offset, record, raw, dict(headers or {})))
        buffer.size_bytes += len(raw)
        if len(buffer.entries) >= self._max_rows or buffer.size_bytes >= self._max_bytes:
            self._seal(key)

    def ready(self, now: float) -> list[Batch]:
        """Batches that reached a bound (rows, bytes, or age at ``now``), oldest first per partition."""
        for key, buffer in list(self._open.items()):
            if now - buffer.started >= self._max_age_s:
                self._seal(key)
        return self._take()

    def drain(self) -> list[Batch]:
        """Everything buffered, bounds or not (shutdown)."""
        for key in list(self._open):
            self._seal(key)
        return self._take()

    def drop(self, topic: str, partition: int) -> None:
        """Forget what is buffered for a partition (revoked, or seeked back for a retry)."""
        self._open.pop((topic, partition), None)
        self._sealed = [b for b in self._sealed if (b.topic, b.partition) != (topic, partition)]

    def next_deadline(self) -> float | None:
        """When the oldest open buffer ages out (a poll timeout for the consumer), ``None`` if all empty."""
        if self._sealed:
            return float("-inf")
        return min((b.started + self._max_age_s for b in self._open.values()), default=None)

    @property
    def buffered_rows(self) -> int:
        return sum(len(b.entries) for b in self._open.values()) + sum(len(b.entries) for b in self._sealed)

    def _last_sealed_offset(self, key: tuple[str, int]) -> int | None:
        offsets = [b.last_offset for b in self._sealed if (b.topic, b.partition) == key]
        return offsets[-1] if offsets else None

    def _seal(self, key: tuple[str, int]) -> None:
        buffer = self._open.pop(key)
        self._sealed.append(Batch(buffer.table, key[0], key[1], tuple(buffer.entries)))

    def _take(self) -> list[Batch]:
        batches, self._sealed = self._sealed, []
        return batches
