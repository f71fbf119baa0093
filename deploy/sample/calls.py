"""Two-leg API calls (notes §3b/3c): leg A is rung first, leg B once A answered. Each call sends real-time leg
events (`chamada_evento`), call snapshots throttled to one per 2 s (`status_tempo_real`) and the end webhook
(`chamada_fim`) with per-leg billing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deploy.sample.timeline import (
    CLIENTS,
    Sample,
    billing,
    hms,
    naive_local,
    naive_utc,
    with_offset,
)

SNAPSHOT_INTERVAL = 2  # seconds: "limitado em 1 request a cada 2s por chamada ativa"
_NULL_BILLING = dict.fromkeys(
    ("duracao_cobrada_segundos", "duracao_cobrada", "duracao_falada_segundos", "duracao_falada", "preco")
)


@dataclass(frozen=True)
class Leg:
    number: str
    tipo: str
    created: int | None  # None: never dialled
    ring: int | None
    answer: int | None = None
    fail: int | None = None
    fail_status: str | None = None
    fail_reason: str | None = None

    def status(self, t: int) -> str:
        if self.ring is None or t < self.ring:
            return "preparando"
        if self.answer is not None and t >= self.answer:
            return "atendida"
        if self.fail is not None and self.fail_status is not None and t >= self.fail:
            return self.fail_status
        return "chamando"

    def answered_by(self, t: int) -> bool:
        return self.answer is not None and t >= self.answer


@dataclass(frozen=True)
class Call:
    id: int
    client: tuple[int, int]
    created: int
    end: int
    a: Leg
    b: Leg
    tags: str | None
    record: bool
    origin_extension_id: int | None


def two_leg_call(sample: Sample, call_id: int, t0: int, *, outcome: str, end_lost: bool) -> None:
    """`outcome`: answered | busy | no_answer (leg B) | a_no_answer (B never dialled)."""
    call = _plan(sample, call_id, t0, outcome)
    for t in sorted({call.created, *_changes(call), call.end}):
        sample.send(t, "chamada_evento", _leg_event(call, t))
    sent = -SNAPSHOT_INTERVAL
    changes = sorted(_changes(call))
    for i, change in enumerate(changes):
        at = max(change, sent + SNAPSHOT_INTERVAL)
        if at >= call.end or (i + 1 < len(changes) and changes[i + 1] <= at):
            continue  # a later change within the throttle window supersedes this one, or the call is over
        sample.send(at, "status_tempo_real", _snapshot(call, at))
        sent = at
    if not end_lost:
        sample.send(call.end + sample.rng.randint(1, 3), "chamada_fim", _final(sample, call))


def _plan(sample: Sample, call_id: int, t0: int, outcome: str) -> Call:
    rng = sample.rng
    a_tipo = rng.choice(("movel", "movel", "fixo", "ramal"))
    b_tipo = rng.choice(("movel", "movel", "fixo"))
    a_number = str(rng.randint(4000, 4099)) if a_tipo == "ramal" else sample.phone(a_tipo)
    a_ring = t0 + 1
    if outcome == "a_no_answer":
        a_fail = a_ring + rng.randint(25, 35)
        a = Leg(
            a_number,
            a_tipo,
            t0,
            a_ring,
            fail=a_fail,
            fail_status="sem resposta",
            fail_reason="18. sem resposta",
        )
        b = Leg(sample.phone(b_tipo), b_tipo, None, None)
        end = a_fail
    else:
        a_answer = a_ring + rng.randint(3, 12)
        a = Leg(a_number, a_tipo, t0, a_ring, answer=a_answer)
        b_ring = a_answer + 1
        b_number = sample.phone(b_tipo)
        if outcome == "answered":
            b_answer = b_ring + rng.randint(3, 15)
            # A talks from its own answer on: keep both legs' talk under a minute (see timeline.billing).
            end = b_answer + rng.randint(1, 59 - (b_answer - a_answer))
            b = Leg(b_number, b_tipo, b_ring, b_ring, answer=b_answer)
        elif outcome == "busy":
            b_fail = b_ring + rng.randint(2, 6)
            b = Leg(
                b_number,
                b_tipo,
                b_ring,
                b_ring,
                fail=b_fail,
                fail_status="ocupado",
                fail_reason=rng.choice(("17. ocupado", "indefinido")),
            )
            end = b_fail + 1
        else:
            b_fail = b_ring + rng.randint(25, 35)
            b = Leg(
                b_number,
                b_tipo,
                b_ring,
                b_ring,
                fail=b_fail,
                fail_status="sem resposta",
                fail_reason="18. sem resposta",
            )
            end = b_fail + 1
    return Call(
        id=call_id,
        client=rng.choice(CLIENTS),
        created=t0,
        end=end,
        a=a,
        b=b,
        tags=rng.choice((None, "", f"pedido-{rng.randint(900, 999)}", "campanha-nov")),
        record=rng.random() < 0.3,
        origin_extension_id=rng.randint(86000, 87999) if a_tipo == "ramal" else None,
    )


def _changes(call: Call) -> set[int]:
    """Moments at which a leg changes state while the call is up."""
    moments = {m for leg in (call.a, call.b) for m in (leg.ring, leg.answer, leg.fail) if m is not None}
    return {m for m in moments if m < call.end}


def _event_leg(leg: Leg, t: int, end: int) -> dict[str, Any]:
    """ "Objeto Perna de Ligação" (notes §1b): a leg not dialled yet carries only its type and number."""
    if leg.created is None or t < leg.created:
        return {"tipo": leg.tipo, "numero": leg.number}
    state: dict[str, Any] = {"data_criacao": naive_local(leg.created)}
    if leg.ring is not None and t >= leg.ring:
        state["data_inicio"] = naive_local(leg.ring)
    status = leg.status(t)
    state |= {
        "tipo": leg.tipo,
        "ativo": leg.answered_by(t) and t < end,
        "numero": leg.number,
        "status": status,
    }
    if status in ("preparando", "chamando"):
        return state
    if leg.answer is not None and t >= leg.answer:
        state["data_atendimento"] = naive_local(leg.answer)  # absent, not null, until answered
    state["duracao_segundos"] = t - leg.created
    state["duracao_falada_segundos"] = t - leg.answer if leg.answer is not None and t >= leg.answer else 0
    return state


def _leg_event(call: Call, t: int) -> dict[str, Any]:
    return {
        "data_criacao": naive_utc(call.created),  # naive UTC at top level, naive local in the legs (notes §5)
        "origem": _event_leg(call.a, t, call.end),
        "gravar_audio": call.record,
        "id": call.id,
        "destino": _event_leg(call.b, t, call.end),
        "cliente_id": call.client[0],
        "tags": call.tags or "",
    }


def _call_object(
    call: Call, active: bool, origin: dict[str, Any], destination: dict[str, Any], recording: str | None
) -> dict[str, Any]:
    return {
        "id": call.id,
        "data_criacao": with_offset(call.created),
        "ativa": active,
        "url_gravacao": recording,
        "cliente_id": call.client[0],
        "conta_id": call.client[1],
        "ramal_id_origem": call.origin_extension_id,
        "tags": call.tags,
        "status_geral": "curso" if active else "finalizada",
        "origem": origin,
        "destino": destination,
        "gravacoes_parciais": [],
    }


def _snapshot_leg(leg: Leg, since: int, t: int) -> dict[str, Any]:
    total = max(0, t - since)
    return {
        "data_inicio": with_offset(leg.answer) if leg.answer is not None and leg.answered_by(t) else None,
        "numero": leg.number,
        "tipo": leg.tipo,
        "status": leg.status(t),
        "duracao_segundos": total,
        "duracao": hms(total),
        **_NULL_BILLING,  # billing is only known at the end
        "motivo_desconexao": "indefinido",
    }


def _snapshot(call: Call, t: int) -> dict[str, Any]:
    # Leg B exists (preparando) from the call's creation on, one second behind A as in the provider's example.
    return _call_object(
        call, True, _snapshot_leg(call.a, call.created, t), _snapshot_leg(call.b, call.created + 1, t), None
    )


def _final_leg(leg: Leg, since: int, end: int) -> dict[str, Any]:
    dialled = leg.ring is not None
    answered = leg.answer is not None
    total = end - since if dialled else 0
    talk = end - leg.answer if leg.answer is not None else 0
    billed, price = billing(leg.tipo, talk)
    started = leg.answer if answered else leg.ring
    return {
        "data_inicio": with_offset(started) if started is not None else None,
        "numero": leg.number,
        "tipo": leg.tipo,
        "status": "atendida" if answered else leg.fail_status,
        "duracao_segundos": total,
        "duracao": hms(total),
        "duracao_cobrada_segundos": billed,
        "duracao_cobrada": hms(billed),
        "duracao_falada_segundos": talk,
        "duracao_falada": hms(talk),
        "preco": price,
        "motivo_desconexao": "16. normal" if answered else leg.fail_reason or "indefinido",
    }


def _final(sample: Sample, call: Call) -> dict[str, Any]:
    recording = sample.recording(call.id, call.client[0]) if call.record else None
    return _call_object(
        call,
        False,
        _final_leg(call.a, call.created, call.end),
        _final_leg(call.b, call.created + 1, call.end),
        recording,
    )
