"""What the `tenants` agent does with one batch: balance alerts and rated records (the tenant feed) update the
per-tenant metric windows and the spend since the last balance alert.

Metric state is kept per entity (its last contribution, so that a newer version retracts it) and per window,
so a record touches only the windows it changes. Each window and balance the batch changed is published once,
at its value after the whole batch. No Faust or Kafka import (see streams/batch/entities.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from schemas import topics
from streams.batch import metric_state
from streams.batch import state_codec as codec
from streams.batch.events import Batch, Event, Output
from streams.batch.staging import Staged
from streams.domain import billing
from streams.domain.billing import balance, metrics
from streams.domain.records import Record

TABLES = ("metric_entities", "metric_windows", "tenant_balance")


class Tenants:
    """`entities`: per metric entity, its last contribution; `windows`: aggregates by window key; `balances`:
    spend since the last alert, by tenant."""

    def __init__(self, entities: Staged, windows: Staged, balances: Staged,
                 decode: Callable[[str, bytes], Record]) -> None:
        self.entities, self.windows, self.balances, self.decode = entities, windows, balances, decode

    @classmethod
    def over(cls, staged: Callable[..., Staged], decode: Callable[[str, bytes], Record]) -> Tenants:
        """The agent over the tables `staged(name, **options)` makes (Faust tables, or dicts in tests)."""
        return cls(staged("metric_entities", encode=metric_state.dump_entity, decode=metric_state.load_entity),
                   staged("metric_windows"), staged("tenant_balance"), decode)

    def staged(self) -> Iterable[Staged]:
        return (self.entities, self.windows, self.balances)

    def process(self, items: Sequence[Event], now: datetime) -> Batch:
        batch = Batch()
        changed_windows: set[str] = set()
        changed_tenants: set[str] = set()
        for event in items:
            try:
                if event.topic == topics.BALANCE_ALERTS.name:
                    alert = self.decode(event.topic, event.value)
                    tenant = alert["tenant"]
                    state = balance.apply_alert(self.balances.get(tenant), alert)
                else:
                    item = codec.loads(event.value)
                    record, entity = item["record"], item["entity"]
                    tenant = record["tenant"]
                    changed_windows |= self._update_metrics(event.partition, record, entity, now)
                    state = billing.spend(entity, self.balances.get(tenant), record)
                self.balances.put(event.partition, tenant, state)
                changed_tenants.add(tenant)
            except (ValueError, KeyError, TypeError) as exc:
                batch.failures.append((event, exc))
        for window_key in sorted(changed_windows):
            record = metrics.window_record(metric_state.load_key(window_key), self.windows.get(window_key))
            batch.publish(Output(topics.OUT_METRICS, window_key, record))
        for tenant in sorted(changed_tenants):
            batch.publish(Output(topics.OUT_BALANCE, tenant, balance.to_record(self.balances.get(tenant), now)))
        return batch

    def _update_metrics(self, partition: int, record: Record, entity: str, now: datetime) -> set[str]:
        """The keys of the windows the record changed."""
        key = metrics.entity_key(record, entity)
        previous = self.entities.get(key)
        replaced = metrics.replace(previous, record, entity)
        if replaced is None:
            # A version already counted, e.g. fed again after a crash that may have come between the window's
            # changelog write and its record: publish the windows it counts in again (the sink keeps one).
            return {metric_state.dump_key(window) for window in previous["contributions"]} if previous else set()
        entity_state, changes = replaced
        self.entities.put(partition, key, entity_state)
        changed = set()
        for window, (old, new) in changes.items():
            window_key = metric_state.dump_key(window)
            self.windows.put(partition, window_key,
                             metrics.update_window(self.windows.get(window_key), old, new, now))
            changed.add(window_key)
        return changed
