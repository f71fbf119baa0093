"""The sink scales out as members of one consumer group: two sink processes split the partitions, and together
they land exactly what was sent. The embedded engine takes one writer per data directory, so each
process writes its own here; against a ClickHouse server they would share one database (docs/DESIGN.md,
"Scaling")."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
from confluent_kafka import ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient

from broker.config import admin_config
from deploy.local.services import Services, service_env
from deploy.local.stack import free_port
from ingest.app import create_app
from ingest.settings import Settings
from schemas import topics
from schemas.codec import SingleObjectCodec
from sinks.tools.sql import ask_server
from tests.integration.helpers import eventually, serve, start_at_end

SECRET = "s3cret-for-tests"
SMS = 60


def event_ids(url: str, tenant: str) -> list[str]:
    answer = ask_server(url, f"SELECT event_id FROM raw_webhooks WHERE tenant = '{tenant}'", "TSV")
    return answer.decode().split()[1:] if answer else []  # after the header line


def shares(bootstrap: str, group: str) -> list[int]:
    """Partitions each member of the stable group holds, over every topic."""
    admin = AdminClient(admin_config(bootstrap))
    try:
        description = admin.describe_consumer_groups([group], request_timeout=5)[group].result(timeout=10)
    except (KafkaException, TimeoutError):
        return []
    if description.state != ConsumerGroupState.STABLE:
        return []
    return sorted(len(member.assignment.topic_partitions) for member in description.members)


def test_two_sinks_in_one_group_split_the_partitions_and_land_everything_once(kafka: str, tmp_path: Path) -> None:
    tenant, group = f"scale{uuid.uuid4().hex[:8]}", f"sink-scaleout-{uuid.uuid4().hex[:8]}"
    eventually(lambda: start_at_end(kafka, group, [t.name for t in topics.ALL_TOPICS]), 60,
               "the sink group at the end of its topics")
    ports = {"sink": free_port(), "sink-2": free_port()}
    services = Services(tmp_path, service_env(tmp_path, kafka, None, SINK_GROUP_ID=group, LOG_LEVEL="INFO"))
    try:
        for name, port in ports.items():
            services.spawn(name, module="sinks", SINK_QUERY_PORT=str(port),
                           CLICKHOUSE_URL=f"chdb://{(tmp_path / name).resolve()}")
            services.wait_http(name, f"http://127.0.0.1:{port}/health")
        # cooperative-sticky moves partitions in a second rebalance, and balances the count over all topics
        # (not each topic): one topic can sit on one member.
        total = sum(t.partitions for t in topics.ALL_TOPICS)
        eventually(lambda: shares(kafka, group) == [total // 2, total - total // 2], 90,
                   "both sinks holding half of the partitions")

        settings = Settings(host="127.0.0.1", port=0, kafka_bootstrap=kafka, schema_registry_url=None,
                            tenants={tenant: SECRET}, max_body_bytes=64 * 1024, max_json_depth=16,
                            kafka_timeout_s=5.0, retry_after_s=3, kafka_linger_ms=2.0, log_level="WARNING")
        sent = []
        with serve(create_app(settings, codec=SingleObjectCodec())) as url:
            for n in range(SMS):
                body = {"id": str(81_000_000 + n), "numero_destino": "48988888888", "status_envio": "entregue",
                        "data_criacao": "2026-11-20T14:00:38-03:00", "data_status": "2026-11-20T14:01:13-03:00",
                        "mensagem": "scale-out", "preco": 0.09, "resposta_usuario": False, "respostas": []}
                answer = httpx.post(f"{url}/hooks/{tenant}/{SECRET}/envio_sms", content=json.dumps(body),
                                    headers={"content-type": "application/json"}, timeout=30)
                assert answer.status_code == 200, answer.text
                sent.append(answer.json()["event_id"])

        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        eventually(lambda: sum(len(event_ids(u, tenant)) for u in urls.values()) >= SMS, 90, "every webhook landed")
        both = [i for u in urls.values() for i in event_ids(u, tenant)]
        assert set(both) == set(sent) and len(both) == len(sent), (len(both), len(set(both)), len(sent))
        assert not services.dead()
    finally:
        services.stop()
