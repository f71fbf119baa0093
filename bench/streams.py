"""`python -m bench.streams`: throughput of call correlation and recovery time of the Faust worker.

(a) Pure domain path, in this process, one core: each normalized call event (Avro single-object bytes, as the
    worker reads them) is decoded, folded with `correlate.apply`, `correlate.emit`ted, rated and the Call record
    encoded. Variants: "domain" keeps the states as Python objects; "agent" also does what streams/faustapp/app.py
    did around it per event before batching (state JSON out of / into the table twice, the tenant-feed JSON);
    "agent batch" runs the agent's own batch code (streams/batch/entities.py) over dict-backed tables.
    Side by side, over the same events, a codec-only baseline decodes every event and encodes the same output
    records.
(b) One Faust worker (`python -m streams`) end to end against a local Kafka (deploy/local, Kafka only, free
    ports, temporary directory): the events are published first, then the worker consumes the backlog;
    events/s = input events / span of the output records' timestamps on `callpipe.out.calls.v1`. Side by side,
    on the same backlog, a baseline worker (bench/faust_baseline.py: the same Faust app and batches, an agent
    that does nothing) shows what Faust and aiokafka cost per event before any callpipe work.
(c) Restart: the worker is stopped (SIGTERM) and started again; time from spawn to Faust's "Worker ready"
    (changelogs of every table restored) with the state (b) left, and with N call states written to the
    `calls` changelog (copies of real states under new keys, one record per key: an uncompacted changelog,
    which (b) produces, has about two records per event and takes longer).

Calls are clones of the bundled sample's two-leg calls (`chamada_evento`, `status_tempo_real`, `chamada_fim`
with their shapes and order) under fresh call ids. Prints a table and appends the figures to bench/RESULTS.md
under "Streams". Kafka, the worker and this process share the machine's cores.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from bench.host import cpu_seconds, machine
from broker.config import consumer_config, partition_for, producer_config
from deploy.local import stack
from deploy.local.services import create_topics, service_env
from schemas import topics
from schemas.codec import SingleObjectCodec
from schemas.normalize import normalize
from streams import settings as streams_settings
from streams.batch import state_codec
from streams.batch.entities import Entities
from streams.batch.events import Event
from streams.batch.staging import Staged, dict_writer
from streams.batch.tenants import messages as tenant_messages
from streams.domain import correlate
from streams.domain.billing.metrics import ENTITY_CALL
from streams.domain.billing.rating import rate_call

RESULTS = Path(__file__).resolve().with_name("RESULTS.md")
SAMPLE = stack.ROOT / "deploy" / "sample" / "webhooks.jsonl"
SECTION = "## Streams"
TENANT = "bench"
TARGET_PER_CORE = 10_000
ID_STRIDE = 100_000_000  # above every call id of the sample, so clones never collide
FAUST_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


class BenchError(RuntimeError):
    """A failure explained in one line."""


def sample_calls() -> list[tuple[str, dict[str, Any]]]:
    items = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    return [(item["kind"], item["body"]) for item in items if item["kind"] in correlate.CALL_KINDS]


def flows(calls: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """Webhooks of `calls` two-leg calls: blocks of the sample's calls under new ids, interleaved as sampled."""
    sample = sample_calls()
    per_block = len({body["id"] for _, body in sample})
    for block in range((calls + per_block - 1) // per_block):
        for kind, body in sample:
            yield kind, {**body, "id": body["id"] + (block + 1) * ID_STRIDE}


def normalized(calls: int) -> list[tuple[str, str, bytes]]:
    """(topic, key, Avro single-object value) per event."""
    avro = SingleObjectCodec()
    start = datetime.now(UTC)
    out = []
    for i, (kind, body) in enumerate(flows(calls)):
        item = normalize(kind, TENANT, body, start + timedelta(milliseconds=i))
        out.append((item.topic.name, item.key, avro.encode(item.topic.name, item.topic.schema, item.record)))
    return out


@dataclass(frozen=True)
class Rate:
    events: int
    cpu_s: float
    wall_s: float

    @property
    def per_core(self) -> float:
        return self.events / self.cpu_s


def domain_pass(events: list[tuple[str, str, bytes]], agent: bool) -> tuple[Rate, dict[int, Any]]:
    """The correlation path over every event; returns its rate and the records it emitted, by event index."""
    avro, plan, timeout = SingleObjectCodec(), streams_settings.from_env().rating_plan, timedelta(seconds=120)
    out = topics.OUT_CALLS
    states: dict[str, Any] = {}
    emitted: dict[int, Any] = {}
    cpu, wall = time.process_time(), time.perf_counter()
    for i, (topic, key, value) in enumerate(events):
        record = avro.decode(topic, value)
        before = states.get(key)
        if agent and before is not None:
            before = state_codec.loads(before)
        state = correlate.apply(before, record)
        if agent:
            states[key] = state_codec.encode(state)
        state, call = correlate.emit(state, record["received_at"], timeout)
        states[key] = state_codec.encode(state) if agent else state
        if call is not None:
            rated = rate_call(call, plan)
            avro.encode(out.name, out.schema, rated)
            if agent:
                state_codec.dumps({"entity": ENTITY_CALL, "record": rated}).encode()
            emitted[i] = rated
    return Rate(len(events), time.process_time() - cpu, time.perf_counter() - wall), emitted


def batch_pass(events: list[tuple[str, str, bytes]], batch_size: int = 1000) -> Rate:
    """The `entities` agent's own batch code (streams/batch/entities.py) over dict-backed tables, in batches of the
    worker's default size: fold, one state write per changed key, one record and one tenant-feed item per call,
    one window-share message per changed share."""
    avro, plan, timeout = SingleObjectCodec(), streams_settings.from_env().rating_plan, timedelta(seconds=120)
    stores: dict[str, dict[str, bytes]] = {}

    def staged(name: str, **options: Any) -> Staged:
        store = stores.setdefault(name, {})
        return Staged(store, dict_writer(store), **options)

    agent = Entities.over(staged, avro.decode, plan, timeout, timedelta(hours=48), timedelta(hours=48))
    items = [Event(topic, zlib.crc32(key.encode()) % topics.PARTITIONS, offset, value)
             for offset, (topic, key, value) in enumerate(events)]
    now = datetime.now(UTC)
    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, len(items), batch_size):
        batch = agent.process(items[start:start + batch_size], now)
        for table in agent.staged():
            table.flush()
        for output in batch.outputs.values():
            avro.encode(output.topic.name, output.topic.schema, output.record)
        tenant_messages(batch, agent.shares.clocks, partition_for)
    return Rate(len(events), time.process_time() - cpu, time.perf_counter() - wall)


def codec_pass(events: list[tuple[str, str, bytes]], emitted: dict[int, Any]) -> Rate:
    avro, out = SingleObjectCodec(), topics.OUT_CALLS
    cpu, wall = time.process_time(), time.perf_counter()
    for i, (topic, _, value) in enumerate(events):
        avro.decode(topic, value)
        record = emitted.get(i)
        if record is not None:
            avro.encode(out.name, out.schema, record)
    return Rate(len(events), time.process_time() - cpu, time.perf_counter() - wall)


def bench_domain(calls: int) -> dict[str, Rate]:
    events = normalized(calls)
    domain_pass(events[: len(events) // 10], agent=False)  # warm-up: imports, schema caches
    domain, emitted = domain_pass(events, agent=False)
    agent, _ = domain_pass(events, agent=True)
    return {"codec baseline": codec_pass(events, emitted), "domain": domain, "agent": agent,
            "agent batch (entities.py)": batch_pass(events)}


def publish(bootstrap: str, events: list[tuple[str, str, bytes]]) -> None:
    producer = Producer(producer_config(bootstrap, 60_000, **{"linger.ms": 20}))
    for topic, key, value in events:
        producer.produce(topic, value, key.encode(), headers=[("tenant", TENANT.encode())])
        producer.poll(0)
    if producer.flush(60):
        raise BenchError("Kafka did not acknowledge every event within 60 s")


def end_offsets(consumer: Consumer, topic: str) -> dict[int, int]:
    return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(topics.PARTITIONS)}


def read_all(bootstrap: str, topic: str) -> list[tuple[bytes, bytes, int]]:
    """(key, value, timestamp ms) of every message on `topic` now."""
    consumer = Consumer(consumer_config(bootstrap, f"bench-{uuid.uuid4().hex}"))
    try:
        ends = {p: high for p, high in end_offsets(consumer, topic).items() if high > 0}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        found = []
        deadline = time.monotonic() + 120
        while ends and time.monotonic() < deadline:
            for msg in consumer.consume(10_000, 1.0):
                if msg.error() is None:
                    found.append((msg.key() or b"", msg.value() or b"", msg.timestamp()[1]))
                    if (msg.offset() or 0) + 1 >= ends.get(msg.partition() or 0, 0):
                        ends.pop(msg.partition() or 0, None)
        if ends:
            raise BenchError(f"{topic}: not read to its end within 120 s")
        return found
    finally:
        consumer.close()


def committed_all(bootstrap: str, group: str, names: list[str]) -> bool:
    consumer = Consumer(consumer_config(bootstrap, group))
    try:
        committed = consumer.committed([TopicPartition(n, p) for n in names for p in range(topics.PARTITIONS)],
                                       timeout=10)
        return all(consumer.get_watermark_offsets(tp, timeout=10)[1] <= max(tp.offset, 0) for tp in committed)
    finally:
        consumer.close()


@dataclass
class Worker:
    env: dict[str, str]
    log: Path
    module: str = "streams"
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Spawn the worker; returns seconds until Faust logs "Worker ready" (all changelogs restored)."""
        self.log.write_text("")
        started = time.perf_counter()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", self.module], stdout=out, stderr=subprocess.STDOUT,
                                         env=self.env, cwd=stack.ROOT, start_new_session=True)
        while "Worker ready" not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None:
                raise BenchError(f"the worker exited with code {self.proc.returncode}: read {self.log}")
            if time.perf_counter() - started > 900:
                raise BenchError(f"the worker was not ready within 900 s: read {self.log}")
            time.sleep(0.05)
        return time.perf_counter() - started

    def restore_seconds(self) -> float | None:
        """Faust's own span from starting to read the changelogs to done (None: nothing to restore)."""
        marks: dict[str, datetime] = {}
        for line in self.log.read_text(errors="replace").splitlines():
            found = FAUST_TIME.match(line)
            for name, text in (("from", "Restoring state from changelog"), ("to", "Done reading from changelog")):
                if found and text in line:
                    marks[name] = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f")
        if "from" not in marks or "to" not in marks:
            return None
        return (marks["to"] - marks["from"]).total_seconds()

    def stop(self) -> None:
        if self.proc is not None:
            stack.stop_pid(self.proc.pid, grace=30)
            self.proc = None


@dataclass(frozen=True)
class EndToEnd:
    events: int
    calls_out: int
    seconds: float
    worker_cpu_s: float
    kafka_cpu_s: float
    boot_s: float


@dataclass(frozen=True)
class Recovery:
    calls_in_state: int
    changelog_records: int
    changelog_mib: float
    ready_s: float
    restore_s: float | None


def run_worker(bootstrap: str, kafka_pid: int, app_id: str, worker: Worker, events: int) -> EndToEnd:
    """Start the worker on the published backlog and wait until it committed all of it. Seconds: the span of
    the Call records' timestamps, or for the baseline (which publishes nothing) from ready to all committed
    (polled every 0.5 s)."""
    kafka_cpu = cpu_seconds(kafka_pid)
    boot = worker.start()
    ready = time.perf_counter()
    assert worker.proc is not None
    inputs = [t.name for t in topics.INPUT_TOPICS]
    deadline = time.monotonic() + 1800
    while not committed_all(bootstrap, app_id, inputs):
        if time.monotonic() > deadline:
            raise BenchError("the worker did not consume the backlog within 30 min")
        time.sleep(0.5)
    seconds = time.perf_counter() - ready
    worker_cpu = cpu_seconds(worker.proc.pid)
    kafka_cpu = cpu_seconds(kafka_pid) - kafka_cpu
    if worker.module != "streams":
        return EndToEnd(events, 0, seconds, worker_cpu, kafka_cpu, boot)
    stamps = [ts for _, _, ts in read_all(bootstrap, topics.OUT_CALLS.name)]
    return EndToEnd(events, len(stamps), (max(stamps) - min(stamps)) / 1000, worker_cpu, kafka_cpu, boot)


def calls_changelog(app_id: str) -> str:
    return f"{app_id}-calls-changelog"


def grow_state(bootstrap: str, app_id: str, calls: int) -> None:
    """Write call states under new keys to the `calls` changelog until it holds `calls` keys."""
    latest = {key: (value, ts) for key, value, ts in read_all(bootstrap, calls_changelog(app_id))}
    have = len(latest)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "log_level": 3})
    templates = list(latest.items())
    for i in range(have, calls):
        key, (value, _) = templates[i % len(templates)]
        fresh = key.replace(f"{TENANT}/".encode(), f"{TENANT}/s{i}-".encode())
        producer.produce(calls_changelog(app_id), value, fresh, partition=i % topics.PARTITIONS)
        producer.poll(0)
    if producer.flush(120):
        raise BenchError("Kafka did not acknowledge the synthetic states within 120 s")


def restart(bootstrap: str, app_id: str, worker: Worker) -> Recovery:
    worker.stop()
    messages = read_all(bootstrap, calls_changelog(app_id))
    keys = {key for key, _, _ in messages}
    size = sum(len(key) + len(value) for key, value, _ in messages) / 2**20
    ready = worker.start()
    return Recovery(len(keys), len(messages), size, ready, worker.restore_seconds())


def profile_domain(calls: int) -> str:
    """The top of a cProfile of the agent variant, by own time."""
    import cProfile
    import io
    import pstats

    events = normalized(calls)
    profiler = cProfile.Profile()
    profiler.enable()
    domain_pass(events, agent=True)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(15)
    return text.getvalue()


def worker_row(name: str, run: EndToEnd, floor: EndToEnd) -> str:
    per_1k = 1000 * run.worker_cpu_s / run.events
    return (f"| {name} | {run.events} | {run.calls_out or '-'} | {run.events / run.seconds:,.0f} | "
            f"{run.worker_cpu_s:.1f} ({per_1k:.2f}) | {run.events / run.worker_cpu_s:,.0f} | "
            f"{run.worker_cpu_s / floor.worker_cpu_s:.1f}x | {run.kafka_cpu_s:.1f} | {run.boot_s:.1f} |")


def table(domain: dict[str, Rate], baseline: EndToEnd, e2e: EndToEnd, recoveries: list[Recovery]) -> list[str]:
    base = domain["codec baseline"].per_core
    lines = ["| path | events | events/s per core (CPU) | wall s | cost vs codec |", "|---|---|---|---|---|"]
    for name, rate in domain.items():
        lines.append(f"| {name} | {rate.events} | {rate.per_core:,.0f} | {rate.wall_s:.2f} | "
                     f"{base / rate.per_core:.1f}x |")
    lines += [
        "",
        "| Faust worker, backlog | events | Call records out | events/s | worker CPU s (per 1k events) | "
        "events per CPU s | CPU vs baseline | Kafka CPU s | boot s |",
        "|---|---|---|---|---|---|---|---|---|",
        worker_row("baseline: consume + ack only", baseline, baseline),
        worker_row("callpipe streams", e2e, baseline),
        "",
        "| restart with | changelog records (MiB) | spawn -> Worker ready s | of which restore s |",
        "|---|---|---|---|",
    ]
    for r in recoveries:
        restore = "-" if r.restore_s is None else f"{r.restore_s:.1f}"
        lines.append(f"| {r.calls_in_state:,} calls | {r.changelog_records:,} ({r.changelog_mib:.0f}) | "
                     f"{r.ready_s:.1f} | {restore} |")
    return lines


def record(lines: list[str], path: Path = RESULTS) -> None:
    """Append at the end of the "Streams" section, re-reading the file first: other sections may have changed
    meanwhile."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = [f"### {stamp}, {machine()}", "", *lines]
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if SECTION not in text.splitlines():
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\nRun with `python -m bench.streams`; see the module's " \
                                    "docstring for the method.\n"
    lines_in = text.rstrip("\n").split("\n")
    start = lines_in.index(SECTION)
    end = next((i for i in range(start + 1, len(lines_in)) if lines_in[i].startswith("## ")), len(lines_in))
    before = "\n".join(lines_in[:end]).rstrip("\n")
    after = "\n".join(lines_in[end:])
    path.write_text("\n\n".join(part for part in (before, "\n".join(block), after) if part) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.streams", description=__doc__.splitlines()[0])
    parser.add_argument("--domain-calls", type=int, default=5000, help="calls in the in-process run (a)")
    parser.add_argument("--events", type=int, default=50_000, help="call events for the worker run (b)")
    parser.add_argument("--state", type=int, nargs="*", default=[10_000, 50_000],
                        help="calls in state for the restart runs (c)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the agent path")
    parser.add_argument("--no-record", action="store_true", help=f"do not append to {RESULTS.name}")
    args = parser.parse_args(argv)

    domain = bench_domain(args.domain_calls)
    for name, rate in domain.items():
        stack.say(f"{name}: {rate.per_core:,.0f} events/s per core")
    if args.profile:
        print(profile_domain(args.domain_calls // 5))

    data = Path(tempfile.mkdtemp(prefix="callpipe-bench-streams-"))
    running = stack.up(data, stack.free_port(), stack.free_port(), None)
    worker: Worker | None = None
    try:
        app_id = f"callpipe-bench-{uuid.uuid4().hex[:8]}"
        create_topics(running.bootstrap, app_id)
        env = service_env(data, running.bootstrap, None, STREAMS_APP_ID=app_id, LOG_LEVEL="INFO",
                          STREAMS_INACTIVITY_TIMEOUT_S="3600")
        env.pop("SCHEMA_REGISTRY_URL", None)  # the events are single-object encoded
        worker = Worker(env, data / "streams.log")
        per_call = len(sample_calls()) / len({body["id"] for _, body in sample_calls()})
        events = normalized(int(args.events / per_call) + 1)[: args.events]
        publish(running.bootstrap, events)
        baseline_id = f"{app_id}-baseline"
        create_topics(running.bootstrap, baseline_id)
        baseline_worker = Worker({**env, "STREAMS_APP_ID": baseline_id}, data / "baseline.log", "bench.faust_baseline")
        try:
            baseline = run_worker(running.bootstrap, running.kafka_pid, baseline_id, baseline_worker, len(events))
        finally:
            baseline_worker.stop()
        stack.say(f"Faust baseline: {baseline.events / baseline.seconds:,.0f} events/s")
        e2e = run_worker(running.bootstrap, running.kafka_pid, app_id, worker, len(events))
        stack.say(f"worker: {e2e.events / e2e.seconds:,.0f} events/s")
        recoveries = [restart(running.bootstrap, app_id, worker)]
        for calls in args.state:
            worker.stop()
            grow_state(running.bootstrap, app_id, calls)
            recoveries.append(restart(running.bootstrap, app_id, worker))
            stack.say(f"restart with {calls} calls: ready in {recoveries[-1].ready_s:.1f} s")
    finally:
        if worker is not None:
            worker.stop()
        stack.down(data)
    lines = table(domain, baseline, e2e, recoveries)
    print("\n".join(lines))
    if not args.no_record:
        record(lines)
        stack.say(f"appended to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
