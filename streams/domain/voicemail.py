"""New-voicemail webhooks -> VoicemailRecord (one webhook per voicemail; duplicates collapse by event id)."""

from __future__ import annotations

from streams.domain.merge import LatestEvent, event_key, keep_latest, latest_record
from streams.domain.records import KIND_VOICEMAIL, Record

VoicemailState = LatestEvent


def apply(state: VoicemailState | None, event: Record) -> VoicemailState:
    if event["kind"] != KIND_VOICEMAIL:
        raise ValueError(f"not a voicemail event: {event['kind']!r}")
    return keep_latest(state, event, event_key(0, event.get("message_at"), event["event_id"]))


def to_record(state: VoicemailState) -> Record:
    return latest_record(state, "voicemail_id", ("extension_id", "extension", "phone_number", "message_at",
                                                 "duration_seconds", "recording_url"))
