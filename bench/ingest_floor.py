"""The in-process cost of one webhook's work, without HTTP: what the ingest server's CPU per webhook is compared
with in `python -m bench.ingest`.

`plan` (`ingest.publish.records_for`) is normalization, the event id and the Avro encoding of the two records
(fastavro); `produce` is
librdkafka's `produce()` of those two writes plus serving their delivery reports, against the bench's broker.
Process CPU time (all threads, as the server's is measured), over the bundled sample in a tight loop, so caches
are warm: a floor, not what a loaded server pays.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from confluent_kafka import Producer

from bench.ingest_load import SAMPLE
from broker.config import producer_config
from ingest.publish import Webhook, Write, records_for
from schemas.codec import SingleObjectCodec

HEADERS = {"host": "127.0.0.1", "content-type": "application/json", "content-length": "512"}


@dataclass(frozen=True)
class Floor:
    parse_us: float
    plan_us: float
    produce_us: float

    @property
    def total_us(self) -> float:
        return self.parse_us + self.plan_us + self.produce_us


def _per_item(seconds: float, items: int) -> float:
    return seconds / items * 1e6


def measure_floor(bootstrap: str, rounds: int = 20) -> Floor:
    items = [orjson.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    bodies = [(item["kind"], orjson.dumps(item["body"])) for item in items]
    codec = SingleObjectCodec()
    now = datetime.now(UTC)
    count = rounds * len(bodies)

    started = time.process_time()
    for _ in range(rounds):
        for _, body in bodies:
            orjson.loads(body)
    parse = _per_item(time.process_time() - started, count)

    parsed = [(kind, body, orjson.loads(body)) for kind, body in bodies]
    started = time.process_time()
    writes: list[list[Write]] = []
    for _ in range(rounds):
        writes = [records_for(Webhook("bench", kind, body, now, HEADERS, "127.0.0.1"), value, codec).writes
                  for kind, body, value in parsed]
    planned = _per_item(time.process_time() - started, count)

    producer = Producer(producer_config(bootstrap, 30_000))
    acknowledged = 0

    def delivered(err: object, msg: object) -> None:
        nonlocal acknowledged
        acknowledged += err is None

    started = time.process_time()
    for _ in range(rounds):
        for webhook in writes:
            for topic, key, value, headers in webhook:
                producer.produce(topic, value=value, key=key, headers=list(headers or ()), on_delivery=delivered)
            producer.poll(0)
    producer.flush(30)
    produced = _per_item(time.process_time() - started, count)
    if acknowledged != sum(len(w) for w in writes) * rounds:
        raise RuntimeError(f"only {acknowledged} writes acknowledged")
    return Floor(parse, planned, produced)
