"""Consumer lag rows for the pipeline-health dashboard (measured by broker/lag.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from broker.lag import Lag

TABLE = "consumer_lag"
COLUMNS = ("measured_at", "group_id", "topic", "partition", "committed", "end_offset", "lag")


def rows(lags: list[Lag]) -> list[list[object]]:
    now = datetime.now(UTC)
    return [[now, lag.group_id, lag.topic, lag.partition, lag.committed, lag.end_offset, lag.lag] for lag in lags]
