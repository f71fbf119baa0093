"""Provider webhook body -> normalized record of its family, keyed for its topic (docs/DESIGN.md)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas import mapping as m
from schemas.fields import NormalizationError, to_text
from schemas.topics import KIND_TOPICS, Topic

__all__ = ["NormalizationError", "Normalized", "UnknownKind", "event_id", "normalize"]


class UnknownKind(KeyError):
    """The ``{kind}`` URL segment names none of the 15 webhook kinds."""


@dataclass(frozen=True)
class Normalized:
    topic: Topic
    key: str
    record: dict[str, Any]


def event_id(tenant: str, kind: str, body: Any) -> str:
    """First 32 hex chars of SHA-256 over the canonical JSON array ``[tenant, kind, body]``.

    Canonical = keys sorted at every depth, no whitespace: a provider retry of the same body gets the same id
    whatever its key order.
    """
    canonical = m.json_text([tenant, kind, body], "$")
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


_LEG_STATE: m.Spec = {
    "numero": m.text("number"),
    "tipo": m.text("type"),
    "status": m.text("status"),
    "ativo": m.flag("active"),
    "data_criacao": m.instant("created", "local"),
    "data_inicio": m.instant("started", "local"),
    "data_atendimento": m.instant("answered", "local"),
    "duracao_segundos": m.integer("total_seconds"),
    "duracao_falada_segundos": m.integer("talk_seconds"),
}

_DURATIONS: m.Spec = {
    "duracao_segundos": m.integer("total_seconds"),
    "duracao": m.hms("total_hms"),
    "duracao_cobrada_segundos": m.integer("billed_seconds"),
    "duracao_cobrada": m.hms("billed_hms"),
    "duracao_falada_segundos": m.integer("talk_seconds"),
    "duracao_falada": m.hms("talk_hms"),
}

# Leg fields of a call object, without the number (its key differs between the 2-leg and the flat DID shape).
_LEG_BODY: m.Spec = {
    "tipo": m.text("type"),
    "status": m.text("status"),
    "data_inicio": m.instant("started", "local"),
    **_DURATIONS,
    "preco": m.money("price"),
    "motivo_desconexao": m.disconnect,
    "substatus": m.text("substatus"),
}
_ORIGIN_LEG: m.Spec = {"numero": m.text("number"), **_LEG_BODY, "bina_origem": m.text("caller_id")}
_DESTINATION_LEG: m.Spec = {"numero": m.text("number"), **_LEG_BODY, "bina_destino": m.text("caller_id")}
_FLAT_DESTINATION_LEG: m.Spec = {
    "numero_destino": m.text("number"),
    **_LEG_BODY,
    "bina_destino": m.text("caller_id"),
}

_SNAPSHOT_TOP: m.Spec = {
    "id": m.ident("call_id"),
    "cliente_id": m.integer("client_id"),
    "conta_id": m.integer("account_id"),
    "ramal_id_origem": m.integer("origin_extension_id"),
    "data_criacao": m.instant("created", "local"),
    "ativa": m.flag("active"),
    "url_gravacao": m.text("recording_url"),
    "tags": m.text("tags"),
    "status_geral": m.text("overall_status"),
    "gravacoes_parciais": m.json_list("partial_recordings_json"),
    "ramal_id": m.integer("extension_id"),
    "ramal": m.text("extension"),
}
_SNAPSHOT: m.Spec = {
    **_SNAPSHOT_TOP,
    "origem": m.nested("origin", _ORIGIN_LEG),
    "destino": m.nested("destination", _DESTINATION_LEG),
}
_FLAT_DID_KNOWN = frozenset({*_SNAPSHOT_TOP, *_FLAT_DESTINATION_LEG, "numero_origem"})
_map_snapshot = m.object_mapper(_SNAPSHOT)
_map_origin_leg = m.object_mapper(_ORIGIN_LEG)
_map_flat_destination = m.fields_mapper(_FLAT_DESTINATION_LEG)
_map_snapshot_top = m.fields_mapper(_SNAPSHOT_TOP)


def _is_flat_did(body: Mapping[str, Any]) -> bool:
    return (
        "origem" not in body
        and "destino" not in body
        and ("numero_origem" in body or "numero_destino" in body)
    )


def _call_snapshot(body: Mapping[str, Any]) -> dict[str, Any]:
    """Call object; the flat DID shape's leg fields become ``destination``, ``numero_origem`` ``origin``."""
    if not _is_flat_did(body):
        return _map_snapshot(body)
    origin = _map_origin_leg({})
    origin["number"] = to_text(body.get("numero_origem"), "numero_origem")
    destination = {**_map_flat_destination(body), "extra_json": "{}"}
    return {
        **_map_snapshot_top(body),
        "origin": origin,
        "destination": destination,
        "extra_json": m.extra_json(body, _FLAT_DID_KNOWN),
    }


def _extension(value: Any, path: str) -> tuple[str | None, str | None]:
    """``ramal``: a number or text, or (old DID payloads) an object describing the extension leg."""
    if isinstance(value, dict):
        return None, m.json_text(value, path)
    return to_text(value, path), None


_SPECS: dict[str, m.Spec] = {
    "CallLegEvent": {
        "id": m.ident("call_id"),
        "cliente_id": m.integer("client_id"),
        "gravar_audio": m.flag("record_audio"),
        "tags": m.text("tags"),
        "data_criacao": m.instant("created", "utc"),
        "origem": m.nested("origin", _LEG_STATE),
        "destino": m.nested("destination", _LEG_STATE),
    },
    "SingleLegCallEnd": {
        "id": m.ident("call_id"),
        "numero_destino": m.text("destination_number"),
        "data_criacao": m.instant("created", "local"),
        "data_inicio": m.instant("started", "local"),
        "tipo": m.text("type"),
        "status": m.text("status"),
        **_DURATIONS,
        "preco": m.money("price"),
        "resposta_usuario": m.flag("expects_reply"),
        "resposta": m.text("reply"),
        "motivo_desconexao": m.disconnect,
        "url_gravacao": m.text("recording_url"),
        "url_audio": m.text("audio_url"),
        "mensagem": m.text("message"),
        "tags": m.text("tags"),
    },
    "ExtensionCallEvent": {
        "id": m.ident("call_id"),
        "data_criacao": m.instant("created", "local"),
        "data_atendimento": m.instant("answered", "local"),
        "tipo": m.text("type"),
        "ativo": m.flag("active"),
        "ramal": m.Field(("extension", "extension_json"), _extension),
        "status": m.text("status"),
        "duracao_segundos": m.integer("total_seconds"),
        "duracao_falada_segundos": m.integer("talk_seconds"),
        "motivo_desconexao": m.disconnect,
    },
    "SmsStatus": {
        "id": m.ident("sms_id"),
        "numero_destino": m.text("destination_number"),
        "data_criacao": m.instant("created", "local"),
        "mensagem": m.text("message"),
        "preco": m.money("price"),
        "status_envio": m.text("status"),
        "data_status": m.instant("status_changed", "local"),
        "resposta_usuario": m.flag("expects_reply"),
        "respostas": m.json_list("replies_json"),
    },
    "SmsReply": {
        "id": m.ident("reply_id"),
        "sms_id": m.ident("sms_id"),
        "resposta": m.text("reply"),
        "data_resposta": m.instant("replied", "local"),
    },
    "ConferenceEvent": {
        "conferencia_id": m.ident("conference_id"),
        "chamada_id": m.integer("call_id"),
        "cliente_id": m.integer("client_id"),
        "numero": m.text("number"),
        "evento_conferencia": m.text("event"),
        "gravar_audio": m.flag("record_audio"),
        "data_criacao": m.instant("created", "utc"),
    },
    "Voicemail": {
        "id": m.ident("voicemail_id"),
        "ramal_id": m.integer("extension_id"),
        "ramal": m.text("extension"),
        "numero_telefone": m.text("phone_number"),
        "data_mensagem": m.instant("message", "local"),
        "duracao_segundos": m.integer("duration_seconds"),
        "url_gravacao": m.text("recording_url"),
    },
    "BalanceAlert": {"saldo": m.required_money("balance")},
    "NumberValidation": {
        "id": m.ident("validation_id"),
        "numero_destino": m.text("destination_number"),
        "data_criacao": m.instant("created", "local"),
        "preco": m.money("price"),
        "valido": m.flag("valid"),
        "finalizado": m.flag("finished"),
    },
}

_TABLE_MAPPERS: dict[str, m.Mapper] = {name: m.object_mapper(spec) for name, spec in _SPECS.items()}


def _mapper(topic: Topic) -> m.Mapper:
    return _call_snapshot if topic.schema == "CallSnapshot" else _TABLE_MAPPERS[topic.schema]


_MAPPERS: dict[str, m.Mapper] = {kind: _mapper(topic) for kind, topic in KIND_TOPICS.items()}

# Record field whose value is the partition key; absent: the tenant (balance alerts are per account).
_KEY_FIELDS: dict[str, str] = {
    "CallLegEvent": "call_id",
    "CallSnapshot": "call_id",
    "SingleLegCallEnd": "call_id",
    "ExtensionCallEvent": "call_id",
    "SmsStatus": "sms_id",
    "SmsReply": "sms_id",
    "ConferenceEvent": "conference_id",
    "Voicemail": "voicemail_id",
    "NumberValidation": "validation_id",
}


def _to_millis(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def normalize(kind: str, tenant: str, body: Any, received_at: datetime, eid: str | None = None) -> Normalized:
    """Map one webhook body onto its family record.

    ``eid``: the body's ``event_id`` when the caller already computed it (saves hashing the body twice).
    Raises ``UnknownKind`` for a kind outside the 15, ``NormalizationError`` (naming the field) for a body
    that does not fit the contract.
    """
    topic = KIND_TOPICS.get(kind)
    if topic is None:
        raise UnknownKind(kind)
    if not isinstance(body, dict):
        raise NormalizationError("$", f"body must be a JSON object, got {type(body).__name__}")
    fields = _MAPPERS[kind](body)
    record = {
        "event_id": event_id(tenant, kind, body) if eid is None else eid,
        "kind": kind,
        "tenant": tenant,
        "received_at": _to_millis(received_at),
        **fields,
    }
    key_field = _KEY_FIELDS.get(topic.schema)
    return Normalized(topic, tenant if key_field is None else str(record[key_field]), record)
