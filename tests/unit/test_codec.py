"""Both framings: Avro single-object encoding (schemas/avro + history) and the Confluent wire format."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from fastavro import parse_schema, schemaless_writer
from fastavro.schema import to_parsing_canonical_form
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import avro_schemas
from schemas.codec import CodecError, RegistryCodec, RegistryUnavailable, SingleObjectCodec, codec_from_settings
from schemas.fields import to_money
from schemas.normalize import normalize
from schemas.topics import BALANCE_ALERTS, VOICEMAILS

RECEIVED = datetime(2019, 9, 6, 20, 5, 19, 250000, tzinfo=UTC)
VOICEMAIL_BODY = {
    "id": 1411,
    "ramal_id": 87787,
    "ramal": "9561",
    "numero_telefone": "6136271444",
    "data_mensagem": "2019-09-06T17:05:18-03:00",
    "duracao_segundos": 0,
    "url_gravacao": "https://api.evoline.com.br/recvm/?id=1411",
}


def crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO exactly as the Avro specification writes it (independent of fastavro's implementation)."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def balance_record(balance: Decimal) -> dict[str, Any]:
    return normalize("aviso_saldo", "acme", {"saldo": str(balance)}, RECEIVED).record


def old_voicemail_schema() -> dict[str, Any]:
    """The Voicemail schema as it would have been before ``recording_url`` was added."""
    schema = json.loads(avro_schemas.raw_schema("Voicemail"))
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "recording_url"]
    return schema


def test_single_object_header_is_marker_and_little_endian_crc64_of_canonical_form() -> None:
    record = balance_record(Decimal("56.8616"))
    data = SingleObjectCodec().encode(BALANCE_ALERTS.name, "BalanceAlert", record)
    canonical = to_parsing_canonical_form(json.loads(avro_schemas.raw_schema("BalanceAlert")))
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == crc64_avro(canonical.encode()).to_bytes(8, "little")
    assert data[2:10] == avro_schemas.fingerprint("BalanceAlert")
    body = BytesIO()
    schemaless_writer(body, avro_schemas.schema("BalanceAlert"), record)
    assert data[10:] == body.getvalue()


def test_single_object_decodes_tz_aware_utc_timestamps_and_decimals() -> None:
    codec = SingleObjectCodec()
    record = normalize("voicemail", "acme", VOICEMAIL_BODY, RECEIVED).record
    decoded = codec.decode(VOICEMAILS.name, codec.encode(VOICEMAILS.name, "Voicemail", record))
    assert decoded == record
    assert decoded["message_at"] == datetime(2019, 9, 6, 20, 5, 18, tzinfo=UTC)
    assert decoded["message_at"].tzinfo is not None and decoded["message_at"].utcoffset().total_seconds() == 0
    money = codec.decode(
        BALANCE_ALERTS.name, codec.encode(BALANCE_ALERTS.name, "BalanceAlert", balance_record(Decimal("1.5")))
    )
    assert isinstance(money["balance"], Decimal) and money["balance"] == Decimal("1.5")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc3\x01",
        b"\x00\x00\x00\x00\x01\x02",
        b"\xc3\x02" + bytes(8) + b"\x00",
        b"\xc3\x01" + bytes(8) + b"\x00",
    ],
)
def test_single_object_rejects_foreign_bytes(data: bytes) -> None:
    with pytest.raises(CodecError):
        SingleObjectCodec().decode("t", data)


@pytest.fixture
def catalog_with_old_voicemail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A schema folder whose history holds an older Voicemail version."""
    avro_dir = tmp_path / "avro"
    (avro_dir / "history" / "Voicemail").mkdir(parents=True)
    shutil.copy(avro_schemas.AVRO_DIR / "Voicemail.avsc", avro_dir / "Voicemail.avsc")
    old = old_voicemail_schema()
    (avro_dir / "history" / "Voicemail" / "v1.avsc").write_text(json.dumps(old))
    monkeypatch.setattr(avro_schemas, "AVRO_DIR", avro_dir)
    monkeypatch.setattr(avro_schemas, "HISTORY_DIR", avro_dir / "history")
    avro_schemas._catalog.cache_clear()
    yield old
    avro_schemas._catalog.cache_clear()


def test_single_object_reads_old_writer_schema_from_history_with_the_current_one(
    catalog_with_old_voicemail: dict[str, Any],
) -> None:
    old = catalog_with_old_voicemail
    record = normalize("voicemail", "acme", VOICEMAIL_BODY, RECEIVED).record
    old_record = {k: v for k, v in record.items() if k != "recording_url"}
    old_fp = bytes.fromhex(f"{crc64_avro(to_parsing_canonical_form(old).encode()):016x}")[::-1]
    assert avro_schemas.by_fingerprint(old_fp).version == 1
    body = BytesIO()
    schemaless_writer(body, parse_schema(old, named_schemas={}), old_record)
    decoded = SingleObjectCodec().decode(VOICEMAILS.name, b"\xc3\x01" + old_fp + body.getvalue())
    assert decoded == {**old_record, "recording_url": None}


def test_registry_codec_uses_confluent_framing_and_topic_subjects() -> None:
    client = SchemaRegistryClient.new_client({"url": "mock://test-codec-framing"})
    codec = RegistryCodec("mock://ignored", client=client)
    record = balance_record(Decimal("56.8616"))
    data = codec.encode(BALANCE_ALERTS.name, "BalanceAlert", record)
    assert data[0] == 0
    registered = client.get_latest_version(f"{BALANCE_ALERTS.name}-value")
    assert int.from_bytes(data[1:5], "big") == registered.schema_id
    # the registry gets the full schema, logical types included, so any consumer decodes money as decimal
    assert '"logicalType":"decimal"' in (registered.schema.schema_str or "").replace(" ", "")
    decoded = codec.decode(BALANCE_ALERTS.name, data)
    assert decoded == record and isinstance(decoded["balance"], Decimal)
    assert decoded["received_at"] == RECEIVED


def test_registry_codec_reads_old_writer_schema_with_the_current_one() -> None:
    client = SchemaRegistryClient.new_client({"url": "mock://test-codec-old"})
    old = old_voicemail_schema()
    record = normalize("voicemail", "acme", VOICEMAIL_BODY, RECEIVED).record
    old_record = {k: v for k, v in record.items() if k != "recording_url"}
    old_serializer = AvroSerializer(client, json.dumps(old), conf={"auto.register.schemas": True})
    data = old_serializer(old_record, SerializationContext(VOICEMAILS.name, MessageField.VALUE))
    assert data is not None
    decoded = RegistryCodec("mock://ignored", client=client).decode(VOICEMAILS.name, data)
    assert decoded == {**old_record, "recording_url": None}


def test_registry_codec_writes_what_confluents_deserializer_reads() -> None:
    """Downstream consumers read the topics with the standard deserializer, whatever writes them here."""
    client = SchemaRegistryClient.new_client({"url": "mock://test-codec-interop"})
    record = balance_record(Decimal("56.8616"))
    data = RegistryCodec("mock://ignored", client=client).encode(BALANCE_ALERTS.name, "BalanceAlert", record)
    reader = AvroDeserializer(client, avro_schemas.raw_schema("BalanceAlert"))
    assert reader(data, SerializationContext(BALANCE_ALERTS.name, MessageField.VALUE)) == record


def test_registry_codec_names_what_is_wrong_with_bytes_it_cannot_read() -> None:
    client = SchemaRegistryClient.new_client({"url": "mock://test-codec-errors"})
    codec = RegistryCodec("mock://ignored", client=client)
    data = codec.encode(BALANCE_ALERTS.name, "BalanceAlert", balance_record(Decimal("1")))
    unknown_id = b"\x00" + (int.from_bytes(data[1:5], "big") + 1000).to_bytes(4, "big") + data[5:]
    for bad, says in ((b"\xc3\x01" + data[2:], "wire format"), (data[:3], "wire format"),
                      (data[:9], "not a record of schema id"), (unknown_id, "has no schema id")):
        with pytest.raises(CodecError, match=says):
            codec.decode(BALANCE_ALERTS.name, bad)


def unreachable_registry() -> SchemaRegistryClient:
    """A client of a port nothing listens on (connections are refused), which does not retry them itself."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    return SchemaRegistryClient({"url": url, "max.retries": 0})


def test_a_registry_that_does_not_answer_is_unavailable_not_a_bad_record() -> None:
    written = RegistryCodec("mock://test-codec-down").encode(BALANCE_ALERTS.name, "BalanceAlert",
                                                             balance_record(Decimal("3")))
    down = RegistryCodec("unused", client=unreachable_registry())
    for call in (lambda: down.decode(BALANCE_ALERTS.name, written), lambda: down.resolve(BALANCE_ALERTS.name, written),
                 lambda: down.register(BALANCE_ALERTS.name, "BalanceAlert"),
                 lambda: down.encode(BALANCE_ALERTS.name, "BalanceAlert", balance_record(Decimal("3")))):
        with pytest.raises(RegistryUnavailable):
            call()
    # what only decode can tell is bad is left to it, registry or not
    down.resolve(BALANCE_ALERTS.name, b"\xc3\x01" + written[2:])


def test_what_resolve_and_register_fetched_needs_no_registry_afterwards() -> None:
    client = SchemaRegistryClient.new_client({"url": "mock://test-codec-ahead"})
    record = balance_record(Decimal("4"))
    written = RegistryCodec("mock://ignored", client=client).encode(BALANCE_ALERTS.name, "BalanceAlert", record)
    codec = RegistryCodec("mock://ignored", client=client)
    codec.resolve(BALANCE_ALERTS.name, written)
    codec.register(VOICEMAILS.name, "Voicemail")
    unknown_id = b"\x00" + (int.from_bytes(written[1:5], "big") + 1000).to_bytes(4, "big") + written[5:]
    codec.resolve(BALANCE_ALERTS.name, unknown_id)  # a 404 is the record's fault: left for decode to refuse
    codec._client = unreachable_registry()
    assert codec.decode(BALANCE_ALERTS.name, written) == record
    assert codec.encode(VOICEMAILS.name, "Voicemail", normalize("voicemail", "acme", VOICEMAIL_BODY, RECEIVED).record)
    with pytest.raises(RegistryUnavailable):
        codec.decode(BALANCE_ALERTS.name, unknown_id)


def test_registry_codec_reads_topics_without_a_known_schema_with_the_writer_schema() -> None:
    codec = RegistryCodec("mock://test-codec-unknown-topic")
    record = balance_record(Decimal("2"))
    assert (
        codec.decode("someone.elses.topic", codec.encode("someone.elses.topic", "BalanceAlert", record))
        == record
    )


def test_codec_from_settings() -> None:
    assert isinstance(codec_from_settings(None), SingleObjectCodec)
    assert isinstance(codec_from_settings(""), SingleObjectCodec)
    assert isinstance(codec_from_settings("mock://settings"), RegistryCodec)


REGISTRY = RegistryCodec("mock://test-codec-money")
MONEY = st.decimals(
    min_value=Decimal("-999999999999.999999"),
    max_value=Decimal("999999999999.999999"),
    places=6,
    allow_nan=False,
    allow_infinity=False,
)


@settings(max_examples=200, deadline=None)
@given(MONEY)
def test_money_round_trips_exactly_through_both_codecs(amount: Decimal) -> None:
    record = balance_record(amount)
    assert record["balance"] == amount
    for codec in (SingleObjectCodec(), REGISTRY):
        decoded = codec.decode(BALANCE_ALERTS.name, codec.encode(BALANCE_ALERTS.name, "BalanceAlert", record))
        assert decoded["balance"] == amount


@settings(max_examples=100, deadline=None)
@given(st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False))
def test_float_prices_go_through_str_not_binary_arithmetic(price: float) -> None:
    amount = to_money(price, "preco")
    assert amount == Decimal(str(price)).quantize(Decimal("0.000001"))
    record = normalize("valida_numero", "acme", {"id": 1, "preco": price}, RECEIVED).record
    codec = SingleObjectCodec()
    assert codec.decode("t", codec.encode("t", "NumberValidation", record))["price"] == amount


def test_record_unions_are_tagged_without_changing_the_bytes() -> None:
    """The tuple notation that names a union's record branch (a shortcut past fastavro's branch matching) must
    write exactly what fastavro writes when it finds the branch itself."""
    sample = Path(__file__).resolve().parents[2] / "deploy" / "sample" / "webhooks.jsonl"
    seen: set[str] = set()
    codec = SingleObjectCodec()
    for line in sample.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        normalized = normalize(item["kind"], "acme", item["body"], RECEIVED)
        writer = avro_schemas.current(normalized.topic.schema)
        if not writer.record_unions:
            continue
        seen.add(writer.name)
        plain = BytesIO()
        schemaless_writer(plain, writer.parsed, normalized.record)
        assert codec.encode(normalized.topic.name, writer.name, normalized.record)[10:] == plain.getvalue()
    assert seen == {"CallLegEvent", "CallSnapshot"}
    assert avro_schemas.current("CallSnapshot").record_unions == (
        ("origin", "callpipe.v1.CallLeg"), ("destination", "callpipe.v1.CallLeg"))
