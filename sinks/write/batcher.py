"""Accumulates consumed records into insert batches; pure (no I/O, the caller passes the clock).

One batch per table (each table has one source topic), mixing that topic's partitions: ClickHouse wants few,
large inserts (about one per table per second), and a buffer per partition would multiply them by the partition
count. The insert deduplication token is a function of the batch's offset range in each partition, so the same
messages cut the same way give the same token. After the insert is confirmed the consumer commits
``commit_offsets`` (per partition, the offset after the batch). Batches of one table must be written in the
order ``ready`` returns them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

DEFAULT_MAX_ROWS = 10_000
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_AGE_S = 1.0


@dataclass(frozen=True)
class Entry:
    partition: int
    offset: int
    record: Mapping[str, Any]
    """The decoded Avro record."""
    raw: bytes
    """The message value as consumed: sizes the batch and is the body of a dead letter."""
    headers: Mapping[str, str] = field(default_factory=dict)
    undecodable: Exception | None = None
    """Why the value could not be decoded (then ``record`` is empty): the entry becomes a dead letter when its
    batch is written, and its offset is committed with the batch's."""


@dataclass(frozen=True)
class InsertBatch:
    table: str
    topic: str
    entries: tuple[Entry, ...]

    @cached_property
    def ranges(self) -> dict[int, tuple[int, int]]:
        """Per partition: first and last offset in the batch."""
        ranges: dict[int, tuple[int, int]] = {}
        for entry in self.entries:
            first, _ = ranges.get(entry.partition, (entry.offset, entry.offset))
            ranges[entry.partition] = (first, entry.offset)
        return dict(sorted(ranges.items()))

    @property
    def commit_offsets(self) -> dict[int, int]:
        """Per partition, the offset to commit once the batch is written (Kafka: the next one to read)."""
        return {partition: last + 1 for partition, (_, last) in self.ranges.items()}

    @property
    def token(self) -> str:
        """Insert deduplication token: the same messages replayed as the same batch give the same token."""
        spans = ",".join(f"{p}:{first}-{last}" for p, (first, last) in self.ranges.items())
        return f"{self.table}/{self.topic}/{spans}"

    @property
    def size_bytes(self) -> int:
        return sum(len(e.raw) for e in self.entries)


@dataclass
class _Buffer:
    table: str
    topic: str
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
        """``table_of(topic)`` names the target table (``lambda t: catalog().for_topic(t).name`` in the sink)."""
        if max_rows < 1 or max_bytes < 1 or max_age_s < 0:
            raise ValueError("batch bounds must be positive")
        self._table_of = table_of
        self._max_rows, self._max_bytes, self._max_age_s = max_rows, max_bytes, max_age_s
        self._open: dict[str, _Buffer] = {}  # by topic
        self._sealed: list[InsertBatch] = []
        self._last: dict[tuple[str, int], int] = {}  # last offset added per (topic, partition)

    def add(
        self,
        topic: str,
        partition: int,
        offset: int,
        record: Mapping[str, Any],
        raw: bytes,
        now: float,
        headers: Mapping[str, str] | None = None,
        undecodable: Exception | None = None,
    ) -> None:
        last = self._last.get((topic, partition))
        if last is not None and offset <= last:
            raise ValueError(
                f"{topic}[{partition}] offset {offset} after {last}: drop() a revoked or seeked partition"
            )
        buffer = self._open.get(topic)
        if buffer is not None and buffer.size_bytes + len(raw) > self._max_bytes:
            self._seal(topic)
            buffer = None
        if buffer is None:
            buffer = self._open[topic] = _Buffer(self._table_of(topic), topic, now)
        buffer.entries.append(Entry(partition, offset, record, raw, dict(headers or {}), undecodable))
        buffer.size_bytes += len(raw)
        self._last[(topic, partition)] = offset
        if len(buffer.entries) >= self._max_rows or buffer.size_bytes >= self._max_bytes:
            self._seal(topic)

    def ready(self, now: float) -> list[InsertBatch]:
        """Batches that reached a bound (rows, bytes, or age at ``now``), oldest first per table."""
        for topic, buffer in list(self._open.items()):
            if now - buffer.started >= self._max_age_s:
                self._seal(topic)
        return self._take()

    def drain(self) -> list[InsertBatch]:
        """Everything buffered, bounds or not (shutdown, rebalance)."""
        for topic in list(self._open):
            self._seal(topic)
        return self._take()

    def drop(self, topic: str, partition: int) -> None:
        """Forget what is buffered for a partition (lost, or seeked back for a retry)."""
        self._last.pop((topic, partition), None)
        buffer = self._open.get(topic)
        if buffer is not None:
            buffer.entries = [e for e in buffer.entries if e.partition != partition]
            buffer.size_bytes = sum(len(e.raw) for e in buffer.entries)
            if not buffer.entries:
                del self._open[topic]
        kept = []
        for batch in self._sealed:
            entries = tuple(e for e in batch.entries if not (batch.topic == topic and e.partition == partition))
            if entries:
                kept.append(InsertBatch(batch.table, batch.topic, entries))
        self._sealed = kept

    def next_deadline(self) -> float | None:
        """When the oldest open buffer ages out (a poll timeout for the consumer), ``None`` if all empty."""
        if self._sealed:
            return float("-inf")
        return min((b.started + self._max_age_s for b in self._open.values()), default=None)

    @property
    def buffered_rows(self) -> int:
        return sum(len(b.entries) for b in self._open.values()) + sum(len(b.entries) for b in self._sealed)

    def _seal(self, topic: str) -> None:
        buffer = self._open.pop(topic)
        self._sealed.append(InsertBatch(buffer.table, topic, tuple(buffer.entries)))

    def _take(self) -> list[InsertBatch]:
        batches, self._sealed = self._sealed, []
        return batches
