"""Windowed metrics: retraction of replaced versions, derived ratios, concurrency, serialization."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.batch import metric_state
from streams.batch.window_shares import WindowShares
from streams.domain.billing.causes import is_network_failure
from streams.domain.billing.metrics import (
    ENTITY_CALL,
    ENTITY_SINGLE_LEG,
    ENTITY_SMS,
    Contribution,
    MetricEntity,
    WindowKey,
    WindowSum,
    add,
    combine,
    empty_contribution,
    peak_concurrency,
    revise,
    window_record,
    window_start_ms,
)
from streams.domain.billing.rating import DEFAULT_PLAN, rate_call
from streams.domain.correlate import apply, build_record
from streams.domain.records import epoch_ms
from tests import metrics_oracle as oracle
from tests.unit.streams_strategies import TENANT, CallFlow, assert_valid_out, call_flows

NOW = datetime(2024, 3, 2, tzinfo=UTC)
FOREVER = timedelta(days=3650)


def versions_of(flow: CallFlow) -> list[dict[str, Any]]:
    """Every record the correlator could publish for this call: one per prefix of its events."""
    out = []
    state = None
    for event in flow.events:
        state = apply(state, event)
        out.append(rate_call(build_record(state), DEFAULT_PLAN))
    return out


def entity_key(record: dict[str, Any], entity: str) -> str:
    return f"{entity}:{record['tenant']}:{record['sms_id'] if entity == ENTITY_SMS else record['call_id']}"


def fold(feed: list[tuple[dict[str, Any], str]], partitions: int = 1,
         grace: timedelta = FOREVER) -> tuple[dict[WindowKey, Any], WindowShares]:
    """Records folded like the entities agent folds them (registers, shares per partition), shares combined
    like the tenants agent combines them: window -> its record."""
    registers: dict[str, MetricEntity] = {}
    shares = WindowShares(grace)
    for i, (record, entity) in enumerate(feed):
        key = entity_key(record, entity)
        partition = zlib.crc32(key.encode()) % partitions
        old = registers.get(key)
        new = revise(old, record, entity, partition, NOW + timedelta(seconds=i))
        if new is not None and new["windows"] and not shares.is_late(partition, old, new):
            registers[key] = new
            shares.revise(partition, old, new)
    by_window: dict[WindowKey, list[WindowSum]] = {}
    for (_, window), share in shares.sums.items():
        by_window.setdefault(window, []).append(share)
    return {w: window_record(w, combine(parts)) for w, parts in by_window.items()}, shares


def content(windows: dict[WindowKey, Any]) -> dict[WindowKey, Any]:
    return oracle.contents(windows.items())


@st.composite
def call_sets(draw: st.DrawFn) -> list[CallFlow]:
    n = draw(st.integers(1, 6))
    return [draw(call_flows(call_id=i + 1)) for i in range(n)]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), flows=call_sets(), partitions=st.integers(1, 4))
def test_any_interleaving_of_versions_gives_the_aggregate_of_the_final_records(
        data: st.DataObject, flows: list[CallFlow], partitions: int) -> None:
    finals = [(versions_of(flow)[-1], ENTITY_CALL) for flow in flows]
    feed = []
    for flow in flows:
        versions = versions_of(flow)
        feed += [(v, ENTITY_CALL) for v in [*data.draw(st.lists(st.sampled_from(versions), max_size=6)), versions[-1]]]
    windows, _ = fold(data.draw(st.permutations(feed)), partitions)
    assert content(windows) == oracle.window_records(oracle.aggregate(finals))


@settings(max_examples=30, deadline=None)
@given(flows=call_sets())
def test_direct_metrics_match_a_naive_recount(flows: list[CallFlow]) -> None:
    finals = [versions_of(flow)[-1] for flow in flows]
    windows, _ = fold([(r, ENTITY_CALL) for r in finals])
    records = [windows[k] for k in sorted(windows)]
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
    assert peak_concurrency({"0": 1, "10": 0, "20": -1}) == 1  # [0, 10) and [10, 20): back to back
    assert peak_concurrency({"0": 2, "5": 1, "10": -2, "20": -1}) == 3
    assert peak_concurrency({"100": 1, "20": 1, "30": -1, "200": -1}) == 1  # as numbers: "100" < "20" as text
    assert peak_concurrency({}) == 0


def test_a_window_keeps_at_most_its_distinct_instants_however_many_calls() -> None:
    window: Contribution = empty_contribution()
    for call in range(5000):
        start = call % 60 * 1000  # 5,000 calls starting within one minute, each 30 s long
        part = empty_contribution()
        part["edges"] = {str(start): 1, str(start + 30_000): -1}
        add(window, part)
    starts = [call % 60 for call in range(5000)]
    brute = max(sum(1 for s in starts if s <= t < s + 30) for t in range(90))
    assert len(window["edges"]) <= 90 and peak_concurrency(window["edges"]) == brute


def test_contributions_stored_with_intervals_are_read_as_edges() -> None:
    old = {**empty_contribution(), "intervals": {"0:10": 2, "10:20": 1}}
    del old["edges"]
    read = metric_state.contribution(old)
    assert read["edges"] == {"0": 2, "10": -1, "20": -1} and "intervals" not in read
    assert peak_concurrency(read["edges"]) == 2


def test_windows_are_aligned_to_utc() -> None:
    at = datetime(2024, 3, 1, 12, 34, 56, 789000, tzinfo=UTC)
    assert window_start_ms(at, "1m") == int(datetime(2024, 3, 1, 12, 34, tzinfo=UTC).timestamp() * 1000)
    assert window_start_ms(at, "1h") == int(datetime(2024, 3, 1, 12, tzinfo=UTC).timestamp() * 1000)


@settings(max_examples=10, deadline=None)
@given(flow=call_flows(call_id=7))
def test_stale_and_repeated_versions_are_ignored(flow: CallFlow) -> None:
    versions = versions_of(flow)
    last = revise(None, versions[-1], ENTITY_CALL, 0, NOW)
    assert last is not None and last["windows"]
    assert revise(last, versions[0], ENTITY_CALL, 0, NOW) is None
    assert revise(last, versions[-1], ENTITY_CALL, 0, NOW) is None


def test_a_window_version_is_the_sum_of_the_versions_counted_in_it() -> None:
    first = {"tenant": TENANT, "sms_id": 1, "version": 1, "created_at": datetime(2024, 3, 1, 12, 0, 5, tzinfo=UTC),
             "status": "enviada", "rated_cost": Decimal("0.09")}
    moved = {**first, "version": 3, "created_at": datetime(2024, 3, 1, 12, 5, tzinfo=UTC)}
    other = {**first, "sms_id": 2, "version": 2}
    windows, _ = fold([(first, ENTITY_SMS), (other, ENTITY_SMS), (moved, ENTITY_SMS)])
    minute = {w[2]: r for w, r in windows.items() if w[1] == "1m" and w[3] == "tenant"}
    left, right = (minute[k] for k in sorted(minute))
    # The moved SMS still counts its version where it left: a version never goes down, the content does.
    assert (left["sms_sent"], left["version"]) == (1, 3 + 2)
    assert (right["sms_sent"], right["version"]) == (1, 3)


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
    windows, _ = fold([(base, ENTITY_SMS),
                       ({**base, "version": 2, "status": "erro", "rated_cost": Decimal("0.00")}, ENTITY_SMS)])
    (minute,) = [r for r in windows.values() if r["window_size"] == "1m" and r["dimension"] == "tenant"]
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
    windows, _ = fold([(record, ENTITY_SINGLE_LEG)])
    (window,) = [r for r in windows.values() if r["window_size"] == "1m" and r["dimension"] == "tipo"]
    assert window["dimension_value"] == "movel" and window["calls"] == 1 and window["asr"] == 0
    assert window["ner"] == 1 and window["disconnect_causes"] == {"17": 1}
    assert window["peak_concurrent_calls"] == 1
    assert_valid_out("MetricWindow", window)


@settings(max_examples=10, deadline=None)
@given(flow=call_flows(call_id=3))
def test_closed_windows_are_dropped_and_never_resurrected_by_late_versions(flow: CallFlow) -> None:
    versions = versions_of(flow)
    later = {**versions[0], "call_id": 4, "start_at": flow.end + timedelta(days=2),
             "created_at": flow.end + timedelta(days=2), "end_at": None}
    registers = {entity_key(r, ENTITY_CALL): revise(None, r, ENTITY_CALL, 0, NOW) for r in (versions[0], later)}
    shares = WindowShares(timedelta(hours=1))
    shares.rebuild([(0, key, r) for key, r in registers.items() if r is not None], [])
    # recovered registers whose every window closed go (a crash can leave one whose entity state is gone)
    assert shares.expired(0, registers.get) == [entity_key(versions[0], ENTITY_CALL)]
    assert all(window[2] >= epoch_ms(later["start_at"]) // 3_600_000 * 3_600_000 for _, window in shares.sums)
    old = registers[entity_key(versions[0], ENTITY_CALL)]
    new = revise(old, versions[-1], ENTITY_CALL, 0, NOW)
    assert new is not None and shares.is_late(0, old, new)


@settings(max_examples=10, deadline=None)
@given(flow=call_flows(call_id=5))
def test_a_version_that_adds_the_same_to_closed_windows_is_not_late(flow: CallFlow) -> None:
    final = versions_of(flow)[-1]
    shares = WindowShares(timedelta(hours=1))
    first = revise(None, final, ENTITY_CALL, 0, NOW)
    assert first is not None
    shares.advance(0, first)
    shares.revise(0, None, first)
    later = {**final, "call_id": 6, "start_at": final["start_at"] + timedelta(days=1), "end_at": None}
    other = revise(None, later, ENTITY_CALL, 0, NOW)
    assert other is not None
    shares.advance(0, other)
    same = revise(first, {**final, "version": final["version"] + 1, "recording_url": "elsewhere"}, ENTITY_CALL, 0,
                  NOW)
    assert same is not None and not shares.is_late(0, first, same)
    shares.revise(0, first, same)
    assert all(share["sum"]["calls"] >= 0 for share in shares.sums.values())
    changed = revise(first, {**final, "version": final["version"] + 2, "answered": not final["answered"]},
                     ENTITY_CALL, 0, NOW)
    assert changed is not None and shares.is_late(0, first, changed)


class SettlingStore:
    """Registers and settled sums as the `entities` agent keeps them in `metric_entities` (every write kept), over
    one partition's shares."""

    def __init__(self) -> None:
        self.shares = WindowShares(FOREVER)
        self.registers: dict[str, MetricEntity] = {}
        self.settled: dict[WindowKey, Any] = {}

    def count(self, key: str, record: dict[str, Any]) -> dict[str, Any] | None:
        """The record counted; None when it is not (stale, or its register settling: late)."""
        old = self.registers.get(key)
        if old is not None and old["settled"] is not None:
            return None
        new = revise(old, record, ENTITY_CALL, 0, NOW)
        if new is None:
            return None
        self.registers[key] = new
        self.shares.revise(0, old, new)
        return record

    def settle(self, key: str) -> None:
        register = self.registers.get(key)
        if register is not None and register["settled"] is None:
            marked = self.shares.settle(0, key, register)
            if marked is None:
                del self.registers[key]
            else:
                self.registers[key] = marked

    def end_batch(self) -> None:
        for key, seq in self.shares.advance_settling(0, 0):
            register = self.registers.get(key)
            if register is not None and register["settled"] == seq:
                del self.registers[key]
        writes, dropped = self.shares.settled_writes(0)
        self.settled.update({s["window"]: metric_state.load_settled(metric_state.dump_settled(s)) for s in writes})
        for _, window in dropped:
            self.settled.pop(window, None)
        self.shares.seal(0)

    def rebuild(self) -> None:
        registers = {k: metric_state.load_entity(metric_state.dump_entity(r)) for k, r in self.registers.items()}
        self.shares.rebuild([(0, k, r) for k, r in registers.items()], list(self.settled.values()))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), flows=call_sets())
def test_settling_at_any_point_leaves_the_aggregate_of_the_counted_records(data: st.DataObject,
                                                                          flows: list[CallFlow]) -> None:
    """Versions, duplicates, settles (an entity's state evicted), batch ends and rebuilds in any order: the shares
    are the aggregate of the last version each entity had counted when it settled. (It found the rebuild folding
    marked registers out of mark order, which lost one.)"""
    feed: list[tuple[str, Any]] = []
    for flow in flows:
        versions = versions_of(flow)
        feed += [("record", v) for v in [*data.draw(st.lists(st.sampled_from(versions), max_size=4)), versions[-1]]]
    keys = [entity_key(versions_of(flow)[0], ENTITY_CALL) for flow in flows]
    feed += [(op, None) for op in data.draw(st.lists(st.sampled_from(["settle", "end", "rebuild"]), max_size=12))]
    store = SettlingStore()
    counted: dict[str, dict[str, Any]] = {}
    evicted: set[str] = set()
    for op, record in data.draw(st.permutations(feed)):
        if op == "record":
            key = entity_key(record, ENTITY_CALL)
            # After its state's eviction, an entity's events are older than the retention and refused (an entity
            # whose events span more than the retention is two: docs/DESIGN.md, "State lifecycle").
            if key not in evicted and store.count(key, record) is not None:
                counted[key] = record
        elif op == "settle":
            evicted.add(key := data.draw(st.sampled_from(keys)))
            store.settle(key)
        elif op == "end":
            store.end_batch()
        else:
            store.rebuild()
    store.end_batch()
    store.rebuild()
    by_window: dict[WindowKey, list[WindowSum]] = {}
    for (_, window), share in store.shares.sums.items():
        by_window.setdefault(window, []).append(share)
    windows = {w: window_record(w, combine(parts)) for w, parts in by_window.items()}
    assert content(windows) == oracle.window_records(oracle.aggregate((r, ENTITY_CALL) for r in counted.values()))


def test_minute_windows_close_within_the_hour() -> None:
    """A partition's clock is the minute its latest entity is bucketed at, not the start of its hour: a 1 m window
    closes its grace after its end (it closed only when the hour changed, soak run 4)."""
    hour = epoch_ms(NOW)

    def member(minute: int) -> MetricEntity:
        part = empty_contribution()
        part["calls"] = 1
        windows: dict[WindowKey, Contribution | None] = {
            (TENANT, "1h", hour, "tenant", TENANT): part,
            (TENANT, "1m", hour + minute * 60_000, "tenant", TENANT): part,
        }
        return MetricEntity(version=1, windows=windows, updated_at=NOW, partition=0, settled=None)

    shares = WindowShares(timedelta(minutes=5))
    shares.revise(0, None, member(0))
    shares.revise(0, None, member(10))
    assert shares.clocks[0] == NOW + timedelta(minutes=10)
    shares.expired(0, lambda key: None)
    assert sorted((w[1], w[2]) for _, w in shares.sums) == [("1h", hour), ("1m", hour + 600_000)]
