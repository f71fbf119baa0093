"""Every Kafka topic of callpipe: name, value schema, partitions and what its key is.

docs/DESIGN.md's topic table is rendered from these definitions (``markdown_table``); a unit test keeps
the two in sync.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# Every keyed topic has this many partitions: the input topics must be co-partitioned (same count, same key
# hash) for the streams agents, and the derived ones follow them. Fixed: changing it moves keys.
PARTITIONS = 6
# The streams stage's Faust app id (its consumer group, and the prefix of its internal topics).
STREAMS_APP_ID = "callpipe-streams"
# The sink's consumer group.
SINK_GROUP_ID = "callpipe-sink"


@dataclass(frozen=True)
class Topic:
    name: str
    schema: str
    """Short Avro record name of the value."""
    partitions: int
    key: str
    """What the message key is (documentation, rendered into DESIGN.md)."""


RAW = Topic("callpipe.raw.v1", "RawWebhook", PARTITIONS, "normalized key if known, else `tenant/kind`")
CALL_EVENTS = Topic("callpipe.call-events.v1", "CallLegEvent", PARTITIONS, "call id")
CALL_SNAPSHOTS = Topic("callpipe.call-snapshots.v1", "CallSnapshot", PARTITIONS, "call id")
SINGLE_LEG_CALLS = Topic("callpipe.single-leg-calls.v1", "SingleLegCallEnd", PARTITIONS, "call id")
EXTENSION_EVENTS = Topic("callpipe.extension-events.v1", "ExtensionCallEvent", PARTITIONS, "call id")
SMS_STATUS = Topic("callpipe.sms-status.v1", "SmsStatus", PARTITIONS, "SMS id")
SMS_REPLIES = Topic("callpipe.sms-replies.v1", "SmsReply", PARTITIONS, "SMS id")
CONFERENCE_EVENTS = Topic("callpipe.conference-events.v1", "ConferenceEvent", PARTITIONS, "conference id")
VOICEMAILS = Topic("callpipe.voicemails.v1", "Voicemail", PARTITIONS, "voicemail id")
BALANCE_ALERTS = Topic("callpipe.balance-alerts.v1", "BalanceAlert", PARTITIONS, "tenant")
NUMBER_VALIDATIONS = Topic("callpipe.number-validations.v1", "NumberValidation", PARTITIONS, "validation id")
DEADLETTER = Topic("callpipe.deadletter.v1", "DeadLetter", 3, "`tenant/kind`")

OUT_CALLS = Topic("callpipe.out.calls.v1", "Call", PARTITIONS, "call id")
OUT_SINGLE_LEG_CALLS = Topic("callpipe.out.single-leg-calls.v1", "SingleLegCall", PARTITIONS, "call id")
OUT_SMS = Topic("callpipe.out.sms.v1", "Sms", PARTITIONS, "SMS id")
OUT_CONFERENCE_SESSIONS = Topic(
    "callpipe.out.conference-sessions.v1", "ConferenceSession", PARTITIONS, "conference id"
)
OUT_EXTENSION_CALLS = Topic("callpipe.out.extension-calls.v1", "ExtensionCall", PARTITIONS, "call id")
OUT_VOICEMAILS = Topic("callpipe.out.voicemails.v1", "VoicemailRecord", PARTITIONS, "voicemail id")
OUT_NUMBER_VALIDATIONS = Topic(
    "callpipe.out.number-validations.v1", "NumberValidationRecord", PARTITIONS, "validation id"
)
OUT_BALANCE = Topic("callpipe.out.balance.v1", "BalanceStatus", PARTITIONS, "tenant")
OUT_METRICS = Topic("callpipe.out.metrics.v1", "MetricWindow", PARTITIONS, "metric name and window")

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

INGEST_WRITES: tuple[Topic, ...] = (RAW, *INPUT_TOPICS, DEADLETTER)
STREAMS_WRITES: tuple[Topic, ...] = (*OUTPUT_TOPICS, DEADLETTER)
"""The contract topics each stage produces to: the schemas it registers."""

BY_NAME: dict[str, Topic] = {t.name: t for t in ALL_TOPICS}


@dataclass(frozen=True)
class InternalTopic:
    """A topic of the streams stage's own (not a contract): created up front like every other topic."""

    name: str
    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)


TICKS = "callpipe-streams-ticks"
"""The leader's clock, sent to every partition of the entity agent (provisional records for quiet calls)."""
TENANT_FEED = "callpipe-streams-tenant-feed"
"""Rated records keyed by tenant, from the entity agent to the tenant agent (spend since the last balance alert)."""
WINDOW_SHARES = "callpipe-streams-window-shares"
"""Each entity partition's share of a metric window, keyed by the window, from the entity agent to the tenant
agent, which adds the shares up (docs/DESIGN.md, "Metric windows")."""
STATE_TABLES = ("calls", "open_calls", "conferences", "extensions", "single_leg", "sms", "validations",
                "voicemails", "metric_entities", "metric_windows", "tenant_balance")
"""The streams agents' state tables, one compacted changelog topic each (streams/batch checks it holds them)."""


def streams_internal(app_id: str = STREAMS_APP_ID) -> tuple[InternalTopic, ...]:
    # Compaction only cleans closed segments: an hour-long segment (not the broker's week) keeps a changelog, and so a
    # restore, bounded by the retention plus an hour; tombstones stay a day for restores already under way.
    compacted = {"cleanup.policy": "compact", "segment.ms": str(3_600_000), "min.cleanable.dirty.ratio": "0.25",
                 "delete.retention.ms": str(86_400_000)}
    return (
        InternalTopic(TICKS, PARTITIONS, {"retention.ms": str(3_600_000)}),
        InternalTopic(TENANT_FEED, PARTITIONS, {"retention.ms": str(86_400_000)}),
        InternalTopic(WINDOW_SHARES, PARTITIONS, {"retention.ms": str(86_400_000)}),
        InternalTopic(f"{app_id}-__assignor-__leader", 1),
        *(InternalTopic(f"{app_id}-{name}-changelog", PARTITIONS, compacted) for name in STATE_TABLES),
    )


def markdown_table(topics: Iterable[Topic] = ALL_TOPICS) -> str:
    """The topics as the Markdown table of docs/DESIGN.md (header, separator, one row per topic)."""
    rows = ["| topic | key | value schema | partitions |", "|---|---|---|---|"]
    rows += [f"| `{t.name}` | {t.key} | `{t.schema}` | {t.partitions} |" for t in topics]
    return "\n".join(rows) + "\n"
