"""A schema registry that is down delays records and rejects none (docs/DESIGN.md, "Schema registry"): the streams
worker and the sink run against a gate in front of the real registry, closed while webhooks arrive and opened
later; ingest reaches the registry directly, so the records are in Kafka, framed with registry ids the services
have never fetched. Ingest itself, behind a closed gate, answers 503."""

from __future__ import annotations

import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from deploy.local.services import Services, create_topics, service_env
from deploy.local.stack import free_port
from ingest.app import create_app
from ingest.settings import Settings
from schemas import topics
from schemas.codec import RegistryCodec
from tests.integration.helpers import Gate, eventually, serve, start_at_end

pytestmark = pytest.mark.integration

SECRET = "s3cret-for-tests"
SMS = 20


def ingest(kafka: str, registry: str, tenant: str) -> Settings:
    return Settings(host="127.0.0.1", port=0, kafka_bootstrap=kafka, schema_registry_url=registry,
                    tenants={tenant: SECRET}, max_body_bytes=64 * 1024, max_json_depth=16, kafka_timeout_s=5.0,
                    retry_after_s=3, kafka_linger_ms=2.0, log_level="WARNING")


def post_sms(url: str, tenant: str, n: int) -> httpx.Response:
    body = {"id": str(82_000_000 + n), "numero_destino": "48988888888", "status_envio": "entregue",
            "data_criacao": "2026-11-20T14:00:38-03:00", "data_status": "2026-11-20T14:01:13-03:00",
            "mensagem": "outage", "preco": 0.09, "resposta_usuario": False, "respostas": []}
    return httpx.post(f"{url}/hooks/{tenant}/{SECRET}/envio_sms", content=json.dumps(body),
                      headers={"content-type": "application/json"}, timeout=30)


def test_ingest_answers_503_while_the_registry_is_down_and_stores_once_it_is_back(kafka: str,
                                                                                registry_url: str) -> None:
    tenant, gate = f"reg{uuid.uuid4().hex[:8]}", Gate(registry_url)  # closed
    try:
        with serve(create_app(ingest(kafka, gate.url, tenant), codec=RegistryCodec(gate.url))) as url:
            answer = post_sms(url, tenant, 0)
            assert answer.status_code == 503 and answer.headers["retry-after"] == "3", answer.text
            # A registry that hangs holds the request that needs it, not the server's other requests.
            gate.open(held=True)
            with ThreadPoolExecutor(1) as pool:
                pending = pool.submit(post_sms, url, tenant, 0)
                eventually(lambda: gate.held > 0, 30, "the request at the registry")
                assert httpx.get(f"{url}/metrics", timeout=10).status_code == 200
                assert not pending.done()
                gate.release()
                answer = pending.result()
            assert answer.status_code == 200, answer.text
    finally:
        gate.close()


def count(services: Services, table: str, tenant: str) -> int:
    return int(services.scalar(f"SELECT count() FROM {table} WHERE tenant = '{tenant}'"))


def test_a_registry_outage_delays_records_and_dead_letters_none(kafka: str, registry_url: str,
                                                               tmp_path: Path) -> None:
    tenant, app_id = f"reg{uuid.uuid4().hex[:8]}", f"callpipe-streams-{uuid.uuid4().hex[:8]}"
    group = f"sink-{app_id}"
    create_topics(kafka, app_id)
    eventually(lambda: start_at_end(kafka, app_id, [t.name for t in topics.INPUT_TOPICS]), 60, "the app at the end")
    eventually(lambda: start_at_end(kafka, group, [t.name for t in topics.ALL_TOPICS]), 60, "the sink at the end")
    gate = Gate(registry_url)  # closed
    services = Services(tmp_path, service_env(
        tmp_path, kafka, gate.url, STREAMS_APP_ID=app_id, SINK_GROUP_ID=group, SINK_QUERY_PORT=str(free_port()),
        LOG_LEVEL="INFO"))
    try:
        services.spawn("streams")
        services.spawn("sink")
        services.wait_http("sink", f"{services.sink_url}/health")
        with serve(create_app(ingest(kafka, registry_url, tenant), codec=RegistryCodec(registry_url))) as url:
            for n in range(SMS):
                answer = post_sms(url, tenant, n)
                assert answer.status_code == 200, answer.text

        says = {"sink": "schema registry unavailable", "streams": "schema registry failed",
                "streams-2": "schema registry failed"}

        def waiting(name: str) -> bool:
            return says[name] in services.log(name).read_text()

        def landed() -> list[int]:
            return [count(services, table, tenant) for table in ("raw_webhooks", "dead_letters", "v_sms")]

        eventually(lambda: waiting("sink") and waiting("streams"), 150, "both waiting for the registry")
        time.sleep(3)  # a few of their waits: what they would reject, they have had time to
        assert landed() == [0, 0, 0]

        # A second worker joins while the first one's batch waits: the first exits instead of holding the
        # rebalance, and the second takes its partitions, batch included.
        services.spawn("streams-2", module="streams", STREAMS_DATA_DIR=str(tmp_path / "streams-2"))
        first = services.children["streams"]
        eventually(lambda: first.poll() is not None, 150, "the first worker out of the rebalance")
        assert first.returncode == os.EX_TEMPFAIL
        eventually(lambda: waiting("streams-2"), 150, "the second worker waiting for the registry")
        assert landed() == [0, 0, 0]

        gate.open()
        # The sink inserts each table's batch on its own clock: the raw archive can land after the views.
        eventually(lambda: landed() == [SMS, 0, SMS], 150, "every SMS archived and in v_sms, no dead letter")
        assert services.dead() == ["streams"]
    finally:
        gate.close()
        services.stop()
