"""`python -m ingest.replay` against the real broker: a replay writes the event ids of the first run again,
from a captured file, from the raw archive and over HTTP."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from broker.config import consumer_config
from ingest import replay
from ingest.app import create_app
from ingest.settings import Settings
from schemas import topics
from schemas.codec import SingleObjectCodec
from schemas.normalize import event_id
from tests.integration.helpers import serve

pytestmark = pytest.mark.integration

SECRET = "replay-secret-for-tests"
NORMALIZED = tuple(t.name for t in topics.INPUT_TOPICS)
# (event id, received_at) of each record of one tenant, per topic.
Records = dict[str, Counter[tuple[str, datetime]]]


@pytest.fixture
def kafka_env(kafka: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka)
    monkeypatch.delenv("SCHEMA_REGISTRY_URL", raising=False)  # the tests decode single-object encoding
    return kafka


def tenant() -> str:
    # Event ids include the tenant: a fresh one keeps this run's records apart from other tests and runs.
    return f"replay-{uuid.uuid4().hex[:12]}"


def expected(tenant: str, path: Path = replay.SAMPLE) -> dict[str, Counter[str]]:
    ids: dict[str, Counter[str]] = defaultdict(Counter)
    for line in path.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        eid = event_id(tenant, item["kind"], item["body"])
        ids[topics.KIND_TOPICS[item["kind"]].name][eid] += 1
        ids[topics.RAW.name][eid] += 1
    return ids


def records(bootstrap: str, tenant: str, timeout: float = 30.0) -> Records:
    """Every record of `tenant` on the raw, normalized and dead-letter topics, up to their current end."""
    codec = SingleObjectCodec()
    consumer = Consumer(consumer_config(bootstrap, f"test-{uuid.uuid4().hex}"))
    ends: dict[tuple[str, int], int] = {}
    assigned = []
    for topic in (topics.RAW, *topics.INPUT_TOPICS, topics.DEADLETTER):
        for partition in range(topic.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic.name, partition), timeout=10)
            if high > low:
                assigned.append(TopicPartition(topic.name, partition, low))
                ends[(topic.name, partition)] = high
    consumer.assign(assigned)
    found: Records = defaultdict(Counter)
    deadline = time.monotonic() + timeout
    try:
        while ends and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                if msg.error() is not None:
                    continue
                name, partition, offset = msg.topic() or "", msg.partition() or 0, msg.offset() or 0
                headers = dict(msg.headers() or [])
                if headers.get("tenant") == tenant.encode():
                    record = codec.decode(name, msg.value() or b"")
                    eid = headers.get("event_id")
                    assert isinstance(eid, bytes), f"{name} record without an event_id header"
                    found[name][(eid.decode(), record["received_at"])] += 1
                if offset >= ends.get((name, partition), 0) - 1:
                    ends.pop((name, partition), None)
    finally:
        consumer.close()
    assert not ends, f"topics not read to their end within {timeout}s: {sorted(ends)}"
    return found


def ids(found: Records) -> dict[str, Counter[str]]:
    by_id: dict[str, Counter[str]] = defaultdict(Counter)
    for name, pairs in found.items():
        for (eid, _), n in pairs.items():
            by_id[name][eid] += n
    return by_id


def test_replaying_the_sample_twice_writes_the_same_event_ids_again(kafka_env: str) -> None:
    who = tenant()
    want = expected(who)
    assert replay.main(["--tenant", who, str(replay.SAMPLE)]) == 0
    first = ids(records(kafka_env, who))
    assert first == want  # every kind normalized (no dead letter), each webhook once, duplicates included
    assert replay.main(["--tenant", who]) == 0  # the bundled sample is the default file
    second = ids(records(kafka_env, who))
    assert set(second) == set(want)
    for name in want:
        assert second[name] == first[name] + first[name], name  # no new id, each once more per replay


def test_replay_from_the_raw_archive_keeps_ids_and_received_at(
    kafka_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    who = tenant()
    assert replay.main(["--tenant", who]) == 0
    original = records(kafka_env, who)
    capsys.readouterr()
    assert replay.main(["--from-raw", "--tenant", who]) == 0
    total = sum(expected(who)[topics.RAW.name].values())
    summary = f"replayed {total} {topics.RAW.name} records: {total} normalized, 0 dead-lettered"
    assert summary in capsys.readouterr().out
    again = records(kafka_env, who)
    assert again[topics.RAW.name] == original[topics.RAW.name]  # the archive is not written twice
    for name in NORMALIZED:
        assert again[name] == original[name] + original[name], name  # same id and received_at as the original
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert replay.main(["--from-raw", "--tenant", who, "--since", later]) == 0
    assert "replayed 0 " in capsys.readouterr().out


def test_post_pushes_the_whole_sample_through_the_http_endpoint(
    kafka_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    who = tenant()
    settings = Settings(host="127.0.0.1", port=0, kafka_bootstrap=kafka_env, schema_registry_url=None,
                        tenants={who: SECRET}, max_body_bytes=256 * 1024, max_json_depth=16,
                        kafka_timeout_s=10.0, retry_after_s=1, kafka_linger_ms=2.0,
                        log_level="WARNING")
    lines = len(replay.SAMPLE.read_text(encoding="utf-8").splitlines())
    with serve(create_app(settings, codec=SingleObjectCodec())) as url:
        assert replay.main(["--post", url, "--tenant", who, "--secret", SECRET]) == 0
    assert capsys.readouterr().out.strip() == f"sent {lines}, accepted {lines}, rejected 0 (200: {lines})"
    assert ids(records(kafka_env, who)) == expected(who)


def test_post_retries_503_after_the_retry_after_pause(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    answers: Counter[str] = Counter()

    async def flaky(request: Request) -> Response:
        answers[request.url.path] += 1
        if answers[request.url.path] == 1:
            return JSONResponse({"error": "unavailable"}, status_code=503, headers={"Retry-After": "0"})
        return JSONResponse({"status": "accepted"})

    sample = tmp_path / "two.jsonl"
    sample.write_text('{"kind":"aviso_saldo","body":{"saldo":"1.0"}}\n{"kind":"voicemail","body":{"id":1}}\n')
    app = Starlette(routes=[Route("/hooks/{tenant}/{kind}", flaky, methods=["POST"])])
    with serve(app) as url:
        assert replay.main(["--post", url, "--tenant", "t", "--secret", "s", str(sample)]) == 0
    assert capsys.readouterr().out.strip() == "sent 2, accepted 2, rejected 0 (200: 2)"
    assert answers == {"/hooks/t/aviso_saldo": 2, "/hooks/t/voicemail": 2}
