"""The Faust app class the agents run on: Faust's own, with four holes in its at-least-once guarantee closed.

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
4. A partition's commit does not crawl. After a rebalance Faust can record a "gap" (a delivered offset past
   its read offset) and counts the gap's offsets as acked by adding them to its acked list, without its index
   of acked offsets; when those records are acked for real they are listed twice, and the commit then advances
   about one offset per commit (the failover test caught it: docs/DESIGN.md, "Known limits"). The consumer
   removes the repeats before Faust computes the offset to commit.
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

    def _new_offset(self, tp: TP) -> int | None:
        # Faust fills a gap by adding its offsets to the acked list but not to the acked index, so those records,
        # when acked for real, are listed twice; its search for the first run of consecutive offsets then stops
        # at the first repeat, and each commit moves about one offset (4. above).
        acked = self._acked[tp]
        if len(acked) != len(set(acked)):
            acked[:] = sorted(set(acked))
        return super()._new_offset(tp)
