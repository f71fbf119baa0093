"""normalize(): every fixture payload maps onto its family record, validates and survives both codecs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastavro.schema import expand_schema
from fastavro.validation import validate

from schemas import avro_schemas
from schemas.codec import RegistryCodec, SingleObjectCodec
from schemas.fields import NormalizationError
from schemas.normalize import Normalized, UnknownKind, event_id, normalize
from schemas.topics import BALANCE_ALERTS, CALL_SNAPSHOTS, KIND_TOPICS

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks"
FIXTURE_FILES = sorted(FIXTURES.glob("*/*.json"))
RECEIVED = datetime(2019, 9, 6, 17, 0, 0, 123000, tzinfo=UTC)
SINGLE_OBJECT = SingleObjectCodec()
REGISTRY = RegistryCodec("mock://test-normalize")


def body_of(kind: str, name: str) -> Any:
    return json.loads((FIXTURES / kind / f"{name}.json").read_text(encoding="utf-8"))


def fixture(kind: str, name: str) -> dict[str, Any]:
    return normalize(kind, "acme", body_of(kind, name), RECEIVED).record


def utc(year: int, month: int, day: int, hour: int, minute: int, second: int, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def field_names(schema: Any) -> set[str]:
    return {f["name"] for f in schema["fields"]}


def assert_complete(record: dict[str, Any], schema: dict[str, Any], path: str) -> None:
    """Every schema field is set explicitly (validation alone would accept a missing nullable field)."""
    assert set(record) == field_names(schema), path
    for field in schema["fields"]:
        branches = field["type"] if isinstance(field["type"], list) else [field["type"]]
        nested = [b for b in branches if isinstance(b, dict) and b.get("type") == "record"]
        if nested and record[field["name"]] is not None:
            assert_complete(record[field["name"]], nested[0], f"{path}.{field['name']}")


def test_every_kind_has_a_fixture() -> None:
    assert {p.parent.name for p in FIXTURE_FILES} == set(KIND_TOPICS)
    assert len(KIND_TOPICS) == 15


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_fixture_normalizes_validates_and_round_trips(path: Path) -> None:
    kind = path.parent.name
    normalized = normalize(kind, "acme", json.loads(path.read_text(encoding="utf-8")), RECEIVED)
    assert normalized.topic is KIND_TOPICS[kind]
    record = normalized.record
    schema = avro_schemas.schema(normalized.topic.schema)
    assert validate(record, schema, raise_errors=True)
    expanded = expand_schema(schema)
    assert isinstance(expanded, dict)
    assert_complete(record, expanded, kind)
    assert record["kind"] == kind and record["tenant"] == "acme" and record["received_at"] == RECEIVED
    json.loads(record["extra_json"])
    for codec in (SINGLE_OBJECT, REGISTRY):
        data = codec.encode(normalized.topic.name, normalized.topic.schema, record)
        assert codec.decode(normalized.topic.name, data) == record


# --- explicit expectations for the documented examples and the quirks


def test_call_leg_event_naive_utc_top_and_local_legs() -> None:
    record = fixture("chamada_evento", "doc_chamando_perna_a")
    assert record["call_id"] == 37794869
    assert record["created_at"] == utc(2019, 9, 6, 17, 21, 33)  # naive UTC
    assert record["created_raw"] == "2019-09-06T17:21:33"
    origin = record["origin"]
    assert origin["started_at"] == utc(2019, 9, 6, 17, 21, 33)  # "2019-09-06T14:21:33" São Paulo
    assert origin["created_at"] == utc(2019, 9, 6, 17, 21, 34)
    assert origin["answered_at"] is None and origin["answered_raw"] is None
    assert (origin["status"], origin["active"], origin["number"]) == ("chamando", False, "48988888888")
    assert record["destination"]["number"] == "48966663333"
    assert record["destination"]["status"] is None
    assert record["tags"] == ""
    assert record["extra_json"] == "{}"


def test_call_leg_event_string_ids_unknown_status_and_unknown_fields() -> None:
    record = fixture("chamada_evento", "quirk_id_string_unknown_fields")
    assert record["call_id"] == 37785950
    assert record["client_id"] == 2150
    assert record["extra_json"] == '{"canal":"webphone"}'
    assert record["origin"]["status"] == "em_espera"
    assert record["origin"]["active"] is True  # ativo: 1
    assert record["origin"]["extra_json"] == '{"ramal":{"id":1,"login":"ana","ramal":"4000"}}'
    assert record["destination"] is None


def test_snapshot_legs_durations_money_and_disconnect() -> None:
    record = fixture("chamada_fim", "doc_finalizada")
    assert record["created_at"] == utc(2019, 9, 6, 14, 19, 11)
    origin, destination = record["origin"], record["destination"]
    assert origin["status"] is None
    assert (origin["disconnect_code"], origin["disconnect_text"], origin["disconnect_raw"]) == (
        None,
        "indefinido",
        "indefinido",
    )
    assert origin["price"] == Decimal("0")
    assert destination["price"] == Decimal("0.35")
    assert (destination["disconnect_code"], destination["disconnect_text"]) == (16, "normal")
    assert (destination["total_seconds"], destination["billed_seconds"], destination["talk_seconds"]) == (
        24,
        60,
        14,
    )
    assert (destination["total_hms"], destination["billed_hms"], destination["talk_hms"]) == (
        "00:00:24",
        "00:01:00",
        "00:00:14",
    )
    assert record["partial_recordings_json"] == "[]"
    assert record["active"] is False and record["overall_status"] == "finalizada"
    assert record["extension_id"] is None and record["extension"] is None


def test_snapshot_busy_destination_17_ocupado() -> None:
    destination = fixture("chamada_fim", "notes_5a_b_ocupado")["destination"]
    assert (destination["status"], destination["disconnect_code"], destination["disconnect_text"]) == (
        "ocupado",
        17,
        "ocupado",
    )
    assert destination["billed_seconds"] == 0


def test_snapshot_fills_seconds_from_hms_text_and_reads_money_strings() -> None:
    record = fixture("chamada_fim", "quirk_hms_only_string_money")
    assert record["created_at"] == utc(2019, 9, 6, 16, 38, 50)  # "...000Z"
    origin, destination = record["origin"], record["destination"]
    assert origin["started_at"] == utc(2019, 9, 6, 19, 38, 50, 123000)
    assert (origin["total_seconds"], origin["billed_seconds"], origin["talk_seconds"]) == (45, 60, 35)
    assert origin["billed_hms"] == "00:00:60"
    assert origin["price"] == Decimal("0.12")
    assert (origin["disconnect_code"], origin["disconnect_text"], origin["disconnect_raw"]) == (
        None,
        None,
        None,
    )
    # the integer wins over the text when both are sent
    assert (destination["total_seconds"], destination["total_hms"]) == (44, "00:00:45")
    assert destination["started_at"] == utc(2019, 9, 6, 16, 38, 51)
    assert destination["disconnect_code"] == 31
    assert destination["disconnect_text"] == "normal, não especificado"
    assert record["partial_recordings_json"] == "[]"  # absent


def test_snapshot_unknown_values_bina_substatus_and_extras() -> None:
    record = fixture("status_tempo_real", "quirk_unknown_status_bina")
    assert record["call_id"] == 37785951
    assert record["origin_extension_id"] == 86453
    assert record["overall_status"] == "em_pausa"
    assert record["active"] is True
    assert record["recording_url"] == ""
    assert record["extra_json"] == '{"detecta_caixa":true}'
    origin, destination = record["origin"], record["destination"]
    assert (origin["status"], origin["caller_id"], origin["substatus"]) == (
        "transferindo",
        "4832830151",
        "maquina_origem",
    )
    assert origin["extra_json"] == '{"ramal":{"id":86453,"login":"ana","ramal":"4000"}}'
    assert (destination["type"], destination["caller_id"]) == ("voip", "4832830000")
    assert json.loads(record["partial_recordings_json"]) == [
        {"inicio": "2019-09-06T13:49:10-03:00", "url": "https://example.invalid/p1"}
    ]


def test_flat_did_end_maps_to_origin_number_and_destination_leg() -> None:
    normalized = normalize("chamada_did_fim", "acme", body_of("chamada_did_fim", "flat_did"), RECEIVED)
    record = normalized.record
    assert normalized.topic is CALL_SNAPSHOTS and normalized.key == "37721130"
    origin, destination = record["origin"], record["destination"]
    assert origin["number"] == "554811111111"
    assert all(origin[k] is None for k in origin if k not in ("number", "extra_json"))
    assert destination["number"] == "4832830151"
    assert destination["status"] == "sem resposta"
    assert destination["started_at"] == utc(2019, 9, 6, 14, 20, 0)
    assert (destination["total_seconds"], destination["billed_seconds"], destination["price"]) == (
        33,
        0,
        Decimal(0),
    )
    assert (record["extension_id"], record["extension"]) == (62291, "9998")
    assert record["created_at"] is None
    assert record["extra_json"] == '{"fila":"suporte"}'


def test_two_leg_did_end() -> None:
    record = fixture("chamada_did_fim", "doc_two_leg_ocupado")
    assert record["destination"]["status"] == "ocupado"
    assert record["destination"]["disconnect_text"] == "indefinido"
    assert record["origin"]["number"] == "9998"


def test_single_leg_ends() -> None:
    tts = fixture("tts_fim", "doc_atendida")
    assert tts["created_at"] == utc(2019, 9, 6, 16, 34, 57)
    assert tts["message"] == "Ôôôôoooooooolááaaaaaaaaaa"
    assert tts["reply"] == "" and tts["expects_reply"] is False
    assert tts["price"] == Decimal("0.35")
    busy = fixture("tts_fim", "quirk_ocupado")
    assert (busy["status"], busy["disconnect_code"], busy["disconnect_text"]) == ("ocupado", 17, "ocupado")
    assert (busy["billed_seconds"], busy["billed_hms"], busy["reply"]) == (None, None, "8")
    audio = fixture("audio_fim", "quirk_00_00_60")
    assert audio["call_id"] == 37785543
    assert (audio["billed_seconds"], audio["billed_hms"]) == (60, "00:00:60")
    assert audio["audio_url"] == "https://example.invalid/a.mp3"
    composto = fixture("composto_fim", "doc_atendida")
    assert (composto["tags"], composto["reply"], composto["price"]) == ("clienteX", None, Decimal("0.38"))


def test_extension_events() -> None:
    ramal = fixture("ramal_evento", "doc_atendida")
    assert ramal["call_id"] == 37806158  # "37806158"
    assert (ramal["extension"], ramal["extension_json"]) == ("9000", None)
    assert ramal["answered_at"] == utc(2019, 9, 6, 17, 37, 3)
    assert (ramal["disconnect_code"], ramal["disconnect_text"]) == (None, "indefinido")
    unanswered = fixture("ramal_evento", "quirk_unanswered_chamando")
    assert unanswered["answered_at"] is None and unanswered["answered_raw"] is None
    assert unanswered["disconnect_raw"] is None
    old_did = fixture("did_evento", "quirk_ramal_object_2018")
    assert old_did["extension"] is None
    assert json.loads(old_did["extension_json"])["numero"] == "4000"
    assert json.loads(old_did["extra_json"]) == {
        "cliente_id": 2150,
        "gravar_audio": False,
        "numero_destino": "4832830000",
        "numero_origem": 4832830151,
    }


def test_sms_status_and_reply() -> None:
    sms = fixture("envio_sms", "doc_entregue")
    assert (sms["sms_id"], sms["status"], sms["price"]) == (37787430, "entregue", Decimal("0.09"))
    assert sms["status_changed_at"] == utc(2019, 9, 6, 17, 1, 13)
    assert sms["replies_json"] == "[]"
    review = fixture("envio_sms", "quirk_z_em_analise")
    assert review["created_at"] == utc(2018, 3, 18, 0, 51, 22)
    assert review["status"] == "em análise"
    assert review["status_changed_at"] is None and review["status_changed_raw"] is None
    assert review["price"] == Decimal("0.045")
    assert json.loads(review["replies_json"])[0]["resposta"] == "SIM"
    reply = normalize("resposta_sms", "acme", body_of("resposta_sms", "doc_sim"), RECEIVED)
    assert reply.key == "133830"
    assert reply.record["replied_at"] == utc(2016, 10, 17, 20, 2, 20)  # -02:00
    assert reply.record["replied_raw"] == "2016-10-17T18:02:20-02:00"
    assert (reply.record["reply_id"], reply.record["reply"]) == (16347, "SIM")


def test_conference_voicemail_validation() -> None:
    conference = fixture("conferencia_evento", "doc_entrou")
    assert conference["created_at"] == utc(2019, 9, 6, 18, 48, 5)  # naive UTC
    assert (conference["conference_id"], conference["call_id"], conference["event"]) == (
        42874,
        37823279,
        "Entrou",
    )
    left = fixture("conferencia_evento", "quirk_saiu_int_chamada")
    assert (left["event"], left["call_id"], left["created_at"]) == (
        "Saiu",
        37823279,
        utc(2019, 9, 6, 15, 50, 5),
    )
    voicemail = fixture("voicemail", "quirk_ramal_int")
    assert (voicemail["voicemail_id"], voicemail["extension_id"], voicemail["extension"]) == (
        1412,
        87787,
        "9561",
    )
    assert voicemail["message_at"] == utc(2019, 9, 6, 20, 5, 18)
    validation = fixture("valida_numero", "quirk_em_andamento")
    assert (
        validation["validation_id"],
        validation["valid"],
        validation["finished"],
        validation["price"],
    ) == (
        433,
        False,
        False,
        None,
    )


def test_balance_alert_is_keyed_by_tenant_and_keeps_decimal() -> None:
    normalized = normalize("aviso_saldo", "acme", {"saldo": "56.8616"}, RECEIVED)
    assert normalized.topic is BALANCE_ALERTS and normalized.key == "acme"
    assert normalized.record["balance"] == Decimal("56.8616")
    assert fixture("aviso_saldo", "quirk_saldo_float")["balance"] == Decimal("950.64")


@pytest.mark.parametrize(
    ("kind", "key"),
    [
        ("chamada_evento", "37794869"),
        ("status_tempo_real", "37785949"),
        ("tts_fim", "37784550"),
        ("ramal_evento", "37806158"),
        ("envio_sms", "37787430"),
        ("conferencia_evento", "42874"),
        ("voicemail", "1411"),
        ("valida_numero", "432"),
    ],
)
def test_partition_keys(kind: str, key: str) -> None:
    path = next((FIXTURES / kind).glob("doc_*.json"))
    assert normalize(kind, "acme", json.loads(path.read_text(encoding="utf-8")), RECEIVED).key == key


# --- rejection


@pytest.mark.parametrize(
    ("kind", "body", "message"),
    [
        ("chamada_fim", {"ativa": True}, "id: missing required id"),
        ("chamada_fim", {"id": "abc"}, "id: id string is not an integer: 'abc'"),
        ("chamada_fim", {"id": 1.5}, "id: id must be an integer or a digit string, got float"),
        ("resposta_sms", {"id": 1}, "sms_id: missing required id"),
        ("conferencia_evento", {"chamada_id": "1"}, "conferencia_id: missing required id"),
        ("aviso_saldo", {}, "saldo: missing required amount"),
        ("aviso_saldo", {"saldo": "muito"}, "saldo: money amount is not a number: 'muito'"),
        ("chamada_fim", {"id": 1, "origem": "x"}, "origem: expected an object, got str"),
        (
            "chamada_fim",
            {"id": 1, "destino": {"preco": "grátis"}},
            "destino.preco: money amount is not a number",
        ),
        (
            "chamada_fim",
            {"id": 1, "origem": {"duracao": "1 min"}},
            "origem.duracao: not an HH:MM:SS duration",
        ),
        ("chamada_fim", {"id": 1, "ativa": "sim"}, "ativa: expected a boolean, got str 'sim'"),
        ("chamada_evento", {"id": 1, "data_criacao": "06/09/2019"}, "data_criacao: unrecognised datetime"),
        (
            "chamada_evento",
            {"id": 1, "origem": {"duracao_segundos": 1.5}},
            "origem.duracao_segundos: id must be",
        ),
        (
            "tts_fim",
            {"id": 1, "motivo_desconexao": 16},
            "motivo_desconexao: expected a disconnect reason text",
        ),
        ("voicemail", {"id": 1, "ramal": {"id": 2}}, "ramal: expected text, got dict"),
        ("envio_sms", {"id": 1, "mensagem": ["a"]}, "mensagem: expected text, got list"),
        ("chamada_fim", [{"id": 1}], "$: body must be a JSON object, got list"),
        ("aviso_saldo", "56.8616", "$: body must be a JSON object, got str"),
        ("aviso_saldo", {"saldo": 1, "novo": 2**70}, "$: cannot be written as JSON"),
    ],
)
def test_bad_bodies_raise_normalization_error_naming_the_field(kind: str, body: Any, message: str) -> None:
    with pytest.raises(NormalizationError) as info:
        normalize(kind, "acme", body, RECEIVED)
    assert str(info.value).startswith(message)


def test_unknown_kind() -> None:
    with pytest.raises(UnknownKind):
        normalize("chamada_inexistente", "acme", {}, RECEIVED)
    assert issubclass(UnknownKind, KeyError)


def test_received_at_must_be_aware_and_is_kept_in_utc_millis() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        normalize("aviso_saldo", "acme", {"saldo": 1}, datetime(2019, 9, 6, 17, 0))
    local = datetime(2019, 9, 6, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=-3)))
    assert normalize("aviso_saldo", "acme", {"saldo": 1}, local).record["received_at"] == utc(
        2019, 9, 6, 17, 0, 0, 123000
    )


# --- event_id


def test_event_id_is_stable_across_key_order_at_every_depth() -> None:
    body = {"id": 1, "origem": {"numero": "1", "status": "chamando"}, "tags": None}
    reordered = {"tags": None, "origem": {"status": "chamando", "numero": "1"}, "id": 1}
    assert event_id("acme", "chamada_fim", body) == event_id("acme", "chamada_fim", reordered)
    assert len(event_id("acme", "chamada_fim", body)) == 32
    assert int(event_id("acme", "chamada_fim", body), 16) >= 0


def test_event_id_differs_for_body_tenant_and_kind() -> None:
    body = {"id": 1, "status": "chamando"}
    base = event_id("acme", "chamada_fim", body)
    assert base != event_id("acme", "chamada_fim", {"id": 1, "status": "atendida"})
    assert base != event_id("other", "chamada_fim", body)
    assert base != event_id("acme", "status_tempo_real", body)
    assert event_id("ab", "c", body) != event_id("a", "bc", body)


def test_normalized_record_carries_event_id_of_its_body() -> None:
    body = body_of("tts_fim", "doc_atendida")
    normalized: Normalized = normalize("tts_fim", "acme", body, RECEIVED)
    assert normalized.record["event_id"] == event_id("acme", "tts_fim", body)
    assert normalize("tts_fim", "acme", json.loads(json.dumps(body)), RECEIVED).record == normalized.record
