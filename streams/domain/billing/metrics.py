"""Tumbling-window metrics over the versioned output records, with retraction, exact under replays by construction.

A record contributes an additive :class:`Contribution` to a few windows (per tenant, client and destination
tipo, 1-minute and 1-hour windows aligned to UTC, bucketed by the call's start / the SMS creation time). Records
are versioned and delivered at least once, so each entity keeps one :class:`MetricEntity`: its latest version and
what that version contributes to every window any of its versions touched (``None`` where it no longer counts).
:func:`revise` replaces it by a higher version and ignores stale or repeated ones: a last-writer-wins register.

A window's value is derived, never stored on its own: the sum of the contributions of the metric entities that
touched it (:func:`combine` over :class:`WindowSum` parts), and its ``version`` the sum of their versions. Both are
functions of the entities' registers only, so no order of writes and no crash between writes can count a
contribution twice or lose one; and since every register only grows, the version of any window value ever built
is at most that of the final one, with equality only for the final content (a sink keeping the highest version
keeps the right row). Ratios are derived from the additive components at output time.

Peak concurrency is not additive, but its edges are: a window keeps, per instant, how many calls start there
minus how many end there (each call's interval ``[start, end)`` clipped to the window; a call contributes to
every window it overlaps), and sweeps them on output. Summing per instant is exact (an end and a start at the
same instant net out, as half-open intervals do) and bounds a window's state by its distinct instants (the
provider's times have 1 s resolution: at most 3,601 for an hour), however many calls it holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, TypedDict, get_args

from streams.domain.billing.causes import is_network_failure
from streams.domain.records import SMS_DELIVERED, SMS_FAILED, Record, epoch_ms, from_epoch_ms

WINDOW_SIZES: dict[str, timedelta] = {"1m": timedelta(minutes=1), "1h": timedelta(hours=1)}
WindowKey = tuple[str, str, int, str, str]
"""(tenant, window_size, window_start epoch ms, dimension, dimension_value)"""

CounterName = Literal["calls", "answered", "network_failures", "talk_seconds", "pdd_sum_ms", "pdd_count",
                      "billed_seconds", "sms_sent", "sms_delivered", "sms_failed"]
MoneyName = Literal["cost", "provider_cost", "sms_cost"]
COUNTERS: tuple[CounterName, ...] = get_args(CounterName)
MONEY: tuple[MoneyName, ...] = get_args(MoneyName)
ENTITY_CALL = "call"
ENTITY_SINGLE_LEG = "single_leg"
ENTITY_SMS = "sms"
UNKNOWN = "unknown"


class Contribution(TypedDict):
    """Additive components of a window: what one record adds, or the sum over many."""

    calls: int
    answered: int
    network_failures: int
    talk_seconds: int
    pdd_sum_ms: int
    pdd_count: int
    billed_seconds: int
    sms_sent: int
    sms_delivered: int
    sms_failed: int
    cost: Decimal
    provider_cost: Decimal
    sms_cost: Decimal
    causes: dict[str, int]
    """disconnect cause -> calls"""
    edges: dict[str, int]
    """epoch ms -> calls starting there minus calls ending there (intervals clipped to the window)"""


class MetricEntity(TypedDict):
    """The metric register of one call, single-leg call or SMS."""

    version: int
    windows: dict[WindowKey, Contribution | None]
    """Every window any counted version touched: what the latest version adds to it, None where it adds nothing."""
    updated_at: datetime
    partition: int
    """The partition whose share of each window counts the entity (that of the entity's events)."""
    settled: int | None
    """None while the register counts on its own; once its entity's state is evicted, the settle sequence with
    which its share of the open windows moved into its partition's settled sums (streams/batch/window_shares.py)."""


class WindowSum(TypedDict):
    """A window's value over a set of metric entities (all of them, or one partition's share)."""

    sum: Contribution
    version: int
    """The sum of the versions of the entities that touched the window."""
    updated_at: datetime | None


def window_start_ms(at: datetime, size: str) -> int:
    width = _ms_width(size)
    return epoch_ms(at) // width * width


def window_start(key: WindowKey) -> datetime:
    return from_epoch_ms(key[2])


def window_end(key: WindowKey) -> datetime:
    return from_epoch_ms(key[2] + _ms_width(key[1]))


def _ms_width(size: str) -> int:
    return int(WINDOW_SIZES[size] / timedelta(milliseconds=1))


def empty_contribution() -> Contribution:
    zero = Decimal(0)
    return Contribution(calls=0, answered=0, network_failures=0, talk_seconds=0, pdd_sum_ms=0, pdd_count=0,
                        billed_seconds=0, sms_sent=0, sms_delivered=0, sms_failed=0, cost=zero, provider_cost=zero,
                        sms_cost=zero, causes={}, edges={})


def _call_facts(record: Record, entity: str) -> dict[str, Any]:
    if entity == ENTITY_CALL:
        destination = record["destination"]
        return {
            "tipo": destination.get("type"),
            "start": record.get("start_at") or record.get("created_at"),
            "end": record.get("end_at"),
            "status": record.get("final_status"),
            "code": record.get("disconnect_code"),
            "text": record.get("disconnect_text"),
            "pdd": record.get("post_dial_delay_ms"),
            "billed": record.get("rated_billed_seconds_total"),
            "cost": record.get("rated_cost_total"),
            "provider_cost": record.get("provider_price_total"),
        }
    return {
        "tipo": record.get("type"),
        "start": record.get("started_at") or record.get("created_at"),
        "end": record.get("end_at"),
        "status": record.get("status"),
        "code": record.get("disconnect_code"),
        "text": record.get("disconnect_text"),
        "pdd": None,
        "billed": record.get("rated_billed_seconds"),
        "cost": record.get("rated_cost"),
        "provider_cost": record.get("price"),
    }


def contributions(record: Record, entity: str) -> dict[WindowKey, Contribution]:
    """What one record adds to each window it touches (pure)."""
    tenant = record["tenant"]
    if entity == ENTITY_SMS:
        at = record.get("created_at") or record.get("status_at")
        if at is None:
            return {}
        base = empty_contribution()
        status = record.get("status")
        base["sms_sent"] = 1
        base["sms_delivered"] = int(status in SMS_DELIVERED)
        base["sms_failed"] = int(status in SMS_FAILED)
        base["sms_cost"] = record.get("rated_cost") or Decimal(0)
        return _spread(base, at, tenant, [("tenant", tenant), ("tipo", "sms")], None)

    facts = _call_facts(record, entity)
    if facts["start"] is None:
        return {}
    answered = bool(record.get("answered"))
    base = empty_contribution()
    base["calls"] = 1
    base["answered"] = int(answered)
    base["network_failures"] = int(is_network_failure(facts["code"], facts["status"]))
    base["talk_seconds"] = (record.get("talk_seconds") or 0) if answered else 0
    if facts["pdd"] is not None:
        base["pdd_sum_ms"], base["pdd_count"] = facts["pdd"], 1
    base["billed_seconds"] = facts["billed"] or 0
    base["cost"] = facts["cost"] or Decimal(0)
    base["provider_cost"] = facts["provider_cost"] or Decimal(0)
    cause = str(facts["code"]) if facts["code"] is not None else (facts["text"] or UNKNOWN)
    base["causes"] = {cause: 1}
    client = record.get("client_id")
    dims = [
        ("tenant", tenant),
        ("client", UNKNOWN if client is None else str(client)),
        ("tipo", facts["tipo"] or UNKNOWN),
    ]
    end = facts["end"]
    interval = (facts["start"], end) if end is not None and end > facts["start"] else None
    return _spread(base, facts["start"], tenant, dims, interval)


def _spread(
    base: Contribution,
    at: datetime,
    tenant: str,
    dims: list[tuple[str, str]],
    interval: tuple[datetime, datetime] | None,
) -> dict[WindowKey, Contribution]:
    out: dict[WindowKey, Contribution] = {}
    for size in WINDOW_SIZES:
        width = _ms_width(size)
        for dim, value in dims:
            out[(tenant, size, window_start_ms(at, size), dim, value)] = Contribution(**base)
            if interval is None:
                continue
            start, end = epoch_ms(interval[0]), epoch_ms(interval[1])
            for window in range(start // width * width, end, width):
                key = (tenant, size, window, dim, value)
                target = out.setdefault(key, empty_contribution())
                target["edges"] = _merged(target["edges"], {str(max(start, window)): 1}, 1)
                target["edges"] = _merged(target["edges"], {str(min(end, window + width)): 1}, -1)
    return out


def add(total: Contribution, part: Contribution, sign: int = 1) -> None:
    """Add (sign=+1) or retract (sign=-1) a contribution in place; zero multiset entries are dropped."""
    for counter in COUNTERS:
        total[counter] += sign * part[counter]
    for money in MONEY:
        total[money] += sign * part[money]
    total["causes"] = _merged(total["causes"], part["causes"], sign)
    total["edges"] = _merged(total["edges"], part["edges"], sign)


def _merged(total: dict[str, int], part: dict[str, int], sign: int) -> dict[str, int]:
    merged = dict(total)
    for item, count in part.items():
        merged[item] = merged.get(item, 0) + sign * count
        if merged[item] == 0:
            del merged[item]
    return merged


def is_empty(total: Contribution) -> bool:
    return not (any(total[counter] for counter in COUNTERS) or any(total[money] for money in MONEY)
                or total["causes"] or total["edges"])


def revise(previous: MetricEntity | None, record: Record, entity: str, partition: int,
           now: datetime) -> MetricEntity | None:
    """The entity's register with ``record`` counted; None when its version is not newer (stale or repeated)."""
    if previous is not None and record["version"] <= previous["version"]:
        return None
    windows: dict[WindowKey, Contribution | None] = dict.fromkeys(previous["windows"]) if previous else {}
    windows.update(contributions(record, entity))
    return MetricEntity(version=record["version"], windows=windows, updated_at=now, partition=partition,
                        settled=None)


def count(window: WindowSum | None, member: MetricEntity, key: WindowKey, sign: int = 1) -> WindowSum:
    """``window`` with one entity's share of window ``key`` added (sign=+1) or taken out (sign=-1)."""
    window = window or WindowSum(sum=empty_contribution(), version=0, updated_at=None)
    part = member["windows"][key]
    if part is not None:
        add(window["sum"], part, sign)
    window["version"] += sign * member["version"]
    if sign > 0 and (window["updated_at"] is None or member["updated_at"] > window["updated_at"]):
        window["updated_at"] = member["updated_at"]
    return window


def combine(parts: Iterable[WindowSum]) -> WindowSum:
    """One window from the sums of disjoint sets of its entities (the partitions' shares)."""
    total = WindowSum(sum=empty_contribution(), version=0, updated_at=None)
    for part in parts:
        add(total["sum"], part["sum"])
        total["version"] += part["version"]
        if part["updated_at"] is not None and (total["updated_at"] is None
                                               or part["updated_at"] > total["updated_at"]):
            total["updated_at"] = part["updated_at"]
    return total


def peak_concurrency(edges: dict[str, int]) -> int:
    peak = running = 0
    for _, delta in sorted((int(at), delta) for at, delta in edges.items()):
        running += delta
        peak = max(peak, running)
    return peak


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def window_record(key: WindowKey, window: WindowSum) -> Record:
    """The MetricWindow output record (ratios from the additive components, which are kept beside them)."""
    tenant, size, start_ms, dimension, value = key
    total = window["sum"]
    calls, answered = total["calls"], total["answered"]
    return {
        "tenant": tenant,
        "window_start": from_epoch_ms(start_ms),
        "window_end": from_epoch_ms(start_ms + _ms_width(size)),
        "window_size": size,
        "dimension": dimension,
        "dimension_value": value,
        **{counter: total[counter] for counter in COUNTERS},
        **{money: total[money] for money in MONEY},
        "asr": _ratio(answered, calls),
        "ner": _ratio(calls - total["network_failures"], calls),
        "acd_seconds": _ratio(total["talk_seconds"], answered),
        "avg_pdd_ms": _ratio(total["pdd_sum_ms"], total["pdd_count"]),
        "billed_minutes": total["billed_seconds"] / 60,
        "peak_concurrent_calls": peak_concurrency(total["edges"]),
        "disconnect_causes": dict(sorted(total["causes"].items())),
        "version": window["version"],
        "updated_at": window["updated_at"],
    }

