"""Settings of the local stack (`make run`, `python -m deploy.local.stack`), read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runtime import env

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class StackSettings:
    data: Path
    kafka_port: int
    controller_port: int
    registry_port: int | None  # None: no registry (CALLPIPE_NO_REGISTRY)
    external_bootstrap: str | None  # KAFKA_BOOTSTRAP_SERVERS: an existing cluster, no broker started
    external_registry: str | None


def from_env() -> StackSettings:
    return StackSettings(
        data=Path(env.text("CALLPIPE_DATA", str(ROOT / ".data"))).resolve(),
        kafka_port=env.integer("KAFKA_PORT", 9092),
        controller_port=env.integer("KAFKA_CONTROLLER_PORT", 9093),
        registry_port=None if env.optional("CALLPIPE_NO_REGISTRY") else env.integer("SCHEMA_REGISTRY_PORT", 8081),
        external_bootstrap=env.optional("KAFKA_BOOTSTRAP_SERVERS"),
        external_registry=env.schema_registry_url(),
    )


def cache_dir() -> Path:
    """`CALLPIPE_CACHE`: where the fetched jars are kept."""
    return Path(env.text("CALLPIPE_CACHE", str(ROOT / ".cache")))


def kafka_heap() -> list[str]:
    """The broker's JVM heap options. The default heap is committed and touched at start (as Kafka's operations
    guide sizes a broker: -Xms equal to -Xmx): a heap that G1 grows on demand raised the broker's RSS in steps for
    the whole of the soak's hour (bench/RESULTS.md, run 9), which is growth of nothing the broker holds."""
    return env.text("KAFKA_HEAP", "-Xms768m -Xmx768m -XX:+AlwaysPreTouch").split()
