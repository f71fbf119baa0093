"""SMS status changes (SmsStatus) and replies (SmsReply), keyed by SMS id -> one Sms record.

Order-independent merges: the status history keeps each status with the earliest ``status_changed_at`` seen;
the current status is the one with the latest ``status_changed_at``, ties broken by delivery progress and then
event id (so "entregue" beats "enviada" stamped in the same second); other facts are last-writer-wins; replies
are a map by reply id. ``version`` = count of distinct events. ``replies_json`` array embedded in the status
webhook is not merged: its element shape is undocumented (always ``[]`` in the provider's examples).
"""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

from streams.domain.merge import Registers, add_id, clone, earliest, event_key, get, put
from streams.domain.records import KIND_SMS_REPLY, KIND_SMS_STATUS, SMS_DELIVERED, SMS_FAILED, Record


class SmsState(TypedDict):
    sms_id: int
    tenant: str
    event_ids: list[str]
    fields: Registers
    statuses: dict[str, datetime | None]
    """Each status with the earliest ``status_changed_at`` seen."""
    replies: dict[str, list[str | datetime | None]]
    """By reply id (a str: JSON object keys): [event id, reply, replied_at]; the highest event id wins."""

_PROGRESS = {"aguardando": 0, "em análise": 1, "enviada": 2, "entregue": 3, "erro": 3, "bloqueado": 3}


def apply(state: SmsState | None, event: Record) -> SmsState:
    if event["kind"] not in (KIND_SMS_STATUS, KIND_SMS_REPLY):
        raise ValueError(f"not an SMS event: {event['kind']!r}")
    if state is None:
        state = {"sms_id": event["sms_id"], "tenant": event["tenant"], "event_ids": [], "fields": {},
                 "statuses": {}, "replies": {}}
    elif state["sms_id"] != event["sms_id"]:
        raise ValueError("event belongs to another SMS")
    if event["event_id"] in state["event_ids"]:
        return state
    state = clone(state)
    add_id(state["event_ids"], event["event_id"])
    if event["kind"] == KIND_SMS_REPLY:
        _apply_reply(state, event)
    else:
        _apply_status(state, event)
    return state


def _apply_status(state: SmsState, event: Record) -> None:
    fields = state["fields"]
    at = event.get("status_changed_at")
    key = event_key(0, at, event["event_id"])
    for name in ("destination_number", "message", "created_at", "price", "expects_reply"):
        put(fields, name, key, event.get(name))
    status = event.get("status")
    if status:
        time_ms = -1 if at is None else int(at.timestamp() * 1000)
        put(fields, "status", [time_ms, _PROGRESS.get(status, 0), event["event_id"]], [status, at])
        statuses = state["statuses"]
        statuses[status] = earliest(statuses[status], at) if status in statuses else at


def _apply_reply(state: SmsState, event: Record) -> None:
    reply_id = str(event["reply_id"])
    candidate = [event["event_id"], event.get("reply"), event.get("replied_at")]
    current = state["replies"].get(reply_id)
    if current is None or candidate[0] > current[0]:
        state["replies"][reply_id] = candidate


def to_record(state: SmsState) -> Record:
    fields = state["fields"]
    status, status_at = get(fields, "status") or [None, None]
    times = state["statuses"]
    history = sorted(times.items(), key=lambda i: (i[1] is None, i[1].timestamp() if i[1] else 0.0, i[0]))
    replies = [
        {"reply_id": int(rid), "reply": reply, "replied_at": at}
        for rid, (_, reply, at) in sorted(state["replies"].items(), key=lambda item: int(item[0]))
    ]
    return {
        "sms_id": state["sms_id"],
        "tenant": state["tenant"],
        "version": len(state["event_ids"]),
        "destination_number": get(fields, "destination_number"),
        "message": get(fields, "message"),
        "created_at": get(fields, "created_at"),
        "price": get(fields, "price"),
        "status": status,
        "status_at": status_at,
        "status_history": [{"status": s, "at": at} for s, at in history],
        "expects_reply": get(fields, "expects_reply"),
        "replies": replies,
        "delivered": status in SMS_DELIVERED,
        "failed": status in SMS_FAILED,
        "event_count": len(state["event_ids"]),
        "rated_cost": None,
        "price_mismatch": None,
        "rating_plan_id": None,
    }
