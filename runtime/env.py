"""Reading settings from environment variables: each service has one settings dataclass built with these, and
nothing else reads the environment. The settings every service shares are read here, once per service start."""

from __future__ import annotations

import os

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


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


def choice(name: str, choices: tuple[str, ...], default: str) -> str:
    value = text(name, default).strip() or default
    if value not in choices:
        raise SystemExit(f"error: {name}={value!r} is not one of {', '.join(choices)}")
    return value


def kafka_bootstrap() -> str:
    """`KAFKA_BOOTSTRAP_SERVERS`: the brokers every service talks to."""
    return text("KAFKA_BOOTSTRAP_SERVERS", DEFAULT_BOOTSTRAP)


def schema_registry_url() -> str | None:
    """`SCHEMA_REGISTRY_URL`: unset, records are Avro single-object encoded with the bundled schemas."""
    return optional("SCHEMA_REGISTRY_URL")


def log_level() -> str:
    return text("LOG_LEVEL", "INFO")


def inherited(overrides: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment with `overrides`: what a child process is started with."""
    return {**os.environ, **(overrides or {})}
