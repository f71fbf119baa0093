"""Windowed metrics: retraction of replaced versions, derived ratios, concurrency, serialization."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.domain.billing.causes import is_network_failure
from streams.domain.billing.metrics import (
    ENTITY_CALL,
    ENTITY_SINGLE_LEG,
    ENTITY_SMS,
    is_empty,
    peak_concurrency,
    window_start_ms,
)
from streams.domain.billing.rating import DEFAULT_PLAN, rate_call
from streams.domain.correlate import apply, build_record
from tests.metrics_oracle import MetricsState
from tests.unit.streams_strategies import TENANT, CallFlow, assert_valid_out, call_flows

NOW = datetime(2024, 3, 2, tzinfo=UTC)
VOLATILE = ("version", "updated_at")


def versions_of(flow: CallFlow) -> list[dict[str, Any]]:
    """Every record the correlator could publish for this call: one per prefix of its events."""
    out = []
    state = None
    for event in flow.events:
        state = apply(state, event)
        out.append(rate_call(build_record(state), DEFAULT_PLAN))
    return out


def content(state: MetricsState) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {
        key: {k: v for k, v in record.items() if k not in VOLATILE}
        for key, record in zip(sorted(state.windows), state.records(), strict=True)
        if not is_empty(state.windows[key])
    }


@st.composite
def call_sets(draw: st.DrawFn) -> list[CallFlow]:
    n = draw(st.integers(1, 6))
    return [draw(call_flows(call_id=i + 1)) for i in range(n)]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), flows=call_sets())
def test_incremental_with_replaced_versions_equals_direct(data: st.DataObject, flows: list[CallFlow]) -> None:
    finals = [versions_of(flow)[-1] for flow in flows]
    direct = MetricsState()
    for record in finals:
        direct.upsert(record, ENTITY_CALL, NOW)

    feed = []
    for flow in flows:
        versions = versions_of(flow)
        feed += [*data.draw(st.lists(st.sampled_from(versions), max_size=6)), versions[-1]]
    incremental = MetricsState()
    for i, record in enumerate(data.draw(st.permutations(feed))):
        incremental.upsert(record, ENTITY_CALL, NOW + timedelta(seconds=i))
        if data.draw(st.booleans()):
            incremental = MetricsState.from_json(incremental.to_json())
    assert content(incremental) == content(direct)


@settings(max_examples=30, deadline=None)
@given(flows=call_sets())
def test_direct_metrics_match_a_naive_recount(flows: list[CallFlow]) -> None:
    finals = [versions_of(flow)[-1] for flow in flows]
    state = MetricsState()
    for record in finals:
        state.upsert(record, ENTITY_CALL, NOW)
    records = state.records()
    for record in records:
        assert_valid_out("MetricWindow", record)
    hourly = [r for r in records if r["window_size"] == "1h" and r["dimension"] == "tenant"]
    assert sum(r["calls"] for r in hourly) == len(finals)
    assert sum(r["answered"] for r in hourly) == sum(r["answered"] for r in finals)
    assert sum((r["cost"] for r in hourly), Decimal(0)) == sum(
        (r["rated_cost_total"] for r in finals), Decimal(0)
    )
    for window in hourly:
        if window["calls"]:
            assert window["asr"] == window["answered"] / window["calls"]
            assert sum(window["disconnect_causes"].values()) == window["calls"]
        start, end = window["window_start"], window["window_end"]
        overlapping = [
            (max(r["start_at"], start), min(r["end_at"], end))
            for r in finals
            if r["start_at"] < end and r["end_at"] > start and r["end_at"] > r["start_at"]
        ]
        assert window["peak_concurrent_calls"] == brute_force_peak(overlapping)


def brute_force_peak(intervals: list[tuple[datetime, datetime]]) -> int:
    points = {s for s, _ in intervals}
    return max((sum(1 for s, e in intervals if s <= p < e) for p in points), default=0)


def test_peak_concurrency_half_open() -> None:
    assert peak_concurrency({"0:10": 1, "10:20": 1}) == 1
    assert peak_concurrency({"0:10": 2, "5:20": 1}) == 3
    assert peak_concurrency({}) == 0


def test_windows_are_aligned_to_utc() -> None:
    at = datetime(2024, 3, 1, 12, 34, 56, 789000, tzinfo=UTC)
    assert window_start_ms(at, "1m") == int(datetime(2024, 3, 1, 12, 34, tzinfo=UTC).timestamp() * 1000)
    assert window_start_ms(at, "1h") == int(datetime(2024, 3, 1, 12, tzinfo=UTC).timestamp() * 1000)


@settings(max_examples=10, deadline=None)
@given(flow=call_flows(call_id=7))
def test_stale_and_repeated_versions_are_ignored(flow: CallFlow) -> None:
    versions = versions_of(flow)
    state = MetricsState()
    changed = state.upsert(versions[-1], ENTITY_CALL, NOW)
    assert changed
    before = {k: dict(v) for k, v in state.windows.items()}
    assert state.upsert(versions[0], ENTITY_CALL, NOW) == set()
    assert state.upsert(versions[-1], ENTITY_CALL, NOW) == set()
    assert state.windows == before
    assert all(v["version"] >= 1 for v in state.windows.values())


def test_ner_excludes_user_side_causes() -> None:
    assert not is_network_failure(17, "ocupado")
    assert not is_network_failure(18, "sem resposta")
    assert is_network_failure(34, "falha")
    assert is_network_failure(None, "congestionado")
    assert not is_network_failure(None, "atendida")


def test_sms_contribution() -> None:
    base = {
        "tenant": TENANT,
        "sms_id": 1,
        "version": 1,
        "created_at": datetime(2024, 3, 1, 12, 0, 5, tzinfo=UTC),
        "status": "enviada",
        "rated_cost": Decimal("0.09"),
    }
    state = MetricsState()
    state.upsert(base, ENTITY_SMS, NOW)
    state.upsert({**base, "version": 2, "status": "erro", "rated_cost": Decimal("0.00")}, ENTITY_SMS, NOW)
    (minute,) = [r for r in state.records() if r["window_size"] == "1m" and r["dimension"] == "tenant"]
    assert (minute["sms_sent"], minute["sms_delivered"], minute["sms_failed"]) == (1, 0, 1)
    assert minute["sms_cost"] == Decimal("0.00") and minute["version"] == 2


def test_single_leg_calls_count_as_calls_of_their_tipo() -> None:
    started = datetime(2024, 3, 1, 12, 0, 30, tzinfo=UTC)
    record = {
        "tenant": TENANT,
        "call_id": 9,
        "version": 1,
        "client_id": None,
        "type": "movel",
        "status": "ocupado",
        "answered": False,
        "started_at": started,
        "end_at": started + timedelta(seconds=20),
        "talk_seconds": 0,
        "disconnect_code": 17,
        "disconnect_text": "ocupado",
        "rated_billed_seconds": 0,
        "rated_cost": Decimal("0.00"),
        "price": Decimal(0),
    }
    state = MetricsState()
    state.upsert(record, ENTITY_SINGLE_LEG, NOW)
    (window,) = [r for r in state.records() if r["window_size"] == "1m" and r["dimension"] == "tipo"]
    assert window["dimension_value"] == "movel" and window["calls"] == 1 and window["asr"] == 0
    assert window["ner"] == 1 and window["disconnect_causes"] == {"17": 1}
    assert window["peak_concurrent_calls"] == 1
    assert_valid_out("MetricWindow", window)


@settings(max_examples=10, deadline=None)
@given(flow=call_flows(call_id=3))
def test_expired_windows_are_not_resurrected_by_late_versions(flow: CallFlow) -> None:
    versions = versions_of(flow)
    state = MetricsState()
    state.upsert(versions[0], ENTITY_CALL, NOW)
    state.expire(flow.end + timedelta(days=1))
    assert state.windows == {}
    assert state.upsert(versions[-1], ENTITY_CALL, NOW) == set()
    assert MetricsState.from_json(state.to_json()).expired_before_ms == state.expired_before_ms
