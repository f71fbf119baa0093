"""Order-independent merge primitives (join-semilattices) shared by the correlators.

Every "latest value" is a last-writer-wins register ordered by an :data:`EventKey` that is derived from the
event *content* only (rank, event time, for legs their lifecycle rank, event id), never from arrival order, so
folding the same set of events in any order and with any duplication gives the same value. Times are min/max
registers (None: unseen).
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import datetime
from typing import Any, TypedDict

from streams.domain.records import Record

# [rank, event time in epoch ms (-1 when unknown), event_id], or with a progress before the id (progress_key);
# a list: it survives JSON unchanged.
EventKey = list[int | str]
# Register name -> [key, value]: a list (JSON has no tuples), the value whatever the fact is.
Registers = dict[str, list[Any]]


class LatestEvent(TypedDict):
    """The register of :func:`keep_latest`."""

    event_ids: list[str]
    key: EventKey
    event: Record


def event_key(rank: int, at: datetime | None, event_id: str) -> EventKey:
    return [rank, _millis(at), event_id]


def progress_key(rank: int, at: datetime | None, progress: int, event_id: str) -> EventKey:
    """An :func:`event_key` where, at an equal time, the further ``progress`` wins. Every key of one register must
    have the same shape: lists compare element by element, and an int against an event id raises."""
    return [rank, _millis(at), progress, event_id]


def _millis(at: datetime | None) -> int:
    return -1 if at is None else int(at.timestamp() * 1000)


def put(registers: Registers, name: str, key: EventKey, value: Any) -> None:
    """Offer ``value`` to register ``name``; a null never overwrites (sparse events keep facts)."""
    if value is None:
        return
    current = registers.get(name)
    if current is None or key > _same_shape(current[0], key):
        registers[name] = [key, value]


def _same_shape(held: EventKey, offered: EventKey) -> EventKey:
    """A key stored before legs had a progress (three elements) as the four-element key it stands for: a state
    restored from an older changelog must still merge, and it held no progress (0) at its time."""
    if len(held) == 3 and len(offered) == 4:
        return [held[0], held[1], 0, held[2]]
    return held


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


def keep_latest(state: LatestEvent | None, event: Record, key: EventKey) -> LatestEvent:
    """Latest-event register: the event with the highest key wins.

    For entities that one webhook describes completely (end-of-call objects, voicemail, validation).
    """
    if state is None:
        return {"event_ids": [event["event_id"]], "key": key, "event": event}
    if event["event_id"] in state["event_ids"]:
        return state
    state = {**state, "event_ids": list(state["event_ids"])}
    add_id(state["event_ids"], event["event_id"])
    if key > state["key"]:
        state["key"], state["event"] = key, event
    return state


def latest_record(state: LatestEvent, id_field: str, fields: tuple[str, ...]) -> Record:
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
