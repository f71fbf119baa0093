"""Rating: provider evidence examples, plan loading, idempotence, reconciliation flags."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import settings as streams_settings
from streams.domain.billing.rating import DEFAULT_PLAN, RatingPlan, Tariff, rate_call, rate_leg, rate_sms
from streams.domain.correlate import apply, build_record
from tests.unit.streams_strategies import CallFlow, call_flows


def leg(
    tipo: str, status: str, talk: int | None, billed: int | None = None, price: str | None = None
) -> dict:
    return {
        "type": tipo,
        "status": status,
        "answered": status == "atendida",
        "talk_seconds": talk,
        "billed_seconds": billed,
        "price": None if price is None else Decimal(price),
    }


@pytest.mark.parametrize(
    ("tipo", "status", "talk", "billed", "price"),
    [
        # provider-webhooks-notes.md §3d evidence table: (tipo, status, falada) -> (cobrada, preco)
        ("movel", "atendida", 14, 60, "0.35"),  # Fim Chamada B
        ("movel", "atendida", 25, 60, "0.35"),  # Áudio Fim
        ("movel", "atendida", 10, 60, "0.35"),  # TTS Fim
        ("movel", "atendida", 0, 0, "0"),  # TTS report: answered, 0 s talk
        ("fixo", "atendida", 35, 60, "0.12"),  # Audio/Composto report
        ("ramal", "atendida", 28, 60, "0.1"),  # chamada object B
        ("movel", "ocupado", 0, 0, "0"),  # busy
        ("fixo", "sem resposta", 0, 0, "0"),  # no answer
    ],
)
def test_provider_evidence(tipo: str, status: str, talk: int, billed: int, price: str) -> None:
    rated = rate_leg(leg(tipo, status, talk, billed, price), DEFAULT_PLAN)
    assert rated["rated_billed_seconds"] == billed
    assert rated["rated_cost"] == Decimal(price)
    assert rated["billed_seconds_mismatch"] is False
    assert rated["price_mismatch"] is False


def test_reconciliation_keeps_provider_values_beside_ours() -> None:
    # Composto Fim example: 42 s movel billed 60 s but priced 0.38, not the 0.35 of the other examples.
    rated = rate_leg(leg("movel", "atendida", 42, 60, "0.38"), DEFAULT_PLAN)
    assert rated["price"] == Decimal("0.38") and rated["rated_cost"] == Decimal("0.35")
    assert rated["price_mismatch"] is True and rated["billed_seconds_mismatch"] is False
    # ramal leg with 10 s billed 10 s (per-second in some contexts).
    rated = rate_leg(leg("ramal", "atendida", 10, 10, "0.1"), DEFAULT_PLAN)
    assert rated["billed_seconds_mismatch"] is True and rated["price_mismatch"] is False


def test_unknown_facts_are_not_guessed() -> None:
    assert rate_leg(leg("movel", "atendida", None), DEFAULT_PLAN)["rated_cost"] is None
    assert rate_leg(leg("satelite", "atendida", 30), DEFAULT_PLAN)["rated_cost"] is None
    assert rate_leg(leg("satelite", "ocupado", 0), DEFAULT_PLAN)["rated_cost"] == Decimal("0.00")
    assert rate_leg(leg("movel", "atendida", 30), DEFAULT_PLAN, final=False)["rated_cost"] is None


@pytest.mark.parametrize(
    ("minimum", "increment", "talk", "expected"),
    [(60, 60, 61, 120), (60, 6, 61, 66), (30, 6, 29, 30), (30, 6, 37, 42), (0, 1, 7, 7), (0, 6, 5, 6)],
)
def test_tariff_cadence(minimum: int, increment: int, talk: int, expected: int) -> None:
    assert Tariff(Decimal("0.35"), minimum, increment).billed_seconds(talk) == expected


def test_rounding_half_up_and_places() -> None:
    plan = RatingPlan("p", {"movel": Tariff(Decimal("0.35"), 0, 1)}, Decimal("0.09"), places=2)
    # 0.35 * 3 / 60 = 0.0175 -> 0.02 (half up)
    assert rate_leg(leg("movel", "atendida", 3), plan)["rated_cost"] == Decimal("0.02")
    plan4 = RatingPlan("p", plan.tariffs, plan.sms_price, places=4)
    assert rate_leg(leg("movel", "atendida", 3), plan4)["rated_cost"] == Decimal("0.0175")


def test_plan_loads_from_json_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    text = json.dumps(DEFAULT_PLAN.to_mapping())
    assert RatingPlan.from_json(text) == DEFAULT_PLAN
    custom = {
        "plan_id": "x",
        "sms_price": 0.045,
        "places": 3,
        "tariffs": {"movel": {"price_per_minute": "0.35", "minimum_seconds": 30, "increment_seconds": 6}},
    }
    monkeypatch.setenv("CALLPIPE_RATING_PLAN", json.dumps(custom))
    plan = streams_settings.from_env().rating_plan
    assert plan.sms_price == Decimal("0.045") and plan.tariffs["movel"].increment_seconds == 6
    monkeypatch.delenv("CALLPIPE_RATING_PLAN")
    assert streams_settings.from_env().rating_plan == DEFAULT_PLAN
    with pytest.raises(ValueError):
        Tariff(Decimal("0.1"), 60, 0)


def test_sms_rating() -> None:
    sms: dict[str, Any] = {"status": "entregue", "price": Decimal("0.09")}
    assert rate_sms(sms, DEFAULT_PLAN)["rated_cost"] == Decimal("0.09")
    assert rate_sms({**sms, "status": "erro", "price": Decimal(0)}, DEFAULT_PLAN)["price_mismatch"] is False
    assert rate_sms({**sms, "status": "aguardando"}, DEFAULT_PLAN)["rated_cost"] is None


def _record(flow: CallFlow) -> dict[str, Any]:
    state = None
    for event in flow.events:
        state = apply(state, event)
    assert state is not None
    return build_record(state)


@settings(max_examples=40, deadline=None)
@given(flow=call_flows())
def test_rate_call_is_idempotent_and_agrees_with_the_minute_rule(flow: CallFlow) -> None:
    once = rate_call(_record(flow), DEFAULT_PLAN)
    assert rate_call(once, DEFAULT_PLAN) == once
    # The generated provider bills like the default plan, so nothing must be flagged.
    for name in ("origin", "destination"):
        assert once[name]["billed_seconds_mismatch"] is False
        assert once[name]["price_mismatch"] is False
    assert once["rated_cost_total"] == once["provider_price_total"]
    assert isinstance(once["rated_cost_total"], Decimal)


@settings(max_examples=40, deadline=None)
@given(flow=call_flows())
def test_provisional_calls_are_not_rated(flow: CallFlow) -> None:
    state = None
    for event in flow.events[:-1]:
        state = apply(state, event)
    assert state is not None
    rated = rate_call(build_record(state), DEFAULT_PLAN)
    assert rated["rated_cost_total"] is None and rated["rating_plan_id"] is None
    assert rated["destination"]["rated_cost"] is None


@given(st.integers(1, 59))
def test_one_to_fifty_nine_seconds_is_one_minute(talk: int) -> None:
    rated = rate_leg(leg("movel", "atendida", talk), DEFAULT_PLAN)
    assert (rated["rated_billed_seconds"], rated["rated_cost"]) == (60, Decimal("0.35"))
