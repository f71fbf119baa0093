"""Streams settings, all from environment variables (documented with their defaults in the README)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from runtime import env
from schemas import topics
from streams.domain.billing.rating import DEFAULT_PLAN, RatingPlan


@dataclass(frozen=True)
class Settings:
    app_id: str
    kafka_bootstrap: str
    schema_registry_url: str | None
    data_dir: Path
    store: str
    """Faust's table store: `rocksdb://` (local, persistent: a restart reads the changelog tail) or `memory://`."""
    rocksdb_memory_mb: int
    """RocksDB's block cache, shared by every table and partition of the worker; memtables are charged to it."""
    allocator: str
    """`jemalloc` (when installed; else glibc's) or `glibc`: the C allocator of the worker (runtime/malloc.py)."""
    malloc_arenas: int
    malloc_trim_interval_s: float
    """The allocator's arenas at most (0: its default) and how often free pages are given back (0: never)."""
    fetch_min_bytes: int
    fetch_max_wait_ms: int
    """A fetch returns once it has `fetch_min_bytes` or after `fetch_max_wait_ms` (streams/faustapp/patches.py, 10.)."""
    producer_linger_ms: int
    inactivity_timeout: timedelta
    metric_grace: timedelta
    retention: timedelta
    tick_interval_s: float
    batch_max_events: int
    batch_window_s: float
    rating_plan: RatingPlan
    log_level: str
    metrics_port: int


def _rating_plan(text: str | None) -> RatingPlan:
    """`CALLPIPE_RATING_PLAN` as JSON (`RatingPlan.to_mapping` shows the shape); unset: the provider evidence."""
    return RatingPlan.from_json(text) if text else DEFAULT_PLAN


def from_env() -> Settings:
    return Settings(
        app_id=env.text("STREAMS_APP_ID", topics.STREAMS_APP_ID),
        kafka_bootstrap=env.kafka_bootstrap(),
        schema_registry_url=env.schema_registry_url(),
        data_dir=Path(env.text("STREAMS_DATA_DIR", ".data/streams")),
        store=env.text("STREAMS_STORE", "rocksdb://"),
        rocksdb_memory_mb=env.integer("STREAMS_ROCKSDB_MEMORY_MB", 128),
        allocator=env.choice("STREAMS_ALLOCATOR", ("jemalloc", "glibc"), "jemalloc"),
        malloc_arenas=env.integer("STREAMS_MALLOC_ARENAS", 2),
        malloc_trim_interval_s=env.number("STREAMS_MALLOC_TRIM_INTERVAL_S", 60.0),
        fetch_min_bytes=env.integer("STREAMS_FETCH_MIN_BYTES", 65536),
        fetch_max_wait_ms=env.integer("STREAMS_FETCH_MAX_WAIT_MS", 100),
        producer_linger_ms=env.integer("STREAMS_PRODUCER_LINGER_MS", 20),
        inactivity_timeout=timedelta(seconds=env.number("STREAMS_INACTIVITY_TIMEOUT_S", 120.0)),
        metric_grace=timedelta(seconds=env.number("STREAMS_METRIC_GRACE_S", 48 * 3600.0)),
        retention=timedelta(seconds=env.number("STREAMS_RETENTION_S", 48 * 3600.0)),
        tick_interval_s=env.number("STREAMS_TICK_INTERVAL_S", 5.0),
        batch_max_events=env.integer("STREAMS_BATCH_MAX_EVENTS", 1000),
        batch_window_s=env.number("STREAMS_BATCH_WINDOW_S", 0.3),
        rating_plan=_rating_plan(env.optional("CALLPIPE_RATING_PLAN")),
        log_level=env.log_level(),
        metrics_port=env.integer("STREAMS_METRICS_PORT", 0),
    )
