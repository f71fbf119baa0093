"""The Faust app class the agents run on: Faust's own, with two holes in its at-least-once guarantee closed.

1. Commits wait for deliveries: the producer's buffer is a `DeliveryBuffer` (streams/delivery.py).
2. Nothing fetched around a rebalance is dropped. When recovery ends, Faust resumes the stream partitions and
   seeks them to their committed offsets, and only then resumes flow control, whose `resume()` empties the
   stream queues. Whatever the fetcher read in between is dropped without being acked, while the fetch position
   is already past it (aiokafka's `seek_to_committed` does not even seek a partition committed at offset 0).
   The failover test showed the result: partitions taken over from the killed worker and never consumed
   (committed 0, position at the end), and a tenant-feed partition whose commit stalled at the first dropped
   event. Faust already empties the queues itself when a rebalance starts (`flow_control.clear()` on revoke
   and assign) and skips events of an older generation, so the emptying on resume only ever drops fresh
   events: the app's flow control keeps the queues on resume.
"""

from __future__ import annotations

import faust
from faust.types.transports import ProducerT
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

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return KeepQueuesOnResume(loop=self.loop)


class KeepQueuesOnResume(FlowControlEvent):
    def resume(self) -> None:
        self._suspend.clear()
        self._resume.set()
