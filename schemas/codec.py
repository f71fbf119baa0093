"""Avro framing of records on Kafka: single-object encoding (no registry) or the Confluent wire format."""

from __future__ import annotations

import importlib
import importlib.util
from contextlib import suppress
from io import BytesIO
from typing import Any, Protocol

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro import schemaless_reader, schemaless_writer

from schemas import avro_schemas
from schemas.topics import BY_NAME

SINGLE_OBJECT_MARKER = b"\xc3\x01"
_HEADER_SIZE = len(SINGLE_OBJECT_MARKER) + 8
CONFLUENT_MAGIC = b"\x00"
_CONFLUENT_HEADER_SIZE = len(CONFLUENT_MAGIC) + 4


def _transport_errors() -> tuple[type[Exception], ...]:
    """The base errors of the HTTP library confluent-kafka's registry client uses: httpx2 when it is installed,
    else httpx (confluent_kafka.schema_registry.common._httpx_compat, 2.16)."""
    names = [name for name in ("httpx2", "httpx") if importlib.util.find_spec(name) is not None]
    return tuple(importlib.import_module(name).HTTPError for name in names)


_TRANSPORT_ERRORS: tuple[type[Exception], ...] = _transport_errors()
_REGISTRY_ERRORS: tuple[type[Exception], ...] = (SchemaRegistryError, *_TRANSPORT_ERRORS)


class CodecError(ValueError):
    """Bytes that are not a record this codec can read."""


class RegistryUnavailable(RuntimeError):
    """The schema registry did not answer or refused a registration: a dependency is down, not the record."""


class Codec(Protocol):
    """`register` and `resolve` do ahead of time what `encode` and `decode` would ask a registry for, so that a
    caller can wait for a registry that is down before it changes anything (docs/DESIGN.md, "Schema registry")."""

    def encode(self, topic: str, schema: str, record: dict[str, Any]) -> bytes: ...

    def decode(self, topic: str, data: bytes) -> dict[str, Any]: ...

    def register(self, topic: str, schema: str) -> None: ...

    def resolve(self, topic: str, data: bytes) -> None: ...


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
        return _read(topic, payload, writer, reader)

    def register(self, topic: str, schema: str) -> None:
        """Nothing to do: every schema is in the package."""

    def resolve(self, topic: str, data: bytes) -> None:
        """Nothing to do: every schema is in the package."""


def _read(topic: str, payload: BytesIO, writer: avro_schemas.SchemaVersion,
          reader: avro_schemas.SchemaVersion) -> dict[str, Any]:
    """The record ``payload`` holds, written with ``writer`` and read with ``reader`` (Avro schema resolution)."""
    resolved = None if reader.fingerprint == writer.fingerprint else reader.parsed
    record = schemaless_reader(payload, writer.parsed, resolved)
    if not isinstance(record, dict):
        raise CodecError(f"{topic}: expected a record, got {type(record).__name__}")
    return record


class RegistryCodec:
    """Confluent wire format (``00``, 4-byte big-endian schema id, Avro binary) via a schema registry.

    Subjects follow TopicNameStrategy (``<topic>-value``) and the current schema is registered on first use.
    Records are read with the current schema of the topic's value record when there is one.

    The registry client is confluent-kafka's, which caches ids and schemas; the framing and the Avro binary are
    done here with fastavro. confluent-kafka's serializers resolve the subject, look for data-contract rules and
    expand the schema again for every record: a third of the sink's decoding time, for rules and references
    callpipe's contracts do not have.
    """

    def __init__(self, url: str, client: SchemaRegistryClient | None = None) -> None:
        # new_client gives the in-memory mock for mock:// URLs, which the plain constructor does not.
        self._client = client if client is not None else SchemaRegistryClient.new_client({"url": url})
        self._writers: dict[tuple[str, str], tuple[bytes, avro_schemas.SchemaVersion]] = {}
        """(topic, schema name) -> (the wire header with the registered id, the schema)"""
        self._readers: dict[tuple[str, int], tuple[avro_schemas.SchemaVersion, avro_schemas.SchemaVersion]] = {}
        """(topic, schema id) -> (writer schema, reader schema)"""

    def encode(self, topic: str, schema: str, record: dict[str, Any]) -> bytes:
        header, writer = self._writer(topic, schema)
        out = BytesIO()
        out.write(header)
        schemaless_writer(out, writer.parsed, writer.tag_unions(record))
        return out.getvalue()

    def decode(self, topic: str, data: bytes) -> dict[str, Any]:
        if len(data) < _CONFLUENT_HEADER_SIZE or data[:1] != CONFLUENT_MAGIC:
            raise CodecError(f"{topic}: not in the Confluent wire format (magic byte 0 and a schema id)")
        schema_id = int.from_bytes(data[1:_CONFLUENT_HEADER_SIZE], "big")
        writer, reader = self._reader(topic, schema_id)
        payload = BytesIO(data)
        payload.seek(_CONFLUENT_HEADER_SIZE)
        try:
            return _read(topic, payload, writer, reader)
        except (EOFError, ValueError, TypeError, IndexError, KeyError) as exc:
            raise CodecError(f"{topic}: not a record of schema id {schema_id}: {exc!r}") from None

    def register(self, topic: str, schema: str) -> None:
        self._writer(topic, schema)

    def resolve(self, topic: str, data: bytes) -> None:
        """Bytes `decode` would refuse whatever the registry says are left for `decode` to refuse."""
        if len(data) >= _CONFLUENT_HEADER_SIZE and data[:1] == CONFLUENT_MAGIC:
            with suppress(CodecError):
                self._reader(topic, int.from_bytes(data[1:_CONFLUENT_HEADER_SIZE], "big"))

    def _writer(self, topic: str, schema: str) -> tuple[bytes, avro_schemas.SchemaVersion]:
        known = self._writers.get((topic, schema))
        if known is None:
            writer = avro_schemas.current(schema)
            try:
                schema_id = self._client.register_schema(f"{topic}-value", Schema(writer.text, "AVRO"))
            except _REGISTRY_ERRORS as exc:
                raise RegistryUnavailable(f"{topic}: schema registry: {exc}") from exc
            known = self._writers[(topic, schema)] = (CONFLUENT_MAGIC + schema_id.to_bytes(4, "big"), writer)
        return known

    def _reader(self, topic: str, schema_id: int) -> tuple[avro_schemas.SchemaVersion, avro_schemas.SchemaVersion]:
        known = self._readers.get((topic, schema_id))
        if known is None:
            known = self._readers[(topic, schema_id)] = self._schemas(topic, schema_id)
        return known

    def _schemas(self, topic: str, schema_id: int) -> tuple[avro_schemas.SchemaVersion, avro_schemas.SchemaVersion]:
        try:
            text = self._client.get_schema(schema_id).schema_str
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise CodecError(f"{topic}: the registry has no schema id {schema_id}") from None
            raise RegistryUnavailable(f"{topic}: schema registry: {exc}") from exc
        except _TRANSPORT_ERRORS as exc:
            raise RegistryUnavailable(f"{topic}: schema registry: {exc}") from exc
        try:
            writer = avro_schemas.from_text(text or "")
        except Exception as exc:  # fastavro's parse errors have no common base class below Exception
            raise CodecError(f"{topic}: schema id {schema_id} is not a record schema: {exc}") from None
        known = BY_NAME.get(topic)
        reader = writer
        if known is not None and known.schema in avro_schemas.names():
            reader = avro_schemas.current(known.schema)
        return writer, reader


def codec_from_settings(schema_registry_url: str | None) -> Codec:
    """The registry codec when a registry URL is configured, else single-object encoding."""
    if schema_registry_url:
        return RegistryCodec(schema_registry_url)
    return SingleObjectCodec()
