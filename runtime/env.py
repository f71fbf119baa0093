"""Reading settings from environment variables: each service has one settings dataclass built with these."""

from __future__ import annotations

import os


def text(name: str, default: str) -> str:
    return os.environ.get(name, default)


def optional(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def integer(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"error: {name}={raw!r} is not an integer") from None


def number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"error: {name}={raw!r} is not a number") from None
