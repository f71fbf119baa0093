"""The Faust app class the agents run on: Faust's own, with three holes in its at-least-once guarantee closed.

1. Commits wait for deliveries: the producer's buffer is a `DeliveryBuffer` (streams/delivery.py).
2. Nothing fetched around a rebalance is dropped. When recovery ends, Faust resumes the stream partitions and
   seeks them to their committed offsets, and only then resumes flow control, whose `resume()` empties the
   stream queues: whatever the fetcher read in between was dropped unacked, with the fetch position already
   past it. Faust already empties the queues itself when a rebalance starts (`flow_control.clear()` on revoke
   and assign) and skips events of an older generation, so the app's flow control keeps the queues on resume.
3. "Seek to committed" seeks. aiokafka's `seek_to_committed` only seeks offsets > 0: a partition committed at
   offset 0, or never, keeps whatever position it had. The failover test caught partitions taken over from
   the killed worker (committed 0) already positioned at their end during recovery, so their events were
   never processed. The consumer's seek also seeks offset 0, and the first offset of a partition with no
   commit (auto.offset.reset=earliest).
"""

from __future__ import annotations

from collections.abc import Mapping

import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer
from faust.types import TP
from faust.types.transports import ConsumerT, ProducerT
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

from streams.delivery import DeliveryBuffer


class App(faust.App):
    def _new_producer(self) -> ProducerT:
        producer = super()._new_producer()
        buffer = DeliveryBuffer(loop=producer.loop, beacon=producer.beacon)
        buffer.app = self
        producer.buffer = buffer  # before the producer starts: it starts its buffer as a dependency
        return producer

    @property
    def deliveries(self) -> DeliveryBuffer:
        buffer = self.producer.buffer
        assert isinstance(buffer, DeliveryBuffer)
        return buffer

    def _new_consumer(self) -> ConsumerT:
        return SeekingConsumer(self.transport, callback=self.topics.on_message, loop=self.loop,
                               on_partitions_revoked=self._on_partitions_revoked,
                               on_partitions_assigned=self._on_partitions_assigned, beacon=self.beacon)

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return KeepQueuesOnResume(loop=self.loop)


class KeepQueuesOnResume(FlowControlEvent):
    def resume(self) -> None:
        self._suspend.clear()
        self._resume.set()


class SeekingConsumerThread(AIOKafkaConsumerThread):
    async def seek_to_committed(self) -> Mapping[TP, int]:
        return await self.call_thread(self._seek_to_committed)

    async def _seek_to_committed(self) -> Mapping[TP, int]:
        consumer = self._ensure_consumer()
        committed: Mapping[TP, int] = await consumer.seek_to_committed()
        changelogs = self.app.tables.changelog_topics  # never committed: Faust's recovery positions them
        for tp, offset in committed.items():
            if tp.topic in changelogs:
                continue
            if offset is None or offset < 0:
                await consumer.seek_to_beginning(tp)
            elif offset == 0:
                consumer.seek(tp, 0)
        return committed


class SeekingConsumer(Consumer):
    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return SeekingConsumerThread(self, loop=self.loop, beacon=self.beacon)
