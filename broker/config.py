"""Client configurations: the one place that decides how callpipe talks to Kafka."""

from __future__ import annotations

from typing import Any

from aiokafka.partitioner import murmur2

from schemas import topics

# librdkafka's default partitioner (crc32) differs from the Java client's and aiokafka's (murmur2): Faust would
# then see one call's events on different partitions than ingest wrote them to. murmur2_random matches both.
PARTITIONER = "murmur2_random"


def partition_for(key: bytes, partitions: int = topics.PARTITIONS) -> int:
    """The partition PARTITIONER (and aiokafka, and the Java client) gives a key: for a sender that must know it
    before it sends (streams/batch/tenants.py bundles items by the partition of their keys)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def producer_config(bootstrap: str, delivery_timeout_ms: int, **extra: Any) -> dict[str, Any]:
    """An idempotent producer whose writes are acknowledged by all in-sync replicas."""
    return {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "partitioner": PARTITIONER,
        "compression.type": "lz4",
        "linger.ms": 2,
        # After this a message fails instead of waiting for a broker that is down, so a caller can answer 503.
        "message.timeout.ms": delivery_timeout_ms,
        "socket.connection.setup.timeout.ms": min(delivery_timeout_ms, 5000),
        "log_level": 3,
        **extra,
    }


def consumer_config(bootstrap: str, group_id: str, **extra: Any) -> dict[str, Any]:
    """A consumer that never commits on its own: offsets are committed after the work they cover is durable."""
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "log_level": 3,
        **extra,
    }


def admin_config(bootstrap: str) -> dict[str, Any]:
    return {"bootstrap.servers": bootstrap, "log_level": 3}
