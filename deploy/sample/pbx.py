"""Calls around the customer's PBX: inbound DID calls (`did_evento`, `chamada_did_fim` in both shapes),
extension calls (`ramal_evento`), voicemails and conference join/leave events. Real-time PBX events carry
string ids and naive local timestamps (notes §5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deploy.sample.timeline import CLIENTS, Sample, billing, hms, naive_local, naive_utc, with_offset

EXTENSIONS = {9000: 87787, 9001: 87788, 9002: 87790, 9010: 87811, 9561: 88102}  # ramal -> ramal_id


@dataclass(frozen=True)
class PbxCall:
    id: int
    created: int
    answer: int | None
    end: int
    extension: int
    final_status: str


def _pbx_call(sample: Sample, call_id: int, t0: int, outcome: str, max_talk: int) -> PbxCall:
    rng = sample.rng
    extension = rng.choice(sorted(EXTENSIONS))
    if outcome == "atendida":
        answer = t0 + rng.randint(3, 10)
        return PbxCall(call_id, t0, answer, answer + rng.randint(5, max_talk), extension, "atendida")
    return PbxCall(
        call_id, t0, None, t0 + rng.randint(4 if outcome == "ocupado" else 20, 30), extension, outcome
    )


def _states(call: PbxCall) -> list[tuple[int, str, bool]]:
    """(moment, status, ativo) of every real-time event of one PBX call."""
    states = [(call.created, "chamando", False)]
    if call.answer is not None:
        states.append((call.answer, "atendida", True))
    states.append((call.end, call.final_status, False))
    return states


def _event(
    call: PbxCall, t: int, status: str, active: bool, ramal: Any, reason: str | None = None
) -> dict[str, Any]:
    """The provider's key order; `data_atendimento` is absent, not null, until answered. Only ramal events
    carry `motivo_desconexao`."""
    answered = call.answer is not None and t >= call.answer
    body: dict[str, Any] = (
        {"data_atendimento": naive_local(call.answer)} if call.answer is not None and answered else {}
    )
    body |= {
        "duracao_falada_segundos": t - call.answer if call.answer is not None and answered else 0,
        "ativo": active,
        "data_criacao": naive_local(call.created),
        "tipo": "ramal",
    }
    if reason is not None:
        body["motivo_desconexao"] = reason
    return body | {"id": str(call.id), "ramal": ramal, "status": status, "duracao_segundos": t - call.created}


def extension_call(sample: Sample, call_id: int, t0: int, *, outcome: str, voicemail: bool) -> None:
    """A call between extensions; busy or unanswered calls may leave a voicemail."""
    call = _pbx_call(sample, call_id, t0, outcome, max_talk=240)
    reasons = {"atendida": "indefinido", "ocupado": "17. ocupado", "sem resposta": "18. sem resposta"}
    for t, status, active in _states(call):
        reason = reasons[status] if t == call.end else "indefinido"
        sample.send(t, "ramal_evento", _event(call, t, status, active, call.extension, reason))
    if voicemail:
        _voicemail(sample, call, sample.phone(sample.rng.choice(("movel", "fixo"))))


def did_call(
    sample: Sample, call_id: int, t0: int, *, outcome: str, flat_end: bool, legacy: bool, voicemail: bool
) -> None:
    """An inbound call to a DID number, answered by an extension or not. `legacy`: the 2018 payload, where
    `ramal` is an object describing the extension leg and the call's numbers come along."""
    rng = sample.rng
    call = _pbx_call(sample, call_id, t0, outcome, max_talk=59)
    client = rng.choice(CLIENTS)
    caller_tipo = rng.choice(("movel", "fixo"))
    caller = sample.phone(caller_tipo)
    did = f"55{sample.phone('fixo')}"
    for t, status, active in _states(call):
        ramal: Any = call.extension
        extra: dict[str, Any] = {}
        if legacy:
            ramal = {
                "ativo": active,
                "data_criacao": naive_local(call.created),
                "numero": str(call.extension),
                "status": status,
                "duracao_segundos": t - call.created,
                "duracao_falada_segundos": t - call.answer
                if call.answer is not None and t >= call.answer
                else 0,
            }
            extra = {
                "numero_origem": int(caller),
                "numero_destino": did,
                "gravar_audio": False,
                "cliente_id": client[0],
            }
        sample.send(t, "did_evento", {**_event(call, t, status, active, ramal), **extra})
    record = rng.random() < 0.5
    recording = sample.recording(call.id, client[0]) if record else None
    talk = call.end - call.answer if call.answer is not None else 0
    billed, price = billing(caller_tipo, talk)
    leg = {
        "status": call.final_status,
        "duracao_segundos": call.end - call.created,
        "duracao": hms(call.end - call.created),
        "duracao_cobrada_segundos": billed,
        "duracao_cobrada": hms(billed),
        "duracao_falada_segundos": talk,
        "duracao_falada": hms(talk),
    }
    reason = "16. normal" if call.answer is not None else "18. sem resposta"
    if flat_end:
        body: dict[str, Any] = {
            "id": call.id,
            "ativa": False,
            "url_gravacao": recording,
            "data_inicio": with_offset(call.created),
            "numero_destino": did,
            "numero_origem": caller,
            **leg,
            "tags": None,
            "preco": price,
            "ramal_id": EXTENSIONS[call.extension],
            "ramal": str(call.extension),
            "gravacoes_parciais": [],
        }
    else:
        # The documented 2-leg shape: the extension as a zero-cost origin leg, the caller as destination.
        origin = {
            "data_inicio": None,
            "numero": str(call.extension),
            "tipo": "ramal",
            "status": None,
            "duracao_segundos": 0,
            "duracao": "00:00:00",
            "duracao_cobrada_segundos": 0,
            "duracao_cobrada": "00:00:00",
            "duracao_falada_segundos": 0,
            "duracao_falada": "00:00:00",
            "preco": 0,
            "motivo_desconexao": "indefinido",
        }
        destination = {
            "data_inicio": with_offset(call.created),
            "numero": caller,
            "tipo": caller_tipo,
            **leg,
            "preco": price,
            "motivo_desconexao": reason,
        }
        body = {
            "id": call.id,
            "data_criacao": with_offset(call.created),
            "ativa": False,
            "url_gravacao": recording,
            "cliente_id": client[0],
            "conta_id": client[1],
            "ramal_id_origem": EXTENSIONS[call.extension],
            "tags": None,
            "status_geral": "finalizada",
            "origem": origin,
            "destino": destination,
            "gravacoes_parciais": [],
        }
    sample.send(call.end + rng.randint(1, 3), "chamada_did_fim", body)
    if voicemail:
        _voicemail(sample, call, caller)


def _voicemail(sample: Sample, call: PbxCall, caller: str) -> None:
    rng = sample.rng
    voicemail_id = sample.next("voicemail")
    duration = rng.randint(0, 45)
    left = call.end + 2 + duration
    client = rng.choice(CLIENTS)[0]
    sample.send(
        left + rng.randint(1, 5),
        "voicemail",
        {
            "id": voicemail_id,
            "ramal_id": EXTENSIONS[call.extension],
            "ramal": str(call.extension),
            "numero_telefone": caller,
            "data_mensagem": with_offset(left),
            "duracao_segundos": duration,
            "url_gravacao": f"https://api.evoline.com.br/recvm/?id={voicemail_id}&x={sample.token()}&cid={client}",
        },
    )


@dataclass(frozen=True)
class Conference:
    id: int
    created: int
    client: int
    record: bool


def conference_participant(
    sample: Sample, call_id: int, t0: int, *, conference: Conference, stay: int
) -> None:
    """One number's call into a conference: "Entrou" when it joins, "Saiu" when it leaves."""
    number = sample.phone(sample.rng.choice(("movel", "fixo")))
    for t, event in ((t0, "Entrou"), (t0 + stay, "Saiu")):
        sample.send(
            t,
            "conferencia_evento",
            {
                "data_criacao": naive_utc(conference.created),
                "evento_conferencia": event,
                "numero": number,
                "gravar_audio": conference.record,
                "conferencia_id": conference.id,
                "chamada_id": str(call_id),
                "cliente_id": conference.client,
            },
        )
