"""Consumer lag of callpipe's consumer groups, written to ClickHouse for the pipeline-health dashboard.

Lag = end offset - committed offset, per (group, topic, partition). A partition the group never committed
counts from its start offset, so a stalled new consumer shows up as lag instead of disappearing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from broker.config import admin_config

log = logging.getLogger("callpipe.sink.lag")

TABLE = "consumer_lag"
COLUMNS = ("measured_at", "group_id", "topic", "partition", "committed", "end_offset", "lag")


@dataclass(frozen=True)
class Lag:
    group_id: str
    topic: str
    partition: int
    committed: int | None
    start_offset: int
    end_offset: int

    @property
    def lag(self) -> int:
        position = self.start_offset if self.committed is None or self.committed < 0 else self.committed
        return max(0, self.end_offset - position)


def measure(admin: AdminClient, groups: Sequence[str], topics: Sequence[str], timeout: float = 10) -> list[Lag]:
    metadata = admin.list_topics(timeout=timeout).topics
    partitions = [TopicPartition(t, p) for t in topics if t in metadata for p in metadata[t].partitions]
    if not partitions:
        return []
    ends = _offsets(admin, partitions, OffsetSpec.latest(), timeout)
    starts = _offsets(admin, partitions, OffsetSpec.earliest(), timeout)
    lags = []
    for group in groups:
        request = [ConsumerGroupTopicPartitions(group, partitions)]
        answer = admin.list_consumer_group_offsets(request, request_timeout=timeout)[group].result()
        committed = {(tp.topic, tp.partition): tp.offset for tp in answer.topic_partitions}
        lags += [Lag(group, tp.topic, tp.partition, committed.get((tp.topic, tp.partition)),
                     starts[(tp.topic, tp.partition)], ends[(tp.topic, tp.partition)]) for tp in partitions]
    return lags


def _offsets(admin: AdminClient, partitions: list[TopicPartition], spec: OffsetSpec,
             timeout: float) -> dict[tuple[str, int], int]:
    futures = admin.list_offsets({tp: spec for tp in partitions}, request_timeout=timeout)
    return {(tp.topic, tp.partition): future.result().offset for tp, future in futures.items()}


class LagMonitor:
    """Measures every `interval_s` on a daemon thread and hands the rows to `write`."""

    def __init__(self, bootstrap: str, groups: dict[str, Sequence[str]], interval_s: float,
                 write: Callable[[list[list[object]]], None]) -> None:
        self._admin = AdminClient(admin_config(bootstrap))
        self._groups = groups  # group id -> the topics it consumes
        self._interval_s = interval_s
        self._write = write
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="consumer-lag", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._write(self.rows())
            except (KafkaException, RuntimeError, OSError) as exc:  # monitoring must never stop the sink
                log.warning("consumer lag not measured", extra={"error": str(exc)})

    def rows(self) -> list[list[object]]:
        now = datetime.now(UTC)
        return [[now, lag.group_id, lag.topic, lag.partition, lag.committed, lag.end_offset, lag.lag]
                for group, topics in self._groups.items() for lag in measure(self._admin, [group], topics)]
