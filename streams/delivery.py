"""Offsets are committed only after every write made for the committed events was delivered.

Faust commits a consumer offset after `producer.flush()`, which first drains its `ProducerBuffer`: the queue
every table write goes through on its way to the changelog. That drain gives up when one message takes more
than 0.1 s to hand over (`ProducerBuffer.flush_atmost`), which a busy worker easily exceeds; and a changelog
write that fails is only logged. Either way the offset can be committed past a state change that never reached
its changelog: a worker killed right after loses that change for good (its events are not read again).

`DeliveryBuffer` (installed by streams/faust_app.py) replaces the producer's buffer and keeps each message it
is given, and each output record the agents register with `track`, until Kafka acknowledged it. Its `flush`
waits for all of them, and raises once any write failed, so the commit does not happen: the worker stops and
its events are read again from the last good offset (at-least-once, docs/DESIGN.md "Streams").
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from faust.transport.producer import ProducerBuffer


class DeliveryFailed(RuntimeError):
    """A changelog or output write was not acknowledged: committing the offsets would lose it."""


class DeliveryBuffer(ProducerBuffer):
    def __post_init__(self) -> None:
        super().__post_init__()
        self.undelivered: set[asyncio.Future[Any]] = set()
        self.failure: BaseException | None = None

    def track(self, delivery: Awaitable[Any]) -> None:
        """Count `delivery` (what a send returned) among the writes the next commit waits for."""
        future = asyncio.ensure_future(delivery)  # already a future for a Faust send: returned as it is
        self.undelivered.add(future)
        future.add_done_callback(self._delivered)

    def _delivered(self, future: asyncio.Future[Any]) -> None:
        self.undelivered.discard(future)
        error = None if future.cancelled() else future.exception()
        if error is not None and self.failure is None:
            self.failure = error

    def put(self, fut: Any) -> None:
        self.track(fut)
        super().put(fut)

    async def flush(self) -> None:
        await super().flush()
        if self.undelivered:
            await asyncio.wait(list(self.undelivered))
        if self.failure is not None:
            raise DeliveryFailed(f"a write was not acknowledged by Kafka: {self.failure!r}") from self.failure
