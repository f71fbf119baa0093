"""Streams failover: two Faust workers share the partitions, one is SIGKILLed mid-stream, the survivor takes over.

The group starts at the end of the shared topics and the test makes its own load (the sample under a few other
tenants) just before the kill, so the workers are busy and hold processed but uncommitted events whatever ran
before. What must hold afterwards (docs/DESIGN.md, "Guarantees: Streams and Sink"):
- every call, single-leg call and SMS of the sample is in its view exactly once, at the version a clean fold of
  the sample gives (computed here in-process with the domain functions), provisional calls included;
- the output topics may carry duplicates (at-least-once), the views never do;
- the per-tenant metric windows count each call and SMS once, although the tenant feed was replayed;
- the survivor's tables, restored from the changelogs, treat a replay of the tail of the sample as duplicates:
  nothing in the views changes.
"""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Message, TopicPartition

from broker.config import consumer_config
from deploy.local.services import Services, create_topics, service_env
from deploy.local.stack import ROOT, free_port
from schemas import topics
from schemas.codec import CodecError, codec_from_settings
from schemas.normalize import normalize
from streams import settings as streams_settings
from streams.batch import state_codec
from streams.domain import correlate, single_leg, sms
from streams.domain.billing.metrics import ENTITY_CALL, ENTITY_SINGLE_LEG, ENTITY_SMS
from streams.domain.billing.rating import rate_call, rate_single_leg, rate_sms
from tests.integration.helpers import eventually, group_members, read_topic, start_at_end
from tests.metrics_oracle import aggregate

pytestmark = pytest.mark.integration

SAMPLE = ROOT / "deploy" / "sample" / "webhooks.jsonl"
INACTIVITY_S = 3
# Faust reads these from the environment (the app passes none of them): a SIGKILLed member is evicted after the
# session timeout, so 10 s (the broker's minimum is 6 s) instead of Faust's 60 s keeps the takeover short. The
# long commit interval makes it very likely that the killed worker dies with processed but uncommitted events,
# which the survivor must then replay onto the state it restored from the changelogs.
FAUST_ENV = {"BROKER_SESSION_TIMEOUT": "10", "BROKER_HEARTBEAT_INTERVAL": "1", "BROKER_COMMIT_INTERVAL": "10"}
BOOLS = {"true": "1", "false": "0"}
SMS_KINDS = frozenset({"envio_sms", "resposta_sms"})
# Copies of the sample replayed (under other tenants) just before the kill. With 10 it failed about one run in
# five until the seek fix in streams/faustapp/patches.py (docs/DESIGN.md, "Known limits"): run it with 10 after
# changing that file or the Faust version.
LOAD_TENANTS = int(os.environ.get("FAILOVER_LOAD_TENANTS", "3"))
STREAMS_INPUTS = [t.name for t in topics.INPUT_TOPICS] + [topics.TENANT_FEED, topics.WINDOW_SHARES]
SINK_INPUTS = [t.name for t in topics.OUTPUT_TOPICS]


@dataclass(frozen=True)
class Expected:
    calls: set[tuple[int, int, int]]  # (call_id, version, end_seen)
    single_leg: set[tuple[int, int]]  # (call_id, version)
    sms: set[tuple[int, int]]  # (sms_id, version)
    windows: dict[int, tuple[int, int, int]]  # 1h window start (epoch ms) -> (calls, answered, sms_sent)


def expected_outputs(tenant: str, lines: list[str]) -> Expected:
    """Fold the sample like the agents do, with a `now` long after the last event so that every call without
    an end webhook is emitted as provisional, then feed the final versions to the tenant's metrics."""
    received = datetime.now(UTC)
    calls: dict[int, Any] = {}
    legs: dict[int, Any] = {}
    messages: dict[int, Any] = {}
    for line in lines:
        item = json.loads(line)
        record = normalize(item["kind"], tenant, item["body"], received).record
        if record["kind"] in correlate.CALL_KINDS:
            calls[record["call_id"]] = correlate.apply(calls.get(record["call_id"]), record)
        elif record["kind"] in single_leg.KINDS:
            legs[record["call_id"]] = single_leg.apply(legs.get(record["call_id"]), record)
        elif record["kind"] in SMS_KINDS:
            messages[record["sms_id"]] = sms.apply(messages.get(record["sms_id"]), record)
    plan = streams_settings.from_env().rating_plan
    later = received + timedelta(days=1)
    call_records = []
    for state in calls.values():
        _, emitted = correlate.emit(state, later, timedelta(seconds=INACTIVITY_S))
        assert emitted is not None
        call_records.append(rate_call(emitted, plan))
    leg_records = [rate_single_leg(single_leg.to_record(s), plan) for s in legs.values()]
    sms_records = [rate_sms(sms.to_record(s), plan) for s in messages.values()]
    windows = aggregate([*((r, ENTITY_CALL) for r in call_records), *((r, ENTITY_SINGLE_LEG) for r in leg_records),
                         *((r, ENTITY_SMS) for r in sms_records)])
    return Expected(
        calls={(r["call_id"], r["version"], int(r["end_seen"])) for r in call_records},
        single_leg={(r["call_id"], r["version"]) for r in leg_records},
        sms={(r["sms_id"], r["version"]) for r in sms_records},
        windows={key[2]: (w["calls"], w["answered"], w["sms_sent"]) for key, w in windows.items()
                 if key[1] == "1h" and key[3] == "tenant"},
    )


@dataclass
class Cluster:
    services: Services
    bootstrap: str
    app_id: str
    sink_group: str
    metrics_port: int
    """Of the `streams` worker (the one never killed)."""


@pytest.fixture
def cluster(kafka: str, tmp_path: Path) -> Iterator[Cluster]:
    app_id = f"callpipe-streams-failover-{uuid.uuid4().hex[:8]}"
    metrics_port = free_port()
    sink_group = f"sink-{app_id}"
    create_topics(kafka, app_id)
    inputs = [*STREAMS_INPUTS, topics.TICKS]
    eventually(lambda: start_at_end(kafka, app_id, inputs), 60, "the group's offsets at the end of the topics")
    services = Services(tmp_path, service_env(
        tmp_path, kafka, None, SINK_QUERY_PORT=str(free_port()), STREAMS_APP_ID=app_id, SINK_GROUP_ID=sink_group,
        STREAMS_INACTIVITY_TIMEOUT_S=str(INACTIVITY_S), STREAMS_TICK_INTERVAL_S="1", LOG_LEVEL="INFO",
        **FAUST_ENV,
    ))
    try:
        services.spawn("sink")
        services.spawn("streams", STREAMS_METRICS_PORT=str(metrics_port))
        services.spawn("streams-2", module="streams", STREAMS_DATA_DIR=str(tmp_path / "streams-2"))
        services.wait_http("sink", f"{services.sink_url}/health")
        yield Cluster(services, kafka, app_id, sink_group, metrics_port)
    finally:
        services.stop()


def behind(bootstrap: str, group: str, names: list[str]) -> list[str]:
    """The partitions `group` has not committed to their end: "topic[p] committed/end"."""
    consumer = Consumer(consumer_config(bootstrap, group))
    try:
        committed = consumer.committed([TopicPartition(n, p) for n in names for p in range(topics.PARTITIONS)],
                                       timeout=10)
        lagging = []
        for tp in committed:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            if high > max(tp.offset, low):
                lagging.append(f"{tp.topic}[{tp.partition}] {tp.offset}/{high}")
        return lagging
    finally:
        consumer.close()


def caught_up(bootstrap: str, group: str, names: list[str]) -> bool:
    """Whether `group` has committed every partition of `names` up to its end. The consumer never subscribes:
    it only reads the group's committed offsets, so the group's members are not disturbed."""
    return not behind(bootstrap, group, names)


def replay(cluster: Cluster, tenant: str, path: Path) -> None:
    subprocess.run([sys.executable, "-m", "ingest.replay", "--tenant", tenant, str(path)],
                   env=cluster.services.env, check=True, capture_output=True)


def rows(cluster: Cluster, sql: str) -> list[tuple[int, ...]]:
    """Integer columns; booleans come as `true`/`false` in TSV."""
    return [tuple(int(BOOLS.get(v, v)) for v in line.split("\t"))
            for line in cluster.services.query(sql).splitlines()[1:]]


def observed(cluster: Cluster, tenant: str) -> Expected:
    where = f"WHERE tenant = '{tenant}'"
    windows = rows(cluster, f"SELECT toUnixTimestamp64Milli(window_start), calls, answered, sms_sent "
                            f"FROM v_metric_windows {where} AND window_size = '1h' AND dimension = 'tenant'")
    return Expected(
        calls={(a, b, c) for a, b, c in rows(cluster, f"SELECT call_id, version, end_seen FROM v_calls {where}")},
        single_leg={(a, b) for a, b in rows(cluster, f"SELECT call_id, version FROM v_single_leg_calls {where}")},
        sms={(a, b) for a, b in rows(cluster, f"SELECT sms_id, version FROM v_sms {where}")},
        windows={w[0]: (w[1], w[2], w[3]) for w in windows},
    )


def view_duplicates(cluster: Cluster, tenant: str) -> dict[str, tuple[int, int]]:
    """(rows, distinct identities) per view, for the tenant."""
    checks = {"v_calls": "call_id", "v_single_leg_calls": "call_id", "v_sms": "sms_id",
              "v_metric_windows": "(window_size, dimension, dimension_value, window_start)"}
    sql = " UNION ALL ".join(f"SELECT '{view}', count(), uniqExact({identity}) FROM {view} WHERE tenant = '{tenant}'"
                             for view, identity in checks.items())
    lines = [line.split("\t") for line in cluster.services.query(sql).splitlines()[1:]]
    return {view: (int(n), int(unique)) for view, n, unique in lines}


def records_on(cluster: Cluster, topic: str) -> Iterator[tuple[Message, dict[str, Any]]]:
    """Every message of a shared output topic this cluster's codec reads, decoded. Other tests leave records in
    the registry's framing there (tests/integration/test_registry_outage.py), which are no tenant of this one."""
    codec = codec_from_settings(cluster.services.env.get("SCHEMA_REGISTRY_URL"))
    for msg in read_topic(cluster.bootstrap, topic, timeout=30):
        try:
            yield msg, codec.decode(topic, msg.value() or b"")
        except CodecError:
            continue


def topic_versions(cluster: Cluster, tenant: str, topic: topics.Topic, identity: str) -> list[tuple[int, int]]:
    """(identity, version) of every message of the tenant on an output topic."""
    return [(record[identity], record["version"]) for _, record in records_on(cluster, topic.name)
            if record["tenant"] == tenant]


def snapshot(cluster: Cluster, tenant: str) -> str:
    """Everything the views say about the tenant's derived records, to compare before and after a replay
    (balance status is left out: it is re-stamped with the wall clock on every tenant-feed event)."""
    where = f"WHERE tenant = '{tenant}'"
    return "\n".join(cluster.services.query(sql) for sql in (
        f"SELECT * FROM v_calls {where} ORDER BY call_id",
        f"SELECT * FROM v_single_leg_calls {where} ORDER BY call_id",
        f"SELECT * FROM v_sms {where} ORDER BY sms_id",
        f"SELECT * EXCEPT (updated_at) FROM v_metric_windows {where} "
        f"ORDER BY window_size, dimension, dimension_value, window_start",
    ))


def settled(cluster: Cluster) -> bool:
    """Streams committed every input (so its outputs were flushed) and the sink committed every output."""
    return (caught_up(cluster.bootstrap, cluster.app_id, STREAMS_INPUTS)
            and caught_up(cluster.bootstrap, cluster.sink_group, SINK_INPUTS))


def lagging(cluster: Cluster) -> str:
    """What is not committed yet, for a failure message."""
    return (f"streams behind: {behind(cluster.bootstrap, cluster.app_id, STREAMS_INPUTS)}; sink behind: "
            f"{behind(cluster.bootstrap, cluster.sink_group, SINK_INPUTS)}")


def wait_settled(cluster: Cluster, what: str) -> None:
    try:
        eventually(lambda: settled(cluster), 120, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc} ({lagging(cluster)})") from None


def test_a_killed_worker_loses_and_duplicates_nothing(cluster: Cluster, tmp_path: Path) -> None:
    tenant = f"fo{uuid.uuid4().hex[:8]}"
    lines = SAMPLE.read_text().splitlines()
    expected = expected_outputs(tenant, lines)
    cut = len(lines) * 2 // 5
    head, tail = tmp_path / "head.jsonl", tmp_path / "tail.jsonl"
    head.write_text("\n".join(lines[:cut]) + "\n")
    tail.write_text("\n".join(lines[cut:]) + "\n")

    eventually(lambda: group_members(cluster.bootstrap, cluster.app_id) == 2, 60, "both workers in the group")
    for n in range(LOAD_TENANTS):  # a backlog, so that the kill hits workers busy with a queue of events
        replay(cluster, f"{tenant}-load{n}", SAMPLE)
    replay(cluster, tenant, head)
    time.sleep(1)  # the head is being processed, and not yet committed (commit interval 10 s)
    cluster.services.kill("streams-2")
    replay(cluster, tenant, tail)  # lands in part on the dead worker's partitions, until the group notices

    eventually(lambda: group_members(cluster.bootstrap, cluster.app_id) == 1, 60, "the survivor alone")
    try:
        eventually(lambda: observed(cluster, tenant) == expected, 180, "every record of the sample, once")
    except AssertionError:
        print(lagging(cluster))
        # What the SMS rows were folded from, for whoever debugs the open bug (printed with the failure).
        print(cluster.services.query(f"SELECT sms_id, version, status, status_history, replies FROM v_sms "
                                     f"WHERE tenant = '{tenant}' ORDER BY sms_id", "Pretty"))
        assert observed(cluster, tenant) == expected  # the same check once more, for pytest's diff of the two
        raise
    for view, (n, unique) in view_duplicates(cluster, tenant).items():
        assert n == unique, f"{view} shows duplicates: {n} rows for {unique} identities"
    sums = expected.windows.values()
    assert sum(w[0] for w in sums) == len(expected.calls) + len(expected.single_leg)
    assert sum(w[2] for w in sums) == len(expected.sms)

    try:
        wait_settled(cluster, "streams and sink caught up")
    except AssertionError as exc:
        streams_behind = behind(cluster.bootstrap, cluster.app_id, STREAMS_INPUTS)
        if streams_behind and not behind(cluster.bootstrap, cluster.sink_group, SINK_INPUTS):
            # Every output above was right and once: what is left is Faust not committing some partitions
            # after the rebalance (docs/DESIGN.md, "Known limits"). Reported as an expected failure, not a pass.
            pytest.xfail(f"open bug, streams commits stalled after the rebalance: {exc}")
        raise
    before = snapshot(cluster, tenant)
    replay(cluster, tenant, tail)  # the survivor's restored tables must see duplicates only
    wait_settled(cluster, "streams and sink caught up after the duplicate tail")
    assert snapshot(cluster, tenant) == before
    assert observed(cluster, tenant) == expected

    # The entity agent re-sends SMS and single-leg records for duplicate events: the topics have copies
    # (at-least-once), which the views above collapsed.
    sms_sent = topic_versions(cluster, tenant, topics.OUT_SMS, "sms_id")
    assert expected.sms <= set(sms_sent) and len(sms_sent) > len(set(sms_sent))
    calls_sent = topic_versions(cluster, tenant, topics.OUT_CALLS, "call_id")
    assert {(call_id, version) for call_id, version, _ in expected.calls} <= set(calls_sent)
    assert not cluster.services.dead(), f"crashed: {cluster.services.dead()}"


# Each metric window of the tenant as SQL computes it from the views of the records it counts (the rules of
# streams/domain/billing/metrics.py `contributions`: calls and single-leg calls by start, else creation; SMS by
# creation, else status time), in the shape of `window_totals`.
SQL_WINDOWS = """
WITH facts AS (
    SELECT coalesce(start_at, created_at) AS at, ifNull(toString(client_id), 'unknown') AS client,
           if(ifNull(destination_type, '') = '', 'unknown', destination_type) AS tipo, 1 AS is_call,
           toUInt64(answered) AS answered, toDecimal128(ifNull(rated_cost_total, 0), 6) AS cost,
           toDecimal128(0, 6) AS sms_cost
    FROM v_calls WHERE tenant = {tenant:String}
    UNION ALL
    SELECT coalesce(started_at, created_at), ifNull(toString(client_id), 'unknown'),
           if(ifNull(type, '') = '', 'unknown', type), 1, toUInt64(answered),
           toDecimal128(ifNull(rated_cost, 0), 6), toDecimal128(0, 6)
    FROM v_single_leg_calls WHERE tenant = {tenant:String}
    UNION ALL
    SELECT coalesce(created_at, status_at), '', 'sms', 0, 0, toDecimal128(0, 6),
           toDecimal128(ifNull(rated_cost, 0), 6)
    FROM v_sms WHERE tenant = {tenant:String}
)
SELECT size, dim.1, dim.2, toUnixTimestamp(if(size = '1h', toStartOfHour(at), toStartOfMinute(at))) * 1000,
       sum(is_call), sum(answered), toString(sum(cost)), sum(1 - is_call), toString(sum(sms_cost))
FROM facts
ARRAY JOIN ['1m', '1h'] AS size
ARRAY JOIN if(is_call = 1, [('tenant', {tenant:String}), ('client', client), ('tipo', tipo)],
              [('tenant', {tenant:String}), ('tipo', 'sms')]) AS dim
WHERE at IS NOT NULL
GROUP BY 1, 2, 3, 4
"""
VIEW_WINDOWS = """
SELECT window_size, dimension, dimension_value, toUnixTimestamp64Milli(window_start), calls, answered,
       toString(cost), sms_sent, toString(sms_cost)
FROM v_metric_windows WHERE tenant = {tenant:String} AND (calls > 0 OR sms_sent > 0)
"""


def window_totals(cluster: Cluster, sql: str, tenant: str) -> dict[tuple[str, ...], tuple[Any, ...]]:
    """(size, dimension, value, start ms) -> (calls, answered, cost, SMS sent, SMS cost), money as Decimal."""
    out: dict[tuple[str, ...], tuple[Any, ...]] = {}
    text = cluster.services.query(sql.replace("{tenant:String}", f"'{tenant}'"))
    for line in text.splitlines()[1:]:
        size, dimension, value, start, calls, answered, cost, sent, sms_cost = line.split("\t")
        out[(size, dimension, value, start)] = (int(calls), int(answered), Decimal(cost), int(sent),
                                                Decimal(sms_cost))
    return out


def differences(cluster: Cluster, tenant: str, expected: Expected) -> str:
    """For a failure message: the records missing from or extra in the views, and every share the tenants agent
    read of each window that differs from SQL (source partition, version, calls, answered)."""
    seen = observed(cluster, tenant)
    lines = [f"calls missing {sorted(expected.calls - seen.calls)} extra {sorted(seen.calls - expected.calls)}",
             f"single-leg missing {sorted(expected.single_leg - seen.single_leg)} "
             f"extra {sorted(seen.single_leg - expected.single_leg)}"]
    missing = {call_id for call_id, _, _ in expected.calls - seen.calls}
    for msg, record in records_on(cluster, topics.OUT_CALLS.name):
        if record["call_id"] in missing:
            lines.append(f"on {topics.OUT_CALLS.name}[{msg.partition()}]@{msg.offset()}: {record['tenant']} "
                         f"{record['call_id']} v{record['version']} end_seen {record['end_seen']}")
    views, sql = window_totals(cluster, VIEW_WINDOWS, tenant), window_totals(cluster, SQL_WINDOWS, tenant)
    wrong = {key for key in {*views, *sql} if views.get(key) != sql.get(key)}
    for msg in read_topic(cluster.bootstrap, topics.WINDOW_SHARES, timeout=30):
        share = state_codec.loads(msg.value() or b"null")
        _, size, start, dimension, value = share["window"]
        if share["window"][0] == tenant and (size, dimension, value, str(start)) in wrong:
            lines.append(f"share {size} {dimension} {value} {start} from p{share['partition']} at "
                         f"p{msg.partition()}@{msg.offset()}: version {share['version']} "
                         f"calls {share['sum']['calls']} answered {share['sum']['answered']}")
    return "\n".join(lines)


@pytest.mark.parametrize("kill_at", [0.2, 0.5, 0.8], ids=["early", "middle", "late"])
def test_metric_windows_equal_sql_over_the_views_after_a_worker_is_killed_and_restarted(
        cluster: Cluster, tmp_path: Path, kill_at: float) -> None:
    """One of two workers is SIGKILLed at a point of the replay and restarted 5 s later (the partitions move to
    the survivor and back); every metric window then equals the SQL aggregate of the views it counts."""
    tenant = f"mw{uuid.uuid4().hex[:8]}"
    lines = SAMPLE.read_text().splitlines()
    expected = expected_outputs(tenant, lines)
    cut = int(len(lines) * kill_at)
    head, tail = tmp_path / "head.jsonl", tmp_path / "tail.jsonl"
    head.write_text("\n".join(lines[:cut]) + "\n")
    tail.write_text("\n".join(lines[cut:]) + "\n")

    eventually(lambda: group_members(cluster.bootstrap, cluster.app_id) == 2, 60, "both workers in the group")
    replay(cluster, f"{tenant}-load", SAMPLE)  # a backlog, so that the kill hits a busy worker
    replay(cluster, tenant, head)
    cluster.services.kill("streams-2")
    time.sleep(5)
    cluster.services.spawn("streams-2", module="streams", STREAMS_DATA_DIR=str(tmp_path / "streams-2b"))
    replay(cluster, tenant, tail)

    def exact() -> bool:
        views = window_totals(cluster, VIEW_WINDOWS, tenant)
        return bool(views) and observed(cluster, tenant) == expected and \
            views == window_totals(cluster, SQL_WINDOWS, tenant)

    try:
        eventually(exact, 240, "every metric window equal to SQL over the views")
    except AssertionError:
        print(lagging(cluster))
        print(differences(cluster, tenant, expected))
        assert window_totals(cluster, VIEW_WINDOWS, tenant) == window_totals(cluster, SQL_WINDOWS, tenant)
        assert observed(cluster, tenant) == expected
        raise
    assert sum(1 for key in window_totals(cluster, SQL_WINDOWS, tenant) if key[0] == "1m") > 50
    assert not cluster.services.dead(), f"crashed: {cluster.services.dead()}"

    # What operators see of the worker that kept running: its state and its work, and JSON log lines.
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{cluster.metrics_port}/metrics", timeout=10).read().decode()
    assert 'callpipe_streams_state_entries{table="metric_entities"}' in metrics
    assert "callpipe_streams_commit_lag{" in metrics
    assert 'callpipe_streams_rocksdb_memory_bytes{what="memtables"}' in metrics
    allocator = "jemalloc" if ctypes.util.find_library("jemalloc") else "glibc"  # STREAMS_ALLOCATOR's default
    assert f'callpipe_streams_malloc_bytes{{allocator="{allocator}",what="free"}}' in metrics
    assert any(line.startswith('callpipe_streams_records_out_total{topic="callpipe.out.metrics.v1"}')
               for line in metrics.splitlines())
    log_lines = cluster.services.log("streams").read_text().splitlines()
    assert log_lines and all(json.loads(line)["level"] for line in log_lines if line.startswith("{"))
    assert sum(line.startswith("{") for line in log_lines) > len(log_lines) // 2
