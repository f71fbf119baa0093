"""The sink service: Kafka -> batches -> ClickHouse, committing offsets only after the insert is confirmed.

Commit order (docs/DESIGN.md, "Sink"): decode -> buffer per table -> insert with the batch's deduplication token
-> commit, synchronously and once per write cycle, the offsets after the written batches. While ClickHouse is
unavailable the same batch is retried with back-off and nothing is committed. While the schema registry is down, a
record whose schema is not known yet is read again after a pause, as is everything after it in its partition: it
is never dead-lettered, and no commit passes it. The process owns the embedded
engine's data directory and serves read-only SQL beside it (sinks/tools/query_server.py), so analysts can query while
it runs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from broker.config import consumer_config
from broker.lag import Lag, LagMonitor
from runtime import retry
from schemas import topics
from schemas.codec import Codec, RegistryUnavailable, codec_from_settings
from sinks.clickhouse import connect
from sinks.schema.migrate import migrate
from sinks.schema.tables import Catalog, catalog
from sinks.settings import Settings
from sinks.tools.query_server import QueryServer
from sinks.write import lag
from sinks.write.batcher import Batcher, InsertBatch
from sinks.write.writer import RetryableWriteError, Writer

log = logging.getLogger("callpipe.sink")

T = TypeVar("T")


def _headers(msg: Message) -> dict[str, str]:
    headers = msg.headers() or []
    pairs = headers.items() if isinstance(headers, dict) else headers
    return {key: value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")
            for key, value in pairs}


class Sink:
    def __init__(self, settings: Settings, stop: threading.Event, codec: Codec | None = None,
                 tables: Catalog | None = None) -> None:
        self.settings = settings
        self.stop = stop
        self.codec = codec or codec_from_settings(settings.schema_registry_url)
        self.catalog = tables or catalog()
        self.lock = threading.RLock()
        self.client = connect(settings.clickhouse_url)
        applied = migrate(self.client)
        log.info("migrations applied", extra={"applied": [m.name for m in applied]})
        self.writer = Writer(self.client, self.catalog, lock=self.lock)
        self.batcher = Batcher(lambda topic: self.catalog.for_topic(topic).name,
                               settings.max_rows, settings.max_bytes, settings.max_age_s)
        self.query_server = QueryServer(connect(settings.clickhouse_url, readonly=True), self.lock,
                                        port=settings.query_port)
        self.consumer = Consumer(consumer_config(settings.kafka_bootstrap, settings.group_id,
                                                 **{"max.poll.interval.ms": 600_000,
                                                    "fetch.min.bytes": settings.fetch_min_bytes,
                                                    "fetch.wait.max.ms": settings.fetch_max_wait_ms}))
        self.rows_written = 0
        self._registry_waits = 0
        """polls in a row that met the registry down: the pause before the next one doubles with it"""
        # Lag of both consumer groups: the streams app's group id is its Faust app id.
        self.lag = LagMonitor(settings.kafka_bootstrap, {
            settings.group_id: self.topics,
            settings.streams_app_id: [t.name for t in topics.INPUT_TOPICS],
        }, settings.lag_interval_s, self._write_lag)

    def _write_lag(self, lags: list[Lag]) -> None:
        with self.lock:
            self.client.insert(lag.TABLE, lag.rows(lags), column_names=list(lag.COLUMNS))

    @property
    def topics(self) -> list[str]:
        return [spec.topic for spec in self.catalog.tables]

    def run(self) -> None:
        self.query_server.start()
        self.lag.start()
        self.consumer.subscribe(self.topics, on_revoke=self._on_revoke, on_lost=self._on_lost)
        log.info("sink started", extra={"topics": len(self.topics), "query_url": self.query_server.url})
        try:
            while not self.stop.is_set():
                self._poll_once()
            self._write_all(self.batcher.drain())
        finally:
            self.lag.stop()
            self.consumer.close()
            self.query_server.stop()
            self.client.close()

    def _poll_once(self) -> None:
        deadline = self.batcher.next_deadline()
        timeout = 0.5 if deadline is None else min(0.5, max(0.0, deadline - time.monotonic()))
        waiting: set[tuple[str, int]] = set()
        unavailable: RegistryUnavailable | None = None
        for msg in self.consumer.consume(num_messages=1000, timeout=timeout):
            if msg.error() is not None:
                log.warning("consumer error", extra={"error": str(msg.error())})
                continue
            where = (str(msg.topic()), int(msg.partition() or 0))
            if where in waiting:
                continue
            try:
                self._add(msg)
            except RegistryUnavailable as exc:
                # Read again from this record after the wait: the batch holds only what came before it, so no
                # commit can pass it.
                waiting.add(where)
                unavailable = exc
                self.consumer.seek(TopicPartition(*where, int(msg.offset() or 0)))
        self._write_all(self.batcher.ready(time.monotonic()))
        if waiting:
            self._registry_waits += 1
            pause = retry.backoff_s(self._registry_waits, retry.REGISTRY_BACKOFF_S)
            log.error("schema registry unavailable; the partitions wait", extra={
                "partitions": len(waiting), "error": str(unavailable), "retry_in_s": pause})
            self.stop.wait(pause)
        else:
            self._registry_waits = 0

    def _add(self, msg: Message) -> None:
        """Raises `RegistryUnavailable`: a dependency down is not the record's fault, so it is not kept as one."""
        topic, partition, offset = str(msg.topic()), int(msg.partition() or 0), int(msg.offset() or 0)
        raw = bytes(msg.value() or b"")
        record: dict[str, Any] = {}
        undecodable: Exception | None = None
        try:
            record = self.codec.decode(topic, raw)
        except RegistryUnavailable:
            raise
        except Exception as exc:  # kept: a dead letter, written and committed with its table's batch
            undecodable = exc
        self.batcher.add(topic, partition, offset, record, raw, time.monotonic(), _headers(msg), undecodable)

    def _write_all(self, batches: list[InsertBatch]) -> None:
        if not batches:
            return
        offsets: dict[tuple[str, int], int] = {}
        for batch in batches:
            result = self._retrying(partial(self.writer.write, batch), batch.token)
            self.rows_written += result.rows_inserted
            offsets.update({(batch.topic, p): offset for p, offset in batch.commit_offsets.items()})
        self._commit(offsets)

    def _retrying(self, write: Callable[[], T], token: str) -> T:
        policy = retry.until_stopped(self.stop, RetryableWriteError, log, "ClickHouse write", batch=token)
        return policy(write)

    def _commit(self, offsets: dict[tuple[str, int], int]) -> None:
        try:
            self.consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                                 asynchronous=False)
        except KafkaException as exc:
            # Not fatal: the batches are in ClickHouse; if the commit is lost they are re-read and deduplicated.
            log.warning("offset commit failed", extra={"partitions": len(offsets), "error": str(exc)})

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Write and commit what is buffered for partitions that move to another consumer."""
        del consumer, partitions  # everything buffered is written: simpler, and equally correct for the rest
        self._write_all(self.batcher.drain())

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Lost (not revoked): another consumer may already own them, so committing would be wrong.
        for tp in partitions:
            self.batcher.drop(tp.topic, tp.partition)
