"""The test oracle of the metric windows: the aggregate of the final record of every entity, summed directly from
each record's contributions (streams/domain/billing/metrics.py `contributions`), with none of the incremental
machinery (registers, shares, versions) the agents use. Whatever the agents did, their windows must equal it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from streams.domain.billing.metrics import (
    COUNTERS,
    MONEY,
    Contribution,
    WindowKey,
    WindowSum,
    add,
    contributions,
    empty_contribution,
    is_empty,
    window_record,
)
from streams.domain.records import Record

VOLATILE = ("version", "updated_at")
"""Record fields that say how a window was reached, not what it holds."""


def aggregate(finals: Iterable[tuple[Record, str]]) -> dict[WindowKey, Contribution]:
    """(final record, entity kind) of every entity -> each window's total."""
    totals: dict[WindowKey, Contribution] = {}
    for record, entity in finals:
        for key, part in contributions(record, entity).items():
            add(totals.setdefault(key, empty_contribution()), part)
    return totals


def window_records(totals: dict[WindowKey, Contribution]) -> dict[WindowKey, dict[str, Any]]:
    """The MetricWindow records of non-empty windows, without the volatile fields."""
    epoch = datetime.fromtimestamp(0, tz=UTC)
    return {key: _content(window_record(key, WindowSum(sum=total, version=0, updated_at=epoch)))
            for key, total in totals.items() if not is_empty(total)}


def contents(records: Iterable[tuple[WindowKey, dict[str, Any]]]) -> dict[WindowKey, dict[str, Any]]:
    """Published window records -> what they hold (empty windows left out: an entity that moved leaves one)."""
    return {key: _content(record) for key, record in records
            if any(record[name] for name in (*COUNTERS, *MONEY, "peak_concurrent_calls", "disconnect_causes"))}


def _content(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in VOLATILE}
