"""The Faust app: thin agents around the batch layer (streams/batch/entities.py and streams/batch/tenants.py hold
what each agent does with a batch; streams/domain/ the logic).

Two agents, each consuming one group of co-partitioned topics (same partition count, same murmur2 keys), in
batches (`STREAMS_BATCH_MAX_EVENTS` events or `STREAMS_BATCH_WINDOW_S`, whichever comes first):

- `entities` reads every normalized topic keyed by an entity id (call, SMS, conference, voicemail, validation)
  plus an internal tick topic; it folds each event into the entity's state (a Faust table per entity kind, JSON
  values) and publishes the derived records. Ticks (sent by the leader every STREAMS_TICK_INTERVAL_S to every
  partition) let a partition emit provisional records for calls that went quiet.
  The agent also keeps each rated entity's metric register and publishes its partition's share of every metric
  window the batch changed (streams/batch/window_shares.py) to an internal topic, bundled by the partition of the
  window's key (streams/batch/tenants.py, `messages`).
- `tenants` reads the balance alerts, an internal feed of rated calls and SMS keyed by tenant (balance spend), and
  the window shares, which it adds up into the metric windows.

Per batch: the states it changed are written once each (table and changelog, to the partition of the events
that changed them), then its records are sent; Faust acks the batch's events after that, and commits their
offsets only once every write was delivered (streams/faustapp/patches.py). Commit order and crash behaviour:
docs/DESIGN.md, "Streams".
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import faust
from faust.types import EventT, TableT, TopicT

from broker.config import partition_for
from runtime import malloc, retry
from schemas import topics
from schemas.codec import RegistryUnavailable, codec_from_settings
from streams.batch import state_codec
from streams.batch.entities import Entities, table_names
from streams.batch.events import Batch, Event, Late, Output, Tick
from streams.batch.lifetimes import LateEvent
from streams.batch.staging import Staged
from streams.batch.tenants import TABLES as TENANT_TABLES
from streams.batch.tenants import Tenants
from streams.batch.tenants import messages as tenant_messages
from streams.faustapp.patches import App, Fetching, commit_lag, table_entries, write_to_table
from streams.faustapp.telemetry import StreamsTelemetry
from streams.settings import Settings

log = logging.getLogger("callpipe.streams")

TABLES = (*table_names(), *TENANT_TABLES)
ENTITY_TOPICS = tuple(t for t in topics.INPUT_TOPICS if t is not topics.BALANCE_ALERTS)


def faust_app(settings: Settings) -> App:
    """The Faust app with callpipe's settings and no agent (also the baseline of bench/streams.py)."""
    return App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store=settings.store,
        rocksdb_memory=settings.rocksdb_memory_mb * 1024**2,
        fetching=Fetching(settings.fetch_min_bytes, settings.fetch_max_wait_ms),
        producer_linger=settings.producer_linger_ms / 1000,
        datadir=str(settings.data_dir),
        topic_partitions=topics.PARTITIONS,
        topic_replication_factor=1,
        topic_allow_declare=False,
        table_standby_replicas=0,
        producer_acks=-1,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
    )


def raw_topic(app: faust.App, *names: str) -> TopicT:
    """Bytes in, bytes out: the agents decode and encode themselves (Avro for contracts, JSON for state)."""
    return app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                     partitions=topics.PARTITIONS)


def entity_source(app: faust.App) -> TopicT:
    return raw_topic(app, *(t.name for t in ENTITY_TOPICS), topics.TICKS)


def create_app(settings: Settings) -> faust.App:
    app = faust_app(settings)
    avro = codec_from_settings(settings.schema_registry_url)
    plan = settings.rating_plan

    tables: dict[str, TableT[str, bytes]] = {}

    def staged(name: str, **options: Any) -> Staged:
        # str keys (JSON on the changelog), raw bytes values: the batch layer's state JSON (batch/state_codec.py).
        # use_partitioner: reads of any partition's key (streams/faustapp/patches.py, 6.)
        table = tables[name] = app.Table(name, default=None, partitions=topics.PARTITIONS, key_type=str,
                                         value_type=bytes, use_partitioner=True)

        def write(partition: int, key: str, value: bytes | None) -> None:
            write_to_table(table, partition, key, value)

        return Staged(table, write, **options)

    entity_agent = Entities.over(staged, avro.decode, plan, settings.inactivity_timeout, settings.metric_grace,
                                 settings.retention)
    tenant_agent = Tenants.over(staged, avro.decode, settings.metric_grace, settings.retention)

    tenant_source = raw_topic(app, topics.BALANCE_ALERTS.name, topics.TENANT_FEED, topics.WINDOW_SHARES)
    ticks = raw_topic(app, topics.TICKS)
    to_tenants = {name: raw_topic(app, name) for name in (topics.TENANT_FEED, topics.WINDOW_SHARES)}

    def held_partitions() -> set[int]:
        return {tp.partition for tp in app.assignor.assigned_actives()}

    async def recovered() -> None:
        """Window shares, clocks and eviction schedules are derived from the tables: derived again after every
        recovery (docs/DESIGN.md, "Metric windows", "State lifecycle")."""
        telemetry.rebalances.inc()
        held = held_partitions()
        entity_agent.recover(held)
        tenant_agent.recover(held)
        await asyncio.to_thread(malloc.trim)  # a recovery's burst of changelog reads leaves the most free pages

    tables["metric_entities"].on_recover(recovered)
    out_topics = {t.name: raw_topic(app, t.name) for t in topics.STREAMS_WRITES}

    telemetry = StreamsTelemetry({name: partial(table_entries, table) for name, table in tables.items()},
                                 partial(commit_lag, app), app.rocks_memory.usage)

    async def schemas_ready(events: Sequence[EventT]) -> None:
        """Every schema a batch reads or may write is known before it folds anything: while the registry is down
        the batch waits (nothing acked, nothing committed) instead of dead-lettering events it could not decode
        or failing between its state writes and its sends (docs/DESIGN.md, "Schema registry")."""
        framed = [(e.message.topic, bytes(e.value)) for e in events if e.message.topic in topics.BY_NAME]
        try:
            async for attempt in retry.until_available(RegistryUnavailable, log, "schema registry",
                                                       give_up=lambda: app.rebalancing):
                with attempt:
                    for topic in topics.STREAMS_WRITES:
                        avro.register(topic.name, topic.schema)
                    for name, value in framed:
                        avro.resolve(name, value)
        except RegistryUnavailable:
            # Faust's revoke waits for this batch without a timeout (Consumer.wait_empty), and the group would
            # drop the worker with the batch still to be folded into partitions that moved. Exiting as a crash
            # does leaves the batch unacked: the partitions' next owner reads it again.
            log.critical("schema registry still down as a rebalance starts: the worker exits")
            os._exit(os.EX_TEMPFAIL)

    async def publish(output: Output) -> None:
        value = avro.encode(output.topic.name, output.topic.schema, output.record)
        app.deliveries.track(await out_topics[output.topic.name].send(key=output.key.encode(), value=value))
        telemetry.records_out.labels(output.topic.name).inc()

    async def dead_letter(event: EventT, reason: Exception) -> None:
        msg = event.message
        telemetry.dead_letters.inc()
        if isinstance(reason, LateEvent):
            telemetry.late.labels("event").inc()
        log.warning("dead-lettered stream event %s[%s]@%s: %s: %s", msg.topic, msg.partition, msg.offset,
                    type(reason).__name__, reason)
        record = {
            "kind": _header(event, "kind") or "unknown", "tenant": _header(event, "tenant") or "unknown",
            "received_at": datetime.now(UTC), "stage": "streams", "reason": str(reason)[:2000],
            "error_type": type(reason).__name__, "headers": {}, "body": bytes(event.value or b""),
            "source_topic": msg.topic, "source_partition": msg.partition, "source_offset": msg.offset,
        }
        await publish(Output(topics.DEADLETTER, f"{record['tenant']}/{record['kind']}", record))

    async def finish(tables: Iterable[Staged], batch: Batch, events: Sequence[EventT]) -> None:
        """States first, then records: a crash in between re-reads the events, which then find their states
        and publish the records again (docs/DESIGN.md, "Streams")."""
        for table in tables:
            table.flush()
        for message in tenant_messages(batch, entity_agent.shares.clocks, partition_for):
            app.deliveries.track(await to_tenants[message.topic].send(value=message.value,
                                                                      partition=message.partition))
        for late in batch.late:
            await late_record(late)
        telemetry.late.labels("share").inc(batch.late_shares)
        for name, evicted in batch.evicted.items():
            telemetry.evictions.labels(name).inc(evicted)
        for output in batch.outputs.values():
            await publish(output)
        if batch.failures:
            by_offset = {(e.message.topic, e.message.partition, e.message.offset): e for e in events}
            for failed, reason in batch.failures:
                await dead_letter(by_offset[(failed.topic, failed.partition, failed.offset)], reason)

    async def late_record(late: Late) -> None:
        telemetry.late.labels(late.entity).inc()
        log.warning("late record not counted in the metrics: %s version %s: %s", late.key,
                    late.record.get("version"), late.reason)
        record = {
            "kind": late.entity, "tenant": late.record["tenant"], "received_at": datetime.now(UTC),
            "stage": "streams", "reason": late.reason, "error_type": "LateRecord", "headers": {},
            "body": state_codec.encode(late.record), "source_topic": topics.WINDOW_SHARES, "source_partition": None,
            "source_offset": None,
        }
        await publish(Output(topics.DEADLETTER, f"{late.record['tenant']}/{late.entity}", record))

    def event(e: EventT) -> Event:
        return Event(e.message.topic, e.message.partition, e.message.offset, bytes(e.value))

    @app.agent(entity_source(app))
    async def entities(stream: Any) -> None:
        async for events in stream.take_events(settings.batch_max_events, settings.batch_window_s):
            items = [Tick(e.message.partition, datetime.fromisoformat(bytes(e.value).decode()))
                     if e.message.topic == topics.TICKS else event(e) for e in events]
            await schemas_ready(events)
            with telemetry.batch_seconds.labels("entities").time():
                batch = entity_agent.process(items, datetime.now(UTC), app.deliveries.delivered_through())
                await finish(entity_agent.staged(), batch, events)
                entity_agent.seal(app.deliveries.seal())
            telemetry.batch_events.labels("entities").observe(len(events))

    @app.agent(tenant_source)
    async def tenants(stream: Any) -> None:
        async for events in stream.take_events(settings.batch_max_events, settings.batch_window_s):
            await schemas_ready(events)
            with telemetry.batch_seconds.labels("tenants").time():
                batch = tenant_agent.process([event(e) for e in events], datetime.now(UTC),
                                             app.deliveries.delivered_through())
                await finish(tenant_agent.staged(), batch, events)
                tenant_agent.seal(app.deliveries.seal())
            telemetry.batch_events.labels("tenants").observe(len(events))

    @app.timer(interval=settings.tick_interval_s, on_leader=True)
    async def tick() -> None:
        now = datetime.now(UTC).isoformat().encode()
        for partition in range(topics.PARTITIONS):
            await ticks.send(value=now, partition=partition)

    if settings.malloc_trim_interval_s:
        @app.timer(interval=settings.malloc_trim_interval_s)
        async def trim() -> None:
            # ctypes lets go of the GIL: the loop goes on while the allocator walks its arenas (~0.1 s per 200 MB freed)
            await asyncio.to_thread(malloc.trim)

        del trim
    del entities, tenants, tick  # registered on the app by their decorators
    telemetry.serve(settings.metrics_port)
    return app


def _header(event: EventT, name: str) -> str | None:
    headers = event.message.headers or []
    found = headers.get(name) if isinstance(headers, Mapping) else dict(headers).get(name)
    return None if found is None else bytes(found).decode()
