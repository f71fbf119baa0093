"""Extension (ramal) and DID real-time events -> the latest state of each extension call (ExtensionCall).

Same merge rules as the two-leg correlator: last-writer-wins registers ordered by
``(as-of time, lifecycle rank, event_id)`` where as-of = ``created + total_seconds`` (the events carry no event
time of their own; records.lifecycle_rank: a hung-up call is later than a connected one in the same second),
each status with the earliest time it was seen, answer time as a minimum. ``version`` = number
of distinct events.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

from streams.domain.merge import Registers, add_id, clone, earliest, get, progress_key, put
from streams.domain.records import EXTENSION_KINDS, STATUS_ANSWERED, Record, lifecycle_rank, plus_seconds


class ExtensionState(TypedDict):
    call_id: int
    tenant: str
    event_ids: list[str]
    fields: Registers
    status_times: dict[str, datetime | None]
    answer_at: datetime | None

_FIELDS = (
    "kind",
    "type",
    "extension",
    "extension_json",
    "status",
    "active",
    "created_at",
    "total_seconds",
    "talk_seconds",
    "disconnect_code",
    "disconnect_text",
    "disconnect_raw",
)


def apply(state: ExtensionState | None, event: Record) -> ExtensionState:
    if event["kind"] not in EXTENSION_KINDS:
        raise ValueError(f"not an extension event: {event['kind']!r}")
    if state is None:
        state = {"call_id": event["call_id"], "tenant": event["tenant"], "event_ids": [], "fields": {},
                 "status_times": {}, "answer_at": None}
    elif state["call_id"] != event["call_id"]:
        raise ValueError("event belongs to another call")
    if event["event_id"] in state["event_ids"]:
        return state
    state = clone(state)
    add_id(state["event_ids"], event["event_id"])
    created = event.get("created_at")
    as_of = plus_seconds(created, event.get("total_seconds")) or created
    key = progress_key(0, as_of, lifecycle_rank(event.get("status"), event.get("active")), event["event_id"])
    for name in _FIELDS:
        put(state["fields"], name, key, event.get(name))
    state["answer_at"] = earliest(state["answer_at"], event.get("answered_at"))
    status = event.get("status")
    if status:
        at = event.get("answered_at") if status == STATUS_ANSWERED and event.get("answered_at") else as_of
        times = state["status_times"]
        times[status] = earliest(times[status], at) if status in times else at
    return state


def to_record(state: ExtensionState) -> Record:
    fields = state["fields"]
    times = state["status_times"]
    transitions = sorted(times.items(), key=lambda i: (i[1] is None, i[1].timestamp() if i[1] else 0.0, i[0]))
    active = get(fields, "active")
    return {
        "call_id": state["call_id"],
        "tenant": state["tenant"],
        "version": len(state["event_ids"]),
        "kind": get(fields, "kind"),
        "type": get(fields, "type"),
        "extension": get(fields, "extension"),
        "extension_json": get(fields, "extension_json"),
        "status": get(fields, "status"),
        "active": active,
        "answered": state["answer_at"] is not None or STATUS_ANSWERED in times,
        "created_at": get(fields, "created_at"),
        "answer_at": state["answer_at"],
        "end_at": None if active else plus_seconds(get(fields, "created_at"), get(fields, "total_seconds")),
        "total_seconds": get(fields, "total_seconds"),
        "talk_seconds": get(fields, "talk_seconds"),
        "disconnect_code": get(fields, "disconnect_code"),
        "disconnect_text": get(fields, "disconnect_text"),
        "disconnect_raw": get(fields, "disconnect_raw"),
        "transitions": [{"status": s, "at": at} for s, at in transitions],
        "event_count": len(state["event_ids"]),
    }
