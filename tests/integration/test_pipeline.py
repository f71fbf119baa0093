"""End to end through the real running services: HTTP -> ingest -> Kafka -> streams -> sink -> ClickHouse."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from deploy.local.services import Services, create_topics, service_env
from deploy.local.stack import ROOT, free_port
from schemas.normalize import normalize
from sinks.schema.tables import catalog
from tests.integration.helpers import eventually, group_members

pytestmark = pytest.mark.integration

SAMPLE = ROOT / "deploy" / "sample" / "webhooks.jsonl"
TENANT, SECRET = "smoke", "smoke-secret-1"


@pytest.fixture(scope="module")
def pipeline(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    data = tmp_path_factory.mktemp("pipeline")
    app_id = f"callpipe-streams-{uuid.uuid4().hex[:8]}"
    create_topics(kafka, app_id)
    services = Services(data, service_env(
        data, kafka, None, INGEST_PORT=str(free_port()), SINK_QUERY_PORT=str(free_port()),
        STREAMS_APP_ID=app_id, SINK_GROUP_ID=f"sink-{app_id}", INGEST_TENANTS=f"{TENANT}:{SECRET}",
        STREAMS_INACTIVITY_TIMEOUT_S="3", STREAMS_TICK_INTERVAL_S="1", SINK_LAG_INTERVAL_S="1",
        LOG_LEVEL="WARNING",
    ))
    try:
        services.start_all()
        # Recovery, assignment and the first fetch of fresh topics take a while on a busy 2-core machine: the
        # tests measure the pipeline, not the worker's start-up.
        eventually(lambda: group_members(kafka, app_id) == 1, 120, "the streams worker in its group")
        yield services
    finally:
        services.stop()




def test_one_webhook_becomes_rows_in_clickhouse(pipeline: Services) -> None:
    call_id = int(time.time() * 1000) % 10**9
    body = json.loads((ROOT / "tests" / "fixtures" / "webhooks" / "chamada_fim").glob("*.json").__next__()
                      .read_text())
    body["id"] = call_id
    answer = httpx.post(f"{pipeline.ingest_url}/hooks/{TENANT}/{SECRET}/chamada_fim", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    event_id = answer.json()["event_id"]
    eventually(lambda: pipeline.scalar(f"SELECT count() FROM v_call_snapshots WHERE event_id = '{event_id}'")
               == "1", what="the normalized snapshot row")
    eventually(lambda: pipeline.scalar(
        f"SELECT count() FROM v_calls WHERE tenant = '{TENANT}' AND call_id = {call_id} AND end_seen") == "1",
        timeout=150, what="the completed call row")  # a fresh worker's first records take 45-70 s here (notes)


def expected_counts(tenant: str) -> dict[str, int]:
    """Distinct normalized events per table, computed from the sample with the project's own normalization."""
    by_table: dict[str, set[str]] = {}
    tables = catalog()
    for line in SAMPLE.read_text().splitlines():
        item = json.loads(line)
        record = normalize(item["kind"], tenant, item["body"], datetime.now(UTC))
        by_table.setdefault(tables.for_topic(record.topic.name).name, set()).add(record.record["event_id"])
    return {table: len(ids) for table, ids in by_table.items()}


def replay(pipeline: Services, tenant: str) -> None:
    subprocess.run([sys.executable, "-m", "ingest.replay", "--tenant", tenant, str(SAMPLE)], env=pipeline.env,
                   check=True, capture_output=True)


def view_counts(pipeline: Services, tenant: str, tables: list[str]) -> dict[str, int]:
    sql = " UNION ALL ".join(f"SELECT '{t}', count(), uniqExact(event_id) FROM v_{t} WHERE tenant = '{tenant}'"
                             for t in tables)
    rows = [line.split("\t") for line in pipeline.query(sql).splitlines()[1:]]
    for table, count, unique in rows:
        assert count == unique, f"v_{table} shows duplicates: {count} rows for {unique} events"
    return {table: int(count) for table, count, _ in rows}


def derived_counts(pipeline: Services, tenant: str) -> Counter[str]:
    sql = (f"SELECT 'calls', count() FROM v_calls WHERE tenant = '{tenant}' UNION ALL "
           f"SELECT 'sms', count() FROM v_sms WHERE tenant = '{tenant}' UNION ALL "
           f"SELECT 'single_leg_calls', count() FROM v_single_leg_calls WHERE tenant = '{tenant}'")
    return Counter({name: int(n) for name, n in (line.split("\t") for line in pipeline.query(sql).splitlines()[1:])})


def test_replays_and_a_sink_crash_leave_every_record_once(pipeline: Services) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    expected = expected_counts(tenant)
    tables = sorted(expected)
    replay(pipeline, tenant)
    eventually(lambda: view_counts(pipeline, tenant, tables) == expected, what="first replay landed")
    eventually(lambda: derived_counts(pipeline, tenant)["calls"] > 0, what="completed calls")
    time.sleep(5)  # provisional calls are emitted after the inactivity timeout
    derived = derived_counts(pipeline, tenant)

    replay(pipeline, tenant)  # the same webhooks again: new offsets, same event ids
    time.sleep(1.5)
    pipeline.kill("sink")  # in the middle of the second replay's batches
    replay(pipeline, tenant)
    pipeline.spawn("sink")
    pipeline.wait_http("sink", f"{pipeline.sink_url}/health")
    time.sleep(8)
    assert view_counts(pipeline, tenant, tables) == expected
    assert derived_counts(pipeline, tenant) == derived
    assert pipeline.scalar(f"SELECT count() FROM v_calls WHERE tenant = '{tenant}' AND end_seen") == pipeline.scalar(
        f"SELECT uniqExact(call_id) FROM v_call_snapshots WHERE tenant = '{tenant}' AND kind = 'chamada_fim'")


def test_consumer_lag_is_measured_for_both_groups(pipeline: Services) -> None:
    groups = (pipeline.env["SINK_GROUP_ID"], pipeline.env["STREAMS_APP_ID"])
    sql = (f"SELECT uniqExact(group_id) FROM consumer_lag WHERE group_id IN {groups!r} "
           "AND measured_at > now() - INTERVAL 1 MINUTE")
    eventually(lambda: pipeline.scalar(sql) == "2", what="lag rows of the sink and the streams groups")
    # Caught up after the other tests' writes: the sink's own lag comes back to zero.
    eventually(lambda: pipeline.scalar(
        f"SELECT sum(lag) FROM consumer_lag WHERE group_id = '{groups[0]}' "
        f"AND measured_at = (SELECT max(measured_at) FROM consumer_lag WHERE group_id = '{groups[0]}')") == "0",
        what="the sink's lag back to zero")
