"""Correlation of the webhooks of one two-leg API call into a versioned ``Call`` record.

Inputs (keyed by call id): ``chamada_evento`` (CallLegEvent), ``status_tempo_real`` and ``chamada_fim``
(CallSnapshot). The state is a dict of primitives, datetimes and Decimals (the batch layer's state codec
writes it to a Faust table changelog) and every merge is a semilattice join, so :func:`apply` gives the same state for
any order and any duplication of the same set of events:

* the set of applied event ids (sorted list) — duplicates are ignored, ``event_count`` is its size;
* scalar facts (number, type, status, durations, tags, ...) are last-writer-wins registers ordered by
  ``(rank, event time, lifecycle rank, event_id)``; ``chamada_fim`` ranks higher (the end webhook wins); at an
  equal time a leg's facts come from the observation furthest in its lifecycle (records.lifecycle_rank: leg
  times have 1 s resolution, and chamando -> congestionado within a second must end congestionado), the
  call's facts from the event whose furthest leg is furthest; nulls never win;
* billing facts (billed seconds, price) come from ``chamada_fim`` only: nothing is billed before the end;
* per leg, each observed status keeps the earliest time it was observed; ring/answer/start are minima and the
  end time is the maximum of ``started + total_seconds`` over all observations.

Event time: for a CallLegEvent, its legs' own times (start + running total, else their latest timestamp; the top-level
``created_at`` is the call's creation time, equal on every event of a call); for
snapshots, which carry no event time, ``started + total_seconds`` of the most advanced leg, else the call's
``created_at``. ``received_at`` (ingest clock) is used only to measure inactivity, never for merging, because
a provider retry of the same body has the same event id but a different ``received_at``.

Version rule: ``version = event_count`` at emission. It grows with every new event (sets only grow), is a pure
function of the set of events seen, and so a replay from scratch reaches the same final version; a sink
keeping ``max(version)`` keeps the record built from the most events.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypedDict

from streams.domain.merge import EventKey, Registers, add_id, earliest, get, latest, progress_key, put
from streams.domain.records import (
    KIND_CALL_END,
    KIND_CALL_EVENT,
    KIND_CALL_STATUS,
    STATUS_ANSWERED,
    STATUS_PREPARING,
    STATUS_RINGING,
    Record,
    lifecycle_rank,
    millis_between,
    plus_seconds,
)


class LegState(TypedDict):
    fields: Registers
    status_times: dict[str, datetime | None]
    """Each status observed, with the earliest time it was observed at (None: observed without a time)."""
    started_at: datetime | None
    ring_at: datetime | None
    answer_at: datetime | None
    end_at: datetime | None


class CallState(TypedDict):
    call_id: int
    tenant: str
    event_ids: list[str]
    end_seen: bool
    fields: Registers
    legs: dict[str, LegState]
    """By leg name (LEGS)."""
    # Arrival-dependent bookkeeping, kept out of every merged fact:
    last_received_at: datetime | None
    emitted_count: int
    emitted_end: bool
    late_event_count: int


CALL_KINDS = frozenset({KIND_CALL_EVENT, KIND_CALL_STATUS, KIND_CALL_END})
LEGS = ("origin", "destination")
RANK_LIVE = 0
RANK_END = 1

_CALL_FIELDS_LIVE = ("client_id", "tags", "record_audio")
_CALL_FIELDS_SNAPSHOT = (
    "client_id",
    "account_id",
    "origin_extension_id",
    "tags",
    "recording_url",
    "overall_status",
    "created_at",
)
_LEG_FIELDS_LIVE = ("number", "type", "status", "total_seconds", "talk_seconds")
_LEG_FIELDS_SNAPSHOT = (
    "number",
    "type",
    "status",
    "total_seconds",
    "talk_seconds",
    "disconnect_code",
    "disconnect_text",
    "disconnect_raw",
    "caller_id",
    "substatus",
)
_LEG_FIELDS_BILLING = ("billed_seconds", "price")
# Filled by streams.domain.billing.rating; null until then so that the Avro shape never depends on whether it ran.
RATED_LEG_FIELDS = ("rated_billed_seconds", "rated_cost", "billed_seconds_mismatch", "price_mismatch")


def new_state(call_id: int, tenant: str) -> CallState:
    return {
        "call_id": call_id,
        "tenant": tenant,
        "event_ids": [],
        "end_seen": False,
        "fields": {},
        "legs": {name: _new_leg() for name in LEGS},
        "last_received_at": None,
        "emitted_count": 0,
        "emitted_end": False,
        "late_event_count": 0,
    }


def _new_leg() -> LegState:
    return {
        "fields": {},
        "status_times": {},
        "started_at": None,
        "ring_at": None,
        "answer_at": None,
        "end_at": None,
    }


def apply(state: CallState | None, event: Record) -> CallState:
    """Fold one normalized call event into the state (a new value; the argument is not modified)."""
    kind = event["kind"]
    if kind not in CALL_KINDS:
        raise ValueError(f"not a two-leg call event: {kind!r}")
    if state is None:
        state = new_state(event["call_id"], event["tenant"])
    elif event["call_id"] != state["call_id"] or event["tenant"] != state["tenant"]:
        raise ValueError("event belongs to another call")
    if event["event_id"] in state["event_ids"]:
        return state
    state = _copy_for_update(state)
    add_id(state["event_ids"], event["event_id"])
    if state["emitted_end"]:
        state["late_event_count"] += 1
    state["last_received_at"] = latest(state["last_received_at"], event.get("received_at"))
    if kind == KIND_CALL_EVENT:
        _apply_leg_event(state, event)
    else:
        _apply_snapshot(state, event, end=kind == KIND_CALL_END)
    return state


def _copy_for_update(state: CallState) -> CallState:
    """A copy that :func:`apply` may modify without touching ``state``, sharing what it never modifies in place.

    An update only inserts into ``event_ids``, rebinds top-level and per-leg scalars, and rebinds entries of the
    ``fields`` and ``status_times`` maps (:func:`streams.merge.put` stores a new ``[key, value]`` register, never
    edits one), so copying those containers is enough; a ``deepcopy`` of the whole state cost ~30% of the path.
    """
    return {
        **state,
        "event_ids": list(state["event_ids"]),
        "fields": dict(state["fields"]),
        "legs": {name: _copy_leg(leg) for name, leg in state["legs"].items()},
    }


def _copy_leg(leg: LegState) -> LegState:
    return {**leg, "fields": dict(leg["fields"]), "status_times": dict(leg["status_times"])}


def _live_leg_time(leg: Record) -> datetime | None:
    """When a leg was observed in this state: its start plus its running total, else its latest own time."""
    elapsed = plus_seconds(leg.get("created_at") or leg.get("started_at"), leg.get("total_seconds"))
    own = [t for t in (leg.get("answered_at"), leg.get("started_at"), leg.get("created_at")) if t is not None]
    return elapsed or (max(own) if own else None)


def _apply_leg_event(state: CallState, event: Record) -> None:
    # The top-level data_criacao is the call's creation time (provider docs), the same on every event of the call,
    # so the event's own time comes from its legs.
    legs = {name: event.get(name) or {} for name in LEGS}
    leg_times = {name: _live_leg_time(leg) for name, leg in legs.items()}
    known = [t for t in leg_times.values() if t is not None]
    at = max(known) if known else event.get("created_at")
    key, leg_keys = _keys(RANK_LIVE, at, legs, event["event_id"])
    for name in _CALL_FIELDS_LIVE:
        put(state["fields"], name, key, event.get(name))
    for name, leg in legs.items():
        if leg:
            _observe_live_leg(state["legs"][name], leg, leg_keys[name], leg_times[name] or at)


def _keys(
    rank: int, at: datetime | None, legs: dict[str, Record], event_id: str
) -> tuple[EventKey, dict[str, EventKey]]:
    """The key of the event's call facts and, per leg, of that leg's facts."""
    progress = {name: lifecycle_rank(leg.get("status"), leg.get("active")) for name, leg in legs.items()}
    leg_keys = {name: progress_key(rank, at, value, event_id) for name, value in progress.items()}
    return progress_key(rank, at, max(progress.values()), event_id), leg_keys


def _observe_live_leg(acc: LegState, leg: Record, key: EventKey, at: datetime | None) -> None:
    for name in _LEG_FIELDS_LIVE:
        put(acc["fields"], name, key, leg.get(name))
    put(acc["fields"], "active", key, leg.get("active"))
    started = leg.get("started_at")
    answered = leg.get("answered_at")
    acc["started_at"] = earliest(acc["started_at"], started)
    acc["answer_at"] = earliest(acc["answer_at"], answered)
    acc["end_at"] = latest(
        acc["end_at"], plus_seconds(started or leg.get("created_at"), leg.get("total_seconds"))
    )
    status = leg.get("status")
    if status:
        _observe_status(acc, status, answered if status == STATUS_ANSWERED and answered else at)


def _apply_snapshot(state: CallState, event: Record, *, end: bool) -> None:
    legs = {name: event.get(name) or {} for name in LEGS}
    leg_as_of = {
        name: plus_seconds(leg.get("started_at"), leg.get("total_seconds")) for name, leg in legs.items()
    }
    known = [t for t in leg_as_of.values() if t is not None]
    as_of = max(known) if known else event.get("created_at")
    key, leg_keys = _keys(RANK_END if end else RANK_LIVE, as_of, legs, event["event_id"])
    for name in _CALL_FIELDS_SNAPSHOT:
        put(state["fields"], name, key, event.get(name))
    if end:
        state["end_seen"] = True
    for name, leg in legs.items():
        if leg:
            _observe_snapshot_leg(state["legs"][name], leg, leg_keys[name], leg_as_of[name] or as_of, end=end)


def _observe_snapshot_leg(acc: LegState, leg: Record, key: EventKey, at: datetime | None, *, end: bool) -> None:
    fields = acc["fields"]
    for name in _LEG_FIELDS_SNAPSHOT:
        put(fields, name, key, leg.get(name))
    if end:
        for name in _LEG_FIELDS_BILLING:
            put(fields, name, key, leg.get(name))
    started = leg.get("started_at")
    acc["started_at"] = earliest(acc["started_at"], started)
    acc["end_at"] = latest(acc["end_at"], plus_seconds(started, leg.get("total_seconds")))
    status = leg.get("status")
    if status:
        observed = at
        if status == STATUS_ANSWERED:
            # Talk time counts from the answer, so the answer instant is exact even from a late snapshot.
            total, talk = leg.get("total_seconds"), leg.get("talk_seconds")
            if started is not None and total is not None and talk is not None and 0 <= talk <= total:
                observed = plus_seconds(started, total - talk)
        _observe_status(acc, status, observed)


def _observe_status(acc: LegState, status: str, at: datetime | None) -> None:
    times = acc["status_times"]
    times[status] = earliest(times[status], at) if status in times else at
    if status == STATUS_RINGING:
        acc["ring_at"] = earliest(acc["ring_at"], at)
    elif status == STATUS_ANSWERED:
        acc["answer_at"] = earliest(acc["answer_at"], at)


def emit(state: CallState, now: datetime, inactivity_timeout: timedelta) -> tuple[CallState, Record | None]:
    """Decide whether the call has a new record to publish; returns the updated state and the record or None.

    A record is emitted when the end webhook was seen, or when a provisional record was already published (so
    the downstream copy is refreshed), or when nothing arrived for ``inactivity_timeout`` (then
    ``provisional=True``). Nothing is emitted twice for the same set of events. ``now`` is on the ingest clock
    (``received_at``).
    """
    count = len(state["event_ids"])
    if count == 0 or count == state["emitted_count"]:
        return state, None
    if not state["end_seen"] and state["emitted_count"] == 0:
        last = state["last_received_at"]
        if last is None or now - last < inactivity_timeout:
            return state, None
    record = build_record(state)
    state = {**state, "emitted_count": count, "emitted_end": state["emitted_end"] or state["end_seen"]}
    return state, record


def build_record(state: CallState) -> Record:
    """The Call record for the current state (pure; unrated: streams.domain.billing.price rates it)."""
    fields = state["fields"]
    origin = _leg_record(state["legs"]["origin"])
    destination = _leg_record(state["legs"]["destination"])
    # A destination that never left "preparando" was never dialled: the origin leg then decides the outcome.
    dialled = any(s != STATUS_PREPARING for s in state["legs"]["destination"]["status_times"])
    outcome = destination if dialled else origin
    starts = [
        t
        for leg in (origin, destination)
        for t in (leg["started_at"], leg["ring_at"], leg["answer_at"])
        if t is not None
    ]
    ends = [leg["end_at"] for leg in (origin, destination) if leg["end_at"] is not None]
    pdd = millis_between(origin["answer_at"], destination["ring_at"])
    prices = [leg["price"] for leg in (origin, destination) if leg["price"] is not None]
    return {
        "call_id": state["call_id"],
        "tenant": state["tenant"],
        "version": len(state["event_ids"]),
        "client_id": get(fields, "client_id"),
        "account_id": get(fields, "account_id"),
        "origin_extension_id": get(fields, "origin_extension_id"),
        "tags": get(fields, "tags"),
        "recording_url": get(fields, "recording_url"),
        "record_audio": get(fields, "record_audio"),
        "overall_status": get(fields, "overall_status"),
        "created_at": get(fields, "created_at"),
        "origin": origin,
        "destination": destination,
        "answered": destination["answered"],
        "final_status": outcome["status"],
        "outcome_leg": "destination" if dialled else "origin",
        "disconnect_code": outcome["disconnect_code"],
        "disconnect_text": outcome["disconnect_text"],
        "post_dial_delay_ms": pdd if pdd is not None and pdd >= 0 else None,
        "start_at": min(starts) if starts else get(fields, "created_at"),
        "end_at": max(ends) if ends else None,
        "talk_seconds": destination["talk_seconds"],
        "end_seen": state["end_seen"],
        "provisional": not state["end_seen"],
        "event_count": len(state["event_ids"]),
        "late_event_count": state["late_event_count"],
        "provider_price_total": sum(prices, Decimal(0)) if prices else None,
        "rated_cost_total": None,
        "rated_billed_seconds_total": None,
        "rating_plan_id": None,
    }


def _leg_record(acc: LegState) -> Record:
    fields = acc["fields"]
    times = acc["status_times"]
    transitions = sorted(
        times.items(), key=lambda item: (item[1] is None, item[1].timestamp() if item[1] else 0.0, item[0])
    )
    record: Record = {
        "number": get(fields, "number"),
        "type": get(fields, "type"),
        "status": get(fields, "status"),
        "active": get(fields, "active"),
        "answered": acc["answer_at"] is not None or STATUS_ANSWERED in times,
        "transitions": [{"status": status, "at": at} for status, at in transitions],
        "started_at": acc["started_at"],
        "ring_at": acc["ring_at"],
        "answer_at": acc["answer_at"],
        "end_at": acc["end_at"],
        "total_seconds": get(fields, "total_seconds"),
        "talk_seconds": get(fields, "talk_seconds"),
        "billed_seconds": get(fields, "billed_seconds"),
        "price": get(fields, "price"),
        "disconnect_code": get(fields, "disconnect_code"),
        "disconnect_text": get(fields, "disconnect_text"),
        "disconnect_raw": get(fields, "disconnect_raw"),
        "caller_id": get(fields, "caller_id"),
        "substatus": get(fields, "substatus"),
    }
    record.update(dict.fromkeys(RATED_LEG_FIELDS))
    return record
