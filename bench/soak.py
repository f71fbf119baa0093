"""Soak (run by hand, alone on the machine): the whole pipeline for an hour at a constant rate of the sample's mix,
with a short retention so that eviction happens inside the hour. Every `--every` seconds it samples each
process's RSS and the streams workers' state entries; at 10 minutes (a quarter of a shorter run) and 3 minutes
before the end it restarts one streams worker `--restarts` times in a row and times each recovery (their median is
the point's restart time: a single restart's time varies by seconds with the group's rebalance). Writes
bench/soak.json and bench/soak.png.

    python -m bench.soak --duration 3600 --rate 100 --retention 300 --rocksdb-memory-mb 32

Traffic: many copies of the sample's hour (deploy/sample/generate.py with other seeds and ids), one starting
every 520/rate seconds, each with its provider times on the wall clock of its start, and copies already under way
at t=0, so that the rate is constant from the first second and event time follows wall time (the clocks of the
retention and the metric windows are event time). Sent open-loop over keep-alive connections
(bench/ingest_load.py's client). The changelogs' segments and tombstones are kept in proportion to the short
retention (`segment.ms` 60 s, `delete.retention.ms` = the retention) so that compaction runs inside the hour.
`--rocksdb-memory-mb` sizes the workers' RocksDB cache the same way: a worker holding 48 h of a provider's traffic
has far more state than its cache, which is full minutes after a start, but 5 minutes of state fill the default
128 MiB only with the blocks of files compaction deleted since, which takes 40 minutes (soak run 7).
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import itertools
import json
import os
import shutil
import statistics
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvloop
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from bench.host import machine
from bench.ingest_load import Connection
from broker.config import admin_config
from deploy.local import stack
from deploy.local.services import Services, create_topics, service_env
from deploy.sample import generate, timeline
from schemas import topics

OUT = Path(__file__).resolve().parent
TIMELINE_S = 3300  # the sample's deliveries span its first 3300 s
PER_TIMELINE = 520


def timeline_requests(k: int, base: datetime, port: int, tenant: str, secret: str) -> list[tuple[float, bytes]]:
    """Copy k of the sample: (seconds after `base`, ready-to-send request)."""
    # The builders read the sample's clock from the module (deploy/sample/timeline.py): set it for this copy.
    timeline.BASE = base.astimezone(timeline.BRT)
    deliveries = generate.build(seed=generate.SEED + k, first_id=100_000_000 + k * 10_000, counter_offset=k * 1_000)
    out = []
    for d in deliveries:
        body = json.dumps(d.body, ensure_ascii=False, separators=(",", ":")).encode()
        head = (f"POST /hooks/{tenant}/{d.kind} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Content-Type: application/json\r\nX-Callpipe-Secret: {secret}\r\nContent-Length: {len(body)}\r\n\r\n")
        out.append((d.at, head.encode() + body))
    return out


def schedule(wall: datetime, duration: float, rate: float, port: int, tenant: str,
             secret: str) -> Iterator[tuple[float, bytes]]:
    """(seconds after `wall`, request) in due order; copies are generated as their start comes near."""
    gap = PER_TIMELINE / rate
    k, first = 0, -TIMELINE_S
    pending: list[tuple[float, int, bytes]] = []
    seq = 0
    while True:
        horizon = (pending[0][0] if pending else first + k * gap) + 60
        while first + k * gap <= min(horizon, duration):
            offset = first + k * gap
            for at, request in timeline_requests(k, wall + timedelta(seconds=offset), port, tenant, secret):
                if 0 <= offset + at < duration:
                    heapq.heappush(pending, (offset + at, seq, request))
                    seq += 1
            k += 1
        if not pending:
            return
        at, _, request = heapq.heappop(pending)
        yield at, request


RSS_PARTS = {"VmRSS:": "rss", "RssAnon:": "rss_anon", "RssFile:": "rss_file"}
"""/proc/<pid>/status lines -> sample keys: the resident set, and its anonymous (heaps) and file-backed (mapped
files, such as the broker's segment indexes) parts."""


def rss_kib(pid: int) -> dict[str, int]:
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        fields = line.split()
        if fields and fields[0] in RSS_PARTS:
            found[RSS_PARTS[fields[0]]] = int(fields[1])
    return found


def scrape(port: int) -> dict[str, float]:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def table_entries(metrics: dict[str, float]) -> dict[str, int]:
    """State entries per table, from `callpipe_streams_state_entries{table="..."}`."""
    prefix = 'callpipe_streams_state_entries{table="'
    return {k[len(prefix):].split('"', 1)[0]: int(v) for k, v in metrics.items() if k.startswith(prefix)}


def shorten_changelogs(bootstrap: str, app_id: str, retention_s: int) -> None:
    admin = AdminClient(admin_config(bootstrap))
    resources = [ConfigResource(ConfigResource.Type.TOPIC, f"{app_id}-{name}-changelog", incremental_configs=[
        ConfigEntry("segment.ms", "60000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("delete.retention.ms", str(retention_s * 1000), incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("min.cleanable.dirty.ratio", "0.1", incremental_operation=AlterConfigOpType.SET),
    ]) for name in topics.STATE_TABLES]
    for future in admin.incremental_alter_configs(resources).values():
        future.result(timeout=30)


RESTART_SETTLE_S = 20.0


class Soak:
    def __init__(self, services: Services, pids: dict[str, int], metrics_ports: dict[str, int]) -> None:
        self.services, self.pids, self.metrics_ports = services, pids, metrics_ports
        self.samples: list[dict[str, Any]] = []
        self.restarts: list[dict[str, float]] = []
        self.sent = 0
        self.errors: list[float] = []
        """When (seconds into the run) a request's connection closed before its answer."""
        self.statuses: dict[int, int] = {}
        self.restarting = threading.Lock()

    def allocator(self) -> str:
        metrics = scrape(self.metrics_ports["streams"])
        labels = [key for key in metrics if key.startswith("callpipe_streams_malloc_bytes")]
        return labels[0].split('allocator="')[1].split('"')[0] if labels else "unknown"

    def sample(self, t: float) -> None:
        row: dict[str, Any] = {"t": round(t, 1), "sent": self.sent}
        for name, pid in self.pids.items():
            try:
                row.update({f"{part}_{name}": kib for part, kib in rss_kib(pid).items()})
            except OSError:
                row[f"rss_{name}"] = None
        tables: dict[str, int] = {}
        for name, port in self.metrics_ports.items():
            metrics = scrape(port)
            for table, entries in table_entries(metrics).items():
                tables[table] = tables.get(table, 0) + entries
            row[f"rocksdb_kib_{name}"] = int(metrics.get(
                'callpipe_streams_rocksdb_memory_bytes{what="block_cache"}', 0)) // 1024
            row[f"python_blocks_{name}"] = int(metrics.get("callpipe_streams_python_allocated_blocks", 0))
            for what in ("in_use", "free"):
                row[f"malloc_{what}_kib_{name}"] = sum(
                    int(value) for key, value in metrics.items()
                    if key.startswith("callpipe_streams_malloc_bytes{") and f'what="{what}"' in key) // 1024
        row["state_entries"] = sum(tables.values())
        row.update({f"entries_{table}": entries for table, entries in tables.items()})
        self.samples.append(row)

    def restart_worker(self, t: float, data: Path, times: int) -> None:
        """Stop streams-2 cleanly, start it again, time until its tables are recovered; `times` in a row, each after
        the group settled from the one before (one point's restarts at a time)."""
        with self.restarting:
            for n in range(times):
                if n:
                    time.sleep(RESTART_SETTLE_S)
                self._restart(t, data)

    def _restart(self, t: float, data: Path) -> None:
        name = "streams-2"
        stopping = time.perf_counter()
        stack.stop_pid(self.services.children.pop(name).pid, grace=30)
        began = time.perf_counter()
        proc = self.services.spawn(name, module="streams", STREAMS_DATA_DIR=str(data / "streams-2"),
                                   STREAMS_METRICS_PORT=str(self.metrics_ports[name]))
        self.pids[name] = proc.pid
        while scrape(self.metrics_ports[name]).get("callpipe_streams_rebalances_total", 0) < 1:
            if time.perf_counter() - began > 600:
                raise stack.StackError("streams-2 did not recover within 600 s")
            time.sleep(0.2)
        self.restarts.append({"at_s": round(t, 1), "stop_s": round(began - stopping, 2),
                              "recovery_s": round(time.perf_counter() - began, 2),
                              "state_entries": self.samples[-1]["state_entries"] if self.samples else 0})
        stack.say(f"restart at {t:.0f}s: stopped in {self.restarts[-1]['stop_s']}s, "
                  f"recovered in {self.restarts[-1]['recovery_s']}s")


async def drive(soak: Soak, args: argparse.Namespace, port: int, tenant: str, secret: str, data: Path) -> None:
    loop = asyncio.get_running_loop()
    wall = datetime.now(UTC)
    due_requests = schedule(wall, args.duration, args.rate, port, tenant, secret)
    # The copies already under way at t=0 are made by the first second's requests (about 15 s of work): made before
    # any connection is open, or ingest closes the idle connections (run 7's 16 connection errors, all at 15.4 s).
    head: list[tuple[float, bytes]] = []
    for item in due_requests:
        head.append(item)
        if item[0] > 1.0:
            break
    conns: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(args.connections):
        _, conn = await loop.create_connection(Connection, "127.0.0.1", port)
        conns.put_nowait(conn)
    start = time.perf_counter() - (datetime.now(UTC) - wall).total_seconds()

    async def post(request: bytes) -> None:
        conn = await conns.get()
        try:
            status = await conn.send(request)
            soak.statuses[status] = soak.statuses.get(status, 0) + 1
        except ConnectionError:
            soak.errors.append(round(time.perf_counter() - start, 1))
            _, conn = await loop.create_connection(Connection, "127.0.0.1", port)
        conns.put_nowait(conn)

    next_sample = 0.0
    restarts = sorted({t for t in (min(600.0, args.duration / 4), args.duration - 180) if t > 0})
    tasks: set[asyncio.Task[None]] = set()
    background: list[asyncio.Future[None]] = []
    for at, request in itertools.chain(head, due_requests):
        due = start + at
        now = time.perf_counter()
        if due > now:
            await asyncio.sleep(due - now)
        task = asyncio.create_task(post(request))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        soak.sent += 1
        elapsed = time.perf_counter() - start
        # Off the event loop and not awaited: the load keeps its rate while the samples and restarts run.
        if elapsed >= next_sample:
            background.append(loop.run_in_executor(None, soak.sample, elapsed))
            next_sample += args.every
        if restarts and elapsed >= restarts[0]:
            restarts.pop(0)
            background.append(loop.run_in_executor(None, soak.restart_worker, elapsed, data, args.restarts))
    await asyncio.gather(*tasks, *background)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    minutes = [s["t"] / 60 for s in samples]
    fig, (rss, state) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for name in result["processes"]:
        rss.plot(minutes, [(s.get(f"rss_{name}") or 0) / 1024 for s in samples], label=name)
    rss.set_ylabel("RSS (MiB)")
    rss.legend(fontsize=7, ncol=3)
    state.plot(minutes, [s["state_entries"] for s in samples], color="black", label="all tables")
    for table in sorted({k for s in samples for k in s if k.startswith("entries_")}):
        state.plot(minutes, [s.get(table, 0) for s in samples], linewidth=0.8, label=table[len("entries_"):])
    state.legend(fontsize=6, ncol=4)
    state.set_ylabel("streams state entries")
    state.set_xlabel("minutes")
    for restart in result["restarts"]:
        state.axvline(restart["at_s"] / 60, color="red", linestyle=":")
    fig.suptitle(f"soak: {result['rate']}/s, retention {result['retention_s']} s ({result['machine']})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def restart_medians(restarts: list[dict[str, float]]) -> dict[str, float]:
    """Each point's median recovery (a new process started -> its tables recovered), keyed by the point's time."""
    points: dict[float, list[float]] = {}
    for restart in restarts:
        points.setdefault(restart["at_s"], []).append(restart["recovery_s"])
    return {str(at): round(statistics.median(times), 2) for at, times in points.items()}


def growth(samples: list[dict[str, Any]], key: str, since_s: float, until_s: float) -> float | None:
    """(last - first) / first of `key` over the samples from `since_s` (the last 40 minutes) to `until_s` (the
    last restart: a restarted worker starts over, which is not growth)."""
    values = [s[key] for s in samples if since_s <= s["t"] < until_s and s.get(key)]
    return None if len(values) < 2 else round((values[-1] - values[0]) / values[0], 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3600)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--retention", type=int, default=300)
    parser.add_argument("--every", type=float, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--restarts", type=int, default=3, help="restarts in a row at each point")
    parser.add_argument("--rocksdb-memory-mb", type=int, help="the workers' STREAMS_ROCKSDB_MEMORY_MB (their default)")
    parser.add_argument("--log-level", default="WARNING", help="the services' LOG_LEVEL")
    args = parser.parse_args()
    data = Path(os.environ.get("SOAK_DATA", "/tmp/callpipe-soak"))
    stack.interrupt_on_sigterm()
    stack.down(data)
    shutil.rmtree(data, ignore_errors=True)  # a fresh broker, tables and ClickHouse every run
    running = stack.up(data, stack.free_port(), stack.free_port(), stack.free_port())
    services: Services | None = None
    try:
        create_topics(running.bootstrap)
        shorten_changelogs(running.bootstrap, topics.STREAMS_APP_ID, args.retention)
        ports = {"streams": stack.free_port(), "streams-2": stack.free_port()}
        services = Services(data, service_env(
            data, running.bootstrap, running.registry_url, INGEST_PORT=str(stack.free_port()),
            SINK_QUERY_PORT=str(stack.free_port()), STREAMS_RETENTION_S=str(args.retention),
            STREAMS_METRIC_GRACE_S=str(args.retention), LOG_LEVEL=args.log_level,
            **({"STREAMS_ROCKSDB_MEMORY_MB": str(args.rocksdb_memory_mb)} if args.rocksdb_memory_mb else {})))
        services.spawn("sink")
        services.spawn("streams", STREAMS_METRICS_PORT=str(ports["streams"]))
        services.spawn("streams-2", module="streams", STREAMS_DATA_DIR=str(data / "streams-2"),
                       STREAMS_METRICS_PORT=str(ports["streams-2"]))
        services.spawn("ingest")
        services.wait_http("sink", f"{services.sink_url}/health")
        services.wait_http("ingest", f"{services.ingest_url}/readyz")
        time.sleep(20)  # both workers in the group
        pids = {"kafka": int(running.kafka_pid or 0), "registry": int(running.registry_pid or 0),
                **{name: proc.pid for name, proc in services.children.items()}}
        soak = Soak(services, pids, ports)
        tenant, secret = services.env["INGEST_TENANTS"].split(",")[0].split(":", 1)
        port = int(services.ingest_url.rsplit(":", 1)[1])
        uvloop.run(drive(soak, args, port, tenant, secret, data))
        last_40 = args.duration - 2400
        last_restart = max((r["at_s"] for r in soak.restarts if r["at_s"] > last_40), default=float("inf"))
        counters = [scrape(p) for p in ports.values()]
        late = {k: sum(c.get(k, 0) for c in counters) for k in {k for c in counters for k in c}
                if k.startswith(("callpipe_streams_late_total", "callpipe_streams_evictions_total",
                                 "callpipe_streams_dead_letters_total"))}
        result = {
            "machine": machine(), "late_and_evicted_since_each_workers_start": late,
            "rate": args.rate, "duration_s": args.duration, "retention_s": args.retention,
            "sent": soak.sent, "statuses": soak.statuses, "connection_errors": len(soak.errors),
            "connection_errors_at_s": soak.errors,
            "rocksdb_memory_mb": args.rocksdb_memory_mb, "allocator": soak.allocator(),
            "processes": list(pids), "restarts": soak.restarts, "restart_medians_s": restart_medians(soak.restarts),
            "samples": soak.samples,
            "growth_last_40_min": {key: growth(soak.samples, key, last_40, last_restart)
                                   for key in ("state_entries", *(f"rss_{n}" for n in pids),
                                               *sorted({k for s in soak.samples for k in s
                                                        if k.startswith(("entries_", "malloc_", "rocksdb_",
                                                                         "rss_anon_", "rss_file_"))}))},
        }
        (OUT / "soak.json").write_text(json.dumps(result, indent=1))
        plot(result, OUT / "soak.png")
        print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=1))
        return 0
    finally:
        if services is not None:
            services.stop()
        stack.down(data)


if __name__ == "__main__":
    raise SystemExit(main())
