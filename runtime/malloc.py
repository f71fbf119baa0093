"""glibc's allocator for a process that runs for months: fewer arenas, free pages given back, and what it holds.

Why (docs/INVESTIGATIONS.md, "Streams workers' RSS in the hour-long soak"): a streams worker's RSS grew 14-28 % in
an hour while Python's blocks and RocksDB's budget stayed bounded; the growth was native memory outside both
(`[heap]` and anonymous mappings). glibc gives every thread that allocates concurrently an arena of its own (up to 8
per core) and returns a freed page to the system only from the top of an arena, so the bursts of a changelog
recovery and RocksDB's background threads leave pages that are free but resident. `limit_arenas` is
`MALLOC_ARENA_MAX` set from inside the process (so it holds however the worker is started) and `trim` is
`malloc_trim(0)`, which hands every free page of every arena back.

On another C library (musl, macOS) every function here does nothing and `usage` is empty.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

_M_ARENA_MAX = -8  # glibc's malloc.h


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
        "keepcost")]


def _glibc() -> ctypes.CDLL | None:
    libc = ctypes.CDLL(None)
    if not all(hasattr(libc, name) for name in ("mallopt", "malloc_trim", "mallinfo2")):
        return None
    libc.mallinfo2.restype = _Mallinfo2
    return libc


_LIBC = _glibc()


@dataclass(frozen=True)
class Usage:
    in_use: int
    """Bytes handed out by malloc and not freed (mmapped chunks included)."""
    free: int
    """Bytes glibc holds in its arenas' free lists: resident until trimmed or reused."""


def limit_arenas(arenas: int) -> bool:
    """At most `arenas` arenas from now on (0: glibc's default); call before the process starts its threads."""
    return bool(arenas and _LIBC is not None and _LIBC.mallopt(_M_ARENA_MAX, arenas))


def trim() -> bool:
    """Give the free pages of every arena back to the system; True if any were."""
    return bool(_LIBC is not None and _LIBC.malloc_trim(0))


def usage() -> Usage | None:
    if _LIBC is None:
        return None
    info = _LIBC.mallinfo2()
    return Usage(in_use=info.uordblks + info.hblkhd, free=info.fordblks)
