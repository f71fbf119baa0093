"""Tumbling-window metrics over the versioned output records, with retraction.

A record contributes an additive :data:`Contribution` to a few windows (per tenant, client and destination
tipo, 1-minute and 1-hour windows aligned to UTC, bucketed by the call's start / the SMS creation time).
Because records are versioned and delivered at least once, :class:`MetricsState` remembers the last
contribution of every entity and replaces it (remove old, add new) when a higher version arrives; stale or
repeated versions are ignored. Ratios are derived from the additive components at output time, so any set of
add/remove operations that nets to the same contributions yields the same window.

Peak concurrency is not additive, so a window keeps the multiset of call intervals ``[start, end)`` clipped to
the window (a call contributes to every window it overlaps) and sweeps it on output.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from streams.domain.billing.causes import is_network_failure
from streams.domain.records import SMS_DELIVERED, SMS_FAILED, Record

WINDOW_SIZES: dict[str, timedelta] = {"1m": timedelta(minutes=1), "1h": timedelta(hours=1)}
# (tenant, window_size, window_start epoch ms, dimension, dimension_value)
WindowKey = tuple[str, str, int, str, str]
Contribution = dict[str, Any]
Aggregate = dict[str, Any]

COUNTERS = (
    "calls",
    "answered",
    "network_failures",
    "talk_seconds",
    "pdd_sum_ms",
    "pdd_count",
    "billed_seconds",
    "sms_sent",
    "sms_delivered",
    "sms_failed",
)
MONEY = ("cost", "provider_cost", "sms_cost")
ENTITY_CALL = "call"
ENTITY_SINGLE_LEG = "single_leg"
ENTITY_SMS = "sms"
UNKNOWN = "unknown"


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def window_start_ms(at: datetime, size: str) -> int:
    width = _ms_width(size)
    return _ms(at) // width * width


def _ms_width(size: str) -> int:
    return int(WINDOW_SIZES[size] / timedelta(milliseconds=1))


def empty_contribution() -> Contribution:
    return {
        **dict.fromkeys(COUNTERS, 0),
        **{name: Decimal(0) for name in MONEY},
        "causes": {},
        "intervals": {},
    }


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
            out[(tenant, size, window_start_ms(at, size), dim, value)] = dict(base)
            if interval is None:
                continue
            start, end = _ms(interval[0]), _ms(interval[1])
            for window in range(start // width * width, end, width):
                key = (tenant, size, window, dim, value)
                clipped = f"{max(start, window)}:{min(end, window + width)}"
                target = out.setdefault(key, empty_contribution())
                target["intervals"] = {**target["intervals"], clipped: 1}
    return out


def new_aggregate() -> Aggregate:
    return {**empty_contribution(), "version": 0, "updated_at": None}


def add(aggregate: Aggregate, contribution: Contribution, sign: int = 1) -> None:
    """Add (sign=+1) or retract (sign=-1) a contribution in place; zero multiset entries are dropped."""
    for name in COUNTERS:
        aggregate[name] += sign * contribution[name]
    for name in MONEY:
        aggregate[name] += sign * contribution[name]
    for field in ("causes", "intervals"):
        merged = dict(aggregate[field])
        for item, count in contribution[field].items():
            merged[item] = merged.get(item, 0) + sign * count
            if merged[item] == 0:
                del merged[item]
        aggregate[field] = merged


def is_empty(aggregate: Aggregate) -> bool:
    return not any(aggregate[name] for name in (*COUNTERS, *MONEY, "causes", "intervals"))


def peak_concurrency(intervals: dict[str, int]) -> int:
    edges: list[tuple[int, int]] = []
    for item, count in intervals.items():
        start, end = (int(x) for x in item.split(":"))
        edges += [(start, count), (end, -count)]
    # Ends sort before starts at the same instant: intervals are half-open, back-to-back calls do not overlap.
    edges.sort(key=lambda edge: (edge[0], edge[1]))
    peak = running = 0
    for _, delta in edges:
        running += delta
        peak = max(peak, running)
    return peak


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def window_record(key: WindowKey, aggregate: Aggregate) -> Record:
    """The MetricWindow output record (ratios from the additive components, which are kept beside them)."""
    tenant, size, start_ms, dimension, value = key
    calls, answered = aggregate["calls"], aggregate["answered"]
    return {
        "tenant": tenant,
        "window_start": _from_ms(start_ms),
        "window_end": _from_ms(start_ms + _ms_width(size)),
        "window_size": size,
        "dimension": dimension,
        "dimension_value": value,
        **{name: aggregate[name] for name in COUNTERS},
        **{name: aggregate[name] for name in MONEY},
        "asr": _ratio(answered, calls),
        "ner": _ratio(calls - aggregate["network_failures"], calls),
        "acd_seconds": _ratio(aggregate["talk_seconds"], answered),
        "avg_pdd_ms": _ratio(aggregate["pdd_sum_ms"], aggregate["pdd_count"]),
        "billed_minutes": aggregate["billed_seconds"] / 60,
        "peak_concurrent_calls": peak_concurrency(aggregate["intervals"]),
        "disconnect_causes": dict(sorted(aggregate["causes"].items())),
        "version": aggregate["version"],
        "updated_at": aggregate["updated_at"],
    }


EntityState = dict[str, Any]
"""The last contribution of one entity: ``{"version": int, "contributions": {WindowKey: Contribution}}``."""


def entity_key(record: Record, entity: str) -> str:
    return f"{entity}:{record['tenant']}:{_entity_id(record, entity)}"


def replace(
    previous: EntityState | None, record: Record, entity: str
) -> tuple[EntityState, dict[WindowKey, tuple[Contribution | None, Contribution | None]]] | None:
    """The entity's new state and, per window that changes, its (old, new) contribution; ``None`` for a stale
    or repeated version. Pure: the caller applies the changes with :func:`update_window`."""
    if previous is not None and record["version"] <= previous["version"]:
        return None
    new = contributions(record, entity)
    old: dict[WindowKey, Contribution] = previous["contributions"] if previous else {}
    changes = {key: (old.get(key), new.get(key)) for key in old.keys() | new.keys() if old.get(key) != new.get(key)}
    return {"version": record["version"], "contributions": new}, changes


def update_window(
    aggregate: Aggregate | None, old: Contribution | None, new: Contribution | None, now: datetime
) -> Aggregate:
    """Retract the old contribution, add the new one, and count the change (the window's version)."""
    aggregate = new_aggregate() if aggregate is None else aggregate
    if old is not None:
        add(aggregate, old, -1)
    if new is not None:
        add(aggregate, new, +1)
    aggregate["version"] += 1
    aggregate["updated_at"] = now
    return aggregate


def window_key(items: list[Any]) -> WindowKey:
    """A window key from its JSON form (a list)."""
    tenant, size, start, dimension, value = items
    return (str(tenant), str(size), int(start), str(dimension), str(value))


def _entity_id(record: Record, entity: str) -> Any:
    return record["sms_id"] if entity == ENTITY_SMS else record["call_id"]
