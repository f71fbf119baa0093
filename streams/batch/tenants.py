"""What the `tenants` agent does with one batch: balance alerts and rated records (the tenant feed) update each
tenant's spend since its last balance alert; the partitions' window shares (streams/batch/window_shares.py) are
added up into the metric windows.

A window's state holds the latest share of each source partition (a share with a higher version replaces the
one before, a repeated one changes nothing), so the window is the sum of its partitions' shares whatever order
and however often they arrive. Each window and balance the batch touched is published once, at its value after
the whole batch. No Faust or Kafka import (see streams/batch/entities.py).

The entities agent sends both as bundles (`messages`): one message per topic and destination partition and batch,
a JSON array of items, each on the partition its own key (tenant, window) would have, so that the windows and
balances stay where their keys put them while a batch costs a few messages instead of one per item.

Lifecycle: the agent's event-time clock per partition is the latest clock the shares it read carry; a window
closes `grace` after its end on that clock and is evicted (a tombstone). A share of a closed window is late: it
is counted (`Batch.late_shares`) and dropped, so that an evicted window is never published again with part of its
sum.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict

from schemas import topics
from streams.batch import metric_state
from streams.batch import state_codec as codec
from streams.batch.events import Batch, Event, Output
from streams.batch.expiry import ACKNOWLEDGED, ExpirySchedule
from streams.batch.staging import Staged
from streams.domain import billing
from streams.domain.billing import balance, metrics
from streams.domain.billing.metrics import WindowKey, WindowSum
from streams.domain.records import Record

TABLES = ("metric_windows", "tenant_balance")


class WindowState(TypedDict):
    shares: dict[str, WindowSum]
    """source partition (as text: JSON keys) -> its latest share"""
    partition: int
    """The partition of the window's key (which holds the window)."""


WINDOW_CACHE_SIZE = 1024
"""Decoded windows kept across batches: the open windows every batch adds a share to (a few dozen per tenant),
whose decoding was a fifth of this agent's time. Nothing here modifies a window it read (`_share` builds a new
state), as `Staged`'s cache requires."""

BUNDLE_ITEMS = 500
"""Items per message at most: a share is ~0.3 kB, well under the topics' 1 MB message limit."""


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    value: bytes


def share_message(partition: int, window: WindowKey, share: WindowSum, clock: datetime | None) -> bytes:
    """A partition's share of a window as the entities agent sends it (an item of a bundle, placed by `dump_key`)."""
    return codec.encode({"window": list(window), "partition": partition, "clock": clock,
                         **metric_state.dump_sum(share)})


def messages(batch: Batch, clocks: Mapping[int, datetime], partition_of: Callable[[bytes], int]) -> list[Message]:
    """What a batch of the entities agent sends this agent, in order: its rated records (placed by tenant) then its
    window shares (placed by window), bundled per topic and destination partition (`partition_of`: the topics'
    partitioner over an item's key)."""
    items = [(topics.TENANT_FEED, record["tenant"].encode(), codec.encode({"entity": entity, "record": record}))
             for entity, record in batch.feed.values()]
    items += [(topics.WINDOW_SHARES, metric_state.dump_key(window).encode(),
               share_message(partition, window, share, clocks.get(partition)))
              for partition, window, share in batch.shares]
    bundles: dict[tuple[str, int], list[bytes]] = {}
    for topic, key, value in items:
        bundles.setdefault((topic, partition_of(key)), []).append(value)
    return [Message(topic, partition, b"[" + b",".join(values[n:n + BUNDLE_ITEMS]) + b"]")
            for (topic, partition), values in bundles.items() for n in range(0, len(values), BUNDLE_ITEMS)]


def _items(value: bytes) -> list[Any]:
    """A bundle's items; a message of one item (what this agent read before bundles) is a bundle of one."""
    loaded = codec.loads(value)
    return loaded if isinstance(loaded, list) else [loaded]


def _dump_window(state: WindowState) -> bytes:
    return codec.encode({"shares": {p: metric_state.dump_sum(s) for p, s in state["shares"].items()},
                         "partition": state["partition"]})


def _load_window(text: bytes) -> WindowState:
    data = codec.loads(text)
    return WindowState(shares={p: metric_state.load_sum(s) for p, s in data["shares"].items()},
                       partition=data["partition"])


class Tenants:
    """`windows`: the metric windows by window key; `balances`: spend since the last alert, by tenant."""

    def __init__(self, windows: Staged, balances: Staged, decode: Callable[[str, bytes], Record],
                 grace: timedelta, retention: timedelta) -> None:
        self.windows, self.balances, self.decode = windows, balances, decode
        self.grace, self.retention = grace, retention
        self.clocks: dict[int, datetime] = {}
        self._expiry: ExpirySchedule[datetime] = ExpirySchedule()

    @classmethod
    def over(cls, staged: Callable[..., Staged], decode: Callable[[str, bytes], Record],
             grace: timedelta, retention: timedelta) -> Tenants:
        """The agent over the tables `staged(name, **options)` makes (Faust tables, or dicts in tests)."""
        return cls(staged("metric_windows", cache=WINDOW_CACHE_SIZE, encode=_dump_window,
                          decode=_load_window), staged("tenant_balance"),
                   decode, grace, retention)

    def staged(self) -> Iterable[Staged]:
        return (self.windows, self.balances)

    def recover(self, partitions: Container[int]) -> None:
        """After a changelog recovery: the eviction schedule of the stored windows of the partitions this
        worker holds."""
        self._expiry.clear()
        for key, value in self.windows.store.items():
            partition = _load_window(value)["partition"]
            if partition in partitions:
                self._schedule(partition, key)

    def process(self, items: Sequence[Event], now: datetime, durable: int | None = None) -> Batch:
        """``durable``: the generation (`seal`) through which the agent's writes are acknowledged (None: all of
        the batches before): a window is evicted only once its last record is (streams/batch/expiry.py)."""
        if durable is None:
            self.seal(durable := ACKNOWLEDGED)
        self._expiry.acknowledged(durable)
        batch = Batch()
        changed_windows: set[str] = set()
        changed_tenants: set[str] = set()
        partitions = set()
        for event in items:
            partitions.add(event.partition)
            try:
                if event.topic == topics.BALANCE_ALERTS.name:
                    alert = self.decode(event.topic, event.value)
                    tenant = alert["tenant"]
                    self.balances.put(event.partition, tenant, balance.apply_alert(self.balances.get(tenant), alert))
                    changed_tenants.add(tenant)
                    continue
                items = _items(event.value)
            except (ValueError, KeyError, TypeError) as exc:
                batch.failures.append((event, exc))
                continue
            for item in items:
                try:
                    if event.topic == topics.WINDOW_SHARES:
                        changed_windows |= self._share(batch, event.partition, item)
                    else:
                        changed_tenants.add(self._spend(event.partition, item))
                except (ValueError, KeyError, TypeError) as exc:  # the bundle is dead-lettered, its other items count
                    batch.failures.append((event, exc))
        for key in sorted(changed_windows):
            window = metric_state.load_key(key)
            held: WindowState = self.windows.get(key)
            record = metrics.window_record(window, metrics.combine(held["shares"].values()))
            batch.publish(Output(topics.OUT_METRICS, key, record))
        for tenant in sorted(changed_tenants):
            batch.publish(Output(topics.OUT_BALANCE, tenant, balance.to_record(self.balances.get(tenant), now)))
        for partition in sorted(partitions):
            batch.evicted["metric_windows"] += self._evict(partition)
        return batch

    def _spend(self, partition: int, item: dict[str, Any]) -> str:
        record = item["record"]
        tenant: str = record["tenant"]
        state = balance.settle(billing.spend(item["entity"], self.balances.get(tenant), record), self.retention)
        self.balances.put(partition, tenant, state)
        return tenant

    def _share(self, batch: Batch, partition: int, message: dict[str, Any]) -> set[str]:
        """The window keys to publish: the share's window, unless it is late."""
        window = metric_state.window_key(message["window"])
        key = metric_state.dump_key(window)
        clock = message["clock"]
        if clock is not None and (partition not in self.clocks or clock > self.clocks[partition]):
            self.clocks[partition] = clock
        if self._closed(partition, window):
            batch.late_shares += 1
            return set()
        share = metric_state.load_sum(message)
        state: WindowState | None = self.windows.get(key)
        if state is None:
            self._schedule(partition, key)
        source = str(message["partition"])
        current = state["shares"].get(source) if state else None
        if current is None or share["version"] > current["version"]:
            shares = {**(state["shares"] if state else {}), source: share}
            self.windows.put(partition, key, WindowState(shares=shares, partition=partition))
        self._expiry.changed(key)  # published again: evicted only once that is acknowledged
        return {key}

    def seal(self, generation: int) -> None:
        """The writes of the batches processed so far are tracked under ``generation``."""
        self._expiry.seal(generation)

    def _closed(self, partition: int, window: WindowKey) -> bool:
        clock = self.clocks.get(partition)
        return clock is not None and metrics.window_end(window) + self.grace <= clock

    def _schedule(self, partition: int, key: str) -> None:
        self._expiry.add(partition, metrics.window_end(metric_state.load_key(key)) + self.grace, key)

    def _evict(self, partition: int) -> int:
        """Evict the partition's closed windows; how many."""
        evicted = 0
        for key in self._expiry.due(partition, self.clocks.get(partition)):
            self.windows.delete(partition, key)
            evicted += 1
        return evicted
