"""HTTP -> real Kafka -> decoded record, and every kind of bad input, against the real broker."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.admin import callpipe_topics, ensure_topics
from broker.producer import AsyncProducer
from deploy.local import stack
from ingest.app import create_app
from ingest.settings import Settings
from schemas import topics
from schemas.codec import Codec, RegistryCodec, SingleObjectCodec
from schemas.normalize import event_id
from tests.integration.helpers import eventually, read_topic, serve, start_at_end

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"
SECRET = "s3cret-for-tests"


def settings(bootstrap: str, registry: str | None = None, timeout: float = 5.0) -> Settings:
    return Settings(host="127.0.0.1", port=0, kafka_bootstrap=bootstrap, schema_registry_url=registry,
                    tenants={"acme": SECRET}, max_body_bytes=64 * 1024, max_json_depth=16,
                    kafka_timeout_s=timeout, retry_after_s=3, kafka_linger_ms=2.0, log_level="WARNING")


def one_example_per_kind() -> list[tuple[str, dict[str, Any]]]:
    examples = []
    for kind in topics.KIND_TOPICS:
        first = sorted((FIXTURES / kind).glob("*.json"))[0]
        examples.append((kind, json.loads(first.read_text())))
    return examples


@pytest.fixture(scope="module")
def endpoint(kafka: str) -> Iterator[str]:
    with serve(create_app(settings(kafka), codec=SingleObjectCodec())) as url:
        yield url


def by_event_id(bootstrap: str, topic: str, eid: str, settle: float = 0.0) -> list[Any]:
    return [m for m in read_topic(bootstrap, topic, settle=settle)
            if dict(m.headers() or []).get("event_id") == eid.encode()]


def post(url: str, kind: str, body: bytes | str, content_type: str = "application/json",
         secret: str = SECRET) -> httpx.Response:
    data = body.encode() if isinstance(body, str) else body
    return httpx.post(f"{url}/hooks/acme/{secret}/{kind}", content=data, headers={"content-type": content_type},
                      timeout=30)


@pytest.mark.parametrize(("kind", "payload"), one_example_per_kind(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_kind_is_normalized_onto_its_topic(kafka: str, endpoint: str, kind: str, payload: dict[str, Any]) -> None:
    # A unique tag per run keeps this test's event ids apart from earlier runs against a reused broker.
    payload = {**payload, "_test_run": uuid.uuid4().hex}
    answer = post(endpoint, kind, json.dumps(payload))
    assert answer.status_code == 200, answer.text
    eid = answer.json()["event_id"]
    assert eid == event_id("acme", kind, payload)
    codec = SingleObjectCodec()
    topic = topics.KIND_TOPICS[kind]
    [msg] = by_event_id(kafka, topic.name, eid)
    record = codec.decode(topic.name, msg.value())
    assert record["event_id"] == eid and record["kind"] == kind and record["tenant"] == "acme"
    assert json.loads(record["extra_json"])["_test_run"] == payload["_test_run"]
    [raw] = by_event_id(kafka, topics.RAW.name, eid)
    archived = codec.decode(topics.RAW.name, raw.value())
    assert json.loads(archived["body"]) == payload
    assert "x-callpipe-secret" not in archived["headers"]


def test_registry_framing_round_trips(kafka: str, registry_url: str) -> None:
    kind, payload = one_example_per_kind()[0]
    payload = {**payload, "_test_run": uuid.uuid4().hex}
    codec = RegistryCodec(registry_url)
    with serve(create_app(settings(kafka, registry_url), codec=codec)) as url:
        answer = post(url, kind, json.dumps(payload))
    assert answer.status_code == 200, answer.text
    eid = answer.json()["event_id"]
    topic = topics.KIND_TOPICS[kind]
    [msg] = by_event_id(kafka, topic.name, eid)
    assert msg.value()[0] == 0  # Confluent wire format: magic byte, then the registry's schema id
    assert RegistryCodec(registry_url).decode(topic.name, msg.value())["event_id"] == eid


def dead_letters_with(kafka: str, marker: bytes, settle: float) -> list[dict[str, Any]]:
    codec = SingleObjectCodec()
    found = [codec.decode(topics.DEADLETTER.name, m.value() or b"")
             for m in read_topic(kafka, topics.DEADLETTER.name, settle=settle)]
    return [d for d in found if marker in d["body"]]


def raw_with(kafka: str, marker: bytes) -> list[Any]:
    return [m for m in read_topic(kafka, topics.RAW.name, settle=1) if marker in (m.value() or b"")]


@pytest.mark.parametrize(
    ("case", "kind", "body", "content_type", "status", "kept"),
    [
        ("invalid_json", "chamada_fim", '{"id": 1, "MARK',  "application/json", 400, True),
        ("wrong_content_type", "chamada_fim", '{"id": 1, "x": "MARK"}', "text/plain", 415, True),
        ("too_deep", "chamada_fim", '{"x":"MARK","y":' + "[" * 40 + "]" * 40 + "}", "application/json", 400, True),
        ("wrong_field_type", "chamada_fim", '{"id": {"n": 1}, "x": "MARK"}', "application/json", 422, True),
        ("missing_id", "envio_sms", '{"numero_destino": "4899", "x": "MARK"}', "application/json", 422, True),
        ("not_an_object", "aviso_saldo", '["MARK"]', "application/json", 422, True),
        ("bad_money", "aviso_saldo", '{"saldo": "MARK"}', "application/json", 422, True),
    ],
)
def test_bad_input_is_answered_and_kept(kafka: str, endpoint: str, case: str, kind: str, body: str,
                                        content_type: str, status: int, kept: bool) -> None:
    marker = uuid.uuid4().hex
    answer = post(endpoint, kind, body.replace("MARK", marker), content_type)
    assert answer.status_code == status, answer.text
    assert answer.json()["detail"], "the answer must say what is wrong"
    letters = dead_letters_with(kafka, marker.encode(), settle=0.5)
    assert len(letters) == 1 and letters[0]["reason"] and letters[0]["stage"] == "ingest"
    assert raw_with(kafka, marker.encode()), "the raw body is archived"


def test_rejected_before_reading_writes_nothing(kafka: str, endpoint: str) -> None:
    marker = uuid.uuid4().hex
    big = json.dumps({"x": marker, "pad": "p" * 70_000})
    assert post(endpoint, "chamada_fim", big).status_code == 413
    assert post(endpoint, "chamada_fim", json.dumps({"id": 1, "x": marker}), secret="wrong-secret").status_code == 401
    unknown = httpx.post(f"{endpoint}/hooks/acme/{SECRET}/no_such_kind", content=b"{}",
                         headers={"content-type": "application/json"})
    assert unknown.status_code == 404 and "chamada_fim" in unknown.json()["detail"]
    unknown = httpx.post(f"{endpoint}/hooks/acme/no_such_kind", content=b"{}",
                         headers={"content-type": "application/json", "x-callpipe-secret": SECRET})
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_kind"
    assert raw_with(kafka, marker.encode()) == []


def test_health_ready_metrics_openapi(endpoint: str) -> None:
    assert httpx.get(f"{endpoint}/healthz").status_code == 200
    assert httpx.get(f"{endpoint}/readyz").status_code == 200
    metrics = httpx.get(f"{endpoint}/metrics").text
    assert "callpipe_ingest_requests_total" in metrics and "callpipe_ingest_request_seconds_bucket" in metrics
    spec = httpx.get(f"{endpoint}/openapi.json").json()
    assert len([p for p in spec["paths"] if p.startswith("/hooks/")]) == 2 * len(topics.KIND_TOPICS)


def test_kafka_stopped_mid_request_gives_503_then_lands_on_retry() -> None:
    """A broker of its own, frozen (SIGSTOP) while a request waits for its acknowledgement."""
    data = Path(tempfile.mkdtemp(prefix="callpipe-freeze-"))
    running = stack.up(data, stack.free_port(), stack.free_port(), None)
    try:
        ensure_topics(running.bootstrap, callpipe_topics())
        producer = AsyncProducer(running.bootstrap, delivery_timeout_ms=60_000)
        codec: Codec = SingleObjectCodec()
        kind, payload = one_example_per_kind()[0]
        with serve(create_app(settings(running.bootstrap, timeout=2.0), producer=producer, codec=codec)) as url:
            os.killpg(running.kafka_pid, signal.SIGSTOP)
            try:
                answer = post(url, kind, json.dumps(payload))
                assert answer.status_code == 503
                assert answer.headers["retry-after"] == "3"
                assert httpx.get(f"{url}/readyz", timeout=10).status_code == 503
            finally:
                os.killpg(running.kafka_pid, signal.SIGCONT)
            # The sender retries, as the provider does after a 503, until the broker has caught up again.
            retries = [post(url, kind, json.dumps(payload))]
            deadline = time.monotonic() + 30
            while retries[-1].status_code == 503 and time.monotonic() < deadline:
                time.sleep(1)
                retries.append(post(url, kind, json.dumps(payload)))
            assert retries[-1].status_code == 200, retries[-1].text
        producer.close()
        eid = event_id("acme", kind, payload)
        copies = by_event_id(running.bootstrap, topics.KIND_TOPICS[kind].name, eid, settle=2)
        # Writes that timed out may still land after their 503: at-least-once, one event id for downstream dedup.
        assert 1 <= len(copies) <= len(retries) + 1
    finally:
        stack.down(data)


def test_a_backlogged_pipeline_is_refused_with_503_until_it_catches_up(kafka: str) -> None:
    streams_group, sink_group = f"streams-{uuid.uuid4().hex}", f"sink-{uuid.uuid4().hex}"

    def caught_up() -> None:
        eventually(lambda: start_at_end(kafka, streams_group, [t.name for t in topics.INPUT_TOPICS]), 60,
                   "the streams group at the end of its topics")
        eventually(lambda: start_at_end(kafka, sink_group, [t.name for t in topics.ALL_TOPICS]), 60,
                   "the sink group at the end of its topics")

    caught_up()
    limited = dataclasses.replace(settings(kafka), max_backlog=3, backlog_interval_s=0.2,
                                  streams_app_id=streams_group, sink_group_id=sink_group)
    kind, payload = one_example_per_kind()[0]
    with serve(create_app(limited, codec=SingleObjectCodec())) as url:
        answers = []
        deadline = time.monotonic() + 20
        while 503 not in answers and time.monotonic() < deadline:
            answers.append(post(url, kind, json.dumps(payload)).status_code)
            time.sleep(0.1)
        refused = post(url, kind, json.dumps(payload))
        assert answers[0] == 200 and answers[-1] == 503, answers
        assert refused.status_code == 503 and refused.headers["retry-after"] == "3"
        assert refused.json()["error"] == "backlogged" and "messages behind" in refused.json()["detail"]
        assert "callpipe_ingest_backlog " in httpx.get(f"{url}/metrics").text

        caught_up()
        deadline = time.monotonic() + 20
        while (status := post(url, kind, json.dumps(payload)).status_code) == 503 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert status == 200
