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

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from streams import codec
from streams.causes import is_network_failure
from streams.records import SMS_DELIVERED, SMS_FAILED, Record

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


def dump_key(key: WindowKey) -> str:
    return codec.key_text(list(key))


def load_key(text: str | bytes) -> WindowKey:
    return _key(codec.loads(text))


def _entity_json(state: EntityState) -> dict[str, Any]:
    return {"version": state["version"], "contributions": [[list(w), c] for w, c in state["contributions"].items()]}


def _entity_value(data: dict[str, Any]) -> EntityState:
    return {"version": data["version"], "contributions": {_key(w): c for w, c in data["contributions"]}}


def dump_entity(state: EntityState) -> bytes:
    return codec.encode(_entity_json(state))


def load_entity(text: str | bytes) -> EntityState:
    return _entity_value(codec.loads(text))


class MetricsState:
    """Windows plus the last contribution of each entity (for retraction). Both maps are JSON-serializable.

    Window ``version`` is a per-window change counter (kept in the window's state), so the sink keeps the
    newest value; a window emptied by retractions is kept (and emitted with zeros) so that its version never
    restarts.
    """

    def __init__(self) -> None:
        self.windows: dict[WindowKey, Aggregate] = {}
        self.entities: dict[str, EntityState] = {}
        # Windows before this were dropped: late records must not resurrect them with partial sums.
        self.expired_before_ms = 0

    def upsert(self, record: Record, entity: str, now: datetime) -> set[WindowKey]:
        """Apply a record version; returns the windows whose value changed (to be emitted)."""
        key = entity_key(record, entity)
        replaced = replace(self.entities.get(key), record, entity)
        if replaced is None:
            return set()
        self.entities[key], changes = replaced
        live = {window: change for window, change in changes.items() if window[2] >= self.expired_before_ms}
        for window, (old, new) in live.items():
            self.windows[window] = update_window(self.windows.get(window), old, new, now)
        return set(live)

    def records(self, keys: Iterable[WindowKey] | None = None) -> list[Record]:
        chosen = sorted(self.windows if keys is None else keys)
        return [window_record(key, self.windows[key]) for key in chosen]

    def expire(self, before: datetime) -> None:
        """Forget windows that start before ``before`` and entities that only touched such windows."""
        limit = max(self.expired_before_ms, _ms(before))
        self.expired_before_ms = limit
        self.windows = {k: v for k, v in self.windows.items() if k[2] >= limit}
        self.entities = {
            k: v for k, v in self.entities.items() if any(key[2] >= limit for key in v["contributions"])
        }

    def to_json(self) -> str:
        return codec.dumps(
            {
                "expired_before_ms": self.expired_before_ms,
                "windows": [[list(k), v] for k, v in self.windows.items()],
                "entities": {k: _entity_json(v) for k, v in self.entities.items()},
            }
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> MetricsState:
        data = codec.loads(text)
        state = cls()
        state.expired_before_ms = data.get("expired_before_ms", 0)
        state.windows = {_key(k): v for k, v in data["windows"]}
        state.entities = {k: _entity_value(v) for k, v in data["entities"].items()}
        return state


def _key(items: list[Any]) -> WindowKey:
    tenant, size, start, dimension, value = items
    return (str(tenant), str(size), int(start), str(dimension), str(value))


def _entity_id(record: Record, entity: str) -> Any:
    return record["sms_id"] if entity == ENTITY_SMS else record["call_id"]
