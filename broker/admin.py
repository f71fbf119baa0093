"""Topic creation. Every topic is created up front with explicit partitions and settings: the broker does not
auto-create topics, and faust-streaming's own creation path was seen to leave an input topic missing."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from broker.config import admin_config
from schemas import topics


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


class TopicMismatch(RuntimeError):
    """An existing topic has fewer partitions than the contract says: keys would land on other partitions."""


def callpipe_topics(streams_app_id: str | None = None) -> list[TopicSpec]:
    """Every contract topic (schemas/topics.py), and the streams stage's internal ones for that app id."""
    specs = [TopicSpec(t.name, t.partitions) for t in topics.ALL_TOPICS]
    if streams_app_id is not None:
        specs += [TopicSpec(t.name, t.partitions, dict(t.config)) for t in topics.streams_internal(streams_app_id)]
    return specs


def ensure_topics(bootstrap: str, specs: Iterable[TopicSpec], replication: int = 1, timeout: float = 30) -> list[str]:
    """Create the topics that do not exist yet; return the names created. Idempotent."""
    admin = AdminClient(admin_config(bootstrap))
    wanted = {spec.name: spec for spec in specs}
    existing = admin.list_topics(timeout=timeout).topics
    for name, spec in wanted.items():
        if name in existing and len(existing[name].partitions) != spec.partitions:
            have = len(existing[name].partitions)
            raise TopicMismatch(f"topic {name} has {have} partitions, expected {spec.partitions}")
    missing = [
        NewTopic(spec.name, num_partitions=spec.partitions, replication_factor=replication, config=spec.config)
        for name, spec in wanted.items()
        if name not in existing
    ]
    if not missing:
        return []
    created = []
    for name, future in admin.create_topics(missing, request_timeout=timeout).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # another process won the race
                raise
    return created
