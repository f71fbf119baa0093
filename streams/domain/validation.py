"""Number-validation webhooks -> NumberValidationRecord: a finished result beats an unfinished one whatever
the arrival order; among equals the later ``created_at``, then the event id, wins."""

from __future__ import annotations

from streams.domain.merge import LatestEvent, event_key, keep_latest, latest_record
from streams.domain.records import KIND_VALIDATION, Record

ValidationState = LatestEvent


def apply(state: ValidationState | None, event: Record) -> ValidationState:
    if event["kind"] != KIND_VALIDATION:
        raise ValueError(f"not a number-validation event: {event['kind']!r}")
    rank = 1 if event.get("finished") else 0
    return keep_latest(state, event, event_key(rank, event.get("created_at"), event["event_id"]))


def to_record(state: ValidationState) -> Record:
    return latest_record(state, "validation_id",
                         ("destination_number", "created_at", "price", "valid", "finished"))
