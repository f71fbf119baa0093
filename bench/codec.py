"""`python -m bench.codec`: CPU per record of the Confluent wire format, callpipe's codec against confluent-kafka's.

Every webhook of the bundled sample, normalized, is encoded and then decoded (with the current schema of its
topic as the reader, as the sink does) by `schemas.codec.RegistryCodec` and by confluent-kafka's
`AvroSerializer`/`AvroDeserializer`, both on one in-memory registry (`mock://`), so that no network time is
counted. The two take turns pass by pass (`--passes`, alternating which goes first) and the medians of the
passes are compared. Both produce the same bytes, which is checked. Prints the figures; `--record` appends
them to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from bench.host import machine
from schemas import avro_schemas
from schemas.codec import RegistryCodec
from schemas.normalize import normalize

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "deploy" / "sample" / "webhooks.jsonl"
RESULTS = ROOT / "bench" / "RESULTS.md"

Record = tuple[str, str, dict[str, Any]]
"""(topic, schema name, record)"""


def records() -> list[Record]:
    now = datetime.now(UTC)
    items = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    normalized = [normalize(item["kind"], "bench", item["body"], now) for item in items]
    return [(n.topic.name, n.topic.schema, n.record) for n in normalized]


class Confluent:
    """confluent-kafka's serializers, one per schema and topic, as schemas/codec.py used them until session 12."""

    def __init__(self, client: SchemaRegistryClient, readers: dict[str, str]) -> None:
        """``readers``: topic -> the schema name it is read with."""
        self.client, self.readers = client, readers
        self.serializers: dict[str, AvroSerializer] = {}
        self.deserializers: dict[str, AvroDeserializer] = {}

    def encode(self, topic: str, schema: str, record: dict[str, Any]) -> bytes:
        writer = avro_schemas.current(schema)
        serializer = self.serializers.get(schema)
        if serializer is None:
            serializer = self.serializers[schema] = AvroSerializer(
                self.client, writer.text, conf={"auto.register.schemas": True})
        data = serializer(writer.tag_unions(record), SerializationContext(topic, MessageField.VALUE))
        assert data is not None
        return data

    def decode(self, topic: str, data: bytes) -> dict[str, Any]:
        deserializer = self.deserializers.get(topic)
        if deserializer is None:
            deserializer = self.deserializers[topic] = AvroDeserializer(
                self.client, avro_schemas.raw_schema(self.readers[topic]))
        record = deserializer(data, SerializationContext(topic, MessageField.VALUE))
        assert isinstance(record, dict)
        return record


def one_pass(encode: Callable[[str, str, dict[str, Any]], bytes], decode: Callable[[str, bytes], dict[str, Any]],
             items: list[Record]) -> tuple[float, float, list[bytes]]:
    """CPU seconds of encoding every item, of decoding them, and the bytes."""
    began = time.process_time()
    encoded = [encode(topic, schema, record) for topic, schema, record in items]
    middle = time.process_time()
    for (topic, _, _), data in zip(items, encoded, strict=True):
        decode(topic, data)
    return middle - began, time.process_time() - middle, encoded


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=10, help="copies of the sample in one pass")
    parser.add_argument("--record", action="store_true", help="append the figures to bench/RESULTS.md")
    args = parser.parse_args()
    items = records() * args.repeat
    client = SchemaRegistryClient.new_client({"url": "mock://bench-codec"})
    ours = RegistryCodec("mock://ignored", client=client)
    theirs = Confluent(client, {topic: schema for topic, schema, _ in items})
    codecs = {"callpipe": (ours.encode, ours.decode), "confluent-kafka": (theirs.encode, theirs.decode)}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in codecs}
    for n in range(args.passes + 1):
        results = {}
        for name in sorted(codecs, reverse=bool(n % 2)):
            encode_s, decode_s, encoded = one_pass(*codecs[name], items)
            results[name] = encoded
            if n:  # the first pass registers the schemas and fills the caches
                times[name].append((encode_s, decode_s))
        assert results["callpipe"] == results["confluent-kafka"], "the two codecs wrote different bytes"
    rows = {name: (statistics.median(e for e, _ in t) / len(items) * 1e6,
                   statistics.median(d for _, d in t) / len(items) * 1e6) for name, t in times.items()}
    lines = [f"records per pass: {len(items)} (the sample's {len(items) // args.repeat} webhooks, normalized), "
             f"{args.passes} passes each, medians", "",
             "| codec | encode µs/record | decode µs/record |", "|---|---|---|"]
    lines += [f"| {name} | {e:.1f} | {d:.1f} |" for name, (e, d) in rows.items()]
    (e1, d1), (e2, d2) = rows["callpipe"], rows["confluent-kafka"]
    lines += ["", f"callpipe / confluent-kafka: encode {e1 / e2:.2f}, decode {d1 / d2:.2f}"]
    print("\n".join(lines))
    if args.record:
        with RESULTS.open("a") as out:
            out.write(f"\n## Codec: the Confluent wire format per record ({datetime.now(UTC):%Y-%m-%d})\n\n"
                      f"`python -m bench.codec` on {machine()}\n\n" + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
