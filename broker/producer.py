"""An asyncio face for confluent-kafka's producer: `send()` returns once the broker acknowledged the write.

librdkafka calls delivery reports from `poll()`; a daemon thread polls continuously and hands each report to the
event loop that is waiting for it.
"""

from __future__ import annotations

import asyncio
import threading
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


class AsyncProducer:
    def __init__(self, bootstrap: str, delivery_timeout_ms: int = 5000, **extra: Any) -> None:
        self._producer = Producer(producer_config(bootstrap, delivery_timeout_ms, **extra))
        self._closing = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-delivery-reports", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._closing.is_set():
            self._producer.poll(0.05)

    def send(
        self, topic: str, key: bytes | None, value: bytes, headers: Headers | None = None
    ) -> asyncio.Future[Message]:
        """Queue one write; the future resolves with the acknowledged message or fails with DeliveryError."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Message] = loop.create_future()

        def delivered(err: KafkaError | None, msg: Message) -> None:
            loop.call_soon_threadsafe(_settle, future, err, msg)

        try:
            self._producer.produce(topic, value=value, key=key, headers=list(headers or ()), on_delivery=delivered)
        except BufferError:
            # The local queue is full: the broker is slow or away. Back-pressure, not data loss.
            future.set_exception(DeliveryError("local producer queue is full"))
        except KafkaException as exc:
            future.set_exception(DeliveryError(str(exc), retriable=exc.args[0].retriable()))
        return future

    async def send_all(self, writes: Sequence[tuple[str, bytes | None, bytes, Headers | None]], timeout: float) -> None:
        """Send several writes and wait until every one is acknowledged, or raise DeliveryError."""
        futures = [self.send(topic, key, value, headers) for topic, key, value, headers in writes]
        try:
            await asyncio.wait_for(asyncio.gather(*futures), timeout)
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
        return int(remaining)


def _settle(future: asyncio.Future[Message], err: KafkaError | None, msg: Message) -> None:
    if future.done():  # the caller gave up waiting (timeout); the late report changes nothing
        return
    if err is None:
        future.set_result(msg)
    else:
        future.set_exception(DeliveryError(err.str(), retriable=err.retriable()))
