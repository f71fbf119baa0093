"""Ingest settings, all from environment variables (documented with their defaults in the README)."""

from __future__ import annotations

from dataclasses import dataclass

from runtime import env
from schemas import topics

KAFKA_LINGER_MS = 20.0
"""The producer's linger: a webhook waits at most this long for others to share its produce request, which at a live
rate cuts the broker's and the producer's per-request work (bench/RESULTS.md, "session 18")."""


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    kafka_bootstrap: str
    schema_registry_url: str | None
    tenants: dict[str, str]  # tenant -> secret
    max_body_bytes: int
    max_json_depth: int
    kafka_timeout_s: float
    retry_after_s: int
    kafka_linger_ms: float
    log_level: str
    # Limits the server applies before a request reaches authentication (ingest/server.py).
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    max_url_bytes: int = 2048
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    idle_timeout_s: float = 15.0
    max_connections: int = 1000
    trusted_proxies: tuple[str, ...] = ()  # addresses whose X-Forwarded-For / -Proto are believed
    reuse_port: bool = False
    max_backlog: int = 0
    """Refuse webhooks while the pipeline is more than this many messages behind (ingest/backlog.py); 0: never."""
    backlog_interval_s: float = 1.0
    streams_app_id: str = topics.STREAMS_APP_ID
    sink_group_id: str = topics.SINK_GROUP_ID
    """Bind with SO_REUSEPORT: several ingest processes share the port and the kernel spreads connections."""


def parse_tenants(spec: str) -> dict[str, str]:
    """`tenant:secret,tenant2:secret2` -> {tenant: secret}."""
    tenants: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        tenant, sep, secret = item.partition(":")
        if not sep or not tenant or len(secret) < 8:
            raise SystemExit(
                f"error: INGEST_TENANTS entry {tenant or item!r} must be tenant:secret (secret >= 8 chars)"
            )
        tenants[tenant] = secret
    return tenants


def from_env() -> Settings:
    return Settings(
        host=env.text("INGEST_HOST", "127.0.0.1"),
        port=env.integer("INGEST_PORT", 8080),
        kafka_bootstrap=env.kafka_bootstrap(),
        schema_registry_url=env.schema_registry_url(),
        tenants=parse_tenants(env.text("INGEST_TENANTS", "demo:demo-secret-change-me")),
        max_body_bytes=env.integer("INGEST_MAX_BODY_BYTES", 256 * 1024),
        max_json_depth=env.integer("INGEST_MAX_JSON_DEPTH", 16),
        kafka_timeout_s=env.number("INGEST_KAFKA_TIMEOUT_S", 5.0),
        retry_after_s=env.integer("INGEST_RETRY_AFTER_S", 5),
        kafka_linger_ms=env.number("INGEST_KAFKA_LINGER_MS", KAFKA_LINGER_MS),
        log_level=env.log_level(),
        reuse_port=env.integer("INGEST_REUSE_PORT", 0) == 1,
        max_header_bytes=env.integer("INGEST_MAX_HEADER_BYTES", Settings.max_header_bytes),
        max_headers=env.integer("INGEST_MAX_HEADERS", Settings.max_headers),
        max_url_bytes=env.integer("INGEST_MAX_URL_BYTES", Settings.max_url_bytes),
        header_timeout_s=env.number("INGEST_HEADER_TIMEOUT_S", Settings.header_timeout_s),
        body_timeout_s=env.number("INGEST_BODY_TIMEOUT_S", Settings.body_timeout_s),
        idle_timeout_s=env.number("INGEST_IDLE_TIMEOUT_S", Settings.idle_timeout_s),
        max_connections=env.integer("INGEST_MAX_CONNECTIONS", Settings.max_connections),
        max_backlog=env.integer("INGEST_MAX_BACKLOG", Settings.max_backlog),
        backlog_interval_s=env.number("INGEST_BACKLOG_INTERVAL_S", Settings.backlog_interval_s),
        streams_app_id=env.text("STREAMS_APP_ID", topics.STREAMS_APP_ID),
        sink_group_id=env.text("SINK_GROUP_ID", topics.SINK_GROUP_ID),
        trusted_proxies=tuple(p.strip() for p in env.text("INGEST_TRUSTED_PROXIES", "").split(",") if p.strip()),
    )
