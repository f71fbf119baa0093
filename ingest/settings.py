"""Ingest settings, all from environment variables (documented with their defaults in the README)."""

from __future__ import annotations

from dataclasses import dataclass

from runtime import env


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
        kafka_bootstrap=env.text("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        schema_registry_url=env.optional("SCHEMA_REGISTRY_URL"),
        tenants=parse_tenants(env.text("INGEST_TENANTS", "demo:demo-secret-change-me")),
        max_body_bytes=env.integer("INGEST_MAX_BODY_BYTES", 256 * 1024),
        max_json_depth=env.integer("INGEST_MAX_JSON_DEPTH", 16),
        kafka_timeout_s=env.number("INGEST_KAFKA_TIMEOUT_S", 5.0),
        retry_after_s=env.integer("INGEST_RETRY_AFTER_S", 5),
        kafka_linger_ms=env.number("INGEST_KAFKA_LINGER_MS", 2.0),
        log_level=env.text("LOG_LEVEL", "INFO"),
    )
