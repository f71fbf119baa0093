"""`python -m bench.sink`: rows/s of the sink into the embedded ClickHouse, and webhook-to-row latency.

(a) writer: the Writer path alone, no Kafka. N CallSnapshot records (normalized from the bundled sample, each
    with a fresh random event id) go in batches through ``sinks.writer.Writer`` into a fresh chdb directory
    migrated with ``sinks.migrate.migrate``; side by side, batch for batch (alternating which goes first), the
    same rows already converted by ``sinks.rows.to_row`` go through a bare ``client.insert`` (same deduplication
    settings) into a copy of the table. The ratio is what conversion and the Writer cost on top of the insert.
    Runs in a child process, so that the embedded engine's threads are gone before the other parts start.
(b) kafka: a single-node broker (deploy/local, free ports, temporary directory, no registry), N encoded
    CallSnapshot records (SingleObjectCodec) pre-published to the call-snapshots topic (6 partitions), then
    `python -m sinks` started on its own chdb directory and query port; rows/s until ``count()`` of the table,
    polled through the sink's query server, reaches N.
(c) e2e: the whole pipeline (``Services.start_all``: ingest, streams, sink; fresh broker), the bundled sample's
    webhooks POSTed open-loop at a fixed rate (each pass over the sample under a fresh tenant, so every event id
    is new); a separate thread polls the query server every 50 ms for the event ids posted and not yet seen
    (``SELECT event_id FROM <table> WHERE event_id IN (...)``, the raw table behind ``v_<table>``). The latency
    of an event is the return time of the first poll that shows it minus the due time of its POST (open loop,
    64 keep-alive connections), so it is an upper bound, coarse by the poll interval plus the poll's own
    duration (a poll waits for an insert in progress: the query server shares the writer's lock). Run with the
    default batch age bound and again (sink restarted) with ``SINK_BATCH_MAX_AGE_S=0.2``.

Everything runs on this machine on 127.0.0.1: broker, services, load generator and poller share its cores, and
so does whatever else runs at the time (the load average and the machine's busy share are recorded). Prints a
table and appends the figures to bench/RESULTS.md under "Sink and end-to-end".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Producer

from bench.host import cpu_seconds, machine
from broker.config import producer_config
from deploy.local import stack
from deploy.local.services import Services, create_topics, service_env
from schemas import topics
from schemas.codec import SingleObjectCodec
from schemas.normalize import event_id, normalize
from sinks.schema.tables import catalog

RESULTS = Path(__file__).resolve().with_name("RESULTS.md")
SAMPLE = stack.ROOT / "deploy" / "sample" / "webhooks.jsonl"
SECTION = "## Sink and end-to-end"
TABLE_HEADER = "| date | machine | measurement | result | detail |\n|---|---|---|---|---|"
SNAPSHOTS = "call_snapshots"
BASELINE = "call_snapshots_baseline"
SECRET = "bench-secret-1"
WARMUP_ROWS = 1000
POLL_INTERVAL_S = 0.05
SMALL_BATCHES = 100
SMALL_BATCH_ROWS = 10
SNAPSHOT_KINDS = frozenset(kind for kind, topic in topics.KIND_TOPICS.items() if topic is topics.CALL_SNAPSHOTS)


class BenchError(RuntimeError):
    """A failure explained in one line."""


# ---------------------------------------------------------------------------------------------------- helpers






def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    ticks = os.sysconf("SC_CLK_TCK")
    return (sum(values) - idle) / ticks, sum(values) / ticks


class Usage:
    """CPU used between construction and ``done()``: by given processes, and by the whole machine."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start = {name: cpu_seconds(pid) for name, pid in pids.items()}
        self.machine = machine_busy()
        self.wall = time.monotonic()

    def done(self) -> dict[str, float]:
        wall = time.monotonic() - self.wall
        used = {f"{name}_cpu_pct": 100 * (cpu_seconds(pid) - self.start[name]) / wall
                for name, pid in self.pids.items()}
        busy, total = machine_busy()
        used["machine_busy_pct"] = 100 * (busy - self.machine[0]) / max(total - self.machine[1], 1e-9)
        return used


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def sample() -> list[tuple[str, dict[str, Any]]]:
    return [(item["kind"], item["body"]) for item in map(json.loads, SAMPLE.read_text().splitlines())]


def snapshot_records(count: int, tenant: str) -> Iterator[dict[str, Any]]:
    """Normalized CallSnapshot records of the sample, cycled; each with a random event id and, per cycle, other
    call ids, as if more calls of the same shapes came in."""
    now = datetime.now(UTC)
    templates = [normalize(kind, tenant, body, now).record for kind, body in sample() if kind in SNAPSHOT_KINDS]
    if not templates:
        raise BenchError(f"no {sorted(SNAPSHOT_KINDS)} webhook in {SAMPLE}")
    for i in range(count):
        template = templates[i % len(templates)]
        cycle = i // len(templates)
        yield {**template, "event_id": uuid.uuid4().hex, "call_id": template["call_id"] + cycle * 100_000_000}


def ask(services: Services, sql: str) -> list[str]:
    """Rows of a TSV answer of the sink's query server, header dropped."""
    return services.query(sql).splitlines()[1:]



# ------------------------------------------------------------------------------------------- (a) Writer path


def writer_part(rows: int, batch_rows: int) -> dict[str, Any]:
    """Runs in its own process (see the module doc). Imports the embedded engine only here."""
    from sinks.clickhouse import connect
    from sinks.schema.migrate import migrate
    from sinks.write.batcher import Entry, InsertBatch
    from sinks.write.rows import to_row
    from sinks.write.writer import Writer

    loadavg = os.getloadavg()[0]
    tables = catalog()
    spec = tables.table(SNAPSHOTS)
    columns = list(spec.columns)
    names = [c.name for c in columns]
    records = list(snapshot_records(WARMUP_ROWS + rows, "bench"))
    chunks = [records[:WARMUP_ROWS]] + [records[i:i + batch_rows] for i in range(WARMUP_ROWS, len(records), batch_rows)]
    with tempfile.TemporaryDirectory(prefix="callpipe-bench-writer-") as tmp:
        client = connect(f"chdb://{Path(tmp) / 'clickhouse'}")
        try:
            migrate(client)
            client.command(f"CREATE TABLE {BASELINE} AS {SNAPSHOTS}")
            writer = Writer(client, tables)
            usage = Usage({"bench": os.getpid()})
            writer_s = baseline_s = convert_s = 0.0
            offset = 0
            for index, chunk in enumerate(chunks):
                began = time.perf_counter()
                chunk_rows = [to_row(record, columns) for record in chunk]  # the baseline's input, timed alone
                converted = time.perf_counter() - began
                batch = InsertBatch(spec.name, spec.topic,
                              tuple(Entry(0, offset + j, record, b"") for j, record in enumerate(chunk)))
                offset += len(chunk)

                def via_writer(batch: InsertBatch = batch) -> float:
                    began = time.perf_counter()
                    result = writer.write(batch)
                    if result.rows_inserted != len(batch.entries) or result.dead_letters:
                        raise BenchError(f"writer: {result} for {len(batch.entries)} records")
                    return time.perf_counter() - began

                def via_insert(batch: InsertBatch = batch, chunk_rows: list[list[Any]] = chunk_rows) -> float:
                    began = time.perf_counter()
                    client.insert(BASELINE, chunk_rows, column_names=names,
                                  settings={"insert_deduplication_token": f"baseline/{batch.token}",
                                            "insert_deduplicate": 1})
                    return time.perf_counter() - began

                first, second = (via_writer, via_insert) if index % 2 == 0 else (via_insert, via_writer)
                times = {first: first(), second: second()}
                if index:  # the first pair warms both paths up
                    writer_s += times[via_writer]
                    baseline_s += times[via_insert]
                    convert_s += converted
            used = usage.done()
            counts = client.query(
                f"SELECT (SELECT count() FROM {SNAPSHOTS}), (SELECT count() FROM {BASELINE})").result_rows[0]
            # Fixed cost per batch: what a sink pays per (topic, partition) and age period at low traffic.
            small = list(snapshot_records(SMALL_BATCHES * SMALL_BATCH_ROWS, "bench"))
            began = time.perf_counter()
            for i in range(SMALL_BATCHES):
                chunk = small[i * SMALL_BATCH_ROWS:(i + 1) * SMALL_BATCH_ROWS]
                writer.write(InsertBatch(spec.name, spec.topic, tuple(
                    Entry(1, i * SMALL_BATCH_ROWS + j, record, b"") for j, record in enumerate(chunk))))
            small_ms = 1000 * (time.perf_counter() - began) / SMALL_BATCHES
        finally:
            client.close()
    expected = WARMUP_ROWS + rows
    if list(counts) != [expected, expected]:
        raise BenchError(f"writer: counted {list(counts)} rows, expected {expected} in each table")
    return {
        "rows": rows,
        "batch_rows": batch_rows,
        "writer_rows_per_s": rows / writer_s,
        "baseline_rows_per_s": rows / baseline_s,
        "ratio": (rows / writer_s) / (rows / baseline_s),
        "to_row_us": 1e6 * convert_s / rows,
        "small_batch_ms": small_ms,
        "to_row_share_pct": 100 * convert_s / writer_s,
        **used,
        "loadavg": loadavg,
    }


def run_writer_part(rows: int, batch_rows: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        done = subprocess.run([sys.executable, "-m", "bench.sink", "--part", "writer", "--rows", str(rows),
                               "--batch-rows", str(batch_rows), "--out", out.name], cwd=stack.ROOT, check=False)
        if done.returncode != 0:
            raise BenchError(f"writer part failed with exit code {done.returncode}")
        figures: dict[str, Any] = json.loads(Path(out.name).read_text())
        return figures


# ------------------------------------------------------------------------------------ (b) sink from Kafka


@contextmanager
def broker(data: Path) -> Iterator[stack.Running]:
    running = stack.up(data, stack.free_port(), stack.free_port(), None)
    try:
        yield running
    finally:
        stack.down(data)


def publish(bootstrap: str, rows: int) -> float:
    """Encode and produce ``rows`` CallSnapshot records; the seconds it took."""
    codec = SingleObjectCodec()
    topic = topics.CALL_SNAPSHOTS
    producer = Producer(producer_config(bootstrap, 120_000,
                                        **{"linger.ms": 20, "queue.buffering.max.messages": 200_000}))
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    began = time.monotonic()
    for record in snapshot_records(rows, "bench"):
        value = codec.encode(topic.name, topic.schema, record)
        while True:
            try:
                producer.produce(topic.name, value, str(record["call_id"]).encode(), on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    if producer.flush(120) or failures:
        raise BenchError(f"publish: {len(failures)} failed deliveries, e.g. {failures[:1]}")
    return time.monotonic() - began


def kafka_part(root: Path, rows: int) -> dict[str, Any]:
    data = root / "kafka-sink"
    with broker(data) as running:
        create_topics(running.bootstrap)
        stack.say(f"publishing {rows} encoded CallSnapshot records")
        publish_s = publish(running.bootstrap, rows)
        services = Services(data, service_env(data, running.bootstrap, None, SINK_QUERY_PORT=str(stack.free_port()),
                                              SINK_GROUP_ID=f"bench-sink-{uuid.uuid4().hex[:8]}",
                                              LOG_LEVEL="WARNING"))
        try:
            loadavg = os.getloadavg()[0]
            spawned = time.monotonic()
            proc = services.spawn("sink")
            services.wait_http("sink", f"{services.sink_url}/health")
            ready = time.monotonic()
            usage = Usage({"sink": proc.pid, "kafka": running.kafka_pid})
            first: tuple[float, int] | None = None
            deadline = ready + 900
            while True:
                count = int(ask(services, f"SELECT count() FROM {SNAPSHOTS}")[-1])
                now = time.monotonic()
                if count and first is None:
                    first = (now, count)
                if count >= rows:
                    break
                if now > deadline or services.dead():
                    raise BenchError(
                        f"kafka: {count} of {rows} rows after {now - ready:.0f}s; read {services.log('sink')}")
                time.sleep(0.25)
            used = usage.done()
        finally:
            services.stop()
    assert first is not None
    return {
        "rows": rows,
        "publish_s": publish_s,
        "startup_s": ready - spawned,
        "rows_per_s": rows / (now - ready),
        "rows_per_s_after_first": (rows - first[1]) / max(now - first[0], 1e-9),
        "first_rows_after_s": first[0] - ready,
        "drain_s": now - ready,
        **used,
        "loadavg": loadavg,
    }


# ------------------------------------------------------------------------------------------ (c) end to end


@dataclass
class Planned:
    tenant: str
    kind: str
    body: bytes
    event_id: str
    table: str


@dataclass
class Seen:
    table: str
    posted: float | None = None
    visible: float | None = None


@dataclass
class Load:
    http_ms: list[float] = field(default_factory=list)
    failed: int = 0
    wrong_event_id: int = 0
    first_post: float = 0.0
    last_post: float = 0.0


def plan(count: int, tenants: list[str]) -> list[Planned]:
    """The sample in order, one pass per tenant, until ``count`` webhooks."""
    tables = catalog()
    items = sample()
    out: list[Planned] = []
    for i in range(count):
        tenant = tenants[i // len(items)]
        kind, body = items[i % len(items)]
        table = tables.for_topic(topics.KIND_TOPICS[kind].name).name
        out.append(Planned(tenant, kind, json.dumps(body).encode(), event_id(tenant, kind, body), table))
    return out


class Connection:
    """One HTTP/1.1 keep-alive connection on asyncio streams: cheap and predictable under queueing (an httpx
    AsyncClient with thousands of queued requests stalled here, spinning on the client side)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def post(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next((int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")),
                      0)
        return int(lines[0].split()[1]), await self.reader.readexactly(length)


def request_bytes(port: int, item: Planned) -> bytes:
    head = (f"POST /hooks/{item.tenant}/{SECRET}/{item.kind} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(item.body)}\r\n\r\n")
    return head.encode() + item.body


async def drive(port: int, planned: list[Planned], rate: float, seen: dict[str, Seen], lock: threading.Lock,
                connections: int = 64) -> Load:
    """Open loop: webhook i is due at start + i / rate, whether earlier ones were answered or not; a free
    connection sends it. Its latencies count from the due time (no coordinated omission)."""
    load = Load()
    queue: asyncio.Queue[tuple[float, Planned] | None] = asyncio.Queue()
    conns = [Connection(*await asyncio.open_connection("127.0.0.1", port)) for _ in range(connections)]

    async def worker(conn: Connection) -> None:
        while (job := await queue.get()) is not None:
            due, item = job
            try:
                status, body = await conn.post(request_bytes(port, item))
            except (OSError, asyncio.IncompleteReadError, ValueError):
                load.failed += 1
                conn = Connection(*await asyncio.open_connection("127.0.0.1", port))
                continue
            load.http_ms.append(1000 * (time.monotonic() - due))
            if status != 200:
                load.failed += 1
            elif json.loads(body).get("event_id") != item.event_id:
                load.wrong_event_id += 1
        conn.writer.close()

    workers = [asyncio.create_task(worker(conn)) for conn in conns]
    start = time.monotonic() + 0.2
    load.first_post = start
    for i, item in enumerate(planned):
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        with lock:
            entry = seen[item.event_id]
            if entry.posted is None:
                entry.posted = due
        load.last_post = time.monotonic()
        queue.put_nowait((due, item))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return load


def poll_visibility(services: Services, seen: dict[str, Seen], lock: threading.Lock, finish: threading.Event,
                    deadline: list[float], polls: list[float], errors: list[str]) -> None:
    """Every POLL_INTERVAL_S: which posted, not yet visible event ids are in their tables now."""
    while True:
        tick = time.monotonic()
        with lock:
            pending = [(eid, s.table) for eid, s in seen.items() if s.posted is not None and s.visible is None]
        if finish.is_set() and (not pending or tick > deadline[0]):
            return
        by_table: dict[str, list[str]] = {}
        for eid, table in pending[:3000]:
            by_table.setdefault(table, []).append(eid)
        if by_table:
            sql = " UNION ALL ".join(
                f"SELECT event_id FROM {table} WHERE event_id IN ({','.join(repr(e) for e in ids)})"
                for table, ids in by_table.items())
            try:
                found = ask(services, sql)
            except Exception as exc:  # a failed poll is counted; the next one tries again
                errors.append(str(exc)[:200])
                found = []
            answered = time.monotonic()
            polls.append(answered - tick)
            with lock:
                for eid in found:
                    entry = seen.get(eid)
                    if entry is not None and entry.visible is None:
                        entry.visible = answered
        time.sleep(max(0.0, tick + POLL_INTERVAL_S - time.monotonic()))


def warm_up(services: Services, tenant: str) -> None:
    """One webhook through and visible: the sink's consumer is assigned and the engine warm."""
    kind, body = next((k, b) for k, b in sample() if k in SNAPSHOT_KINDS)
    answer = httpx.post(f"{services.ingest_url}/hooks/{tenant}/{SECRET}/{kind}", json=body, timeout=60)
    if answer.status_code != 200:
        raise BenchError(f"warm-up webhook answered {answer.status_code}: {answer.text[:200]}")
    eid = answer.json()["event_id"]
    deadline = time.monotonic() + 120
    while not ask(services, f"SELECT event_id FROM {SNAPSHOTS} WHERE event_id = '{eid}'"):
        if time.monotonic() > deadline:
            raise BenchError(f"warm-up webhook not visible within 120s; read {services.log('sink')}")
        time.sleep(0.2)


def latency_run(services: Services, kafka_pid: int, planned: list[Planned], rate: float, label: str
                ) -> dict[str, Any]:
    seen = {item.event_id: Seen(item.table) for item in planned}
    lock = threading.Lock()
    finish = threading.Event()
    deadline = [math.inf]
    polls: list[float] = []
    errors: list[str] = []
    pids = {**{name: proc.pid for name, proc in services.children.items()}, "kafka": kafka_pid}
    loadavg = os.getloadavg()[0]
    usage = Usage(pids)
    poller = threading.Thread(target=poll_visibility, args=(services, seen, lock, finish, deadline, polls, errors),
                              daemon=True)
    poller.start()
    stack.say(f"{label}: {len(planned)} webhooks at {rate:.0f}/s")
    load = asyncio.run(drive(int(services.env['INGEST_PORT']), planned, rate, seen, lock))
    used = usage.done()
    deadline[0] = time.monotonic() + 60
    finish.set()
    poller.join()
    ordered = sorted((s.posted, 1000 * (s.visible - s.posted)) for s in seen.values()
                     if s.visible is not None and s.posted is not None)
    latencies = [ms for _, ms in ordered]
    tenth = max(1, len(ordered) // 10)
    return {
        "label": label,
        "webhooks": len(planned),
        "events": len(seen),
        "rate": rate,
        "achieved_rate": (len(planned) - 1) / max(load.last_post - load.first_post, 1e-9),  # handed over
        "invisible": sum(1 for s in seen.values() if s.visible is None),
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies, default=math.nan),
        "min_ms": min(latencies, default=math.nan),
        "first_tenth_p50_ms": percentile(latencies[:tenth], 50),
        "last_tenth_p50_ms": percentile(latencies[-tenth:], 50),
        "http_p50_ms": percentile(load.http_ms, 50),
        "http_p99_ms": percentile(load.http_ms, 99),
        "failed": load.failed,
        "wrong_event_id": load.wrong_event_id,
        "poll_ms_p50": 1000 * percentile(polls, 50),
        "poll_ms_p99": 1000 * percentile(polls, 99),
        "poll_errors": len(errors),
        "poll_error_example": errors[0] if errors else "",
        **used,
        "loadavg": loadavg,
    }


def e2e_part(root: Path, rate: float, seconds: float, ages: list[float | None]) -> list[dict[str, Any]]:
    data = root / "e2e"
    count = int(rate * seconds)
    passes = math.ceil(count / len(sample()))
    tenants = [f"b{run}x{i}" for run in range(len(ages)) for i in range(passes)]
    warm = [f"w{run}" for run in range(len(ages))]
    app_id = f"bench-streams-{uuid.uuid4().hex[:8]}"
    results = []
    with broker(data) as running:
        create_topics(running.bootstrap, app_id)
        services = Services(data, service_env(
            data, running.bootstrap, None, INGEST_PORT=str(stack.free_port()),
            SINK_QUERY_PORT=str(stack.free_port()), STREAMS_APP_ID=app_id, SINK_GROUP_ID=f"sink-{app_id}",
            INGEST_TENANTS=",".join(f"{t}:{SECRET}" for t in tenants + warm), LOG_LEVEL="WARNING"))
        try:
            services.start_all()
            for run, age in enumerate(ages):
                if run:
                    proc = services.children.pop("sink")
                    stack.stop_pid(proc.pid, grace=15)
                    extra = {} if age is None else {"SINK_BATCH_MAX_AGE_S": str(age)}
                    services.spawn("sink", **extra)
                    services.wait_http("sink", f"{services.sink_url}/health")
                elif age is not None:
                    raise BenchError("the first end-to-end run uses the sink's default batch age")
                warm_up(services, warm[run])
                label = f"SINK_BATCH_MAX_AGE_S={'1.0 (default)' if age is None else age}"
                planned = plan(count, tenants[run * passes:(run + 1) * passes])
                results.append(latency_run(services, running.kafka_pid, planned, rate, label))
                if services.dead():
                    raise BenchError(f"died during the run: {services.dead()}; read {data / 'logs'}")
        finally:
            services.stop()
    return results


# ------------------------------------------------------------------------------------------ report and main


def rows_for_results(now: str, where: str, writer: dict[str, Any] | None, kafka: dict[str, Any] | None,
                     e2e: list[dict[str, Any]]) -> list[str]:
    rows = []
    if writer:
        rows.append(
            f"| {now} | {where} | (a) Writer path into chdb, {writer['rows']:,} CallSnapshot rows, batches of "
            f"{writer['batch_rows']:,} | {writer['writer_rows_per_s']:,.0f} rows/s "
            f"(≈{writer['writer_rows_per_s'] * 100 / max(writer['bench_cpu_pct'], 1):,.0f} per CPU-second) vs bare "
            f"`client.insert` of "
            f"pre-converted rows {writer['baseline_rows_per_s']:,.0f} rows/s (ratio {writer['ratio']:.2f}) "
            f"| `to_row` {writer['to_row_us']:.1f} µs/row = {writer['to_row_share_pct']:.0f}% of the Writer's time; "
            f"a batch of {SMALL_BATCH_ROWS} rows costs {writer['small_batch_ms']:.1f} ms; "
            f"bench process {writer['bench_cpu_pct']:.0f}% CPU, machine busy {writer['machine_busy_pct']:.0f}%, "
            f"load {writer['loadavg']:.1f} |")
    if kafka:
        rows.append(
            f"| {now} | {where} | (b) `python -m sinks` from Kafka, {kafka['rows']:,} pre-published CallSnapshot "
            f"records, 6 partitions, default batch bounds | {kafka['rows_per_s']:,.0f} rows/s "
            f"(≈{kafka['rows_per_s'] * 100 / max(kafka['sink_cpu_pct'], 1):,.0f} per sink CPU-second) from ready to "
            f"count = N ({kafka['rows_per_s_after_first']:,.0f} rows/s after the first rows) "
            f"| drain {kafka['drain_s']:.1f} s, first rows {kafka['first_rows_after_s']:.1f} s after ready, "
            f"start-up {kafka['startup_s']:.1f} s; sink {kafka['sink_cpu_pct']:.0f}% CPU, Kafka "
            f"{kafka['kafka_cpu_pct']:.0f}%, machine busy {kafka['machine_busy_pct']:.0f}%, "
            f"load {kafka['loadavg']:.1f} |")
    for run in e2e:
        cpu = ", ".join(f"{k.removesuffix('_cpu_pct')} {v:.0f}%" for k, v in run.items() if k.endswith("_cpu_pct"))
        rows.append(
            f"| {now} | {where} | (c) webhook POST -> normalized row visible, {run['label']}, "
            f"{run['rate']:.0f}/s for {run['webhooks'] / run['rate']:.0f} s | p50 / p95 / p99 "
            f"{run['p50_ms']:.0f} / {run['p95_ms']:.0f} / {run['p99_ms']:.0f} ms (max {run['max_ms']:.0f}) "
            f"{trend(run)} "
            f"| {run['events']:,} events, {run['invisible']} not visible, {run['failed']} failed POSTs; achieved "
            f"{run['achieved_rate']:.0f}/s; POST p50/p99 {run['http_p50_ms']:.0f}/{run['http_p99_ms']:.0f} ms; poll "
            f"p50/p99 {run['poll_ms_p50']:.0f}/{run['poll_ms_p99']:.0f} ms; CPU: {cpu}, machine busy "
            f"{run['machine_busy_pct']:.0f}%, load {run['loadavg']:.1f} |")
    return rows


def trend(run: dict[str, Any]) -> str:
    if "first_tenth_p50_ms" not in run:
        return ""
    return (f"(p50 of the first / last tenth posted: {run['first_tenth_p50_ms']:.0f} / "
            f"{run['last_tenth_p50_ms']:.0f} ms)")


INTRO = (
    "Run with `python -m bench.sink`; see the module's docstring for the method. Everything (broker, the three "
    "services, load generator, poller) shares this machine's cores, on 127.0.0.1, together with whatever else "
    "ran at the time (see the load average and the machine's busy share in each row): figures are what one "
    "small, shared machine does with all of it on it, not a sink-only ceiling. In (c) a row becomes visible "
    "only when its batch is inserted; at light traffic no batch fills its 10,000 rows, so every active "
    "(topic, partition) seals one batch per `SINK_BATCH_MAX_AGE_S` (default 1.0 s), each paying a fixed insert "
    "cost (see \"a batch of 10 rows costs\" in (a)) plus a synchronous offset commit, one after the other. "
    "The age bound would dominate only if the sink kept up; on this machine, shared with other work, it did "
    "not even at 50 webhooks/s (latency of seconds, growing during the run) and at 200/s latency reached tens "
    "of seconds; a shorter age bound means more, smaller batches. "
    "Latencies are upper bounds (first 50 ms poll that shows the row)."
)


def append_results(rows: list[str]) -> None:
    """Re-read RESULTS.md and replace only this section (other benchmarks write theirs concurrently)."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == SECTION), None)
    old: list[str] = []
    if start is not None:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        old = [line for line in lines[start + 1:end] if line.startswith("| 2")]
        lines = lines[:start] + lines[end:]
    while lines and not lines[-1].strip():
        lines.pop()
    section = [SECTION, "", INTRO, "", TABLE_HEADER, *old, *rows]
    RESULTS.write_text("\n".join([*lines, "", *section]) + "\n")


def print_table(rows: list[str]) -> None:
    print()
    print(TABLE_HEADER)
    for row in rows:
        print(row)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sink", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows of (a) and (b)")
    parser.add_argument("--batch-rows", type=int, default=10_000, help="batch size of (a)")
    parser.add_argument("--rate", type=float, default=200, help="webhooks/s of (c)")
    parser.add_argument("--seconds", type=float, default=30, help="duration of each run of (c)")
    parser.add_argument("--skip", action="append", default=[], choices=["writer", "kafka", "e2e"])
    parser.add_argument("--no-short-age", action="store_true", help="(c) only with the default batch age")
    parser.add_argument("--no-record", action="store_true", help="do not write bench/RESULTS.md")
    parser.add_argument("--part", choices=["writer"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        if args.part == "writer":
            figures = writer_part(args.rows, args.batch_rows)
            args.out.write_text(json.dumps(figures))
            return 0
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        writer = kafka = None
        e2e: list[dict[str, Any]] = []
        if "writer" not in args.skip:
            stack.say(f"(a) Writer path: {args.rows} rows in batches of {args.batch_rows}")
            writer = run_writer_part(args.rows, args.batch_rows)
            print(json.dumps(writer, indent=1))
        with tempfile.TemporaryDirectory(prefix="callpipe-bench-sink-") as tmp:
            if "kafka" not in args.skip:
                stack.say(f"(b) sink service from Kafka: {args.rows} records")
                kafka = kafka_part(Path(tmp), args.rows)
                print(json.dumps(kafka, indent=1))
            if "e2e" not in args.skip:
                ages: list[float | None] = [None] if args.no_short_age else [None, 0.2]
                e2e = e2e_part(Path(tmp), args.rate, args.seconds, ages)
                print(json.dumps(e2e, indent=1))
    except (BenchError, stack.StackError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    rows = rows_for_results(now, machine(), writer, kafka, e2e)
    print_table(rows)
    if not args.no_record:
        append_results(rows)
        print(f"\nappended to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
