"""Conference join/leave events (keyed by conference id) -> one ConferenceSession per participant.

A participant is the call id when the provider sends one, else the number. Join and leave times are kept as
sorted sets, so the session is the same for any order or duplication: ``joined_at`` = 1st join, ``left_at`` =
last leave when it is not before the last join (otherwise the participant is still in), duration between them.
Events other than "Entrou"/"Saiu" are only counted. ``version`` = distinct events of the participant.
"""

from __future__ import annotations

from bisect import insort
from datetime import datetime
from typing import TypedDict

from streams.domain.merge import Registers, add_id, clone, event_key, get, put
from streams.domain.records import KIND_CONFERENCE, Record


class Participant(TypedDict):
    event_ids: list[str]
    fields: Registers
    joins: list[datetime]
    """Sorted, like ``leaves``."""
    leaves: list[datetime]
    other: int
    """How many of its events were neither a join nor a leave."""


class ConferenceState(TypedDict):
    conference_id: int
    tenant: str
    participants: dict[str, Participant]
    """By participant_key."""

JOINED = "entrou"
LEFT = "saiu"


def participant_key(event: Record) -> str:
    if event.get("call_id") is not None:
        return f"call:{event['call_id']}"
    return f"number:{event.get('number')}"


def apply(state: ConferenceState | None, event: Record) -> tuple[ConferenceState, str]:
    """Fold one event; returns the new state and the participant whose session changed."""
    if event["kind"] != KIND_CONFERENCE:
        raise ValueError(f"not a conference event: {event['kind']!r}")
    if state is None:
        state = {"conference_id": event["conference_id"], "tenant": event["tenant"], "participants": {}}
    elif state["conference_id"] != event["conference_id"]:
        raise ValueError("event belongs to another conference")
    who = participant_key(event)
    current = state["participants"].get(who)
    if current is not None and event["event_id"] in current["event_ids"]:
        return state, who
    state = clone(state)
    part = state["participants"].setdefault(
        who, {"event_ids": [], "fields": {}, "joins": [], "leaves": [], "other": 0}
    )
    add_id(part["event_ids"], event["event_id"])
    at = event.get("created_at")
    key = event_key(0, at, event["event_id"])
    for name in ("call_id", "number", "client_id", "record_audio"):
        put(part["fields"], name, key, event.get(name))
    kind = (event.get("event") or "").strip().lower()
    if kind == JOINED and at is not None:
        insort(part["joins"], at)
    elif kind == LEFT and at is not None:
        insort(part["leaves"], at)
    else:
        part["other"] += 1
    return state, who


def to_record(state: ConferenceState, who: str) -> Record:
    part = state["participants"][who]
    fields = part["fields"]
    joins, leaves = part["joins"], part["leaves"]
    joined = joins[0] if joins else None
    left = leaves[-1] if leaves and (not joins or leaves[-1] >= joins[-1]) else None
    return {
        "conference_id": state["conference_id"],
        "tenant": state["tenant"],
        "participant": who,
        "version": len(part["event_ids"]),
        "call_id": get(fields, "call_id"),
        "number": get(fields, "number"),
        "client_id": get(fields, "client_id"),
        "record_audio": get(fields, "record_audio"),
        "joined_at": joined,
        "left_at": left,
        "duration_seconds": int((left - joined).total_seconds()) if joined and left else None,
        "join_count": len(joins),
        "leave_count": len(leaves),
        "other_event_count": part["other"],
    }

