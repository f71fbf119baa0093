"""`python -m ingest.replay`: put webhooks through ingest's normalization (`ingest.publish.plan`) again.

    python -m ingest.replay --tenant acme [FILE]             captured webhooks -> raw archive + normalized topics
    python -m ingest.replay --from-raw [--since T] [--tenant acme]   the raw archive -> normalized topics
    python -m ingest.replay --post URL --tenant acme --secret S [FILE]   each webhook over HTTP to a running ingest

FILE is JSON Lines, `{"kind": ..., "body": {...}, "received_at": "<ISO 8601>"?}` per line; default: the bundled
sample. Event ids depend only on tenant, kind and body, so a replay writes the ids of the first run again and
downstream deduplication drops the copies. `--from-raw` keeps each record's tenant, kind, body and received_at and
does not archive again (the records are in the archive already). Kafka settings come from the environment like
ingest's (KAFKA_BOOTSTRAP_SERVERS, SCHEMA_REGISTRY_URL, INGEST_KAFKA_TIMEOUT_S).

Exit status: 0 done, 1 failed (unreadable input, Kafka, webhooks not accepted), 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import batched
from pathlib import Path
from typing import Any

import httpx
import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition

from broker.config import consumer_config
from broker.producer import AsyncProducer, DeliveryError
from ingest.auth import SECRET_HEADER
from ingest.publish import Webhook, Write, plan
from ingest.settings import from_env
from schemas import topics
from schemas.codec import Codec, CodecError, codec_from_settings

SAMPLE = Path(__file__).resolve().parents[1] / "deploy" / "sample" / "webhooks.jsonl"
BATCH = 500  # webhooks per round of Kafka acknowledgements: bounded memory, librdkafka still batches well
REPLAY_HEADERS = {"content-type": "application/json", "user-agent": "callpipe-replay"}
MAX_ATTEMPTS = 6  # per webhook over HTTP, for 503 answers and connection failures
MAX_RETRY_AFTER_S = 30.0


class ReplayError(RuntimeError):
    """An expected failure, reported in one line."""


@dataclass(frozen=True)
class Captured:
    kind: str
    body: Any
    received_at: datetime | None

    @property
    def payload(self) -> bytes:
        return orjson.dumps(self.body)


def read_captured(path: Path) -> list[Captured]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ReplayError(f"cannot read {path}: {exc}") from None
    captured = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            captured.append(_captured(line, f"{path}:{number}"))
    return captured


def _captured(line: str, where: str) -> Captured:
    try:
        item = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ReplayError(f"{where}: not JSON: {exc}") from None
    if not isinstance(item, dict) or "kind" not in item or "body" not in item:
        raise ReplayError(f'{where}: expected an object with "kind" and "body"')
    if item["kind"] not in topics.KIND_TOPICS:
        raise ReplayError(f"{where}: unknown kind {item['kind']!r}")
    received = item.get("received_at")
    if received is None:
        return Captured(item["kind"], item["body"], None)
    try:
        moment = datetime.fromisoformat(received)
    except (TypeError, ValueError):
        raise ReplayError(f"{where}: received_at {received!r} is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        raise ReplayError(f"{where}: received_at {received!r} has no UTC offset")
    return Captured(item["kind"], item["body"], moment)


@dataclass
class Tally:
    normalized: int = 0
    dead_lettered: int = 0
    skipped: int = 0

    def count(self, error: str | None) -> None:
        if error is None:
            self.normalized += 1
        else:
            self.dead_lettered += 1


async def replay_captured(items: Iterable[Captured], tenant: str, producer: AsyncProducer, codec: Codec,
                          timeout: float) -> Tally:
    tally = Tally()
    for chunk in batched(items, BATCH):
        writes: list[Write] = []
        for item in chunk:
            webhook = Webhook(tenant, item.kind, item.payload, item.received_at or datetime.now(UTC), REPLAY_HEADERS)
            outcome = plan(webhook, item.body, codec)
            tally.count(outcome.error)
            writes += outcome.writes
        await producer.send_all(writes, timeout)
    return tally


async def replay_raw(consumer: Consumer, codec: Codec, tenant: str | None, producer: AsyncProducer,
                     timeout: float) -> Tally:
    tally = Tally()
    async for chunk in _raw_batches(consumer):
        writes: list[Write] = []
        for msg in chunk:
            webhook = _archived_webhook(msg, codec, tenant)
            if webhook is None:
                tally.skipped += 1
                continue
            outcome = plan(webhook, orjson.loads(webhook.body), codec)
            tally.count(outcome.error)
            writes += [w for w in outcome.writes if w[0] != topics.RAW.name]
        await producer.send_all(writes, timeout)
    return tally


def _archived_webhook(msg: Message, codec: Codec, tenant: str | None) -> Webhook | None:
    """The webhook an archive record holds, or None for records a replay cannot change: another tenant's (checked
    on the Kafka header, before decoding), and bodies that were not JSON (they can only be dead-lettered again)."""
    headers = dict(msg.headers() or [])
    if tenant is not None and headers.get("tenant") != tenant.encode():
        return None
    value = msg.value()
    if value is None:
        return None
    try:
        record = codec.decode(topics.RAW.name, value)
    except CodecError as exc:
        raise ReplayError(f"{topics.RAW.name}[{msg.partition()}]@{msg.offset()}: {exc}") from None
    if record["event_id"] is None or record["kind"] not in topics.KIND_TOPICS:
        return None
    return Webhook(record["tenant"], record["kind"], record["body"], record["received_at"], record["headers"],
                   record["remote_addr"])


def open_raw(bootstrap: str, since: datetime | None) -> Consumer:
    """A consumer assigned to every raw-archive partition at `since` (or the beginning), which stops at the end
    the archive had when the replay started: the replay must not chase records written meanwhile."""
    consumer = Consumer(consumer_config(bootstrap, f"callpipe-replay-{uuid.uuid4().hex}"))
    try:
        meta = consumer.list_topics(topics.RAW.name, timeout=10)
        partitions = meta.topics[topics.RAW.name].partitions
        if meta.topics[topics.RAW.name].error is not None or not partitions:
            raise ReplayError(f"topic {topics.RAW.name} does not exist on {bootstrap}")
        wanted = [TopicPartition(topics.RAW.name, p, OFFSET_BEGINNING) for p in sorted(partitions)]
        if since is not None:
            millis = int(since.timestamp() * 1000)
            wanted = consumer.offsets_for_times([TopicPartition(topics.RAW.name, tp.partition, millis)
                                                 for tp in wanted], timeout=10)
        assigned = []
        for tp in wanted:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            start = low if tp.offset < 0 and since is None else tp.offset
            if 0 <= start < high:  # offsets_for_times answers -1 when nothing is that recent
                assigned.append(TopicPartition(topics.RAW.name, tp.partition, start, leader_epoch=None))
                _END[(id(consumer), tp.partition)] = high
        consumer.assign(assigned)
    except KafkaException as exc:
        consumer.close()
        raise ReplayError(f"Kafka at {bootstrap}: {exc.args[0].str()}") from None
    except ReplayError:
        consumer.close()
        raise
    return consumer
