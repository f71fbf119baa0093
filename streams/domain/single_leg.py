"""Single-leg calls: TTS / Áudio / Composto end webhooks (SingleLegCallEnd) and DID end (CallSnapshot).

One end webhook describes the call completely, so the state is a latest-event register (highest
``(as-of time, event_id)`` wins) and ``version`` is the number of distinct end events seen for the call id.
For the DID shapes (2-leg or flat) the ``destination`` leg carries the call's facts and ``origin`` only the
calling number.
"""

from __future__ import annotations

from streams.domain.merge import LatestEvent, event_key, keep_latest
from streams.domain.records import KIND_DID_END, SINGLE_LEG_END_KINDS, STATUS_ANSWERED, Record, plus_seconds

SingleLegState = LatestEvent
KINDS = SINGLE_LEG_END_KINDS | {KIND_DID_END}


def apply(state: SingleLegState | None, event: Record) -> SingleLegState:
    if event["kind"] not in KINDS:
        raise ValueError(f"not a single-leg end event: {event['kind']!r}")
    if state is not None and state["event"]["call_id"] != event["call_id"]:
        raise ValueError("event belongs to another call")
    facts = _facts(event)
    as_of = plus_seconds(facts["started_at"], facts["total_seconds"]) or event.get("created_at")
    return keep_latest(state, event, event_key(0, as_of, event["event_id"]))


def _facts(event: Record) -> Record:
    if event["kind"] == KIND_DID_END:
        leg = event.get("destination") or {}
        return {**leg, "number": leg.get("number")}
    return {**event, "number": event.get("destination_number")}


def to_record(state: SingleLegState) -> Record:
    event = state["event"]
    facts = _facts(event)
    did = event["kind"] == KIND_DID_END
    started, total, talk = facts.get("started_at"), facts.get("total_seconds"), facts.get("talk_seconds")
    answered = facts.get("status") == STATUS_ANSWERED
    answer_at = None
    if answered and total is not None and talk is not None and 0 <= talk <= total:
        answer_at = plus_seconds(started, total - talk)
    return {
        "call_id": event["call_id"],
        "tenant": event["tenant"],
        "version": len(state["event_ids"]),
        "source_kind": event["kind"],
        "client_id": event.get("client_id"),
        "account_id": event.get("account_id"),
        "origin_number": (event.get("origin") or {}).get("number") if did else None,
        "number": facts.get("number"),
        "type": facts.get("type"),
        "status": facts.get("status"),
        "answered": answered,
        "created_at": event.get("created_at"),
        "started_at": started,
        "answer_at": answer_at,
        "end_at": plus_seconds(started, total),
        "total_seconds": total,
        "talk_seconds": talk,
        "billed_seconds": facts.get("billed_seconds"),
        "price": facts.get("price"),
        "disconnect_code": facts.get("disconnect_code"),
        "disconnect_text": facts.get("disconnect_text"),
        "disconnect_raw": facts.get("disconnect_raw"),
        "recording_url": event.get("recording_url"),
        "audio_url": event.get("audio_url"),
        "message": event.get("message"),
        "expects_reply": event.get("expects_reply"),
        "reply": event.get("reply"),
        "tags": event.get("tags"),
        "extension_id": event.get("extension_id"),
        "extension": event.get("extension"),
        "rated_billed_seconds": None,
        "rated_cost": None,
        "billed_seconds_mismatch": None,
        "price_mismatch": None,
        "rating_plan_id": None,
    }
