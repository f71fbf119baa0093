"""Hypothesis strategies: realistic normalized webhook records for the streams domain logic.

Records mimic the dicts decoded from the normalized Avro topics (docs/DESIGN.md): UTC datetimes in ``*_at``,
Decimal money, ``event_id`` a hash of the content (a redelivery has the same id, another ``received_at``).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
from fastavro.validation import validate
from hypothesis import strategies as st

TENANT = "acme"
BASE = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
PRICES = {"movel": Decimal("0.35"), "fixo": Decimal("0.12"), "ramal": Decimal("0.10")}
CAUSES = {
    "atendida": (16, "normal"),
    "ocupado": (17, "ocupado"),
    "sem resposta": (18, "sem resposta"),
    "falha": (41, "falha temporária"),
}

Record = dict[str, Any]


def make_event(kind: str, body: Record, received_at: datetime, tenant: str = TENANT) -> Record:
    digest = hashlib.sha256(
        json.dumps([tenant, kind, body], sort_keys=True, default=str).encode()
    ).hexdigest()[:32]
    return {
        "event_id": digest,
        "kind": kind,
        "tenant": tenant,
        "received_at": received_at,
        "extra_json": "{}",
        **body,
    }


def redeliver(event: Record, delay: timedelta) -> Record:
    """A provider retry: same body and id, later ingest time."""
    return {**event, "received_at": event["received_at"] + delay}


_DURATIONS = frozenset({"total_seconds", "talk_seconds", "billed_seconds"})


def in_one_second(event: Record, at: datetime) -> Record:
    """The event as the provider stamps it when the whole call fits in the second ``at`` (its times have 1 s
    resolution): every provider time is ``at`` and every duration 0; the id, kind and ingest time stay."""

    def stamp(value: Any) -> Any:
        if isinstance(value, datetime):
            return at
        if isinstance(value, dict):
            return {k: 0 if k in _DURATIONS and v is not None else stamp(v) for k, v in value.items()}
        return value

    return {**stamp(event), "received_at": event["received_at"]}


def provider_billed(talk: int) -> int:
    return 0 if talk <= 0 else max(60, -(-talk // 60) * 60)


def provider_price(tipo: str, billed: int) -> Decimal:
    return (PRICES[tipo] * billed / 60).quantize(Decimal("0.01"))


@dataclass
class LegPlan:
    number: str
    tipo: str
    started: datetime | None = None
    ring: datetime | None = None
    answer: datetime | None = None
    end: datetime | None = None
    final: str | None = None

    def status_at(self, at: datetime) -> str | None:
        if self.started is None or at < self.started:
            return None
        if self.end is not None and at >= self.end and self.final != "atendida":
            return self.final
        if self.answer is not None and at >= self.answer:
            return "atendida"
        if self.ring is not None and at >= self.ring:
            return "chamando"
        return "preparando"

    def total(self, at: datetime) -> int:
        assert self.started is not None
        stop = min(at, self.end) if self.end else at
        return int((stop - self.started).total_seconds())

    def talk(self, at: datetime) -> int:
        if self.answer is None or at < self.answer:
            return 0
        stop = min(at, self.end) if self.end else at
        return int((stop - self.answer).total_seconds())

    def live_state(self, at: datetime) -> Record:
        status = self.status_at(at)
        if status is None:
            return {"number": self.number, "type": self.tipo, "extra_json": "{}"}
        return {
            "number": self.number,
            "type": self.tipo,
            "status": status,
            "active": self.answer is not None and at >= self.answer and (self.end is None or at < self.end),
            "created_at": self.started,
            "started_at": self.started,
            "answered_at": self.answer if self.answer is not None and at >= self.answer else None,
            "total_seconds": self.total(at),
            "talk_seconds": self.talk(at),
            "extra_json": "{}",
        }

    def snapshot_leg(self, at: datetime, *, final: bool) -> Record:
        status = self.status_at(at) if not final else (self.final if self.started else None)
        started = self.started
        leg: Record = {
            "number": self.number,
            "type": self.tipo,
            "status": status,
            "started_at": started,
            "total_seconds": self.total(at) if started else 0,
            "talk_seconds": self.talk(at) if started else 0,
            "billed_seconds": None,
            "price": None,
            "disconnect_code": None,
            "disconnect_text": "indefinido",
            "disconnect_raw": "indefinido",
            "extra_json": "{}",
        }
        if final:
            talk = leg["talk_seconds"] if status == "atendida" else 0
            billed = provider_billed(talk)
            code, text = CAUSES.get(status or "", (None, "indefinido"))
            leg.update(
                billed_seconds=billed,
                price=provider_price(self.tipo, billed),
                disconnect_code=code,
                disconnect_text=text,
                disconnect_raw=f"{code}. {text}" if code else text,
            )
        return leg


@dataclass
class CallFlow:
    call_id: int
    client_id: int
    created: datetime
    origin: LegPlan
    destination: LegPlan
    events: list[Record]

    @property
    def end(self) -> datetime:
        ends = [leg.end for leg in (self.origin, self.destination) if leg.end is not None]
        return max(ends)


@st.composite
def call_flows(draw: st.DrawFn, call_id: int | None = None) -> CallFlow:
    """A two-leg API call: A preparando->chamando->(atendida|sem resposta|ocupado); B rung after A answers."""
    cid = call_id if call_id is not None else draw(st.integers(1, 10**9))
    created = BASE + timedelta(seconds=draw(st.integers(0, 3 * 3600)))
    origin = LegPlan(
        draw(st.sampled_from(["48988887777", "4832830151"])), draw(st.sampled_from(["movel", "fixo"]))
    )
    destination = LegPlan(
        draw(st.sampled_from(["48966663333", "4000"])), draw(st.sampled_from(["movel", "fixo", "ramal"]))
    )
    s = timedelta(seconds=1)
    origin.started = created + draw(st.integers(0, 3)) * s
    origin.ring = origin.started + draw(st.integers(1, 5)) * s
    a_outcome = draw(st.sampled_from(["atendida", "atendida", "atendida", "sem resposta", "ocupado"]))
    if a_outcome == "atendida":
        origin.answer = origin.ring + draw(st.integers(1, 20)) * s
        destination.started = origin.answer
        b_outcome = draw(st.sampled_from(["atendida", "atendida", "ocupado", "sem resposta", "falha"]))
        if b_outcome != "falha":
            destination.ring = destination.started + draw(st.integers(1, 8)) * s
        if b_outcome == "atendida":
            assert destination.ring is not None
            destination.answer = destination.ring + draw(st.integers(1, 25)) * s
            destination.end = destination.answer + draw(st.integers(0, 400)) * s
        elif b_outcome == "falha":
            destination.end = destination.started + draw(st.integers(1, 3)) * s
        else:
            assert destination.ring is not None
            destination.end = destination.ring + draw(st.integers(5, 60)) * s
        destination.final = b_outcome
        origin.end = destination.end
        origin.final = "atendida"
    else:
        origin.end = origin.ring + draw(st.integers(5, 60)) * s
        origin.final = a_outcome
    client_id = draw(st.sampled_from([2150, 3001]))
    tags = draw(st.sampled_from([None, "", "pedido-991"]))

    changes = sorted(
        {
            t
            for leg in (origin, destination)
            for t in (leg.started, leg.ring, leg.answer, leg.end)
            if t is not None
        }
    )
    arrival = created
    events: list[Record] = []
    for at in changes:
        arrival = at + timedelta(milliseconds=draw(st.integers(50, 900)))
        body = {
            "call_id": cid,
            "client_id": client_id,
            "record_audio": False,
            "tags": tags,
            "created_at": at,
            "created_raw": at.replace(tzinfo=None).isoformat(),
            "origin": origin.live_state(at),
            "destination": destination.live_state(at),
        }
        events.append(make_event("chamada_evento", body, arrival))
        if draw(st.booleans()):
            events.append(
                make_event(
                    "status_tempo_real",
                    _snapshot(cid, client_id, tags, created, origin, destination, at, final=False),
                    arrival,
                )
            )
    end = max(leg.end for leg in (origin, destination) if leg.end is not None)
    events.append(
        make_event(
            "chamada_fim",
            _snapshot(cid, client_id, tags, created, origin, destination, end, final=True),
            end + timedelta(seconds=draw(st.integers(1, 5))),
        )
    )
    return CallFlow(cid, client_id, created, origin, destination, events)


def _snapshot(
    cid: int,
    client_id: int,
    tags: str | None,
    created: datetime,
    origin: LegPlan,
    destination: LegPlan,
    at: datetime,
    *,
    final: bool,
) -> Record:
    return {
        "call_id": cid,
        "client_id": client_id,
        "account_id": client_id,
        "origin_extension_id": None,
        "created_at": created,
        "created_raw": created.isoformat(),
        "active": not final,
        "recording_url": f"https://api.evoline.com.br/rec/?id={cid}" if final else None,
        "tags": tags,
        "overall_status": "finalizada" if final else "curso",
        "origin": origin.snapshot_leg(at, final=final),
        "destination": destination.snapshot_leg(at, final=final),
        "partial_recordings_json": "[]",
    }


@st.composite
def delivered(draw: st.DrawFn, events: list[Record]) -> list[Record]:
    """At-least-once, unordered delivery of ``events``: each at least once, retries with later received_at."""
    out = list(events)
    for event in events:
        for _ in range(draw(st.integers(0, 2))):
            out.append(redeliver(event, timedelta(seconds=draw(st.integers(1, 3600)))))
    return draw(st.permutations(out))


@st.composite
def sms_events(draw: st.DrawFn) -> list[Record]:
    """One SMS: status webhooks (aguardando -> enviada -> entregue|erro, same-second ties) + replies."""
    sms_id = draw(st.integers(1, 10**9))
    created = BASE + timedelta(seconds=draw(st.integers(0, 7200)))
    common = {
        "sms_id": sms_id,
        "destination_number": "48988888888",
        "created_at": created,
        "created_raw": created.isoformat(),
        "message": "Olá",
        "expects_reply": True,
        "replies_json": "[]",
    }
    sent = created + timedelta(seconds=draw(st.integers(0, 5)))
    final = sent + timedelta(seconds=draw(st.integers(0, 60)))
    outcome = draw(st.sampled_from(["entregue", "erro"]))
    price = Decimal("0.09") if outcome == "entregue" else Decimal(0)
    steps = [("aguardando", None), ("enviada", sent), (outcome, final)]
    events = []
    for status, at in steps[draw(st.integers(0, 2)) :]:
        body = {
            **common,
            "status": status,
            "status_changed_at": at,
            "status_changed_raw": None,
            "price": price,
        }
        events.append(make_event("envio_sms", body, (at or created) + timedelta(seconds=1)))
    for reply_id in range(draw(st.integers(0, 2))):
        at = final + timedelta(minutes=reply_id + 1)
        body = {
            "reply_id": reply_id + 1,
            "sms_id": sms_id,
            "reply": "SIM",
            "replied_at": at,
            "replied_raw": None,
        }
        events.append(make_event("resposta_sms", body, at))
    return events


@st.composite
def conference_events(draw: st.DrawFn) -> list[Record]:
    """One conference: 1-3 participants joining, leaving and sometimes rejoining."""
    conference_id = draw(st.integers(1, 10**6))
    events = []
    for i in range(draw(st.integers(1, 3))):
        call_id = draw(st.sampled_from([None, 37823279 + i]))
        at = BASE + timedelta(seconds=draw(st.integers(0, 600)))
        for _ in range(draw(st.integers(1, 2))):
            for event in ("Entrou", "Saiu") if draw(st.booleans()) else ("Entrou",):
                body = {
                    "conference_id": conference_id,
                    "call_id": call_id,
                    "client_id": 2150,
                    "number": f"4898888{i:04d}",
                    "event": event,
                    "record_audio": False,
                    "created_at": at,
                    "created_raw": at.replace(tzinfo=None).isoformat(),
                }
                events.append(make_event("conferencia_evento", body, at + timedelta(seconds=1)))
                at += timedelta(seconds=draw(st.integers(1, 900)))
    return events


@st.composite
def extension_events(draw: st.DrawFn) -> list[Record]:
    """One ramal call: chamando -> atendida (maybe) -> hung up (ativo false), with growing durations."""
    call_id = draw(st.integers(1, 10**9))
    created = BASE + timedelta(seconds=draw(st.integers(0, 7200)))
    ring = draw(st.integers(1, 20))
    talk = draw(st.integers(0, 300))
    answered = draw(st.booleans())
    base = {
        "call_id": call_id,
        "created_at": created,
        "created_raw": None,
        "type": "ramal",
        "extension": "9000",
    }
    base.update(
        extension_json=None, disconnect_code=None, disconnect_text="indefinido", disconnect_raw="indefinido"
    )
    answer_at = created + timedelta(seconds=ring) if answered else None
    states: list[tuple[str, bool, int, int, datetime | None]] = [("chamando", False, 0, 0, None)]
    if answered:
        states += [("atendida", True, ring, 0, answer_at), ("atendida", False, ring + talk, talk, answer_at)]
    else:
        states += [("sem resposta", False, ring + 30, 0, None)]
    events = []
    for status, active, total, talk_s, ans in states:
        body = {**base, "status": status, "active": active, "total_seconds": total, "talk_seconds": talk_s}
        body.update(answered_at=ans, answered_raw=None)
        events.append(make_event("ramal_evento", body, created + timedelta(seconds=total + 1)))
    return events


_OUT_SCHEMAS: dict[str, Any] = {}


def assert_valid_out(name: str, record: Record) -> None:
    """``record`` validates against ``schemas/avro/out_<name>.avsc`` and survives a binary round trip."""
    if name not in _OUT_SCHEMAS:
        path = Path(__file__).parents[2] / "schemas" / "avro" / f"out_{name}.avsc"
        _OUT_SCHEMAS[name] = fastavro.parse_schema(json.loads(path.read_text()), named_schemas={})
    schema = _OUT_SCHEMAS[name]
    assert validate(record, schema, raise_errors=True)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, record)
    buffer.seek(0)
    assert fastavro.schemaless_reader(buffer, schema, schema) == record
