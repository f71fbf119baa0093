"""streams/faustapp/patches.py: a commit's producer flush waits for every write, and refuses when one failed.

Faust's real ProducerBuffer runs here; only the channel a buffered message is published to is replaced by one
that takes `delay` seconds to hand the message over and then reports its delivery (no Kafka in a unit test).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import faust
import pytest
from faust.transport.producer import ProducerBuffer
from faust.types.tuples import FutureMessage

from streams.faustapp.patches import DeliveryBuffer, DeliveryFailed

APP = faust.App("delivery-test", broker="kafka://127.0.0.1:1")  # never connects: only its settings are read


@dataclass
class SlowChannel:
    delay: float
    error: Exception | None = None
    published: list[FutureMessage] = field(default_factory=list)

    async def publish_message(self, fut: FutureMessage, wait: bool = False) -> None:
        await asyncio.sleep(self.delay)
        self.published.append(fut)
        if self.error is None:
            fut.set_result(None)  # type: ignore[arg-type]
        else:
            fut.set_exception(self.error)


@dataclass
class Message:
    channel: SlowChannel


def message(channel: SlowChannel) -> FutureMessage:
    return FutureMessage(Message(channel))  # type: ignore[arg-type]


async def flushed(buffer: ProducerBuffer, channel: SlowChannel, n: int) -> list[bool]:
    """Which of `n` messages were delivered when `flush` returned."""
    buffer.app = APP
    await buffer.start()
    futures = [message(channel) for _ in range(n)]
    try:
        for fut in futures:
            buffer.put(fut)
        await buffer.flush()
        return [fut.done() for fut in futures]
    finally:
        await asyncio.wait(futures)  # the buffer refuses to stop with messages in it
        await buffer.stop()


def test_faust_buffer_flush_gives_up_on_a_slow_hand_over() -> None:
    """Why DeliveryBuffer exists: the stock flush returns with messages still waiting (if this starts failing,
    upstream fixed it and the replacement may go)."""
    channel = SlowChannel(delay=0.25)
    assert not all(asyncio.run(flushed(ProducerBuffer(), channel, 3)))


def test_flush_waits_until_every_buffered_message_is_delivered() -> None:
    channel = SlowChannel(delay=0.25)
    assert all(asyncio.run(flushed(DeliveryBuffer(), channel, 3)))
    assert len(channel.published) == 3


def test_flush_raises_when_a_write_failed_and_keeps_raising() -> None:
    async def run() -> None:
        buffer = DeliveryBuffer()
        with pytest.raises(DeliveryFailed, match="boom"):
            await flushed(buffer, SlowChannel(delay=0.01, error=RuntimeError("boom")), 2)
        with pytest.raises(DeliveryFailed):  # a later commit must not skip over the lost write either
            await buffer.flush()

    asyncio.run(run())


def test_flush_waits_for_tracked_output_records() -> None:
    async def run() -> tuple[asyncio.Future[Any], bool]:
        buffer = DeliveryBuffer()
        buffer.app = APP
        await buffer.start()
        try:
            output: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            buffer.track(output)
            asyncio.get_running_loop().call_later(0.3, output.set_result, None)
            flush = asyncio.ensure_future(buffer.flush())
            await asyncio.sleep(0.15)
            waiting = not flush.done()
            await flush
            return output, waiting
        finally:
            await buffer.stop()

    output, waiting = asyncio.run(run())
    assert waiting and output.done()


def test_generations_are_delivered_in_order() -> None:
    """A generation counts as delivered only once its writes and every earlier generation's are acknowledged."""

    async def run() -> list[int]:
        loop = asyncio.get_running_loop()
        buffer = DeliveryBuffer()
        first, second = loop.create_future(), loop.create_future()
        seen = [buffer.delivered_through()]
        buffer.track(first)
        assert buffer.seal() == 0
        buffer.track(second)
        assert buffer.seal() == 1
        second.set_result(None)
        await asyncio.sleep(0)
        seen.append(buffer.delivered_through())  # the first generation still waits
        first.set_result(None)
        await asyncio.sleep(0)
        seen.append(buffer.delivered_through())
        failed = loop.create_future()
        buffer.track(failed)
        buffer.seal()
        failed.set_exception(RuntimeError("lost"))
        await asyncio.sleep(0)
        seen.append(buffer.delivered_through())  # a failed write never counts as delivered
        return seen

    assert asyncio.run(run()) == [-1, -1, 1, 1]
