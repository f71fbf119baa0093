"""runtime/malloc.py against this process's own glibc (the project's machines and images run glibc)."""

from __future__ import annotations

import os

import pytest

from runtime import malloc

pytestmark = pytest.mark.skipif(malloc.usage() is None, reason="not glibc")


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_usage_counts_what_is_allocated() -> None:
    before = malloc.usage()
    held = [bytes(1000 + i % 7) for i in range(50_000)]  # larger than pymalloc's 512 bytes: malloc's own
    during = malloc.usage()
    assert before is not None and during is not None
    assert during.in_use - before.in_use > 40_000_000
    del held


def test_trim_gives_back_the_pages_freed_between_live_allocations() -> None:
    # Fragmentation as a recovery leaves it: most chunks freed, a few still live on every page, so nothing is free at
    # the heap's top and glibc would keep every page resident without a trim.
    chunks = [bytes(2000 + i % 5) for i in range(100_000)]
    kept = chunks[::50]
    del chunks
    malloc.trim()
    after_trim = resident_bytes()
    chunks = [bytes(2000 + i % 5) for i in range(100_000)]
    kept += chunks[::50]
    del chunks
    untrimmed = resident_bytes()
    assert malloc.trim()
    assert untrimmed - resident_bytes() > 100_000_000
    assert resident_bytes() < after_trim + 50_000_000
    del kept


def test_limit_arenas_is_taken_and_zero_leaves_the_default() -> None:
    assert malloc.limit_arenas(8)
    assert not malloc.limit_arenas(0)
