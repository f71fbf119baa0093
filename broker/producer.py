"""An asyncio face for confluent-kafka's producer: `send_all()` returns once the broker acknowledged every write.

librdkafka hands out delivery reports from `poll()`. The event loop itself polls, without blocking, on a short
timer that runs only while writes are unacknowledged: the reports then resolve their futures on the loop's own
thread. A polling thread was measured slower (bench/RESULTS.md, Ingest): every report it served took the GIL from
the loop and needed a thread-safe wake-up to reach it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from broker.config import producer_config

# How long an acknowledged write may wait for the loop to notice it; short next to linger.ms plus a broker round
# trip, long enough that a busy loop serves many reports per poll.
POLL_INTERVAL_S = 0.001


# Refusals of one record that no retry changes: the record must be made smaller (librdkafka's own check of
# message.max.bytes, or the broker's or topic's limit).
_TOO_LARGE = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE})


class DeliveryError(RuntimeError):
    """Kafka did not acknowledge a write (broker down, timeout, local queue full, or the record refused)."""

    def __init__(self, reason: str, retriable: bool = True, too_large: bool = False) -> None:
        super().__init__(reason)
        self.retriable = retriable
        self.too_large = too_large

    @classmethod
    def of(cls, err: KafkaError) -> DeliveryError:
        return cls(err.str(), retriable=err.retriable(), too_large=err.code() in _TOO_LARGE)


Headers = Sequence[tuple[str, bytes]]
Write = tuple[str, bytes | None, bytes, Headers | None]


class Sender(Protocol):
    """What a request handler needs of a producer (`AsyncProducer`; tests record writes with their own)."""

    async def send_all(self, writes: Sequence[Write], timeout: float) -> None: ...

    def reachable(self, timeout: float = 1.0) -> bool: ...

    def close(self, timeout: float = 10.0) -> int: ...


class _Acks:
    """One future for `pending` writes: resolves when all are acknowledged, fails on the first that is not."""

    __slots__ = ("future", "pending")

    def __init__(self, future: asyncio.Future[None], pending: int) -> None:
        self.future = future
        self.pending = pending

    def fail(self, error: DeliveryError) -> None:
        if not self.future.done():
            self.future.set_exception(error)

    def report(self, err: KafkaError | None, msg: Message) -> None:
        if self.future.done():  # failed already, or the caller gave up waiting (timeout): nothing changes
            return
        if err is not None:
            self.future.set_exception(DeliveryError.of(err))
            return
        self.pending -= 1
        if not self.pending:
            self.future.set_result(None)


class AsyncProducer:
    """Used from one event loop; `reachable()` and `close()` may run in a worker thread."""

    def __init__(self, bootstrap: str, delivery_timeout_ms: int = 5000, **extra: Any) -> None:
        self._producer = Producer(producer_config(bootstrap, delivery_timeout_ms, **extra))
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    def _serve_reports(self, loop: asyncio.AbstractEventLoop) -> None:
        self._producer.poll(0)
        # len(): messages librdkafka still holds, queued or awaiting their acknowledgement.
        more = len(self._producer) and not self._closed
        self._timer = loop.call_later(POLL_INTERVAL_S, self._serve_reports, loop) if more else None

    async def send_all(self, writes: Sequence[Write], timeout: float) -> None:
        """Send several writes and wait until every one is acknowledged, or raise DeliveryError."""
        if not writes:
            return
        loop = asyncio.get_running_loop()
        acks = _Acks(loop.create_future(), len(writes))
        try:
            for topic, key, value, headers in writes:
                self._producer.produce(topic, value=value, key=key, headers=list(headers or ()),
                                       on_delivery=acks.report)
        except BufferError:
            # The local queue is full: the broker is slow or away. Back-pressure, not data loss.
            acks.fail(DeliveryError("local producer queue is full"))
        except KafkaException as exc:
            acks.fail(DeliveryError.of(exc.args[0]))
        if self._timer is None and not self._closed:
            self._timer = loop.call_later(POLL_INTERVAL_S, self._serve_reports, loop)
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
        """Flush what is queued (after the loop stopped sending); returns the number of messages not delivered.
        Reports served here only reach futures whose waiters are gone: nobody awaits them any more."""
        self._closed = True
        return int(self._producer.flush(timeout))
