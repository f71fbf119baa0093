"""The metric windows as the `entities` agent holds them: per partition, each window's share (the sum over the
partition's metric registers, streams/domain/billing/metrics.py, and its settled sum), derived in memory from the
`metric_entities` table and never stored on its own.

Because the shares are a function of the table, they are rebuilt from it whenever the table may have changed
under them (a changelog recovery after a rebalance or a restart), and nothing a crash leaves half-written can be
counted twice or lost. Each batch publishes the shares it changed; the `tenants` agent adds the partitions'
shares of a window up (streams/batch/tenants.py).

Settling (docs/DESIGN.md, "State lifecycle"): a register lives as long as its entity's state. When the state is
evicted, the register's share of every open window moves into the partition's settled sum of that window, so
that registers are bounded by the retention and not by the windows. No two writes are atomic and a batch's writes
may reach Kafka in any order, so settling takes three steps, each written only once the writes of the one
before are acknowledged (the caller says which of its batches are: `seal`, ``durable``): the register is marked
with a settle sequence ``s`` (it still counts on its own); each settled sum it touches is written with it added
and ``through >= s`` (from then on the register counts only there); the register is tombstoned. Whatever
survives a crash, a register counts in window W on its own exactly when it is unmarked or marked above W's
``through``; the rebuild queues the marked registers again, and folding skips the windows already past them.

Lifecycle: a partition's event-time clock is the latest instant its registers are bucketed at (capped at their
processing time plus `FUTURE_SKEW`, so that a bogus future timestamp cannot close every window); a window closes
`grace` after its end on that clock. A closed window's share and settled sum are dropped and never change again: a
record that would change what a closed window counts is late and not counted (the caller routes it).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypedDict

from streams.batch.expiry import ACKNOWLEDGED, ExpirySchedule, Pending
from streams.domain.billing import metrics
from streams.domain.billing.metrics import MetricEntity, WindowKey, WindowSum

FUTURE_SKEW = timedelta(hours=1)

Share = tuple[int, WindowKey]
"""(partition, window)"""


class Settled(TypedDict):
    """What the settled registers of one partition add to one open window."""

    window: WindowKey
    partition: int
    share: WindowSum
    through: int
    """The highest settle sequence folded in: a register marked at or below it counts here, not on its own."""
    clock: datetime | None
    """The partition's clock when written (so that a recovery where only settled sums remain keeps its clock)."""


@dataclass(frozen=True)
class Step:
    """A settling register waiting for the writes of the step before to be acknowledged."""

    key: str
    member: MetricEntity
    """The register as marked."""


Steps = Pending[tuple[str, int], Step]
"""A partition's settling registers by (key, mark), in mark order."""


def _step(key: str, member: MetricEntity) -> tuple[tuple[str, int], Step]:
    assert member["settled"] is not None
    return (key, member["settled"]), Step(key, member)


def _closes_at(window: WindowKey, grace: timedelta) -> datetime:
    return metrics.window_end(window) + grace


FINEST = min(metrics.WINDOW_SIZES, key=metrics.WINDOW_SIZES.__getitem__)


def _clock_of(member: MetricEntity) -> datetime | None:
    """The instant the entity is bucketed at (its earliest window of the finest size: a coarser window starts
    before it, a call's later windows only hold its interval), capped."""
    starts = [metrics.window_start(w) for w, part in member["windows"].items() if part is not None and w[1] == FINEST]
    return min(min(starts), member["updated_at"] + FUTURE_SKEW) if starts else None


def _copy(window: WindowSum) -> WindowSum:
    """A sum `metrics.count` can update without changing ``window`` (it rebinds the contribution's fields)."""
    return WindowSum(sum=metrics.Contribution(**window["sum"]), version=window["version"],
                     updated_at=window["updated_at"])


@dataclass
class WindowShares:
    grace: timedelta
    sums: dict[Share, WindowSum] = field(default_factory=dict)
    clocks: dict[int, datetime] = field(default_factory=dict)
    changed: set[Share] = field(default_factory=set)
    settled: dict[Share, Settled] = field(default_factory=dict)
    seqs: dict[int, int] = field(default_factory=dict)
    """Per partition, the last settle sequence used."""
    _unwritten: set[Share] = field(default_factory=set)
    """Settled sums changed since they were last handed out to be written."""
    _dropped: set[Share] = field(default_factory=set)
    """Settled sums of closed windows, to be deleted."""
    _folding: dict[int, Steps] = field(default_factory=dict)
    """Per partition, the registers marked, to fold into the settled sums once the mark is acknowledged."""
    _dropping: dict[int, Steps] = field(default_factory=dict)
    """Per partition, the registers folded, to tombstone once the settled sums are acknowledged."""
    _expiry: ExpirySchedule[datetime] = field(default_factory=ExpirySchedule)
    """Per partition, when every window of a recovered register is closed."""
    _closing: dict[int, list[tuple[datetime, WindowKey]]] = field(default_factory=dict)
    """Per partition, a heap of when its shares close, pushed when a share enters `sums` (a closed window never
    enters again): closing windows costs what closes, not a scan of every open share (48 h of them by default)."""

    def is_late(self, partition: int, old: MetricEntity | None, new: MetricEntity) -> bool:
        """Whether counting ``new`` in place of ``old`` would change what a closed window counts (a newer version
        that adds the same to every closed window, e.g. a recording URL filled in, is not late)."""
        clock = self.clocks.get(partition)
        if clock is None:
            return False
        before = old["windows"] if old else {}
        return any(_closes_at(w, self.grace) <= clock and before.get(w) != new["windows"].get(w)
                   for w in {*before, *new["windows"]})

    def revise(self, partition: int, old: MetricEntity | None, new: MetricEntity) -> None:
        if old is not None:
            for window in old["windows"]:
                if self._is_open(partition, window):  # a closed window keeps its count
                    share = (partition, window)
                    self._set(share, metrics.count(self.sums.get(share), old, window, -1))
        self._add(partition, new)
        self.touch(partition, new)

    def touch(self, partition: int, member: MetricEntity) -> None:
        """Publish the member's windows again (a repeated version, e.g. re-read after a crash)."""
        self.changed.update((partition, w) for w in member["windows"] if (partition, w) in self.sums)

    def settle(self, partition: int, key: str, member: MetricEntity) -> MetricEntity | None:
        """The register marked as settled, to be written; None when none of its windows is open (then it can go
        at once). The shares do not change: the register's part of each moves to the settled sums later."""
        if not any(self._is_open(partition, w) for w in member["windows"]):
            return None
        marked = member.copy()
        marked["settled"] = self.seqs[partition] = self.seqs.get(partition, 0) + 1
        self._folding.setdefault(partition, Pending()).put(*_step(key, marked))
        return marked

    def seal(self, generation: int) -> None:
        """The writes of the steps taken so far are tracked under ``generation``."""
        for steps in (*self._folding.values(), *self._dropping.values()):
            steps.seal(generation)

    def advance_settling(self, partition: int, durable: int) -> list[tuple[str, int]]:
        """Take the partition's steps whose writes are acknowledged (sealed at or before ``durable``): fold the
        acknowledged marks into the settled sums (written by `settled_writes`), and return (key, sequence) of
        the registers whose settled sums are acknowledged, to tombstone where the register still holds that
        mark."""
        ready = self._dropping.setdefault(partition, Pending()).take(durable)
        for step in self._folding.setdefault(partition, Pending()).take(durable):
            seq = step.member["settled"]
            assert seq is not None
            for window in step.member["windows"]:
                held = self.settled.get((partition, window))
                if self._is_open(partition, window) and seq > (held["through"] if held else 0):
                    self._fold(partition, window, step.member, seq)
            self._dropping.setdefault(partition, Pending()).put(*_step(step.key, step.member))
        return [(step.key, step.member["settled"] or 0) for step in ready]

    def settled_writes(self, partition: int) -> tuple[list[Settled], list[Share]]:
        """The partition's settled sums to write (with its clock now) and those of closed windows to delete."""
        writes = [self.settled[s] for s in sorted(self._unwritten) if s[0] == partition]
        for settled in writes:
            settled["clock"] = self.clocks.get(partition)
        self._unwritten.difference_update((partition, s["window"]) for s in writes)
        dropped = sorted(s for s in self._dropped if s[0] == partition)
        self._dropped.difference_update(dropped)
        return writes, dropped

    def rebuild(self, members: Iterable[tuple[int, str, MetricEntity]], settled: Iterable[Settled]) -> None:
        """Derive every share again from the registers (partition, key, register) and the settled sums of the
        partitions this worker holds."""
        self.sums, self.clocks, self.changed, self.settled, self.seqs = {}, {}, set(), {}, {}
        self._unwritten, self._dropped, self._folding, self._dropping, self._closing = set(), set(), {}, {}, {}
        self._expiry.clear()
        held, stored = list(members), list(settled)
        for item in stored:
            clock = item["clock"]
            if clock is not None and (item["partition"] not in self.clocks or clock > self.clocks[item["partition"]]):
                self.clocks[item["partition"]] = clock
        for partition, _, member in held:
            self.advance(partition, member)
        through: dict[Share, int] = {}
        for item in stored:
            share = (item["partition"], item["window"])
            self.seqs[share[0]] = max(self.seqs.get(share[0], 0), item["through"])
            if not self._is_open(*share):
                self._dropped.add(share)
                continue
            through[share] = item["through"]
            self.settled[share] = item
            self._set(share, _copy(item["share"]))
        # Marked registers are queued in mark order: a settled sum's `through` must never pass one not folded.
        for partition, key, member in sorted(held, key=lambda item: item[2]["settled"] or 0):
            mark = member["settled"]
            if mark is None:
                self._add(partition, member)
                self._expiry.add(partition, self._expires_at(member), key)
                continue
            self.seqs[partition] = max(self.seqs.get(partition, 0), mark)
            self._folding.setdefault(partition, Pending()).put(*_step(key, member), generation=ACKNOWLEDGED)
            for window in member["windows"]:
                if self._is_open(partition, window) and mark > through.get((partition, window), 0):
                    self._count(partition, window, member)

    def expired(self, partition: int, current: Callable[[str], MetricEntity | None]) -> list[str]:
        """Close the partition's windows past its clock; the keys of the recovered registers to evict (every
        window closed: an entity state evicted without its register being settled, in a crash). ``current``
        gives a key's register now (None: gone), so that stale heap entries are skipped."""
        clock = self.clocks.get(partition)
        if clock is None:
            return []
        closing = self._closing.get(partition, [])
        while closing and closing[0][0] <= clock:
            share = (partition, heapq.heappop(closing)[1])
            del self.sums[share]
            self.changed.discard(share)
            if self.settled.pop(share, None) is not None:
                self._unwritten.discard(share)
                self._dropped.add(share)
        return [key for key in self._expiry.due(partition, clock)
                if (member := current(key)) is not None and member["settled"] is None
                and self._expires_at(member) <= clock]

    def drain(self) -> list[tuple[int, WindowKey, WindowSum]]:
        out = [(p, w, self.sums[(p, w)]) for p, w in sorted(self.changed)]
        self.changed.clear()
        return out

    def _add(self, partition: int, member: MetricEntity) -> None:
        self.advance(partition, member)
        for window in member["windows"]:
            if self._is_open(partition, window):
                self._count(partition, window, member)

    def _count(self, partition: int, window: WindowKey, member: MetricEntity) -> None:
        self._set((partition, window), metrics.count(self.sums.get((partition, window)), member, window))

    def _set(self, share: Share, value: WindowSum) -> None:
        if share not in self.sums:
            heapq.heappush(self._closing.setdefault(share[0], []), (_closes_at(share[1], self.grace), share[1]))
        self.sums[share] = value

    def _fold(self, partition: int, window: WindowKey, member: MetricEntity, seq: int) -> None:
        """Add a register marked ``seq`` (above the sum's `through`: registers fold in mark order)."""
        share = (partition, window)
        held = self.settled.get(share)
        total = metrics.count(held["share"] if held else None, member, window)
        self.settled[share] = Settled(window=window, partition=partition, share=total, through=seq, clock=None)
        self._unwritten.add(share)

    def _is_open(self, partition: int, window: WindowKey) -> bool:
        clock = self.clocks.get(partition)
        return clock is None or _closes_at(window, self.grace) > clock

    def advance(self, partition: int, member: MetricEntity) -> None:
        """Move the partition's clock to the member's time (before `is_late` and `revise`: a window the record
        itself closes must not be changed by it)."""
        candidate = _clock_of(member)
        if candidate is not None and (partition not in self.clocks or candidate > self.clocks[partition]):
            self.clocks[partition] = candidate

    def _expires_at(self, member: MetricEntity) -> datetime:
        return max(_closes_at(w, self.grace) for w in member["windows"])
