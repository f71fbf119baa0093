"""The allocator of a process that runs for months: jemalloc when installed, else glibc with fewer arenas and trims.

Why (docs/INVESTIGATIONS.md, "Streams workers' RSS in the hour-long soak" and the sessions after it): a streams
worker's native memory grew with its hours while Python's blocks and RocksDB's budget stayed bounded. RocksDB's
block cache frees and allocates blocks of every size in LRU order, which glibc's allocator answers with free chunks
scattered between live ones: resident, and not returned by `malloc_trim` unless a whole page is free (soak run 7:
glibc's free bytes 17 -> 51 MiB over 40 minutes). jemalloc (RocksDB's own recommendation) keeps allocations of one
size class together and returns dirty pages after a decay, on its background threads.

`run_on_jemalloc` starts the process over (same pid and arguments) with jemalloc preloaded: an allocator must be in
place before the first allocation, which only the dynamic loader can do. On glibc, `limit_arenas` is
`MALLOC_ARENA_MAX` set from inside the process and `trim` is `malloc_trim(0)`. On another C library (musl, macOS)
without jemalloc every function here does nothing and `usage` is None.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from dataclasses import dataclass

_M_ARENA_MAX = -8  # glibc's malloc.h
_ALL_ARENAS = 4096  # jemalloc's MALLCTL_ARENAS_ALL


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
        "keepcost")]


_PROCESS = ctypes.CDLL(None)
JEMALLOC = hasattr(_PROCESS, "mallctl")
"""This process allocates with jemalloc (preloaded): its `mallctl` is what the process's symbols resolve to."""
_GLIBC = not JEMALLOC and all(hasattr(_PROCESS, name) for name in ("mallopt", "malloc_trim", "mallinfo2"))
if _GLIBC:
    _PROCESS.mallinfo2.restype = _Mallinfo2


def allocator() -> str:
    return "jemalloc" if JEMALLOC else "glibc" if _GLIBC else "other"


def run_on_jemalloc(arenas: int) -> bool:
    """Start this process over on jemalloc with at most `arenas` arenas (0: jemalloc's default of 4 per core) and
    its background purging threads. Returns False (and goes on) when the process runs on jemalloc already, when
    jemalloc is not installed, or when a preload was already tried and did not take; call it first thing."""
    library = ctypes.util.find_library("jemalloc")
    if JEMALLOC or library is None or library in os.environ.get("LD_PRELOAD", ""):
        return False
    conf = "background_thread:true" + (f",narenas:{arenas}" if arenas else "")
    env = {**os.environ, "LD_PRELOAD": " ".join(filter(None, (os.environ.get("LD_PRELOAD"), library))),
           "MALLOC_CONF": ",".join(filter(None, (os.environ.get("MALLOC_CONF"), conf)))}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


@dataclass(frozen=True)
class Usage:
    in_use: int
    """Bytes handed out by malloc and not freed (glibc: mmapped chunks included)."""
    free: int
    """glibc: bytes in its arenas' free lists, resident until reused or trimmed. jemalloc: resident bytes not handed
    out (dirty pages waiting for their decay, metadata and fragmentation)."""


def limit_arenas(arenas: int) -> bool:
    """glibc: at most `arenas` arenas from now on (0: glibc's default); call before the process starts its threads."""
    return bool(arenas and _GLIBC and _PROCESS.mallopt(_M_ARENA_MAX, arenas))


def trim() -> bool:
    """Give free pages back to the system (glibc: every arena's free pages; jemalloc: every arena's dirty pages)."""
    if JEMALLOC:
        return _mallctl(f"arena.{_ALL_ARENAS}.purge".encode(), None, None) == 0
    return bool(_GLIBC and _PROCESS.malloc_trim(0))


def usage() -> Usage | None:
    if JEMALLOC:
        epoch = ctypes.c_uint64(1)  # writing the epoch refreshes jemalloc's cached statistics
        _mallctl(b"epoch", None, None, ctypes.byref(epoch), ctypes.sizeof(epoch))
        allocated, resident = _mallctl_size(b"stats.allocated"), _mallctl_size(b"stats.resident")
        return Usage(in_use=allocated, free=max(resident - allocated, 0))
    if not _GLIBC:
        return None
    info = _PROCESS.mallinfo2()
    return Usage(in_use=info.uordblks + info.hblkhd, free=info.fordblks)


def _mallctl(name: bytes, old: object, old_size: object, new: object = None, new_size: int = 0) -> int:
    return int(_PROCESS.mallctl(name, old, old_size, new, ctypes.c_size_t(new_size)))


def _mallctl_size(name: bytes) -> int:
    value, size = ctypes.c_size_t(), ctypes.c_size_t(ctypes.sizeof(ctypes.c_size_t))
    return value.value if _mallctl(name, ctypes.byref(value), ctypes.byref(size)) == 0 else 0
