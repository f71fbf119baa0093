"""Sink settings, all from environment variables (documented with their defaults in the README)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runtime import env
from schemas import topics
from sinks.clickhouse import CHDB_SCHEME
from sinks.tools.query_server import DEFAULT_PORT, HOST

DEFAULT_CLICKHOUSE_URL = f"{CHDB_SCHEME}{Path('.data/clickhouse').resolve()}"
DEFAULT_QUERY_URL = f"http://{HOST}:{DEFAULT_PORT}"


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str
    schema_registry_url: str | None
    clickhouse_url: str
    group_id: str
    query_port: int
    max_rows: int
    max_bytes: int
    max_age_s: float
    lag_interval_s: float
    fetch_min_bytes: int
    fetch_max_wait_ms: int
    """A fetch returns once it has `fetch_min_bytes` or after `fetch_max_wait_ms` (librdkafka's
    `fetch.min.bytes`, `fetch.wait.max.ms`)."""
    streams_app_id: str
    log_level: str


def from_env() -> Settings:
    return Settings(
        kafka_bootstrap=env.kafka_bootstrap(),
        schema_registry_url=env.schema_registry_url(),
        clickhouse_url=env.text("CLICKHOUSE_URL", DEFAULT_CLICKHOUSE_URL),
        group_id=env.text("SINK_GROUP_ID", topics.SINK_GROUP_ID),
        query_port=env.integer("SINK_QUERY_PORT", DEFAULT_PORT),
        max_rows=env.integer("SINK_BATCH_MAX_ROWS", 10_000),
        max_bytes=env.integer("SINK_BATCH_MAX_BYTES", 8 * 1024 * 1024),
        max_age_s=env.number("SINK_BATCH_MAX_AGE_S", 1.0),
        lag_interval_s=env.number("SINK_LAG_INTERVAL_S", 15.0),
        fetch_min_bytes=env.integer("SINK_FETCH_MIN_BYTES", 65536),
        fetch_max_wait_ms=env.integer("SINK_FETCH_MAX_WAIT_MS", 100),
        streams_app_id=env.text("STREAMS_APP_ID", topics.STREAMS_APP_ID),
        log_level=env.log_level(),
    )


@dataclass(frozen=True)
class QuerySettings:
    """What `python -m sinks.tools.sql` asks: the running sink's query server, else the data directory itself."""

    query_url: str
    clickhouse_url: str


def query_from_env() -> QuerySettings:
    return QuerySettings(query_url=env.text("SINK_QUERY_URL", DEFAULT_QUERY_URL),
                         clickhouse_url=env.text("CLICKHOUSE_URL", DEFAULT_CLICKHOUSE_URL))
