"""`python -m bench.ingest` (`make bench-ingest`): webhooks/s and latency of the ingest endpoint against a
real local Kafka (acks=all), side by side with a bare Starlette endpoint on the same server stack (baseline) and,
when Go is installed, the compiled HTTP -> Kafka gateway of `../shared/peers/go-ingest` (gateway: one raw record per
request, acks=all, the least any gateway on this machine spends), built into the run's temporary directory.

Starts Kafka alone (deploy/local, free ports, a temporary directory), one server process per endpoint
(uvicorn, uvloop, httptools, one worker each) and drives each from a separate load process on 127.0.0.1 with
the bundled sample's webhooks: (a) the sustained maximum, closed-loop, (b) p50/p99 at a fixed open-loop rate,
after an unrecorded warm-up of the broker. Then times the same work in process without HTTP
(bench/ingest_floor.py). Prints a table and appends the figures to bench/RESULTS.md under "Ingest". Load
generator, server and Kafka share this machine's cores: the figures are what one machine does with all three on
it, not a server-only ceiling.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.host import cpu_seconds, machine
from bench.ingest_floor import Floor, measure_floor
from bench.ingest_servers import SECRET
from broker.admin import TopicSpec, callpipe_topics, ensure_topics
from deploy.local import stack
from ingest.settings import KAFKA_LINGER_MS
from schemas import topics

RESULTS = Path(__file__).resolve().with_name("RESULTS.md")
ENDPOINTS = ("baseline", "ingest")
GATEWAY = "gateway"
GATEWAY_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "peers" / "go-ingest"
GATEWAY_TOPIC = "peer.raw.v1"
GATEWAY_TARGET_RATIO = 2.0
TARGET_PER_SECOND = 5000
TARGET_P99_MS = 50.0
SECTION = "## Ingest"
TABLE_HEADER = (
    "| date | machine | endpoint | max webhooks/s | CPU at max: server (Kafka) | p50 / p99 ms at {rate}/s "
    "| non-2xx |\n"
    "|---|---|---|---|---|---|---|"
)


class BenchError(RuntimeError):
    """A failure explained in one line."""


@dataclass
class Figures:
    max_per_second: float
    server_cpu_pct: float
    kafka_cpu_pct: float
    p50_ms: float
    p99_ms: float
    rate_max_ms: float
    failed: int






def _wait_listening(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} server exited with code {proc.returncode} while starting")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"{what} server did not listen on port {port} within {timeout:.0f}s")


def build_gateway(source: Path, out: Path) -> Path | None:
    """The compiled gateway, or None (said why) where Go or its source is missing."""
    go = shutil.which("go") or next((p for p in (Path("/usr/local/go/bin/go"),) if p.exists()), None)
    if go is None or not (source / "main.go").exists():
        print(f"[bench] no gateway endpoint: {'Go is not installed' if go is None else f'no {source}/main.go'}",
              flush=True)
        return None
    print(f"[bench] building the gateway from {source} ...", flush=True)
    built = subprocess.run([str(go), "build", "-o", str(out), "."], cwd=source, capture_output=True, check=False)
    if built.returncode != 0:
        raise BenchError(f"go build of the gateway failed: {built.stderr.decode().strip()[-300:]}")
    return out


def endpoints(gateway: Path | None) -> tuple[str, ...]:
    return (*ENDPOINTS, GATEWAY) if gateway is not None else ENDPOINTS


def _command(name: str, port: int, bootstrap: str, linger_ms: float, gateway: Path | None,
             profile_dir: Path | None) -> list[str]:
    if name == GATEWAY:
        assert gateway is not None
        return [str(gateway), "-addr", f"127.0.0.1:{port}", "-brokers", bootstrap, "-topic", GATEWAY_TOPIC,
                "-secret", SECRET, "-linger", f"{linger_ms}ms"]
    cmd = [sys.executable, "-m", "bench.ingest_servers", name, "--port", str(port), "--bootstrap", bootstrap,
           "--linger-ms", str(linger_ms)]
    if profile_dir is not None:
        cmd += ["--profile", str(profile_dir / f"{name}.prof")]
    return cmd


@contextmanager
def servers(bootstrap: str, profile_dir: Path | None, linger_ms: float,
            gateway: Path | None) -> Iterator[dict[str, tuple[int, int]]]:
    """Every endpoint, each in its own process: name -> (port, pid)."""
    procs: dict[str, tuple[int, subprocess.Popen[bytes]]] = {}
    try:
        for name in endpoints(gateway):
            port = stack.free_port()
            procs[name] = (port, subprocess.Popen(_command(name, port, bootstrap, linger_ms, gateway,
                                                           profile_dir)))
        for name, (port, proc) in procs.items():
            _wait_listening(port, proc, name)
        yield {name: (port, proc.pid) for name, (port, proc) in procs.items()}
    finally:
        for _, proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for _, proc in procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def load(port: int, mode: str, args: argparse.Namespace, duration: float) -> dict[str, Any]:
    connections = args.connections if mode == "max" else args.rate_connections
    cmd = [
        sys.executable,
        "-m",
        "bench.ingest_load",
        "--port",
        str(port),
        "--mode",
        mode,
        "--rate",
        str(args.rate),
        "--connections",
        str(connections),
        "--duration",
        str(duration),
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=duration + 120, check=False)
    except subprocess.TimeoutExpired:
        raise BenchError(f"load generator did not finish ({mode} on port {port})") from None
    try:
        result: dict[str, Any] = orjson.loads(done.stdout)
    except orjson.JSONDecodeError:
        raise BenchError(f"load generator failed: {done.stderr.decode().strip()[-300:]}") from None
    if done.returncode != 0 or "error" in result:
        raise BenchError(f"load generator failed: {result.get('error')}")
    return result


def measure(args: argparse.Namespace, bootstrap: str, kafka_pid: int, gateway: Path | None) -> dict[str, Figures]:
    ensure_topics(bootstrap, [*callpipe_topics(), TopicSpec(GATEWAY_TOPIC, topics.PARTITIONS)])
    runs: dict[tuple[str, str], tuple[dict[str, Any], float, float]] = {}
    with servers(bootstrap, args.profile, args.linger_ms, gateway) as running:
        if args.warmup > 0:
            print(f"[bench] warming the broker up: {args.warmup:.0f} s of ingest load, not recorded", flush=True)
            load(running["ingest"][0], "max", args, args.warmup)
        for mode in ("max", "rate"):
            for name in running:
                port, pid = running[name]
                print(
                    f"[bench] {name}: {'maximum' if mode == 'max' else f'{args.rate:.0f}/s'} ...", flush=True
                )
                cpu, kafka_cpu, started = cpu_seconds(pid), cpu_seconds(kafka_pid), time.monotonic()
                result = load(port, mode, args, args.duration)
                wall = time.monotonic() - started  # includes the load generator's warm-up and start-up
                runs[(name, mode)] = (
                    result,
                    (cpu_seconds(pid) - cpu) / wall * 100,
                    (cpu_seconds(kafka_pid) - kafka_cpu) / wall * 100,
                )
    figures = {}
    for name in endpoints(gateway):
        top, server_cpu, kafka_cpu = runs[(name, "max")]
        paced = runs[(name, "rate")][0]
        failed = sum(
            n
            for status, n in [*top["statuses"].items(), *paced["statuses"].items()]
            if not status.startswith("2")
        )
        figures[name] = Figures(
            top["per_second"],
            server_cpu,
            kafka_cpu,
            paced["p50_ms"],
            paced["p99_ms"],
            paced["max_ms"],
            failed,
        )
    return figures


def cpu_per_request_us(figures: Figures) -> float:
    """Server CPU (all threads) per answered request at the maximum."""
    return figures.server_cpu_pct / 100 / figures.max_per_second * 1e6


def table(figures: dict[str, Figures], rate: float, floor: Floor) -> str:
    base, real = figures["baseline"], figures["ingest"]
    lines = [
        f"{'endpoint':<10} {'max/s':>8} {'srv CPU':>8} {'kafka CPU':>10} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'max ms':>8} {'non-2xx':>8}   (latency at {rate:.0f}/s open-loop)",
    ]
    for name, f in figures.items():
        lines.append(
            f"{name:<10} {f.max_per_second:>8.0f} {f.server_cpu_pct:>7.0f}% {f.kafka_cpu_pct:>9.0f}% "
            f"{f.p50_ms:>8.2f} {f.p99_ms:>8.2f} {f.rate_max_ms:>8.1f} {f.failed:>8}"
        )
    lines.append(
        f"ingest/baseline: {real.max_per_second / base.max_per_second:.2f}x throughput, "
        f"{real.p99_ms / base.p99_ms:.1f}x p99"
    )
    lines.append(
        f"server CPU per request at the maximum: ingest {cpu_per_request_us(real):.0f} us, baseline "
        f"{cpu_per_request_us(base):.0f} us; in process without HTTP (bench/ingest_floor.py): parse "
        f"{floor.parse_us:.0f} + plan {floor.plan_us:.0f} + produce {floor.produce_us:.0f} = {floor.total_us:.0f} us"
    )
    if GATEWAY in figures:
        peer = figures[GATEWAY]
        ratio = cpu_per_request_us(real) / cpu_per_request_us(peer)
        lines.append(
            f"server CPU per request, ingest/gateway: {ratio:.1f}x (gateway {cpu_per_request_us(peer):.0f} us, "
            f"max {peer.max_per_second:.0f}/s; ingest's max is {real.max_per_second / peer.max_per_second:.2f} of "
            f"it); target <= {GATEWAY_TARGET_RATIO:.0f}x: {'met' if ratio <= GATEWAY_TARGET_RATIO else 'MISSED'}"
        )
    verdict = "met" if real.max_per_second >= TARGET_PER_SECOND else "MISSED"
    lines.append(
        f"target >= {TARGET_PER_SECOND}/s per worker: {verdict} ({real.max_per_second:.0f}/s); "
        f"target p99 < {TARGET_P99_MS:.0f} ms at {rate:.0f}/s: "
        f"{'met' if real.p99_ms < TARGET_P99_MS else 'MISSED'} ({real.p99_ms:.1f} ms)"
    )
    return "\n".join(lines)


def record(figures: dict[str, Figures], rate: float, path: Path = RESULTS) -> None:
    """Append this run's rows to the table of the "Ingest" section, creating what is missing."""
    stamp, host = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), machine()
    rows = [
        f"| {stamp} | {host} | {name} | {f.max_per_second:.0f} "
        f"| {f.server_cpu_pct:.0f}% ({f.kafka_cpu_pct:.0f}%) | {f.p50_ms:.1f} / {f.p99_ms:.1f} | {f.failed} |"
        for name, f in figures.items()
    ]
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    lines = text.splitlines()
    if SECTION not in lines:
        lines += [
            "",
            SECTION,
            "",
            "Run with `python -m bench.ingest`; see the module's docstring for the method.",
            "",
            TABLE_HEADER.format(rate=f"{rate:.0f}"),
        ]
    at = lines.index(SECTION) + 1
    while at < len(lines) and not lines[at].startswith("|"):  # to the section's table
        at += 1
    while at < len(lines) and lines[at].startswith("|"):  # past its last row
        at += 1
    lines[at:at] = rows
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per run (default 15)")
    parser.add_argument(
        "--rate", type=float, default=2000.0, help="open-loop rate for latency (default 2000)"
    )
    parser.add_argument(
        "--connections", type=int, default=32, help="connections for the maximum (default 32)"
    )
    parser.add_argument("--rate-connections", type=int, default=64, help="connections at the fixed rate")
    parser.add_argument(
        "--warmup", type=float, default=20.0,
        help="seconds of unrecorded ingest load first (default 20): a cold broker JVM spends its CPU compiling",
    )
    parser.add_argument("--profile", type=Path, help="directory for cProfile files of both servers")
    parser.add_argument("--linger-ms", type=float, default=KAFKA_LINGER_MS,
                        help=f"both servers' linger.ms (INGEST_KAFKA_LINGER_MS), default {KAFKA_LINGER_MS:g}")
    parser.add_argument("--gateway-source", type=Path, default=GATEWAY_SOURCE,
                        help="the compiled gateway's Go source (built when Go is installed)")
    parser.add_argument("--no-record", action="store_true", help=f"do not append to {RESULTS.name}")
    args = parser.parse_args(argv)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="callpipe-bench-"))
    try:
        gateway = build_gateway(args.gateway_source, data / "go-ingest")
        running = stack.up(data, stack.free_port(), stack.free_port(), None)
        try:
            figures = measure(args, running.bootstrap, running.kafka_pid, gateway)
            floor = measure_floor(running.bootstrap)
        finally:
            stack.down(data)
    except (stack.StackError, BenchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(data, ignore_errors=True)
    print(table(figures, args.rate, floor))
    if not args.no_record:
        record(figures, args.rate)
        print(f"[bench] appended to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
