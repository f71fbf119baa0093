"""Every Kafka topic of callpipe: name, value schema, partitions and what its key is.

docs/DESIGN.md's topic table is rendered from these definitions (``markdown_table``); a unit test keeps
the two in sync.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    name: str
    schema: str
    """Short Avro record name of the value."""
    partitions: int
    key: str
    """What the message key is (documentation, rendered into DESIGN.md)."""


RAW = Topic("callpipe.raw.v1", "RawWebhook", 6, "normalized key if known, else `tenant/kind`")
CALL_EVENTS = Topic("callpipe.call-events.v1", "CallLegEvent", 6, "call id")
CALL_SNAPSHOTS = Topic("callpipe.call-snapshots.v1", "CallSnapshot", 6, "call id")
SINGLE_LEG_CALLS = Topic("callpipe.single-leg-calls.v1", "SingleLegCallEnd", 6, "call id")
EXTENSION_EVENTS = Topic("callpipe.extension-events.v1", "ExtensionCallEvent", 6, "call id")
SMS_STATUS = Topic("callpipe.sms-status.v1", "SmsStatus", 6, "SMS id")
SMS_REPLIES = Topic("callpipe.sms-replies.v1", "SmsReply", 6, "SMS id")
CONFERENCE_EVENTS = Topic("callpipe.conference-events.v1", "ConferenceEvent", 6, "conference id")
VOICEMAILS = Topic("callpipe.voicemails.v1", "Voicemail", 6, "voicemail id")
BALANCE_ALERTS = Topic("callpipe.balance-alerts.v1", "BalanceAlert", 6, "tenant")
NUMBER_VALIDATIONS = Topic("callpipe.number-validations.v1", "NumberValidation", 6, "validation id")
DEADLETTER = Topic("callpipe.deadletter.v1", "DeadLetter", 3, "`tenant/kind`")

OUT_CALLS = Topic("callpipe.out.calls.v1", "Call", 6, "call id")
OUT_SINGLE_LEG_CALLS = Topic("callpipe.out.single-leg-calls.v1", "SingleLegCall", 6, "call id")
OUT_SMS = Topic("callpipe.out.sms.v1", "Sms", 6, "SMS id")
OUT_CONFERENCE_SESSIONS = Topic(
    "callpipe.out.conference-sessions.v1", "ConferenceSession", 6, "conference id"
)
OUT_EXTENSION_CALLS = Topic("callpipe.out.extension-calls.v1", "ExtensionCall", 6, "call id")
OUT_VOICEMAILS = Topic("callpipe.out.voicemails.v1", "VoicemailRecord", 6, "voicemail id")
OUT_NUMBER_VALIDATIONS = Topic(
    "callpipe.out.number-validations.v1", "NumberValidationRecord", 6, "validation id"
)
OUT_BALANCE = Topic("callpipe.out.balance.v1", "BalanceStatus", 6, "tenant")
OUT_METRICS = Topic("callpipe.out.metrics.v1", "MetricWindow", 6, "metric name and window")

KIND_TOPICS: dict[str, Topic] = {
    "chamada_evento": CALL_EVENTS,
    "status_tempo_real": CALL_SNAPSHOTS,
    "chamada_fim": CALL_SNAPSHOTS,
    "chamada_did_fim": CALL_SNAPSHOTS,
    "tts_fim": SINGLE_LEG_CALLS,
    "audio_fim": SINGLE_LEG_CALLS,
    "composto_fim": SINGLE_LEG_CALLS,
    "ramal_evento": EXTENSION_EVENTS,
    "did_evento": EXTENSION_EVENTS,
    "envio_sms": SMS_STATUS,
    "resposta_sms": SMS_REPLIES,
    "conferencia_evento": CONFERENCE_EVENTS,
    "voicemail": VOICEMAILS,
    "aviso_saldo": BALANCE_ALERTS,
    "valida_numero": NUMBER_VALIDATIONS,
}

INPUT_TOPICS: tuple[Topic, ...] = tuple(dict.fromkeys(KIND_TOPICS.values()))
"""The normalized family topics (what ingest produces and the streams stage consumes), in table order."""

OUTPUT_TOPICS: tuple[Topic, ...] = (
    OUT_CALLS,
    OUT_SINGLE_LEG_CALLS,
    OUT_SMS,
    OUT_CONFERENCE_SESSIONS,
    OUT_EXTENSION_CALLS,
    OUT_VOICEMAILS,
    OUT_NUMBER_VALIDATIONS,
    OUT_BALANCE,
    OUT_METRICS,
)

ALL_TOPICS: tuple[Topic, ...] = (RAW, *INPUT_TOPICS, DEADLETTER, *OUTPUT_TOPICS)

BY_NAME: dict[str, Topic] = {t.name: t for t in ALL_TOPICS}


def markdown_table(topics: Iterable[Topic] = ALL_TOPICS) -> str:
    """The topics as the Markdown table of docs/DESIGN.md (header, separator, one row per topic)."""
    rows = ["| topic | key | value schema | partitions |", "|---|---|---|---|"]
    rows += [f"| `{t.name}` | {t.key} | `{t.schema}` | {t.partitions} |" for t in topics]
    return "\n".join(rows) + "\n"
