"""What one webhook becomes on Kafka: a raw archive record plus either the normalized record or a dead letter.
Used by the HTTP endpoint and by the replay command, so that both normalize the same way."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from broker.producer import Headers
from schemas import topics
from schemas.codec import Codec
from schemas.fields import NormalizationError
from schemas.normalize import Normalized, event_id, normalize

# Never archive credentials: the raw topic is readable by more people than the tenants' secrets should be.
_SECRET_HEADERS = frozenset({"x-callpipe-secret", "authorization", "cookie", "proxy-authorization"})

Write = tuple[str, bytes | None, bytes, Headers | None]


@dataclass(frozen=True)
class Webhook:
    tenant: str
    kind: str
    body: bytes
    received_at: datetime
    headers: Mapping[str, str]
    remote_addr: str | None = None


@dataclass(frozen=True)
class Outcome:
    writes: list[Write]
    event_id: str | None
    normalized: Normalized | None
    error: str | None  # why the payload went to the dead-letter topic


def safe_headers(headers: Mapping[str, str]) -> dict[str, str]:
    lowered = ((k.lower(), v) for k, v in headers.items())
    return {k: v for k, v in lowered if k not in _SECRET_HEADERS}


def plan(webhook: Webhook, parsed: Any, codec: Codec, rejection: str | None = None) -> Outcome:
    """Build the writes for one authenticated webhook. `parsed` is the decoded JSON, or None when the body could
    not be decoded, in which case `rejection` says why and the payload goes to the dead-letter topic."""
    headers = safe_headers(webhook.headers)
    eid = event_id(webhook.tenant, webhook.kind, parsed) if rejection is None else None
    normalized: Normalized | None = None
    error = rejection
    if error is None:
        try:
            normalized = normalize(webhook.kind, webhook.tenant, parsed, webhook.received_at, eid)
        except NormalizationError as exc:
            error = str(exc)
    fallback_key = f"{webhook.tenant}/{webhook.kind}".encode()
    key = normalized.key.encode() if normalized else fallback_key
    kafka_headers: list[tuple[str, bytes]] = [("kind", webhook.kind.encode()), ("tenant", webhook.tenant.encode())]
    if eid:
        kafka_headers.append(("event_id", eid.encode()))
    raw = {
        "event_id": eid,
        "kind": webhook.kind,
        "tenant": webhook.tenant,
        "received_at": webhook.received_at,
        "remote_addr": webhook.remote_addr,
        "content_type": headers.get("content-type"),
        "headers": headers,
        "body": webhook.body,
    }
    writes: list[Write] = [(topics.RAW.name, key, codec.encode(topics.RAW.name, topics.RAW.schema, raw), kafka_headers)]
    if normalized is not None:
        topic = normalized.topic
        writes.append((topic.name, key, codec.encode(topic.name, topic.schema, normalized.record), kafka_headers))
    else:
        dead = {
            "kind": webhook.kind,
            "tenant": webhook.tenant,
            "received_at": webhook.received_at,
            "stage": "ingest",
            "reason": error or "unknown",
            "error_type": "NormalizationError" if rejection is None else "BadRequest",
            "headers": headers,
            "body": webhook.body,
            "source_topic": None,
            "source_partition": None,
            "source_offset": None,
        }
        dl = topics.DEADLETTER
        writes.append((dl.name, fallback_key, codec.encode(dl.name, dl.schema, dead), kafka_headers))
    return Outcome(writes=writes, event_id=eid, normalized=normalized, error=error)
