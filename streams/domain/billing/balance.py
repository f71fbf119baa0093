"""Balance alerts + rated spend -> BalanceStatus per tenant (the alert webhook carries no account id).

The alert has no timestamp of its own, so its time is ``received_at`` of its first delivery; the last alert
is the one with the latest ``(time, event_id)``. Spend since the alert = the rated cost of the calls and
SMS whose end (SMS: status) time is after it; a higher record version of an entity replaces its contribution,
and contributions at or before the last alert are pruned, so memory holds only the spend since that alert.
Note: two alerts with the same balance text have the same body and therefore the same ingest event id; the
second one is deduplicated away upstream (see the report on the DESIGN event-id rule).
``version`` counts state changes (kept in the state, so it survives restarts through the changelog).

Bounded: entries whose end is more than the retention behind the tenant's latest end are settled, folded into
one sum (:func:`settle`); their entities are past the streams' retention, so no newer version of them is counted
(a version of a settled entity is ignored). An alert newer than everything settled clears the settled sum with
the entries.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NotRequired, TypedDict

from streams.domain.merge import add_id
from streams.domain.records import KIND_BALANCE, Record


class BalanceState(TypedDict):
    tenant: str
    alert_ids: list[str]
    # Positional lists, as JSON gives tuples back; their items differ in type, hence Any.
    last_alert: list[Any] | None
    """[time, event id, balance] of the last alert."""
    spend: dict[str, list[Any]]
    """By entity key: [end time, rated cost, record version], only for ends after the last alert."""
    version: int
    settled: NotRequired[Decimal]
    """The spend of the entries folded away by :func:`settle` (absent: none)."""
    settled_items: NotRequired[int]
    settled_until: NotRequired[datetime | None]
    """The latest end time folded into ``settled``."""


def new_state(tenant: str) -> BalanceState:
    return {"tenant": tenant, "alert_ids": [], "last_alert": None, "spend": {}, "version": 0}


def apply_alert(state: BalanceState | None, event: Record) -> BalanceState:
    if event["kind"] != KIND_BALANCE:
        raise ValueError(f"not a balance alert: {event['kind']!r}")
    state = _copy(state or new_state(event["tenant"]))
    if event["event_id"] in state["alert_ids"]:
        return state
    add_id(state["alert_ids"], event["event_id"])
    candidate = [event["received_at"], event["event_id"], event.get("balance")]
    last = state["last_alert"]
    if last is None or candidate[:2] > last[:2]:
        state["last_alert"] = candidate
        state["spend"] = {k: v for k, v in state["spend"].items() if v[0] > candidate[0]}
        until = state.get("settled_until")
        if until is not None and until <= candidate[0]:
            state["settled"], state["settled_items"], state["settled_until"] = Decimal(0), 0, None
    state["version"] += 1
    return state


def apply_spend(
    state: BalanceState | None,
    tenant: str,
    entity_key: str,
    version: int,
    at: datetime | None,
    cost: Decimal | None,
) -> BalanceState:
    """Record the rated cost of one entity version (``at`` = its end time)."""
    state = _copy(state or new_state(tenant))
    current = state["spend"].get(entity_key)
    if at is None or cost is None or (current is not None and version <= current[2]):
        return state
    until = state.get("settled_until")
    if current is None and until is not None and at <= until:
        return state  # a version of an entity already settled
    last = state["last_alert"]
    if last is not None and at <= last[0]:
        state["spend"].pop(entity_key, None)
    else:
        state["spend"][entity_key] = [at, cost, version]
    state["version"] += 1
    return state


def apply_call(state: BalanceState | None, call: Record) -> BalanceState:
    return apply_spend(
        state,
        call["tenant"],
        f"call:{call['call_id']}",
        call["version"],
        call["end_at"],
        call["rated_cost_total"],
    )


def apply_sms(state: BalanceState | None, sms: Record) -> BalanceState:
    at = sms.get("status_at") or sms.get("created_at")
    return apply_spend(state, sms["tenant"], f"sms:{sms['sms_id']}", sms["version"], at, sms["rated_cost"])


def settle(state: BalanceState, retention: timedelta) -> BalanceState:
    """Fold the entries that ended more than ``retention`` before the tenant's latest end into the settled sum."""
    if not state["spend"]:
        return state
    horizon = max(v[0] for v in state["spend"].values()) - retention
    folded = {k: v for k, v in state["spend"].items() if v[0] <= horizon}
    if not folded:
        return state
    state = _copy(state)
    until = state.get("settled_until")
    state["settled"] = state.get("settled", Decimal(0)) + sum((v[1] for v in folded.values()), Decimal(0))
    state["settled_items"] = state.get("settled_items", 0) + len(folded)
    latest = max(v[0] for v in folded.values())
    state["settled_until"] = latest if until is None or latest > until else until
    state["spend"] = {k: v for k, v in state["spend"].items() if k not in folded}
    return state


def to_record(state: BalanceState, now: datetime) -> Record:
    last = state["last_alert"]
    return {
        "tenant": state["tenant"],
        "version": state["version"],
        "last_alert_balance": None if last is None else last[2],
        "last_alert_at": None if last is None else last[0],
        "alert_count": len(state["alert_ids"]),
        "spend_since_alert": state.get("settled", Decimal(0)) + sum((v[1] for v in state["spend"].values()),
                                                                    Decimal(0)),
        "spend_items": state.get("settled_items", 0) + len(state["spend"]),
        "updated_at": now,
    }


def _copy(state: BalanceState) -> BalanceState:
    return {
        **state,
        "alert_ids": list(state["alert_ids"]),
        "spend": dict(state["spend"]),
        "last_alert": state["last_alert"],
    }
