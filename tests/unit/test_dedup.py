"""Event-id deduplication with bounded retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.dedup import EventDedup

T0 = datetime(2024, 3, 1, tzinfo=UTC)
DAY = timedelta(hours=24)


def test_duplicate_within_retention_is_rejected() -> None:
    dedup = EventDedup()
    assert dedup.check_and_add("a", T0)
    assert not dedup.check_and_add("a", T0 + timedelta(hours=23))
    assert "a" in dedup and len(dedup) == 1


def test_ids_expire_after_retention_plus_at_most_one_bucket() -> None:
    dedup = EventDedup(retention=DAY, bucket=timedelta(hours=1))
    dedup.check_and_add("a", T0)
    dedup.check_and_add("b", T0 + DAY)  # watermark = T0 + 24 h: "a" is still within retention
    assert "a" in dedup
    dedup.check_and_add("c", T0 + DAY + timedelta(hours=2))
    assert "a" not in dedup and "b" in dedup
    assert dedup.check_and_add("a", T0 + DAY + timedelta(hours=2))


def test_late_event_time_does_not_move_the_watermark_back() -> None:
    dedup = EventDedup()
    dedup.check_and_add("new", T0 + 3 * DAY)
    assert dedup.check_and_add("old", T0)  # already older than the retention: accepted, then forgotten
    dedup.check_and_add("newer", T0 + 3 * DAY + timedelta(hours=2))
    assert "old" not in dedup and "new" in dedup


def test_rejects_short_retention() -> None:
    with pytest.raises(ValueError):
        EventDedup(retention=timedelta(hours=1))
    with pytest.raises(ValueError):
        EventDedup(bucket=timedelta(0))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("abcdefghij"), st.integers(0, 72 * 60)),
        max_size=60,
    )
)
def test_matches_a_reference_model_and_survives_serialization(items: list[tuple[str, int]]) -> None:
    dedup = EventDedup()
    first_seen: dict[str, datetime] = {}
    watermark: datetime | None = None
    for i, (event_id, minute) in enumerate(items):
        at = T0 + timedelta(minutes=minute)
        new = dedup.check_and_add(event_id, at)
        watermark = at if watermark is None else max(watermark, at)
        previous = first_seen.get(event_id)
        if previous is not None and watermark - previous <= DAY:
            assert not new, "a duplicate within the retention must be rejected"
        if new:
            first_seen[event_id] = at
        if i % 7 == 0:
            dedup = EventDedup.from_json(dedup.to_json())
    assert watermark is None or all(
        watermark - seen <= DAY + timedelta(hours=1)
        for seen in (first_seen[e] for e in first_seen if e in dedup)
    )
