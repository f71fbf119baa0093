"""Pipeline benchmark (run by hand, alone on the machine): the whole pipeline as `make run` runs it (broker,
registry, ingest, two streams workers, sink on the embedded ClickHouse) fed the sample's mix scaled up, at fixed
offered rates and at its closed-loop maximum; then, side by side in the same run, the same traffic into Kafka
alone (broker, registry, ingest: no streams, no sink) as the floor, and with `--frameworks` the same traffic
through the fixed choices doing no callpipe work beyond ingest and the sink: ingest, the sink landing ingest's two
records per webhook, and two Faust workers that only consume and ack the entity topics (bench/faust_baseline.py).
Writes bench/pipeline.json and bench/pipeline.png and prints a Markdown table.

    python -m bench.pipeline --rates 100 300 1000 1500 --step 60

Each phase starts with `--warmup` seconds of unrecorded traffic (the JVMs' warm-up would otherwise be charged to the
first step). Per step and per process: CPU-ms per webhook with the process's idle CPU (measured before the first
step) subtracted; achieved rate (answers per second); the answer's p50/p95; POST -> visible: for every SMS whose
first webhook is sent in the step, the time until its row is in `sms` (ingest, Kafka, the streams workers, Kafka
again, the sink), polled every 0.25 s; consumer lag of the streams and sink groups when the step's sending ends and
after a drain of at most `--drain` seconds. Traffic: copies of the sample (deploy/sample/generate.py with other
seeds and ids, as bench/soak.py makes them), each rotated to its own phase of the sample's hour and compressed into
the step, generated before the step so that the load generator costs only its socket writes (bench/ingest_load.py's
client: open-loop at a rate, closed-loop for the maximum).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import shutil
import statistics
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from bench.host import cpu_seconds, machine
from bench.ingest_load import Connection
from bench.soak import PER_TIMELINE, TIMELINE_S, timeline_requests
from broker.config import admin_config
from deploy.local import stack
from deploy.local.services import Services, create_topics, service_env
from schemas import topics

OUT = Path(__file__).resolve().parent
SMS_KIND = b"/envio_sms "
SMS_ID = re.compile(rb'"id":\s*"?(\d+)')
PROBE_POLL_S = 0.25


@dataclass
class Step:
    name: str
    offered: float | None
    """Webhooks per second offered open-loop; None: closed-loop at the maximum."""
    sent: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    answer_s: list[float] = field(default_factory=list)
    visible_s: list[float] = field(default_factory=list)
    probes_unseen: int = 0
    seconds: float = 0.0
    cpu_ms: dict[str, float] = field(default_factory=dict)
    lag_at_end: dict[str, int] = field(default_factory=dict)
    drain_s: float | None = None
    records: dict[str, float] = field(default_factory=dict)
    """Records written per webhook answered, by kind of topic (`topic_kind`)."""

    def summary(self) -> dict[str, Any]:
        def pct(values: list[float], q: int) -> float | None:
            return round(statistics.quantiles(values, n=100)[q - 1] * 1000, 1) if len(values) >= 2 else None

        return {
            "step": self.name, "offered_per_s": self.offered, "sent": self.sent,
            "achieved_per_s": round(sum(self.statuses.values()) / self.seconds, 1) if self.seconds else 0,
            "accepted_per_s": round(self.statuses.get(200, 0) / self.seconds, 1) if self.seconds else 0,
            "statuses": self.statuses, "connection_errors": self.errors,
            "answer_p50_ms": pct(self.answer_s, 50), "answer_p95_ms": pct(self.answer_s, 95),
            "visible_p50_ms": pct(self.visible_s, 50), "visible_p95_ms": pct(self.visible_s, 95),
            "probes": len(self.visible_s) + self.probes_unseen, "probes_unseen": self.probes_unseen,
            "cpu_ms_per_webhook": self.cpu_ms,
            "cpu_ms_per_webhook_total": round(sum(self.cpu_ms.values()), 3),
            "lag_at_end": self.lag_at_end, "drain_s": self.drain_s, "records_per_webhook": self.records,
            "records_per_webhook_total": round(sum(self.records.values()), 2),
        }


class Probes:
    """SMS first webhooks sent, waiting for their row in `sms` (one query per poll for all of them)."""

    def __init__(self, services: Services | None) -> None:
        self.services = services
        self.pending: dict[str, float] = {}
        self.seen_ids: set[str] = set()
        self.lock = threading.Lock()
        self.visible: list[float] = []
        self.stopping = threading.Event()

    def sent(self, request: bytes, at: float) -> None:
        sms_id = self._sms_id(request)
        if sms_id is None:
            return
        with self.lock:
            if sms_id not in self.seen_ids:
                self.seen_ids.add(sms_id)
                self.pending[sms_id] = at

    def refused(self, request: bytes) -> None:
        """An SMS whose first webhook was refused (503 backlogged) is not timed."""
        sms_id = self._sms_id(request)
        if sms_id is not None:
            with self.lock:
                self.pending.pop(sms_id, None)

    def _sms_id(self, request: bytes) -> str | None:
        if self.services is None or SMS_KIND not in request[:80]:
            return None
        match = SMS_ID.search(request[request.index(b"\r\n\r\n") + 4:])
        return None if match is None else match.group(1).decode()

    def poll_until_stopped(self) -> None:
        while self.services is not None and not self.stopping.is_set():
            self.poll()
            time.sleep(PROBE_POLL_S)

    def poll(self) -> None:
        assert self.services is not None
        with self.lock:
            waiting = list(self.pending)[:2000]
        if not waiting:
            return
        quoted = ",".join(f"'{i}'" for i in waiting)
        try:
            found = self.services.query(f"SELECT DISTINCT sms_id FROM sms WHERE sms_id IN ({quoted})").splitlines()[1:]
        except stack.StackError:
            return
        now = time.perf_counter()
        with self.lock:
            for sms_id in found:
                sent_at = self.pending.pop(sms_id, None)
                if sent_at is not None:
                    self.visible.append(now - sent_at)


def watermarks_probe(bootstrap: str) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": "callpipe-bench-probe", "enable.auto.commit": False})


def group_lag(bootstrap: str, groups: list[str]) -> dict[str, int]:
    """Messages past each group's committed offsets, over the topics it has committed."""
    admin = AdminClient(admin_config(bootstrap))
    probe = watermarks_probe(bootstrap)
    out = {}
    try:
        for group in groups:
            answer = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result()
            lag = 0
            for tp in answer.topic_partitions:
                if tp.offset < 0 or "changelog" in tp.topic:
                    continue
                _, high = probe.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)
                lag += max(0, high - tp.offset)
            out[group] = lag
    finally:
        probe.close()
    return out


def topic_records(bootstrap: str) -> dict[str, int]:
    """Records each topic holds (the sum of its partitions' high watermarks; nothing is deleted within a run)."""
    probe = watermarks_probe(bootstrap)
    try:
        return {name: sum(high_watermark(probe, TopicPartition(name, p)) for p in meta.partitions)
                for name, meta in probe.list_topics(timeout=10).topics.items() if not name.startswith("__")}
    finally:
        probe.close()


def high_watermark(probe: Consumer, tp: TopicPartition) -> int:
    """Retried while the partition has no leader yet (the floor's run failed on a topic Faust had not made)."""
    for _ in range(20):
        try:
            return int(probe.get_watermark_offsets(tp, timeout=10)[1])
        except KafkaException:
            time.sleep(0.5)
    return int(probe.get_watermark_offsets(tp, timeout=10)[1])


def topic_kind(name: str) -> str:
    """The topic's share of the traffic: what ingest writes, what the streams stage keeps or says to itself, and what
    it publishes."""
    if name.endswith("-changelog"):
        return "changelogs"
    if name.startswith(topics.STREAMS_APP_ID):
        return name[len(topics.STREAMS_APP_ID) + 1:]
    return "out" if ".out." in name else "ingest"


@dataclass(frozen=True)
class Layout:
    """The services a phase runs beside broker, registry and ingest."""

    sink: bool
    workers: str | None
    """The module of the two streams workers: `streams`, `bench.faust_baseline`, or None for no workers."""

    @property
    def consumers(self) -> bool:
        return self.sink or self.workers is not None

    @property
    def probed(self) -> bool:
        """SMS rows reach `sms` only through the real workers and the sink."""
        return self.sink and self.workers == "streams"


PIPELINE = Layout(sink=True, workers="streams")
FLOOR = Layout(sink=False, workers=None)
FRAMEWORKS = Layout(sink=True, workers="bench.faust_baseline")


class Pipeline:
    def __init__(self, data: Path, layout: Layout, env: dict[str, str]) -> None:
        self.env = dict(env)
        self.ingest_processes = int(self.env.pop("INGEST_PROCESSES", "1"))
        if self.ingest_processes > 1:
            self.env["INGEST_REUSE_PORT"] = "1"
        self.data, self.layout = data, layout
        self.running: stack.Running | None = None
        self.services: Services | None = None

    def start(self) -> None:
        stack.down(self.data)
        shutil.rmtree(self.data, ignore_errors=True)
        self.running = stack.up(self.data, stack.free_port(), stack.free_port(), stack.free_port())
        create_topics(self.running.bootstrap)
        self.services = Services(self.data, service_env(
            self.data, self.running.bootstrap, self.running.registry_url, INGEST_PORT=str(stack.free_port()),
            SINK_QUERY_PORT=str(stack.free_port()), LOG_LEVEL="WARNING", **self.env))
        if self.layout.sink:
            self.services.spawn("sink")
        if self.layout.workers:
            self.services.spawn("streams", module=self.layout.workers)
            self.services.spawn("streams-2", module=self.layout.workers, STREAMS_DATA_DIR=str(self.data / "streams-2"))
        self.services.spawn("ingest")
        for n in range(2, self.ingest_processes + 1):
            self.services.spawn(f"ingest-{n}", module="ingest")
        if self.layout.sink:
            self.services.wait_http("sink", f"{self.services.sink_url}/health")
        self.services.wait_http("ingest", f"{self.services.ingest_url}/readyz")
        if self.layout.workers:
            time.sleep(20)  # both workers in the group before the first webhook

    @property
    def pids(self) -> dict[str, int]:
        assert self.running is not None and self.services is not None
        return {"kafka": int(self.running.kafka_pid or 0), "registry": int(self.running.registry_pid or 0),
                **{name: proc.pid for name, proc in self.services.children.items()}}

    def cpu(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def records(self) -> dict[str, int]:
        assert self.running is not None
        return topic_records(self.running.bootstrap)

    def lag(self) -> dict[str, int]:
        assert self.running is not None
        groups = []
        if self.layout.workers:
            groups.append(topics.STREAMS_APP_ID)
        if self.layout.sink:
            groups.append(topics.SINK_GROUP_ID)
        return group_lag(self.running.bootstrap, groups)

    def stop(self) -> None:
        if self.services is not None:
            self.services.stop()
        stack.down(self.data)


async def send_step(step: Step, port: int, requests: list[tuple[float, bytes]], connections: int,
                    seconds: float, probes: Probes) -> None:
    loop = asyncio.get_running_loop()
    conns: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        _, conn = await loop.create_connection(Connection, "127.0.0.1", port)
        conns.put_nowait(conn)

    async def post(request: bytes, due: float) -> None:
        conn = await conns.get()
        try:
            probes.sent(request, time.perf_counter())
            status = await conn.send(request)
            step.statuses[status] = step.statuses.get(status, 0) + 1
            if status != 200:
                probes.refused(request)
            step.answer_s.append(time.perf_counter() - due)
        except ConnectionError:
            step.errors += 1
            _, conn = await loop.create_connection(Connection, "127.0.0.1", port)
        conns.put_nowait(conn)

    start = time.perf_counter()
    if step.offered is None:
        stop_at = start + seconds
        queue = iter(requests)

        async def closed(conn_index: int) -> None:
            for _, request in queue:
                if time.perf_counter() >= stop_at:
                    return
                step.sent += 1
                await post(request, time.perf_counter())

        await asyncio.gather(*(closed(i) for i in range(connections)))
    else:
        tasks: set[asyncio.Task[None]] = set()
        for at, request in requests:
            due = start + at
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
            task = asyncio.create_task(post(request, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            step.sent += 1
        await asyncio.gather(*tasks)
    step.seconds = time.perf_counter() - start
    while not conns.empty():
        conn = conns.get_nowait()
        if conn.transport is not None:
            conn.transport.close()


def build_requests(rate: float, seconds: float, first_copy: int, port: int, tenant: str,
                   secret: str) -> list[tuple[float, bytes]]:
    """(seconds after the step's start, request): enough copies of the sample for the step, each rotated to its own
    phase of the sample's hour so that every moment of the step carries the whole mix, sent one every 1/rate s."""
    copies = max(1, math.ceil(rate * seconds / PER_TIMELINE))
    base = datetime.now(UTC)
    keyed = []
    for k in range(copies):
        phase = k * TIMELINE_S / copies
        deliveries = timeline_requests(first_copy + k, base, port, tenant, secret)
        keyed += [((at + phase) % TIMELINE_S, k, i, request) for i, (at, request) in enumerate(deliveries)]
    keyed.sort()
    return [(n / rate, request) for n, (*_, request) in enumerate(keyed[:math.ceil(rate * seconds)])]


def run_step(step: Step, pipeline: Pipeline, port: int, requests: list[tuple[float, bytes]],
             args: argparse.Namespace) -> tuple[dict[str, float], float]:
    """Send the step and wait for the drain; the CPU seconds each process spent and the wall time it took."""
    probes = Probes(pipeline.services if pipeline.layout.probed else None)
    poller = threading.Thread(target=probes.poll_until_stopped, daemon=True)
    poller.start()
    records0 = pipeline.records()
    cpu0, t0 = pipeline.cpu(), time.perf_counter()
    uvloop.run(send_step(step, port, requests, args.connections, args.step, probes))
    step.lag_at_end = pipeline.lag()
    drain_began = time.perf_counter()
    if pipeline.layout.consumers:
        while time.perf_counter() - drain_began < args.drain:
            lag = pipeline.lag()
            if not any(lag.values()) and not probes.pending:
                step.drain_s = round(time.perf_counter() - drain_began, 1)
                break
            time.sleep(1)
    cpu1, t1 = pipeline.cpu(), time.perf_counter()
    records1 = pipeline.records()
    answered = max(1, sum(step.statuses.values()))
    for name, count in records1.items():
        kind = topic_kind(name)
        step.records[kind] = step.records.get(kind, 0) + count - records0.get(name, 0)
    step.records = {kind: round(count / answered, 2) for kind, count in sorted(step.records.items())}
    probes.stopping.set()
    poller.join()
    step.visible_s, step.probes_unseen = probes.visible, len(probes.pending)
    return {n: cpu1[n] - cpu0[n] for n in cpu1}, t1 - t0


def run_phase(phase: str, layout: Layout, env: dict[str, str], args: argparse.Namespace) -> list[dict[str, Any]]:
    pipeline = Pipeline(Path(args.data) / phase, layout, env)
    results = []
    try:
        pipeline.start()
        assert pipeline.services is not None
        tenant, secret = pipeline.services.env["INGEST_TENANTS"].split(",")[0].split(":", 1)
        port = int(pipeline.services.ingest_url.rsplit(":", 1)[1])
        first_copy = 0  # each step its own copies: no step re-sends another's webhooks
        if args.warmup:
            # Not recorded: the JVMs (broker, registry) compile their hot paths during the first minute of traffic,
            # which would otherwise be charged to the first step.
            warmup = Step("warm-up", args.warmup_rate)
            run_step(warmup, pipeline, port,
                     build_requests(args.warmup_rate, args.warmup, first_copy, port, tenant, secret), args)
            first_copy += math.ceil(args.warmup_rate * args.warmup / PER_TIMELINE)
            stack.say(f"{phase} warm-up: {warmup.sent} webhooks, drained in {warmup.drain_s} s")
        before, began = pipeline.cpu(), time.perf_counter()
        time.sleep(args.idle)
        idle_per_s = {n: (c - before[n]) / (time.perf_counter() - began) for n, c in pipeline.cpu().items()}
        steps = [Step(f"{r:g}/s", r) for r in args.rates] + ([Step("max", None)] if args.max else [])
        for step in steps:
            rate = step.offered or args.max_schedule_rate
            requests = build_requests(rate, args.step, first_copy, port, tenant, secret)
            first_copy += math.ceil(rate * args.step / PER_TIMELINE)
            stack.say(f"{phase} {step.name}: {len(requests)} requests ready")
            cpu, wall = run_step(step, pipeline, port, requests, args)
            answered = max(1, sum(step.statuses.values()))
            step.cpu_ms = {n: round(max(0.0, spent - idle_per_s[n] * wall) * 1000 / answered, 3)
                           for n, spent in cpu.items()}
            results.append({**step.summary(), "phase": phase, "env": env,
                            "idle_cpu_per_s": {n: round(v, 4) for n, v in idle_per_s.items()}})
            stack.say(json.dumps(results[-1]))
            time.sleep(args.pause)
    finally:
        pipeline.stop()
    return results


def table(results: list[dict[str, Any]]) -> str:
    processes = sorted({p for r in results for p in r["cpu_ms_per_webhook"]})
    head = ["phase", "step", "answered/s", "accepted/s", "answer p95 ms", "visible p50 ms", "visible p95 ms",
            "lag at end", "drain s", "records/webhook", *(f"{p} ms" for p in processes), "total ms"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        cells = [r["phase"], r["step"], r["achieved_per_s"], r.get("accepted_per_s", "-"), r["answer_p95_ms"],
                 r["visible_p50_ms"], r["visible_p95_ms"],
                 sum(r["lag_at_end"].values()) if r["lag_at_end"] else "-", r["drain_s"],
                 r.get("records_per_webhook_total", "-"), *(r["cpu_ms_per_webhook"].get(p, "-") for p in processes),
                 r["cpu_ms_per_webhook_total"]]
        lines.append("| " + " | ".join("-" if c is None else str(c) for c in cells) + " |")
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cost, latency) = plt.subplots(1, 2, figsize=(11, 4))
    for phase in dict.fromkeys(r["phase"] for r in results):
        rows = [r for r in results if r["phase"] == phase]
        marker = "s" if phase == "floor" else "o"
        cost.plot([r["achieved_per_s"] for r in rows], [r["cpu_ms_per_webhook_total"] for r in rows],
                  marker=marker, label=phase)
    cost.set_xlabel("achieved webhooks/s")
    cost.set_ylabel("CPU-ms per webhook, all processes")
    cost.legend()
    for phase in dict.fromkeys(r["phase"] for r in results if r["visible_p95_ms"] is not None):
        rows = [r for r in results if r["phase"] == phase and r["visible_p95_ms"] is not None]
        latency.plot([r["achieved_per_s"] for r in rows], [r["visible_p95_ms"] / 1000 for r in rows], marker="o",
                     label=f"{phase}: p95 POST -> visible")
    latency.set_xlabel("achieved webhooks/s")
    latency.set_ylabel("seconds")
    latency.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def configured(config: str) -> tuple[str, dict[str, str]]:
    """`NAME:VAR=VALUE,...` as a phase name and its environment."""
    name, _, assignments = config.partition(":")
    return name, dict(a.split("=", 1) for a in assignments.split(",") if a)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[100, 300, 1000, 1500])
    parser.add_argument("--max", action=argparse.BooleanOptionalAction, default=True,
                        help="also a closed-loop step at the maximum")
    parser.add_argument("--max-schedule-rate", type=float, default=2000,
                        help="the schedule the closed-loop step draws its requests from")
    parser.add_argument("--step", type=float, default=60, help="seconds of sending per step")
    parser.add_argument("--warmup", type=float, default=30, help="seconds of unrecorded traffic before the steps")
    parser.add_argument("--warmup-rate", type=float, default=200)
    parser.add_argument("--idle", type=float, default=20, help="seconds of idle CPU measured before the steps")
    parser.add_argument("--drain", type=float, default=60, help="longest wait for the lag to reach 0")
    parser.add_argument("--pause", type=float, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--pipeline", action=argparse.BooleanOptionalAction, default=True,
                        help="the phase with the default settings")
    parser.add_argument("--floor", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--frameworks", action=argparse.BooleanOptionalAction, default=False,
                        help="a phase with the sink and two do-nothing Faust workers (bench/faust_baseline.py)")
    parser.add_argument("--config", action="append", default=[], metavar="NAME:VAR=VALUE,...",
                        help="a further pipeline phase with these service settings (repeatable); "
                             "INGEST_PROCESSES=N runs N ingest processes on one port (SO_REUSEPORT)")
    parser.add_argument("--frameworks-config", action="append", default=[], metavar="NAME:VAR=VALUE,...",
                        help="a further frameworks phase with these service settings (repeatable)")
    parser.add_argument("--label", default="", help="a name for this run in pipeline.json")
    parser.add_argument("--data", default=os.environ.get("PIPELINE_DATA", "/tmp/callpipe-pipeline"))
    args = parser.parse_args()
    stack.interrupt_on_sigterm()
    phases: list[tuple[str, Layout, dict[str, str]]] = [("pipeline", PIPELINE, {})] if args.pipeline else []
    phases += [(name, PIPELINE, env) for name, env in map(configured, args.config)]
    if args.frameworks:
        phases.append(("frameworks", FRAMEWORKS, {}))
    phases += [(name, FRAMEWORKS, env) for name, env in map(configured, args.frameworks_config)]
    if args.floor:
        phases.append(("floor", FLOOR, {}))
    results = [r for phase, layout, env in phases for r in run_phase(phase, layout, env, args)]
    out = {"machine": machine(), "label": args.label, "at": datetime.now(UTC).isoformat(timespec="seconds"),
           "step_s": args.step, "results": results}
    (OUT / "pipeline.json").write_text(json.dumps(out, indent=1))
    plot(results, OUT / "pipeline.png")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
