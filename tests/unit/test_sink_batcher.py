from __future__ import annotations

import pytest

from sinks.write.batcher import Batcher, InsertBatch

TOPIC = "callpipe.out.calls.v1"


def make(**bounds: float) -> Batcher:
    return Batcher(lambda topic: f"table_of_{topic.split('.')[2]}", **bounds)  # type: ignore[arg-type]


def add(b: Batcher, offset: int, now: float = 0.0, partition: int = 0, raw: bytes = b"x") -> None:
    b.add(TOPIC, partition, offset, {"n": offset}, raw, now)


def test_row_bound_seals_a_batch_at_max_rows() -> None:
    b = make(max_rows=3, max_age_s=60)
    for offset in range(7):
        add(b, offset)
    batches = b.ready(now=0.0)
    assert [x.ranges[0] for x in batches] == [(0, 2), (3, 5)]
    assert b.buffered_rows == 1
    assert [x.ranges[0] for x in b.drain()] == [(6, 6)]


def test_byte_bound_cuts_before_the_record_that_would_exceed_it() -> None:
    b = make(max_bytes=10, max_age_s=60)
    add(b, 0, raw=b"1234")
    add(b, 1, raw=b"1234")
    add(b, 2, raw=b"1234")
    add(b, 3, raw=b"12345678901")  # larger than the bound alone: a batch of its own
    assert [(*x.ranges[0], x.size_bytes) for x in b.ready(0.0)] == [
        (0, 1, 8),
        (2, 2, 4),
        (3, 3, 11),
    ]


def test_age_bound_counts_from_the_first_record() -> None:
    b = make(max_age_s=1.0)
    add(b, 0, now=10.0)
    add(b, 1, now=10.9)
    assert b.ready(now=10.99) == []
    assert b.next_deadline() == pytest.approx(11.0)
    [batch] = b.ready(now=11.0)
    assert batch.ranges == {0: (0, 1)}
    assert b.next_deadline() is None


def test_one_batch_per_table_across_partitions_with_ranges_and_commit_offsets() -> None:
    b = make(max_age_s=0)
    for offset, partition in [(5, 0), (7, 1), (6, 0), (8, 1), (9, 1)]:
        add(b, offset, partition=partition)
    [batch] = b.ready(now=0.0)
    assert batch.table == "table_of_calls"
    assert batch.ranges == {0: (5, 6), 1: (7, 9)}
    assert batch.commit_offsets == {0: 7, 1: 10}


def test_token_is_deterministic_for_the_same_offsets_and_distinct_otherwise() -> None:
    def batch_of(offsets: range, partition: int = 0) -> InsertBatch:
        b = make(max_age_s=0)
        for offset in offsets:
            add(b, offset, partition=partition)
        [batch] = b.ready(now=0.0)
        return batch

    assert batch_of(range(10, 20)).token == batch_of(range(10, 20)).token
    assert batch_of(range(10, 20)).token == f"table_of_calls/{TOPIC}/0:10-19"
    assert (
        len({batch_of(range(10, 20)).token, batch_of(range(10, 21)).token, batch_of(range(10, 20), 1).token})
        == 3
    )


def test_offsets_must_increase_until_the_partition_is_dropped() -> None:
    b = make(max_rows=2, max_age_s=60)
    add(b, 0)
    add(b, 1)  # sealed, not yet taken
    with pytest.raises(ValueError, match="offset 1 after 1"):
        add(b, 1)
    b.drop(TOPIC, 0)
    assert b.buffered_rows == 0
    add(b, 0)  # after a seek back, e.g. to retry a failed batch
    assert [x.ranges for x in b.drain()] == [{0: (0, 0)}]


def test_dropping_a_partition_keeps_the_others() -> None:
    b = make(max_age_s=60)
    add(b, 3, partition=0)
    add(b, 4, partition=1)
    b.drop(TOPIC, 0)
    [batch] = b.drain()
    assert batch.ranges == {1: (4, 4)}


def test_entries_keep_record_raw_bytes_and_headers() -> None:
    b = make(max_age_s=0)
    b.add(TOPIC, 2, 41, {"call_id": 1}, b"\x00raw", 0.0, headers={"h": "v"})
    [batch] = b.ready(0.0)
    [entry] = batch.entries
    assert (entry.offset, entry.record, entry.raw, dict(entry.headers)) == (
        41,
        {"call_id": 1},
        b"\x00raw",
        {"h": "v"},
    )


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError):
        make(max_rows=0)
