"""runtime/malloc.py against this process's own glibc (the project's machines and images run glibc), and against
jemalloc in a process started over on it (`make setup` installs it where it can)."""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys

import pytest

from runtime import malloc

on_glibc = pytest.mark.skipif(malloc.allocator() != "glibc", reason="not glibc")


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@on_glibc
def test_usage_counts_what_is_allocated() -> None:
    before = malloc.usage()
    held = [bytes(1000 + i % 7) for i in range(50_000)]  # larger than pymalloc's 512 bytes: malloc's own
    during = malloc.usage()
    assert before is not None and during is not None
    assert during.in_use - before.in_use > 40_000_000
    del held


@on_glibc
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


@on_glibc
def test_limit_arenas_is_taken_and_zero_leaves_the_default() -> None:
    assert malloc.limit_arenas(8)
    assert not malloc.limit_arenas(0)


ON_JEMALLOC = """
import json, os, sys
from runtime import malloc
malloc.run_on_jemalloc(2)
def resident():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
chunks = [bytes(2000 + i % 5) for i in range(100_000)]
in_use = malloc.usage().in_use
kept = chunks[::50]
del chunks
before = resident()
print(json.dumps({"pid": os.getpid(), "allocator": malloc.allocator(), "in_use": in_use, "trimmed": malloc.trim(),
                  "given_back": before - resident(), "conf": os.environ["MALLOC_CONF"],
                  "again": malloc.run_on_jemalloc(2)}))
"""


@pytest.mark.skipif(ctypes.util.find_library("jemalloc") is None, reason="jemalloc is not installed")
def test_a_process_started_over_on_jemalloc_keeps_its_pid_counts_and_purges() -> None:
    # Decay purging off, so the pages given back are the trim's whatever the scheduling: in a loaded CI run the
    # background thread had purged the freed pages before the child measured them (given back 0.7 MB).
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC_CONF")} | {
        "MALLOC_CONF": "dirty_decay_ms:-1"}
    child = subprocess.Popen([sys.executable, "-c", ON_JEMALLOC], env=env, stdout=subprocess.PIPE, text=True)
    stdout, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    seen = json.loads(stdout)
    assert seen["pid"] == child.pid
    assert seen["allocator"] == "jemalloc" and seen["conf"] == "dirty_decay_ms:-1,background_thread:true,narenas:2"
    assert seen["in_use"] > 190_000_000
    assert seen["trimmed"] and seen["given_back"] > 100_000_000, seen
    assert seen["again"] is False
