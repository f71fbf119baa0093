"""What one webhook becomes on Kafka: a raw archive record plus either the normalized record or a dead letter.
Used by the HTTP endpoint and by the replay command, so that both normalize the same way."""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from broker.producer import Headers
from schemas import topics
from schemas.codec import Codec, RegistryUnavailable
from schemas.fields import NormalizationError
from schemas.normalize import Normalized, event_id, normalize

# Never archive credentials: the raw topic is readable by more people than the tenants' secrets should be.
_SECRET_HEADERS = frozenset({"x-callpipe-secret", "authorization", "cookie", "proxy-authorization"})
# What the archived headers are cut to when Kafka refused a record as too large: the body is never cut.
TRIMMED_HEADERS_BYTES = 4096
TRIMMED_VALUE_BYTES = 256
TRUNCATED_HEADER = "x-callpipe-headers-truncated"
# Error types of a dead letter written by ingest; an unexpected exception is recorded under its own type name.
BAD_REQUEST, NOT_IN_CONTRACT = "BadRequest", "NormalizationError"

Write = tuple[str, bytes | None, bytes, Headers | None]


@dataclass(frozen=True)
class Webhook:
    tenant: str
    kind: str
    body: bytes
    received_at: datetime
    headers: Mapping[str, str]
    remote_addr: str | None = None

    def with_trimmed_headers(self) -> Webhook:
        """The same webhook with its headers cut to a few KiB, for a raw record Kafka refused as too large."""
        kept: dict[str, str] = {}
        size = total = 0
        for name, value in self.headers.items():
            total += len(name) + len(value)
            cut = value[:TRIMMED_VALUE_BYTES]
            if size + len(name) + len(cut) <= TRIMMED_HEADERS_BYTES:
                kept[name] = cut
                size += len(name) + len(cut)
        kept[TRUNCATED_HEADER] = f"{size} of {total} bytes kept"
        return replace(self, headers=kept)


@dataclass(frozen=True)
class Outcome:
    writes: list[Write]
    event_id: str | None
    normalized: Normalized | None
    error: str | None  # why the payload went to the dead-letter topic
    error_type: str | None = None  # BAD_REQUEST, NOT_IN_CONTRACT, or the type of an unexpected exception

    @property
    def unexpected(self) -> bool:
        """A defect of ours rather than of the payload: kept and answered 422 like one, but counted apart."""
        return self.error_type not in (None, BAD_REQUEST, NOT_IN_CONTRACT)


def safe_headers(headers: Mapping[str, str]) -> dict[str, str]:
    lowered = ((k.lower(), v) for k, v in headers.items())
    return {k: v for k, v in lowered if k not in _SECRET_HEADERS}


def _defect(exc: Exception) -> str:
    """An unexpected exception as a dead letter's reason: type, message and the innermost frames."""
    frames = traceback.extract_tb(exc.__traceback__)[-3:]
    where = "; ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} in {f.name}" for f in frames)
    return f"unexpected {type(exc).__name__}: {str(exc)[:300]} (at {where})"


def records_for(webhook: Webhook, parsed: Any, codec: Codec, rejection: str | None = None) -> Outcome:
    """Build the writes for one authenticated webhook: a total function of the body. `parsed` is the decoded
    JSON, or None when the body could not be decoded, in which case `rejection` says why and the payload goes
    to the dead-letter topic. A body that normalizing or encoding fails on in any way, expected or not, is
    dead-lettered; only `RegistryUnavailable` (a dependency down) escapes."""
    headers = safe_headers(webhook.headers)
    eid = event_id(webhook.tenant, webhook.kind, parsed) if rejection is None else None
    normalized: Normalized | None = None
    value = b""
    error, error_type = rejection, (None if rejection is None else BAD_REQUEST)
    if error is None:
        try:
            normalized = normalize(webhook.kind, webhook.tenant, parsed, webhook.received_at, eid)
            value = codec.encode(normalized.topic.name, normalized.topic.schema, normalized.record)
        except NormalizationError as exc:
            normalized, error, error_type = None, str(exc), NOT_IN_CONTRACT
        except RegistryUnavailable:
            raise
        except Exception as exc:
            normalized, error, error_type = None, _defect(exc), type(exc).__name__
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
        writes.append((normalized.topic.name, key, value, kafka_headers))
    else:
        dead = {
            "kind": webhook.kind,
            "tenant": webhook.tenant,
            "received_at": webhook.received_at,
            "stage": "ingest",
            "reason": error or "unknown",
            "error_type": error_type or NOT_IN_CONTRACT,
            "headers": headers,
            "body": webhook.body,
            "source_topic": None,
            "source_partition": None,
            "source_offset": None,
        }
        dl = topics.DEADLETTER
        writes.append((dl.name, fallback_key, codec.encode(dl.name, dl.schema, dead), kafka_headers))
    return Outcome(writes=writes, event_id=eid, normalized=normalized, error=error, error_type=error_type)
