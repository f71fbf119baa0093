"""Avro framing of records on Kafka: single-object encoding (no registry) or the Confluent wire format."""

from __future__ import annotations

from io import BytesIO
from typing import Any, Protocol

import httpx
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext
from fastavro import schemaless_reader, schemaless_writer

from schemas import avro_schemas
from schemas.topics import BY_NAME

SINGLE_OBJECT_MARKER = b"\xc3\x01"
_HEADER_SIZE = len(SINGLE_OBJECT_MARKER) + 8


class CodecError(ValueError):
    """Bytes that are not a record this codec can read."""


class RegistryUnavailable(RuntimeError):
    """The schema registry did not answer or refused a registration: a dependency is down, not the record."""


class Codec(Protocol):
    def encode(self, topic: str, schema: str, record: dict[str, Any]) -> bytes: ...

    def decode(self, topic: str, data: bytes) -> dict[str, Any]: ...


class SingleObjectCodec:
    """Avro single-object encoding: ``C3 01``, CRC-64-AVRO fingerprint (8 bytes LE), schemaless binary.

    The writer schema is found by fingerprint among the current and historical schemas in
    ``schemas/avro``; records are read with the current schema of the same name (Avro schema resolution).
    """

    def encode(self, topic: str, schema: str, record: dict[str, Any]) -> bytes:
        writer = avro_schemas.current(schema)
        out = BytesIO()
        out.write(SINGLE_OBJECT_MARKER)
        out.write(writer.fingerprint)
        schemaless_writer(out, writer.parsed, writer.tag_unions(record))
        return out.getvalue()

    def decode(self, topic: str, data: bytes) -> dict[str, Any]:
        if len(data) < _HEADER_SIZE or data[:2] != SINGLE_OBJECT_MARKER:
            raise CodecError(f"{topic}: not Avro single-object encoded")
        try:
            writer = avro_schemas.by_fingerprint(data[2:_HEADER_SIZE])
        except KeyError as exc:
            raise CodecError(f"{topic}: {exc.args[0]}") from None
        try:
            reader = avro_schemas.current(writer.name)
        except KeyError:
            reader = writer
        payload = BytesIO(data)
        payload.seek(_HEADER_SIZE)
        resolved = None if reader.fingerprint == writer.fingerprint else reader.parsed
        record = schemaless_reader(payload, writer.parsed, resolved)
        if not isinstance(record, dict):
            raise CodecError(f"{topic}: expected a record, got {type(record).__name__}")
        return record


class RegistryCodec:
    """Confluent wire format (``00``, 4-byte schema id, Avro binary) via a schema registry.

    Subjects follow TopicNameStrategy (``<topic>-value``) and the current schema is registered on first use.
    Records are read with the current schema of the topic's value record when there is one.
    """

    def __init__(self, url: str, client: SchemaRegistryClient | None = None) -> None:
        # new_client gives the in-memory mock for mock:// URLs, which the plain constructor does not.
        self._client = client if client is not None else SchemaRegistryClient.new_client({"url": url})
        self._serializers: dict[str, tuple[AvroSerializer, avro_schemas.SchemaVersion]] = {}
        self._deserializers: dict[str, AvroDeserializer] = {}

    def encode(self, topic: str, schema: str, record: dict[str, Any]) -> bytes:
        known = self._serializers.get(schema)
        if known is None:
            writer = avro_schemas.current(schema)
            known = self._serializers[schema] = (
                AvroSerializer(self._client, writer.text, conf={"auto.register.schemas": True}), writer)
        serializer, writer = known
        try:
            data = serializer(writer.tag_unions(record), SerializationContext(topic, MessageField.VALUE))
        except (SchemaRegistryError, httpx.HTTPError) as exc:
            raise RegistryUnavailable(f"{topic}: schema registry: {exc}") from exc
        if data is None:
            raise CodecError(f"{topic}: serializer returned no bytes")
        return data

    def decode(self, topic: str, data: bytes) -> dict[str, Any]:
        deserializer = self._deserializers.get(topic)
        if deserializer is None:
            deserializer = AvroDeserializer(self._client, self._reader_schema(topic))
            self._deserializers[topic] = deserializer
        record = deserializer(data, SerializationContext(topic, MessageField.VALUE))
        if not isinstance(record, dict):
            raise CodecError(f"{topic}: expected a record, got {type(record).__name__}")
        return record

    @staticmethod
    def _reader_schema(topic: str) -> str | None:
        known = BY_NAME.get(topic)
        if known is None or known.schema not in avro_schemas.names():
            return None
        return avro_schemas.raw_schema(known.schema)


def codec_from_settings(schema_registry_url: str | None) -> Codec:
    """The registry codec when a registry URL is configured, else single-object encoding."""
    if schema_registry_url:
        return RegistryCodec(schema_registry_url)
    return SingleObjectCodec()
