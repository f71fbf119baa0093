"""Fill a migrated ClickHouse database with the bundled sample, without Kafka (test setup for dashboards).

Every line takes the path the services give it, minus the broker: ingest's ``records_for`` (raw archive record plus
the normalized record or a dead letter, Avro-encoded), the streams agents' own batch code (one event per
batch), and the sink's ``Writer``. Kafka is an in-memory list of encoded messages per topic (one
partition), so every record crosses the same Avro contract it would cross on the broker.

Deliberate differences from a live run, all about time: line ``i`` is received at ``START + i * STEP``
(deterministic, roughly the provider's hour), the processing clock of derived records is the ``received_at``
of the event being processed, and instead of periodic ticks one final tick long after the last line emits
every call still waiting for its end webhook as provisional. Metric windows are never expired: the sample
spans an hour, far less than the streams' retention.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from ingest.publish import Webhook, records_for
from ingest.replay import SAMPLE, read_captured
from schemas import topics
from schemas.codec import SingleObjectCodec
from sinks.schema.tables import DEAD_LETTERS, catalog
from sinks.write.batcher import Entry, InsertBatch
from sinks.write.writer import Writer
from streams.batch.entities import Entities
from streams.batch.events import Batch, Event, Tick
from streams.batch.staging import Staged, dict_writer
from streams.batch.tenants import Tenants
from streams.batch.tenants import messages as tenant_messages
from streams.domain.billing.rating import DEFAULT_PLAN

TENANT = "demo"
START = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # 09:00 in São Paulo: the sample's provider hour starts
STEP = timedelta(seconds=7)  # 520 lines over about an hour, like the provider timestamps in the bodies
INACTIVITY = timedelta(seconds=120)  # STREAMS_INACTIVITY_TIMEOUT_S's default
GRACE = timedelta(hours=48)  # STREAMS_METRIC_GRACE_S's default
FINAL_TICK = timedelta(days=1)  # far beyond INACTIVITY: every call without an end webhook goes provisional
HEADERS = {"content-type": "application/json", "user-agent": "callpipe-sample-load"}




class _Pipeline:
    """The two agents' batch code (streams/batch/entities.py and tenants.py) over dicts, one event per batch."""

    def __init__(self) -> None:
        self.codec = SingleObjectCodec()
        self.log: dict[str, list[bytes]] = defaultdict(list)
        stores: dict[str, dict[str, bytes]] = {}

        def staged(name: str, **options: Any) -> Staged:
            store = stores.setdefault(name, {})
            return Staged(store, dict_writer(store), **options)

        self.entities = Entities.over(staged, self.codec.decode, DEFAULT_PLAN, INACTIVITY, GRACE, GRACE)
        self.tenants = Tenants.over(staged, self.codec.decode, GRACE, GRACE)

    def ingest(self, kind: str, body: Any, payload: bytes, received_at: datetime) -> None:
        outcome = records_for(Webhook(TENANT, kind, payload, received_at, HEADERS), body, self.codec)
        for topic, _key, value, _headers in outcome.writes:
            self.log[topic].append(value)
            if topic == topics.BALANCE_ALERTS.name:
                self.run(self.tenants, self.tenants.process([Event(topic, 0, 0, value)], received_at))
            elif topics.BY_NAME[topic] in topics.INPUT_TOPICS:
                self.run_entities([Event(topic, 0, 0, value)], received_at)

    def run_entities(self, items: list[Event | Tick], now: datetime) -> None:
        batch = self.run(self.entities, self.entities.process(items, now))
        assert not batch.late, batch.late
        feed = [Event(m.topic, 0, 0, m.value) for m in tenant_messages(batch, self.entities.shares.clocks, lambda _: 0)]
        if feed:
            self.run(self.tenants, self.tenants.process(feed, now))

    def run(self, agent: Entities | Tenants, batch: Batch) -> Batch:
        """What the app does after a batch: write the states, publish the records (a failure is a bug here)."""
        assert not batch.failures, batch.failures
        for table in agent.staged():
            table.flush()
        for output in batch.outputs.values():
            self.log[output.topic.name].append(self.codec.encode(output.topic.name, output.topic.schema,
                                                                  output.record))
        return batch

    def tick(self, now: datetime) -> None:
        self.run_entities([Tick(0, now)], now)


def load_sample(client: Client) -> dict[str, int]:
    """Load deploy/sample/webhooks.jsonl into the (migrated) database of ``client``; rows inserted per table.

    Sink-stage dead letters, if any, land in ``dead_letters`` like in the service and are counted there too.
    """
    pipeline = _Pipeline()
    captured = read_captured(SAMPLE)
    for number, item in enumerate(captured):
        pipeline.ingest(item.kind, item.body, item.payload, START + number * STEP)
    pipeline.tick(START + len(captured) * STEP + FINAL_TICK)

    writer = Writer(client)
    tables = catalog()
    inserted: dict[str, int] = defaultdict(int)
    for topic, values in pipeline.log.items():
        table = tables.for_topic(topic).name
        entries = tuple(Entry(0, offset, pipeline.codec.decode(topic, raw), raw)
                        for offset, raw in enumerate(values))
        result = writer.write(InsertBatch(table, topic, entries))
        inserted[table] += result.rows_inserted
        inserted[DEAD_LETTERS] += result.dead_letters
    return dict(inserted)
