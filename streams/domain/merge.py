"""Order-independent merge primitives (join-semilattices) shared by the correlators.

Every "latest value" is a last-writer-wins register ordered by an :data:`EventKey` that is derived from the
event *content* only (rank, event time, event id), never from arrival order, so folding the same set of events
in any order and with any duplication gives the same value. Times are min/max registers (None: unseen).
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import datetime
from typing import Any

# [rank, event time in epoch ms (-1 when unknown), event_id]; a list: it survives JSON unchanged.
EventKey = list[Any]
Registers = dict[str, list[Any]]


def event_key(rank: int, at: datetime | None, event_id: str) -> EventKey:
    return [rank, -1 if at is None else int(at.timestamp() * 1000), event_id]


def put(registers: Registers, name: str, key: EventKey, value: Any) -> None:
    """Offer ``value`` to register ``name``; a null never overwrites (sparse events keep facts)."""
    if value is None:
        return
    current = registers.get(name)
    if current is None or key > current[0]:
        registers[name] = [key, value]


def get(registers: Registers, name: str) -> Any:
    entry = registers.get(name)
    return None if entry is None else entry[1]


def earliest(current: datetime | None, candidate: datetime | None) -> datetime | None:
    if candidate is None:
        return current
    return candidate if current is None or candidate < current else current


def latest(current: datetime | None, candidate: datetime | None) -> datetime | None:
    if candidate is None:
        return current
    return candidate if current is None or candidate > current else current


def add_id(ids: list[str], event_id: str) -> bool:
    """Insert into a sorted id list (sorted: the state is order-independent); False if present."""
    i = bisect_left(ids, event_id)
    if i < len(ids) and ids[i] == event_id:
        return False
    ids.insert(i, event_id)
    return True


def keep_latest(state: dict[str, Any] | None, event: dict[str, Any], key: EventKey) -> dict[str, Any]:
    """Latest-event register: ``{"event_ids", "key", "event"}``; the event with the highest key wins.

    For entities that one webhook describes completely (end-of-call objects, voicemail, validation).
    """
    if state is None:
        state = {"event_ids": [], "key": None, "event": None}
    if event["event_id"] in state["event_ids"]:
        return state
    state = {**state, "event_ids": list(state["event_ids"])}
    add_id(state["event_ids"], event["event_id"])
    if state["key"] is None or key > state["key"]:
        state["key"], state["event"] = key, event
    return state


def latest_record(state: dict[str, Any], id_field: str, fields: tuple[str, ...]) -> dict[str, Any]:
    """The record of a latest-event register: its id, tenant, version (distinct events seen) and `fields` of
    the winning event."""
    event = state["event"]
    return {id_field: event[id_field], "tenant": event["tenant"], "version": len(state["event_ids"]),
            **{name: event.get(name) for name in fields}}


def clone(value: Any) -> Any:
    """What a JSON round trip of the state gives, without the text: new dicts (str keys) and lists all the way down.

    Datetimes and Decimals are immutable and shared. For a fold that must not modify its input state.
    """
    if isinstance(value, dict):
        return {str(k): clone(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clone(v) for v in value]
    return value
