"""Consumer lag of callpipe's consumer groups, measured from the outside: the sink writes it to ClickHouse for
the pipeline-health dashboard, ingest refuses webhooks while the pipeline is too far behind.

Lag = end offset - committed offset, per (group, topic, partition). A partition the group never committed
counts from its start offset, so a stalled new consumer shows up as lag instead of disappearing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from broker.config import admin_config, consumer_config
from runtime import retry

log = logging.getLogger("callpipe.lag")

T = TypeVar("T")


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
        position = self.start_offset if self.committed is None else self.committed
        return max(0, self.end_offset - position)


def measure(admin: AdminClient, committed_by: Callable[[str], Consumer], groups: Sequence[str],
            topics: Sequence[str], timeout: float = 10) -> list[Lag]:
    """`committed_by(group)` gives a consumer of that group that never subscribes (it does not join the group)."""
    metadata = admin.list_topics(timeout=timeout).topics
    partitions = [TopicPartition(t, p) for t in topics if t in metadata for p in metadata[t].partitions]
    if not partitions:
        return []
    ends = _retrying(lambda: _offsets(admin, partitions, OffsetSpec.latest(), timeout))
    starts = _retrying(lambda: _offsets(admin, partitions, OffsetSpec.earliest(), timeout))
    lags = []
    for group in groups:
        answer = _retrying(partial(committed_by(group).committed, partitions, timeout))
        # A negative offset is librdkafka's "no committed offset".
        committed = {(tp.topic, tp.partition): tp.offset for tp in answer if tp.offset >= 0}
        lags += [Lag(group, tp.topic, tp.partition, committed.get((tp.topic, tp.partition)),
                     starts[(tp.topic, tp.partition)], ends[(tp.topic, tp.partition)]) for tp in partitions]
    return lags


# A broker that just started, or just created a topic, answers these for a few seconds: ask again.
_TRANSIENT = frozenset({KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE,
                        KafkaError.NOT_COORDINATOR, KafkaError._TIMED_OUT,
                        KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                        KafkaError.UNKNOWN_TOPIC_OR_PART})


def _transient(exc: BaseException) -> bool:
    if not isinstance(exc, KafkaException):
        return False
    error = exc.args[0]
    return bool(error.code() in _TRANSIENT or error.retriable())


def _retrying(call: Callable[[], T]) -> T:
    return retry.while_broker_settles(_transient)(call)


def _offsets(admin: AdminClient, partitions: list[TopicPartition], spec: OffsetSpec,
             timeout: float) -> dict[tuple[str, int], int]:
    futures = admin.list_offsets({tp: spec for tp in partitions}, request_timeout=timeout)
    return {(tp.topic, tp.partition): future.result().offset for tp, future in futures.items()}


class LagMonitor:
    """Measures the lag of `groups` (group id -> the topics it consumes) every `interval_s` on a daemon thread
    and hands the measurement to `report`."""

    def __init__(self, bootstrap: str, groups: Mapping[str, Sequence[str]], interval_s: float,
                 report: Callable[[list[Lag]], None]) -> None:
        self._bootstrap = bootstrap
        self._admin = AdminClient(admin_config(bootstrap))
        # Committed offsets are read through a consumer of each group: the admin API's ListConsumerGroupOffsets
        # crashed librdkafka 2.16 (segfault in rd_kafka_cgrp_op) when the coordinator answered "load in progress".
        self._consumers: dict[str, Consumer] = {}
        self._groups = groups
        self._interval_s = interval_s
        self._report = report
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="consumer-lag", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        for consumer in self._consumers.values():
            consumer.close()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._report(self.measure())
            except (KafkaException, RuntimeError, OSError) as exc:  # monitoring must never stop its service
                log.warning("consumer lag not measured", extra={"error": str(exc)})

    def measure(self) -> list[Lag]:
        return [lag for group, topics in self._groups.items()
                for lag in measure(self._admin, self._consumer, [group], topics)]

    def _consumer(self, group: str) -> Consumer:
        if group not in self._consumers:
            self._consumers[group] = Consumer(consumer_config(self._bootstrap, group))
        return self._consumers[group]
