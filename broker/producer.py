"""An asyncio face for confluent-kafka's producer: `send()` returns once the broker acknowledged the write.

librdkafka calls delivery reports from `poll()`; a daemon thread polls continuously, collects the reports one
`poll()` served (one produce response acknowledges many writes) and hands them to the waiting event loop in a
single hop: a thread-safe wake-up per write (a self-pipe write and a GIL hand-off each) cost more than the write.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from broker.config import producer_config


class DeliveryError(RuntimeError):
    """Kafka did not acknowledge a write (broker down, timeout, or local queue full)."""

    def __init__(self, reason: str, retriable: bool = True) -> None:
        super().__init__(reason)
        self.retriable = retriable


Headers = Sequence[tuple[str, bytes]]
Write = tuple[str, bytes | None, bytes, Headers | None]


class _Acks:
    """One future for `pending` writes: resolves when all are acknowledged, fails on the first that is not."""

    __slots__ = ("future", "loop", "pending")

    def __init__(self, loop: asyncio.AbstractEventLoop, pending: int) -> None:
        self.loop = loop
        self.future: asyncio.Future[Message] = loop.create_future()
        self.pending = pending

    def fail(self, error: DeliveryError) -> None:
        if not self.future.done():
            self.future.set_exception(error)

    def report(self, err: KafkaError | None, msg: Message) -> None:
        if self.future.done():  # failed already, or the caller gave up waiting (timeout): nothing changes
            return
        if err is not None:
            self.future.set_exception(DeliveryError(err.str(), retriable=err.retriable()))
            return
        self.pending -= 1
        if not self.pending:
            self.future.set_result(msg)


Report = tuple[_Acks, KafkaError | None, Message]


class AsyncProducer:
    def __init__(self, bootstrap: str, delivery_timeout_ms: int = 5000, **extra: Any) -> None:
        self._producer = Producer(producer_config(bootstrap, delivery_timeout_ms, **extra))
        # Filled by whichever thread serves delivery reports (the poller, or close()'s flush); deque: thread-safe.
        self._reports: deque[Report] = deque()
        self._closing = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-delivery-reports", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._closing.is_set():
            self._producer.poll(0.05)
            self._hand_over()

    def _hand_over(self) -> None:
        """Pass the collected reports to their event loops: one thread-safe call per loop, not per write."""
        batches: dict[asyncio.AbstractEventLoop, list[Report]] = {}
        reports = self._reports
        while reports:
            report = reports.popleft()
            batches.setdefault(report[0].loop, []).append(report)
        for loop, batch in batches.items():
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits for these any more
                loop.call_soon_threadsafe(_settle, batch)

    def _produce(self, acks: _Acks, writes: Sequence[Write]) -> None:
        report = self._reports.append

        def delivered(err: KafkaError | None, msg: Message) -> None:
            report((acks, err, msg))

        try:
            for topic, key, value, headers in writes:
                self._producer.produce(topic, value=value, key=key, headers=list(headers or ()), on_delivery=delivered)
        except BufferError:
            # The local queue is full: the broker is slow or away. Back-pressure, not data loss.
            acks.fail(DeliveryError("local producer queue is full"))
        except KafkaException as exc:
            acks.fail(DeliveryError(str(exc), retriable=exc.args[0].retriable()))

    def send(
        self, topic: str, key: bytes | None, value: bytes, headers: Headers | None = None
    ) -> asyncio.Future[Message]:
        """Queue one write; the future resolves with the acknowledged message or fails with DeliveryError."""
        acks = _Acks(asyncio.get_running_loop(), 1)
        self._produce(acks, ((topic, key, value, headers),))
        return acks.future

    async def send_all(self, writes: Sequence[Write], timeout: float) -> None:
        """Send several writes and wait until every one is acknowledged, or raise DeliveryError."""
        if not writes:
            return
        acks = _Acks(asyncio.get_running_loop(), len(writes))
        self._produce(acks, writes)
        try:
            await asyncio.wait_for(acks.future, timeout)
        except TimeoutError:
            raise DeliveryError(f"Kafka did not acknowledge within {timeout:.1f}s") from None

    def reachable(self, timeout: float = 1.0) -> bool:
        """True when a broker answered a metadata request (for readiness probes; blocking, run in a thread)."""
        try:
            return bool(self._producer.list_topics(timeout=timeout).brokers)
        except KafkaException:
            return False

    def close(self, timeout: float = 10.0) -> int:
        """Flush what is queued, stop the poller; returns the number of messages that were not delivered."""
        remaining = self._producer.flush(timeout)
        self._closing.set()
        self._poller.join()
        self._hand_over()  # reports flush() served after the poller's last hand-over
        return int(remaining)


def _settle(batch: list[Report]) -> None:
    for acks, err, msg in batch:
        acks.report(err, msg)
