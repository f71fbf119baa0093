"""The Faust app: thin agents around the domain modules (streams/correlate.py and friends hold the logic).

Two agents, each consuming one group of co-partitioned topics (same partition count, same murmur2 keys):

- `entities` reads every normalized topic keyed by an entity id (call, SMS, conference, voicemail, validation)
  plus an internal tick topic; it folds each event into the entity's state (a Faust table per entity kind, JSON
  values) and publishes the derived record. Ticks (sent by the leader every STREAMS_TICK_INTERVAL_S to every
  partition) let a partition emit provisional records for calls that went quiet, from inside a stream event,
  which is where Faust allows table writes.
- `tenants` reads the balance alerts and an internal feed of rated calls and SMS keyed by tenant, and maintains
  per-tenant windowed metrics and balance spend.

Commit order and crash behaviour: docs/DESIGN.md, "Streams".
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import faust
from faust.types import EventT, TopicT

from broker.admin import TopicSpec
from schemas import topics
from schemas.codec import codec_from_settings
from schemas.topics import Topic
from streams import balance as balance_state
from streams import codec as state_codec
from streams import correlate, metrics
from streams.delivery import App
from streams.folds import FEEDS, SPEND, folds, state_of
from streams.metrics import ENTITY_CALL
from streams.rating import rate_call
from streams.records import Record
from streams.settings import Settings

log = logging.getLogger("callpipe.streams")

PARTITIONS = 6
TICKS = "callpipe-streams-ticks"
TENANT_FEED = "callpipe-streams-tenant-feed"
TABLES = ("calls", "open_calls", "single_leg", "extensions", "sms", "conferences", "voicemails",
          "validations", "metric_entities", "metric_windows", "tenant_balance")
ENTITY_TOPICS = tuple(t for t in topics.INPUT_TOPICS if t is not topics.BALANCE_ALERTS)
# Decoded call states kept beside the `calls` table: the calls in progress, whose next events come soon.
CALL_CACHE_SIZE = 2048


class DecodedTable:
    """A table of JSON values (streams/codec.py) with the last decoded value of the most recent keys kept.

    Decoding the state was a third of the per-event cost. A cached value is used only while the table still
    holds the very bytes object it was decoded from (the memory store keeps what was put; a changelog restore
    or any other writer puts new objects), so it can never be stale. The values handed out are shared: only
    for tables whose domain functions never modify their input (correlate is pure).
    """

    def __init__(self, store: MutableMapping[str, Any], size: int,
                 decode: Callable[[bytes], Any] = state_codec.loads) -> None:
        self.store, self.size, self.decode = store, size, decode
        self._items: dict[str, tuple[bytes, Any]] = {}

    def get(self, key: str) -> Any:
        text = self.store.get(key)
        if text is None:
            return None
        item = self._items.pop(key, None)  # re-inserted below: the dict's order is the recency order
        value = item[1] if item is not None and item[0] is text else self.decode(text)
        self._remember(key, text, value)
        return value

    def put(self, key: str, value: Any) -> None:
        text = state_codec.encode(value)
        self.store[key] = text
        self._items.pop(key, None)
        self._remember(key, text, value)

    def _remember(self, key: str, text: bytes, value: Any) -> None:
        self._items[key] = (text, value)
        if len(self._items) > self.size:
            del self._items[next(iter(self._items))]


def sorted_keys(text: bytes) -> list[str]:
    """An `open_calls` value: the sorted list of call keys (written sorted; sorted again to be sure)."""
    return sorted(set(state_codec.loads(text)))


def with_membership(members: list[str], key: str, present: bool) -> list[str] | None:
    """The sorted list with `key` in it or not; None when it already is as asked (the common case: no write)."""
    i = bisect_left(members, key)
    if (i < len(members) and members[i] == key) == present:
        return None
    return [*members[:i], key, *members[i:]] if present else [*members[:i], *members[i + 1:]]


def internal_topics(app_id: str = "callpipe-streams") -> list[TopicSpec]:
    """Faust's own topics, created up front like every other topic (see broker/admin.py for why)."""
    compacted = {"cleanup.policy": "compact"}
    return [
        TopicSpec(TICKS, PARTITIONS, {"retention.ms": str(3_600_000)}),
        TopicSpec(TENANT_FEED, PARTITIONS),
        TopicSpec(f"{app_id}-__assignor-__leader", 1),
        *(TopicSpec(f"{app_id}-{name}-changelog", PARTITIONS, compacted) for name in TABLES),
    ]


@dataclass(frozen=True)
class Output:
    topic: Topic
    key: str
    record: Record


def create_app(settings: Settings) -> faust.App:
    app = App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        datadir=str(settings.data_dir),
        topic_partitions=PARTITIONS,
        topic_replication_factor=1,
        topic_allow_declare=False,
        table_standby_replicas=0,
        producer_acks=-1,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
    )
    avro = codec_from_settings(settings.schema_registry_url)
    plan = settings.rating_plan

    def table(name: str) -> Any:
        # str keys (JSON on the changelog), raw bytes values: the domain modules' own JSON (streams/codec.py).
        return app.Table(name, default=None, partitions=PARTITIONS, key_type=str, value_type=bytes)

    calls = DecodedTable(table("calls"), CALL_CACHE_SIZE)
    # One value per partition, read on every call event: decoded once, then only when it changes.
    open_calls = DecodedTable(table("open_calls"), PARTITIONS, sorted_keys)
    entity_tables = {name: table(name) for name in
                     ("single_leg", "extensions", "sms", "conferences", "voicemails", "validations")}
    metric_entities, metric_windows = table("metric_entities"), table("metric_windows")
    tenant_balance = table("tenant_balance")

    def raw_topic(*names: str) -> TopicT:
        return app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                         partitions=PARTITIONS)

    entity_source = raw_topic(*(t.name for t in ENTITY_TOPICS), TICKS)
    tenant_source = raw_topic(topics.BALANCE_ALERTS.name, TENANT_FEED)
    ticks = raw_topic(TICKS)
    tenant_feed = raw_topic(TENANT_FEED)
    out_topics = {t.name: raw_topic(t.name) for t in (*topics.OUTPUT_TOPICS, topics.DEADLETTER)}

    async def publish(output: Output) -> None:
        value = avro.encode(output.topic.name, output.topic.schema, output.record)
        app.deliveries.track(await out_topics[output.topic.name].send(key=output.key.encode(), value=value))

    async def dead_letter(event: EventT, reason: Exception) -> None:
        msg = event.message
        # In the message text, not only in `extra`: Faust's worker installs its own plain-text log format.
        log.warning("dead-lettered stream event %s[%s]@%s: %s: %s", msg.topic, msg.partition, msg.offset,
                    type(reason).__name__, reason)
        record = {
            "kind": _header(event, "kind") or "unknown", "tenant": _header(event, "tenant") or "unknown",
            "received_at": datetime.now(UTC), "stage": "streams", "reason": str(reason)[:2000],
            "error_type": type(reason).__name__, "headers": {}, "body": bytes(event.value or b""),
            "source_topic": msg.topic, "source_partition": msg.partition, "source_offset": msg.offset,
        }
        await publish(Output(topics.DEADLETTER, f"{record['tenant']}/{record['kind']}", record))

    def load(store: Any, key: str) -> Any:
        text = store.get(key)
        return None if text is None else state_codec.loads(text)

    async def publish_call(record: Record) -> None:
        rated = rate_call(record, plan)
        await publish(Output(topics.OUT_CALLS, str(rated["call_id"]), rated))
        await feed_tenant(ENTITY_CALL, rated)

    async def feed_tenant(entity: str, record: Record) -> None:
        """Rated records, re-keyed by tenant for the per-tenant metrics and balance."""
        app.deliveries.track(await tenant_feed.send(
            key=record["tenant"].encode(), value=state_codec.encode({"entity": entity, "record": record})))

    def track_pending(partition: int, key: str, pending: bool) -> None:
        """`open_calls["p<n>"]`: the calls of partition n with events not yet published (what ticks look at)."""
        slot = f"p{partition}"
        members = with_membership(open_calls.get(slot) or [], key, pending)
        if members is not None:
            open_calls.put(slot, members)

    async def settle_call(partition: int, key: str, state: correlate.CallState, now: datetime) -> None:
        state, record = correlate.emit(state, now, settings.inactivity_timeout)
        calls.put(key, state)
        if record is not None:
            await publish_call(record)
        track_pending(partition, key, state["emitted_count"] != len(state["event_ids"]))

    async def on_call_event(event: EventT, record: Record) -> None:
        key = _state_key(record, record["call_id"])
        before = calls.get(key)
        state = correlate.apply(before, record)
        if state is before:
            # A duplicate, e.g. re-read after a crash. The state may have reached the changelog while the record
            # did not reach its topic (two writes, no transaction): publish it again; the sink keeps one.
            if before["emitted_count"] == len(before["event_ids"]):
                await publish_call(correlate.build_record(before))
            return
        await settle_call(event.message.partition, key, state, record["received_at"])

    async def on_tick(event: EventT) -> None:
        now = datetime.fromisoformat(bytes(event.value).decode())
        for key in open_calls.get(f"p{event.message.partition}") or []:
            state = calls.get(key)
            if state is not None:
                await settle_call(event.message.partition, key, state, now)

    entity_folds = folds(plan)

    async def on_entity_event(record: Record) -> None:
        fold = entity_folds[record["kind"]]
        store = entity_tables[fold.table]
        key = _state_key(record, record[fold.key])
        before = load(store, key)
        result = fold.apply(before, record)
        state = state_of(result)
        if state is not before:  # a duplicate leaves the state as it was; its record is published again below
            store[key] = state_codec.encode(state)
        output = Output(fold.out, str(record[fold.key]), fold.to_record(result))
        entity = FEEDS.get(output.topic.name)
        if entity is not None:
            await feed_tenant(entity, output.record)
        await publish(output)

    @app.agent(entity_source)
    async def entities(stream: Any) -> None:
        async for event in stream.events():
            try:
                if event.message.topic == TICKS:
                    await on_tick(event)
                    continue
                record = avro.decode(event.message.topic, bytes(event.value))
                if record["kind"] in correlate.CALL_KINDS:
                    await on_call_event(event, record)
                else:
                    await on_entity_event(record)
            except (ValueError, KeyError, TypeError) as exc:  # a bad event must not stall its partition
                await dead_letter(event, exc)

    async def update_metrics(record: Record, entity: str, now: datetime) -> None:
        """Metric state is kept per entity (its last contribution) and per window, so an update touches only
        the windows the record changes."""
        key = metrics.entity_key(record, entity)
        previous = metric_entities.get(key)
        replaced = metrics.replace(None if previous is None else metrics.load_entity(previous), record, entity)
        if replaced is None:  # a version already counted
            return
        entity_state, changes = replaced
        metric_entities[key] = metrics.dump_entity(entity_state).encode()
        for window, (old, new) in changes.items():
            window_key = metrics.dump_key(window)
            aggregate = metrics.update_window(load(metric_windows, window_key), old, new, now)
            metric_windows[window_key] = state_codec.encode(aggregate)
            await publish(Output(topics.OUT_METRICS, window_key, metrics.window_record(window, aggregate)))

    @app.agent(tenant_source)
    async def tenants(stream: Any) -> None:
        async for event in stream.events():
            try:
                now = datetime.now(UTC)
                if event.message.topic == topics.BALANCE_ALERTS.name:
                    alert = avro.decode(event.message.topic, bytes(event.value))
                    tenant = alert["tenant"]
                    bal = balance_state.apply_alert(load(tenant_balance, tenant), alert)
                else:
                    item = state_codec.loads(bytes(event.value))
                    record, entity = item["record"], item["entity"]
                    tenant = record["tenant"]
                    await update_metrics(record, entity, now)
                    bal = SPEND[entity](load(tenant_balance, tenant), record)
                tenant_balance[tenant] = state_codec.encode(bal)
                await publish(Output(topics.OUT_BALANCE, tenant, balance_state.to_record(bal, now)))
            except (ValueError, KeyError, TypeError) as exc:
                await dead_letter(event, exc)

    @app.timer(interval=settings.tick_interval_s, on_leader=True)
    async def tick() -> None:
        now = datetime.now(UTC).isoformat().encode()
        for partition in range(PARTITIONS):
            await ticks.send(value=now, partition=partition)

    del entities, tenants, tick  # registered on the app by their decorators
    return app


def _state_key(record: Record, entity_id: Any) -> str:
    """Provider ids are global, but tenants are isolated anyway: a replay of one tenant's webhooks under another
    tenant must not merge into the first tenant's entities."""
    return f"{record['tenant']}/{entity_id}"


def _header(event: EventT, name: str) -> str | None:
    headers = event.message.headers or []
    found = headers.get(name) if isinstance(headers, Mapping) else dict(headers).get(name)
    return None if found is None else bytes(found).decode()
