"""The metric windows as the `entities` agent holds them: per partition, each window's share (the sum over the
partition's metric registers, streams/domain/billing/metrics.py), derived in memory from the `metric_entities`
table and never stored on its own.

Because the shares are a function of the table, they are rebuilt from it whenever the table may have changed
under them (a changelog recovery after a rebalance or a restart), and nothing a crash leaves half-written can be
counted twice or lost. Each batch publishes the shares it changed; the `tenants` agent adds the partitions'
shares of a window up (streams/batch/tenants.py).

Lifecycle (docs/DESIGN.md, "State lifecycle"): a partition's event-time clock is the latest instant its registers
are bucketed at (capped at their processing time plus `FUTURE_SKEW`, so that a bogus future timestamp cannot close
every window); a window closes `grace` after its end on that clock. A closed window's share is dropped and never
changes again: a record that would change what a closed window counts is late and not counted (the caller routes
it).
A register whose every window is closed is evicted (a tombstone on its changelog).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from streams.batch.expiry import ExpirySchedule
from streams.domain.billing import metrics
from streams.domain.billing.metrics import MetricEntity, WindowKey, WindowSum

FUTURE_SKEW = timedelta(hours=1)

Share = tuple[int, WindowKey]
"""(partition, window)"""


def _closes_at(window: WindowKey, grace: timedelta) -> datetime:
    return metrics.window_end(window) + grace


def _clock_of(member: MetricEntity) -> datetime | None:
    """The instant the entity is bucketed at (its earliest window; a call's later windows only hold its interval),
    capped."""
    starts = [metrics.window_start(w) for w, part in member["windows"].items() if part is not None]
    return min(min(starts), member["updated_at"] + FUTURE_SKEW) if starts else None


@dataclass
class WindowShares:
    grace: timedelta
    sums: dict[Share, WindowSum] = field(default_factory=dict)
    clocks: dict[int, datetime] = field(default_factory=dict)
    changed: set[Share] = field(default_factory=set)
    _expiry: ExpirySchedule[datetime] = field(default_factory=ExpirySchedule)
    """Per partition, when every window of a register is closed."""

    def is_late(self, partition: int, old: MetricEntity | None, new: MetricEntity) -> bool:
        """Whether counting ``new`` in place of ``old`` would change what a closed window counts (a newer version
        that adds the same to every closed window, e.g. a recording URL filled in, is not late)."""
        clock = self.clocks.get(partition)
        if clock is None:
            return False
        before = old["windows"] if old else {}
        return any(_closes_at(w, self.grace) <= clock and before.get(w) != new["windows"].get(w)
                   for w in {*before, *new["windows"]})

    def revise(self, partition: int, key: str, old: MetricEntity | None, new: MetricEntity) -> None:
        if old is not None:
            clock = self.clocks.get(partition)
            for window in old["windows"]:
                if clock is None or _closes_at(window, self.grace) > clock:  # a closed window keeps its count
                    share = (partition, window)
                    self.sums[share] = metrics.count(self.sums.get(share), old, window, -1)
        self._add(partition, key, new)
        self.touch(partition, new)

    def touch(self, partition: int, member: MetricEntity) -> None:
        """Publish the member's windows again (a repeated version, e.g. re-read after a crash)."""
        self.changed.update((partition, w) for w in member["windows"] if (partition, w) in self.sums)

    def rebuild(self, members: Iterable[tuple[int, str, MetricEntity]]) -> None:
        """Derive every share again from (partition, key, register) of the partitions this worker holds."""
        self.sums, self.clocks = {}, {}
        self._expiry.clear()
        held = list(members)
        for partition, _, member in held:
            self.advance(partition, member)
        for partition, key, member in held:
            self._add(partition, key, member)

    def expired(self, partition: int, current: Callable[[str], MetricEntity | None]) -> list[str]:
        """Close the partition's windows past its clock; the keys of the registers to evict. ``current`` gives
        a key's register now (None: gone), so that stale heap entries are skipped."""
        clock = self.clocks.get(partition)
        if clock is None:
            return []
        for share in [s for s in self.sums if s[0] == partition and _closes_at(s[1], self.grace) <= clock]:
            del self.sums[share]
            self.changed.discard(share)
        return [key for key in self._expiry.due(partition, clock)
                if (member := current(key)) is not None and self._expires_at(member) <= clock]

    def drain(self) -> list[tuple[int, WindowKey, WindowSum]]:
        out = [(p, w, self.sums[(p, w)]) for p, w in sorted(self.changed)]
        self.changed.clear()
        return out

    def _add(self, partition: int, key: str, member: MetricEntity) -> None:
        self.advance(partition, member)
        clock = self.clocks.get(partition)
        for window in member["windows"]:
            if clock is None or _closes_at(window, self.grace) > clock:
                self.sums[(partition, window)] = metrics.count(self.sums.get((partition, window)), member, window)
        self._expiry.add(partition, self._expires_at(member), key)

    def advance(self, partition: int, member: MetricEntity) -> None:
        """Move the partition's clock to the member's time (before `is_late` and `revise`: a window the record
        itself closes must not be changed by it)."""
        candidate = _clock_of(member)
        if candidate is not None and (partition not in self.clocks or candidate > self.clocks[partition]):
            self.clocks[partition] = candidate

    def _expires_at(self, member: MetricEntity) -> datetime:
        return max(_closes_at(w, self.grace) for w in member["windows"])
