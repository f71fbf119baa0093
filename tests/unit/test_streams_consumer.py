"""streams/faustapp/patches.py: offsets acked twice (a gap Faust filled, then the same records acked for real) do not
slow the commit down to one offset at a time."""

from __future__ import annotations

from collections import defaultdict

from faust.transport.drivers.aiokafka import Consumer
from faust.types import TP
from intervaltree import IntervalTree

from streams.faustapp.patches import SeekingConsumer

PARTITION = TP("callpipe-streams-ticks", 0)


def ack_state(consumer: Consumer, committed: int, acked: list[int]) -> Consumer:
    """Only the bookkeeping `_new_offset` reads (probe figures of the failing run: 28 entries for 18 offsets)."""
    consumer._committed_offset = defaultdict(lambda: None, {PARTITION: committed})
    consumer._acked = defaultdict(list, {PARTITION: list(acked)})
    consumer._acked_index = defaultdict(set, {PARTITION: set(acked)})
    consumer._gap = defaultdict(IntervalTree)
    return consumer


# Offsets 60..77 acked, 60..69 twice (they were a gap first).
TWICE = [*range(60, 70), *range(60, 78)]


def test_stock_faust_commits_one_offset_past_a_repeat() -> None:
    stock = ack_state(Consumer.__new__(Consumer), committed=60, acked=TWICE)
    assert stock._new_offset(PARTITION) == 61  # the bug: the first run ends at the first repeat


def test_the_consumer_commits_everything_acked() -> None:
    consumer = ack_state(SeekingConsumer.__new__(SeekingConsumer), committed=60, acked=TWICE)
    assert consumer._new_offset(PARTITION) == 78


def test_a_hole_still_stops_the_commit() -> None:
    consumer = ack_state(SeekingConsumer.__new__(SeekingConsumer), committed=60,
                         acked=[60, 61, 61, 62, 64, 65])
    assert consumer._new_offset(PARTITION) == 63  # 63 was never acked: nothing past it is committed
