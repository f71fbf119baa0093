"""Two-leg call correlation: order/duplication independence, emission rules, provider examples."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import permutations
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.batch import state_codec
from streams.domain import conference, correlate, extension, single_leg, sms, validation, voicemail
from streams.domain.billing import balance
from streams.domain.billing.rating import DEFAULT_PLAN, rate_call, rate_single_leg, rate_sms
from streams.domain.correlate import CallState, apply, build_record, emit
from tests.unit.streams_strategies import (
    TENANT,
    CallFlow,
    assert_valid_out,
    call_flows,
    conference_events,
    delivered,
    extension_events,
    in_one_second,
    make_event,
    sms_events,
)

TIMEOUT = timedelta(minutes=10)
# Arrival-dependent by definition: how many events came after an end-seen record was published.
ARRIVAL_FIELDS = ("late_event_count",)


def fold(events: list[dict[str, Any]]) -> CallState:
    state: CallState | None = None
    for event in events:
        state = apply(state, event)
    assert state is not None
    return state


def run_agent(events: list[dict[str, Any]], *, checkpoint: bool = False) -> list[dict[str, Any]]:
    """What a stream agent does: apply, (optionally persist/restore via JSON), try to emit."""
    state: CallState | None = None
    emitted = []
    for event in events:
        state = apply(state, event)
        if checkpoint:
            state = state_codec.loads(state_codec.dumps(state))
        state, record = emit(state, event["received_at"], TIMEOUT)
        if record is not None:
            emitted.append(record)
    return emitted


def without(record: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in fields}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), flow=call_flows())
def test_record_is_independent_of_order_and_duplication(data: st.DataObject, flow: CallFlow) -> None:
    clean = build_record(fold(flow.events))
    shuffled = data.draw(delivered(flow.events))
    emitted = run_agent(shuffled, checkpoint=data.draw(st.booleans()))
    final = emitted[-1]
    assert without(final, ARRIVAL_FIELDS) == without(clean, ARRIVAL_FIELDS)
    # version = number of distinct events: the same for any delivery, and monotonic over the emissions.
    assert final["version"] == len(flow.events)
    versions = [r["version"] for r in emitted]
    assert versions == sorted(set(versions))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), flow=call_flows())
def test_state_itself_is_order_independent(data: st.DataObject, flow: CallFlow) -> None:
    shuffled = data.draw(delivered(flow.events))
    keep = ("event_ids", "end_seen", "fields", "legs")
    a, b = fold(flow.events), fold(shuffled)
    assert {k: v for k, v in a.items() if k in keep} == {k: v for k, v in b.items() if k in keep}
    assert state_codec.loads(state_codec.dumps(b)) == b


@settings(max_examples=60, deadline=None)
@given(flow=call_flows())
def test_clean_flow_facts(flow: CallFlow) -> None:
    record = build_record(fold(flow.events))
    origin, destination = flow.origin, flow.destination
    assert record["end_seen"] and not record["provisional"]
    assert record["answered"] == (destination.final == "atendida")
    assert record["origin"]["answer_at"] == origin.answer
    assert record["destination"]["answer_at"] == destination.answer
    assert record["destination"]["ring_at"] == destination.ring
    assert record["end_at"] == flow.end
    assert record["start_at"] == origin.started
    if origin.answer is not None and destination.ring is not None:
        assert record["post_dial_delay_ms"] == (destination.ring - origin.answer) / timedelta(milliseconds=1)
    else:
        assert record["post_dial_delay_ms"] is None
    expected_final = destination.final if origin.final == "atendida" else origin.final
    assert record["final_status"] == expected_final
    statuses = [t["status"] for t in record["origin"]["transitions"]]
    assert statuses[0] == "preparando" and statuses[1] == "chamando"
    times = [t["at"] for t in record["destination"]["transitions"]]
    assert times == sorted(times)


def _example_events() -> list[dict[str, Any]]:
    """The provider's documented payloads (provider-webhooks.md, notes §5a), normalized."""
    utc = UTC
    t = datetime(2019, 9, 6, 16, 49, 1, tzinfo=utc)  # 13:49:01-03:00
    arrive = datetime(2019, 9, 6, 16, 50, tzinfo=utc)
    a_answered = {
        "data": {
            "call_id": 37785950,
            "client_id": 2150,
            "record_audio": False,
            "tags": "",
            "created_at": t + timedelta(seconds=4),
            "origin": {
                "created_at": t,
                "type": "movel",
                "active": True,
                "number": "48988887777",
                "status": "atendida",
                "answered_at": t + timedelta(seconds=4),
                "total_seconds": 4,
                "talk_seconds": 0,
            },
            "destination": {"type": "fixo", "number": "4832830151"},
        }
    }
    b_ringing = {
        "call_id": 37785950,
        "client_id": 2150,
        "account_id": 2150,
        "created_at": t + timedelta(seconds=1),
        "active": True,
        "recording_url": None,
        "tags": "pedido-991",
        "overall_status": "curso",
        "origin": {
            "started_at": t + timedelta(seconds=4),
            "number": "48988887777",
            "type": "movel",
            "status": "atendida",
            "total_seconds": 9,
            "billed_seconds": None,
            "price": None,
            "disconnect_text": "indefinido",
        },
        "destination": {"started_at": None, "number": "4832830151", "type": "fixo", "status": "chamando"},
    }
    end = {
        "call_id": 37785950,
        "client_id": 2150,
        "account_id": 2150,
        "created_at": t + timedelta(seconds=1),
        "active": False,
        "recording_url": "https://api.evoline.com.br/rec/?id=37785950",
        "tags": None,
        "overall_status": "finalizada",
        "origin": {
            "started_at": t + timedelta(seconds=4),
            "number": "48988887777",
            "type": "movel",
            "status": "atendida",
            "total_seconds": 40,
            "talk_seconds": 36,
            "billed_seconds": 60,
            "price": Decimal("0.35"),
            "disconnect_code": 16,
            "disconnect_text": "normal",
            "disconnect_raw": "16. normal",
        },
        "destination": {
            "started_at": t + timedelta(seconds=8),
            "number": "4832830151",
            "type": "fixo",
            "status": "ocupado",
            "total_seconds": 12,
            "talk_seconds": 0,
            "billed_seconds": 0,
            "price": Decimal(0),
            "disconnect_code": 17,
            "disconnect_text": "ocupado",
            "disconnect_raw": "17. ocupado",
        },
    }
    return [
        make_event("chamada_evento", a_answered["data"], arrive),
        make_event("status_tempo_real", b_ringing, arrive + timedelta(seconds=1)),
        make_event("chamada_fim", end, arrive + timedelta(seconds=40)),
    ]


def test_provider_example_busy_destination() -> None:
    record = build_record(fold(_example_events()))
    assert record["answered"] is False
    assert record["final_status"] == "ocupado"
    assert record["disconnect_code"] == 17
    assert record["outcome_leg"] == "destination"
    assert record["origin"]["price"] == Decimal("0.35")
    assert record["provider_price_total"] == Decimal("0.35")
    assert record["tags"] == "pedido-991"  # latest non-null: the end webhook's null does not erase it
    assert record["origin"]["answer_at"] == datetime(2019, 9, 6, 16, 49, 5, tzinfo=UTC)
    assert [t["status"] for t in record["destination"]["transitions"]] == ["chamando", "ocupado"]


def test_provisional_after_inactivity_without_billing_then_newer_version() -> None:
    events = _example_events()
    state = fold(events[:2])
    last = events[1]["received_at"]
    state, record = emit(state, last + TIMEOUT - timedelta(seconds=1), TIMEOUT)
    assert record is None
    state, record = emit(state, last + TIMEOUT, TIMEOUT)
    assert record is not None and record["provisional"] and not record["end_seen"]
    assert record["origin"]["billed_seconds"] is None and record["origin"]["price"] is None
    assert record["provider_price_total"] is None
    assert record["version"] == 2
    state, again = emit(state, last + 2 * TIMEOUT, TIMEOUT)
    assert again is None
    state = apply(state, events[2])
    state, final = emit(state, events[2]["received_at"], TIMEOUT)
    assert final is not None and final["version"] == 3 and not final["provisional"]
    assert final["late_event_count"] == 0


def test_late_events_counted_after_end_record() -> None:
    events = _example_events()
    emitted = run_agent([events[2], events[0], events[0], events[1]])
    assert [r["version"] for r in emitted] == [1, 2, 3]
    assert emitted[-1]["late_event_count"] == 2
    assert without(emitted[-1], ARRIVAL_FIELDS) == without(build_record(fold(events)), ARRIVAL_FIELDS)


def test_rejects_foreign_events() -> None:
    events = _example_events()
    state = fold(events)
    with pytest.raises(ValueError):
        apply(state, {**events[0], "call_id": 1, "event_id": "x"})
    with pytest.raises(ValueError):
        apply(None, {**events[0], "kind": "tts_fim"})


def test_apply_does_not_mutate_its_input() -> None:
    events = _example_events()
    state = fold(events[:1])
    before = state_codec.dumps(state)
    apply(state, events[1])
    assert state_codec.dumps(state) == before


# --- equal times: a leg's lifecycle orders its observations of one second


def _congested_in_one_second() -> list[dict[str, Any]]:
    """A: answered; B: chamando then congestionado, both stamped with the same second; no end webhook. The ids
    are chosen so that the stale chamando has the highest: an id tie-break would keep it."""
    t = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    arrive = t + timedelta(seconds=12)
    origin = {"number": "48988887777", "type": "movel", "status": "atendida", "active": True, "created_at": t,
              "started_at": t, "answered_at": t + timedelta(seconds=2), "total_seconds": 10, "talk_seconds": 8}
    common = {"call_id": 991, "client_id": 2150, "record_audio": False, "tags": None, "created_at": t}
    leg = {"number": "4832830151", "type": "fixo", "created_at": t + timedelta(seconds=8),
           "started_at": t + timedelta(seconds=8), "total_seconds": 2, "talk_seconds": 0, "active": False}
    ringing = make_event("chamada_evento", {**common, "origin": origin, "destination": {**leg, "status": "chamando"}},
                         arrive)
    congested = make_event("chamada_evento", {**common, "origin": origin,
                                              "destination": {**leg, "status": "congestionado"}}, arrive)
    snapshot_leg = {"started_at": t + timedelta(seconds=8), "number": "4832830151", "type": "fixo",
                    "status": "congestionado", "total_seconds": 2, "talk_seconds": 0}
    snapshot = make_event("status_tempo_real", {
        "call_id": 991, "client_id": 2150, "account_id": 2150, "created_at": t, "active": True, "tags": None,
        "overall_status": "curso",
        "origin": {"started_at": t, "number": "48988887777", "type": "movel", "status": "atendida",
                   "total_seconds": 10, "talk_seconds": 8},
        "destination": snapshot_leg,
    }, arrive)
    return [{**ringing, "event_id": "f" * 32}, {**congested, "event_id": "1" * 32}, {**snapshot, "event_id": "0" * 32}]


@pytest.mark.parametrize("count", [2, 3])
def test_terminal_status_beats_ringing_in_the_same_second_without_end(count: int) -> None:
    events = _congested_in_one_second()[:count]
    for order in permutations(events):
        state = fold(list(order))
        _, record = emit(state, events[0]["received_at"] + TIMEOUT, TIMEOUT)
        assert record is not None and record["provisional"]
        assert record["final_status"] == record["destination"]["status"] == "congestionado"
        assert record["outcome_leg"] == "destination"
        assert [t["status"] for t in record["destination"]["transitions"]] == ["chamando", "congestionado"]


def _flow_final_status(flow: CallFlow) -> str | None:
    return flow.destination.final if flow.origin.final == "atendida" else flow.origin.final


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), flow=call_flows(), end=st.booleans())
def test_flow_within_one_second_ends_in_the_clean_flows_status(data: st.DataObject, flow: CallFlow, end: bool) -> None:
    events = [e for e in flow.events if end or e["kind"] != "chamada_fim"]
    clean = build_record(fold(events))
    squeezed = [in_one_second(e, flow.created) for e in events]
    record = build_record(fold(data.draw(delivered(squeezed))))
    assert record["final_status"] == clean["final_status"] == _flow_final_status(flow)
    assert record["outcome_leg"] == clean["outcome_leg"]
    for leg in ("origin", "destination"):
        assert record[leg]["status"] == clean[leg]["status"]


def test_extension_lifecycle_beats_event_id_in_the_same_second() -> None:
    t = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    base = {"call_id": 37806158, "created_at": t, "type": "ramal", "extension": "9000", "total_seconds": 0,
            "talk_seconds": 0}
    steps = [("preparando", False, None), ("chamando", False, None), ("atendida", True, t),
             ("atendida", False, t)]
    for kind in ("ramal_evento", "did_evento"):
        events = [
            make_event(kind, {**base, "status": status, "active": active, "answered_at": answered}, t)
            for status, active, answered in steps
        ]
        # Ids in reverse lifecycle order: an id tie-break would pick the earliest step.
        events = [{**e, "event_id": f"{9 - i:032d}"} for i, e in enumerate(events)]
        for order in permutations(events):
            record = extension.to_record(fold_with(extension, list(order)))
            assert (record["status"], record["active"]) == ("atendida", False)
            assert record["end_at"] == t


@settings(max_examples=50, deadline=None)
@given(data=st.data(), events=extension_events(), kind=st.sampled_from(["ramal_evento", "did_evento"]))
def test_extension_within_one_second_ends_like_the_clean_call(
    data: st.DataObject, events: list[dict[str, Any]], kind: str
) -> None:
    events = [{**e, "kind": kind} for e in events]
    clean = extension.to_record(fold_with(extension, events))
    squeezed = [in_one_second(e, events[0]["created_at"]) for e in events]
    record = extension.to_record(fold_with(extension, data.draw(delivered(squeezed))))
    assert (record["status"], record["active"]) == (clean["status"], clean["active"]) == (events[-1]["status"], False)


# --- Avro output contract


@settings(max_examples=30, deadline=None)
@given(data=st.data(), flow=call_flows())
def test_call_records_validate_against_out_call(data: st.DataObject, flow: CallFlow) -> None:
    prefix = data.draw(st.integers(1, len(flow.events)))
    record = build_record(fold(flow.events[:prefix]))
    assert_valid_out("Call", record)
    assert_valid_out("Call", rate_call(record, DEFAULT_PLAN))


# --- other entities: order independence


def fold_with(module: Any, events: list[dict[str, Any]]) -> Any:
    state = None
    for event in events:
        state = module.apply(state, event)
    return state


@settings(max_examples=50, deadline=None)
@given(data=st.data(), events=sms_events())
def test_sms_merge_is_order_independent(data: st.DataObject, events: list[dict[str, Any]]) -> None:
    clean = sms.to_record(fold_with(sms, events))
    shuffled = sms.to_record(fold_with(sms, data.draw(delivered(events))))
    assert shuffled == clean
    statuses = [e["status"] for e in events if e["kind"] == "envio_sms"]
    assert clean["status"] == statuses[-1]
    assert len(clean["replies"]) == sum(e["kind"] == "resposta_sms" for e in events)
    assert_valid_out("Sms", rate_sms(clean, DEFAULT_PLAN))


@settings(max_examples=50, deadline=None)
@given(data=st.data(), events=conference_events())
def test_conference_merge_is_order_independent(data: st.DataObject, events: list[dict[str, Any]]) -> None:
    clean = fold_with_conference(events)
    assert fold_with_conference(data.draw(delivered(events))) == clean
    for session in clean:
        if session["left_at"] is not None:
            assert session["duration_seconds"] == (session["left_at"] - session["joined_at"]).total_seconds()
        assert_valid_out("ConferenceSession", session)


def fold_with_conference(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    state = None
    for event in events:
        state, _ = conference.apply(state, event)
    assert state is not None
    return [conference.to_record(state, who) for who in sorted(state["participants"])]


@settings(max_examples=50, deadline=None)
@given(data=st.data(), events=extension_events())
def test_extension_merge_is_order_independent(data: st.DataObject, events: list[dict[str, Any]]) -> None:
    clean = extension.to_record(fold_with(extension, events))
    assert extension.to_record(fold_with(extension, data.draw(delivered(events)))) == clean
    assert clean["status"] == events[-1]["status"] and clean["active"] is False
    assert clean["end_at"] is not None
    assert_valid_out("ExtensionCall", clean)


# --- other entities: provider examples


def test_tts_end_example_is_rated_like_the_provider() -> None:
    started = datetime(2019, 9, 6, 16, 34, 58, tzinfo=UTC)
    body = {
        "call_id": 37784550,
        "destination_number": "48988888888",
        "created_at": started - timedelta(seconds=1),
        "started_at": started,
        "type": "movel",
        "status": "atendida",
        "total_seconds": 17,
        "billed_seconds": 60,
        "talk_seconds": 10,
        "price": Decimal("0.35"),
        "expects_reply": False,
        "reply": "",
        "disconnect_code": 16,
        "disconnect_text": "normal",
        "disconnect_raw": "16. normal",
        "message": "Olá",
    }
    event = make_event("tts_fim", body, started + timedelta(seconds=20))
    state = single_leg.apply(single_leg.apply(None, event), event)
    record = rate_single_leg(single_leg.to_record(state), DEFAULT_PLAN)
    assert record["version"] == 1 and record["answered"]
    assert record["answer_at"] == started + timedelta(seconds=7)
    assert (record["rated_billed_seconds"], record["rated_cost"]) == (60, Decimal("0.35"))
    assert record["price_mismatch"] is False
    assert_valid_out("SingleLegCall", record)


def test_did_end_busy_example() -> None:
    body = {
        "call_id": 37721125,
        "client_id": 2150,
        "account_id": 2150,
        "created_at": datetime(2019, 9, 6, 14, 18, 20, tzinfo=UTC),
        "recording_url": "https://api.evoline.com.br/rec/?id=37721125",
        "origin": {
            "number": "9998",
            "type": "ramal",
            "status": None,
            "total_seconds": 0,
            "price": Decimal(0),
        },
        "destination": {
            "started_at": datetime(2019, 9, 6, 14, 18, 19, tzinfo=UTC),
            "number": "48988888888",
            "type": "movel",
            "status": "ocupado",
            "total_seconds": 31,
            "billed_seconds": 0,
            "talk_seconds": 0,
            "price": Decimal(0),
            "disconnect_text": "indefinido",
            "disconnect_raw": "indefinido",
        },
    }
    event = make_event("chamada_did_fim", body, datetime(2019, 9, 6, 14, 19, tzinfo=UTC))
    record = rate_single_leg(single_leg.to_record(single_leg.apply(None, event)), DEFAULT_PLAN)
    assert record["origin_number"] == "9998" and record["status"] == "ocupado"
    assert (record["rated_billed_seconds"], record["rated_cost"]) == (0, Decimal("0.00"))
    assert record["billed_seconds_mismatch"] is False and record["price_mismatch"] is False
    assert_valid_out("SingleLegCall", record)


def test_number_validation_finished_wins_in_any_order() -> None:
    at = datetime(2018, 8, 2, 13, 49, 30, tzinfo=UTC)
    body = {
        "validation_id": 432,
        "destination_number": "554811111111",
        "created_at": at,
        "price": Decimal("0.1"),
    }
    pending = make_event("valida_numero", {**body, "valid": None, "finished": False}, at)
    done = make_event("valida_numero", {**body, "valid": True, "finished": True}, at + timedelta(seconds=5))
    for order in ([pending, done], [done, pending]):
        record = validation.to_record(fold_with(validation, order))
        assert record["finished"] is True and record["valid"] is True and record["version"] == 2
        assert_valid_out("NumberValidationRecord", record)


def test_voicemail_record() -> None:
    at = datetime(2019, 9, 6, 17, 0, tzinfo=UTC)
    body = {"voicemail_id": 1, "extension_id": 62291, "extension": "9561", "phone_number": "48988888888"}
    body.update(message_at=at, duration_seconds=12, recording_url="https://api.evoline.com.br/recvm/?id=1")
    event = make_event("voicemail", body, at)
    record = voicemail.to_record(voicemail.apply(voicemail.apply(None, event), event))
    assert record["version"] == 1 and record["extension"] == "9561"
    assert_valid_out("VoicemailRecord", record)


def test_balance_spend_since_last_alert() -> None:
    t0 = datetime(2024, 3, 1, 12, tzinfo=UTC)
    alert = make_event("aviso_saldo", {"balance": Decimal("56.8616")}, t0)
    state = balance.apply_spend(None, TENANT, "call:1", 1, t0 - timedelta(minutes=1), Decimal("0.35"))
    state = balance.apply_alert(state, alert)
    state = balance.apply_alert(state, {**alert, "received_at": t0 + timedelta(hours=1)})  # retry: same id
    state = balance.apply_spend(state, TENANT, "call:2", 3, t0 + timedelta(minutes=1), Decimal("0.70"))
    state = balance.apply_spend(
        state, TENANT, "call:2", 2, t0 + timedelta(minutes=1), Decimal("9.99")
    )  # stale
    state = balance.apply_sms(
        state,
        {
            "tenant": TENANT,
            "sms_id": 5,
            "version": 1,
            "status_at": t0 + timedelta(minutes=2),
            "rated_cost": Decimal("0.09"),
        },
    )
    record = balance.to_record(state, t0 + timedelta(minutes=3))
    assert record["last_alert_balance"] == Decimal("56.8616") and record["last_alert_at"] == t0
    assert record["spend_since_alert"] == Decimal("0.79") and record["spend_items"] == 2
    assert record["alert_count"] == 1
    assert_valid_out("BalanceStatus", record)


# --- contract with the normalizer: every provider fixture flows through the domain logic


FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks"
RECEIVED = datetime(2019, 9, 6, 20, 0, tzinfo=UTC)


def _normalized(kind: str) -> list[dict[str, Any]]:
    normalize = pytest.importorskip("schemas.normalize")
    return [
        normalize.normalize(kind, TENANT, json.loads(path.read_text()), RECEIVED).record
        for path in sorted((FIXTURES / kind).glob("*.json"))
    ]


@pytest.mark.parametrize("kind", sorted(p.name for p in FIXTURES.iterdir()) if FIXTURES.is_dir() else [])
def test_provider_fixtures_map_to_valid_output_records(kind: str) -> None:
    for event in _normalized(kind):
        if kind in correlate.CALL_KINDS:
            _, record = emit(apply(None, event), RECEIVED + TIMEOUT, TIMEOUT)
            assert record is not None
            assert_valid_out("Call", rate_call(record, DEFAULT_PLAN))
            assert record["provisional"] == (kind != "chamada_fim")
        elif kind in single_leg.KINDS:
            record = rate_single_leg(single_leg.to_record(single_leg.apply(None, event)), DEFAULT_PLAN)
            assert_valid_out("SingleLegCall", record)
        elif kind in ("ramal_evento", "did_evento"):
            assert_valid_out("ExtensionCall", extension.to_record(extension.apply(None, event)))
        elif kind in ("envio_sms", "resposta_sms"):
            assert_valid_out("Sms", rate_sms(sms.to_record(sms.apply(None, event)), DEFAULT_PLAN))
        elif kind == "conferencia_evento":
            state, who = conference.apply(None, event)
            assert_valid_out("ConferenceSession", conference.to_record(state, who))
        elif kind == "voicemail":
            assert_valid_out("VoicemailRecord", voicemail.to_record(voicemail.apply(None, event)))
        elif kind == "valida_numero":
            assert_valid_out("NumberValidationRecord", validation.to_record(validation.apply(None, event)))
        elif kind == "aviso_saldo":
            assert_valid_out("BalanceStatus", balance.to_record(balance.apply_alert(None, event), RECEIVED))
        else:
            pytest.fail(f"no domain mapping for {kind}")


def test_fixture_busy_call_is_rated_like_the_provider() -> None:
    events = _normalized("chamada_fim")
    by_status = {e["destination"]["status"]: e for e in events if e["destination"]}
    busy = rate_call(build_record(apply(None, by_status["ocupado"])), DEFAULT_PLAN)
    assert busy["destination"]["rated_cost"] == Decimal("0.00")
    assert busy["destination"]["price_mismatch"] is False
    answered = rate_call(build_record(apply(None, by_status["atendida"])), DEFAULT_PLAN)
    assert answered["destination"]["rated_billed_seconds"] == answered["destination"]["billed_seconds"]


def test_balance_spend_stays_bounded_and_exact_when_settled() -> None:
    t0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    retention = timedelta(minutes=5)
    state, expected = balance.new_state(TENANT), Decimal(0)
    for i in range(200):  # one entity ending every 10 s for half an hour, no alert
        state = balance.settle(balance.apply_spend(state, TENANT, f"call:{i}", 1, t0 + timedelta(seconds=10 * i),
                                                   Decimal("0.35")), retention)
        expected += Decimal("0.35")
    assert len(state["spend"]) <= 31  # the retention's worth of entries, not the history
    record = balance.to_record(state, t0)
    assert record["spend_since_alert"] == expected and record["spend_items"] == 200
    # A newer version of a settled entity is not counted again; an alert after everything clears it all.
    again = balance.apply_spend(state, TENANT, "call:0", 2, t0, Decimal("9.99"))
    assert balance.to_record(again, t0)["spend_since_alert"] == expected
    alert = {"kind": "aviso_saldo", "tenant": TENANT, "event_id": "a1", "received_at": t0 + timedelta(days=1),
             "balance": Decimal("10")}
    cleared = balance.to_record(balance.apply_alert(state, alert), t0)
    assert cleared["spend_since_alert"] == 0 and cleared["spend_items"] == 0
