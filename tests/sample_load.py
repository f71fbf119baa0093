"""Fill a migrated ClickHouse database with the bundled sample, without Kafka (test setup for dashboards).

Every line takes the path the services give it, minus the broker: ingest's ``plan`` (raw archive record plus
the normalized record or a dead letter, Avro-encoded), the streams domain modules chained as in
``streams/app.py``, and the sink's ``Writer``. Kafka is an in-memory list of encoded messages per topic (one
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

from ingest.publish import Webhook, plan
from ingest.replay import SAMPLE, read_captured
from schemas import topics
from schemas.codec import SingleObjectCodec
from schemas.topics import Topic
from sinks.batcher import Batch, Entry
from sinks.tables import DEAD_LETTERS, catalog
from sinks.writer import Writer
from streams import balance as balance_state
from streams import correlate
from streams.folds import FEEDS, SPEND, folds, state_of
from streams.metrics import ENTITY_CALL, MetricsState
from streams.rating import DEFAULT_PLAN, rate_call
from streams.records import KIND_BALANCE, Record

TENANT = "demo"
START = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # 09:00 in São Paulo: the sample's provider hour starts
STEP = timedelta(seconds=7)  # 520 lines over about an hour, like the provider timestamps in the bodies
INACTIVITY = timedelta(seconds=120)  # STREAMS_INACTIVITY_TIMEOUT_S's default
FINAL_TICK = timedelta(days=1)  # far beyond INACTIVITY: every call without an end webhook goes provisional
HEADERS = {"content-type": "application/json", "user-agent": "callpipe-sample-load"}


FOLDS = folds(DEFAULT_PLAN)


class _Pipeline:
    def __init__(self) -> None:
        self.codec = SingleObjectCodec()
        self.log: dict[str, list[bytes]] = defaultdict(list)
        self.calls: dict[int, correlate.CallState] = {}
        self.entities: dict[tuple[str, Any], Any] = {}
        self.metrics: dict[str, MetricsState] = defaultdict(MetricsState)
        self.balances: dict[str, balance_state.BalanceState] = {}

    def publish(self, topic: Topic, record: Record) -> None:
        self.log[topic.name].append(self.codec.encode(topic.name, topic.schema, record))

    def ingest(self, kind: str, body: Any, payload: bytes, received_at: datetime) -> None:
        outcome = plan(Webhook(TENANT, kind, payload, received_at, HEADERS), body, self.codec)
        for topic, _key, value, _headers in outcome.writes:
            self.log[topic].append(value)
            if topics.BY_NAME[topic] in topics.INPUT_TOPICS:
                # Decoded from the bytes as the agents see it; a failure here is a bug, so no dead letter.
                self.process(self.codec.decode(topic, value))

    def process(self, record: Record) -> None:
        now = record["received_at"]
        tenant = record["tenant"]
        if record["kind"] == KIND_BALANCE:
            self.balances[tenant] = balance_state.apply_alert(self.balances.get(tenant), record)
            self.publish(topics.OUT_BALANCE, balance_state.to_record(self.balances[tenant], now))
        elif record["kind"] in correlate.CALL_KINDS:
            before = self.calls.get(record["call_id"])
            state = correlate.apply(before, record)
            if state is not before:
                self.calls[record["call_id"]] = state
                self.emit_call(record["call_id"], now)
        else:
            fold = FOLDS[record["kind"]]
            key = (fold.table, record[fold.key])
            result = fold.apply(self.entities.get(key), record)
            self.entities[key] = state_of(result)
            output = fold.to_record(result)
            self.publish(fold.out, output)
            entity = FEEDS.get(fold.out.name)
            if entity is not None:
                self.feed_tenant(entity, output, now)

    def emit_call(self, call_id: int, now: datetime) -> None:
        self.calls[call_id], record = correlate.emit(self.calls[call_id], now, INACTIVITY)
        if record is not None:
            rated = rate_call(record, DEFAULT_PLAN)
            self.publish(topics.OUT_CALLS, rated)
            self.feed_tenant(ENTITY_CALL, rated, now)

    def feed_tenant(self, entity: str, record: Record, now: datetime) -> None:
        """The ``tenants`` agent: windowed metrics, then the spend since the last balance alert."""
        tenant = record["tenant"]
        metrics = self.metrics[tenant]
        changed = metrics.upsert(record, entity, now)
        for window in metrics.records(changed & metrics.windows.keys()):
            self.publish(topics.OUT_METRICS, window)
        self.balances[tenant] = SPEND[entity](self.balances.get(tenant), record)
        self.publish(topics.OUT_BALANCE, balance_state.to_record(self.balances[tenant], now))

    def tick(self, now: datetime) -> None:
        for call_id in sorted(self.calls):
            self.emit_call(call_id, now)


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
        result = writer.write(Batch(table, topic, entries))
        inserted[table] += result.rows_inserted
        inserted[DEAD_LETTERS] += result.dead_letters
    return dict(inserted)
