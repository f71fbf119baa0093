"""Load side of the ingest benchmark: an HTTP/1.1 keep-alive client on raw asyncio sockets (uvloop), cheap
enough per request that it does not hide the server's cost, bounded in time, loopback only. Prints one JSON
object with the counts and latencies.

    python -m bench.ingest_load --port P --mode max --connections 32 --duration 15
    python -m bench.ingest_load --port P --mode rate --rate 2000 --connections 64 --duration 15

`max` is closed-loop (each connection sends its next request when the previous answer arrived): the sustained
maximum. `rate` is open-loop: request i is due at start + i/rate whatever the server does, and its latency is
counted from that due time, so a server that falls behind shows it (no coordinated omission).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import cast

import uvloop

POLL_S = 0.001
SAMPLE = Path(__file__).resolve().parents[1] / "deploy" / "sample" / "webhooks.jsonl"


def requests(port: int, tenant: str, secret: str) -> list[bytes]:
    """One ready-to-send request per sample webhook."""
    built = []
    for line in SAMPLE.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        body = json.dumps(item["body"], ensure_ascii=False, separators=(",", ":")).encode()
        head = (f"POST /hooks/{tenant}/{item['kind']} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Content-Type: application/json\r\nX-Callpipe-Secret: {secret}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")
        built.append(head.encode() + body)
    return built


class Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end]).lower()
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name == b"content-length":
                length = int(value)
        if len(self.buffer) < end + 4 + length:
            return
        del self.buffer[:end + 4 + length]
        waiter, self.waiter = self.waiter, None
        waiter.set_result(int(head[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("server closed the connection"))

    async def send(self, request: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


class Recorder:
    def __init__(self, measure_from: float) -> None:
        self.measure_from = measure_from
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}

    def record(self, due: float, status: int) -> None:
        if due >= self.measure_from:  # warm-up requests are not counted
            self.latencies.append(time.perf_counter() - due)
            self.statuses[status] = self.statuses.get(status, 0) + 1


async def closed_loop(conns: list[Connection], reqs: list[bytes], recorder: Recorder, stop: float) -> None:
    async def drive(conn: Connection, offset: int) -> None:
        i = offset
        while time.perf_counter() < stop:
            due = time.perf_counter()
            recorder.record(due, await conn.send(reqs[i % len(reqs)]))
            i += len(conns)

    await asyncio.gather(*(drive(conn, n) for n, conn in enumerate(conns)))


async def open_loop(conns: list[Connection], reqs: list[bytes], recorder: Recorder, rate: float,
                    start: float, stop: float) -> None:
    due_times: asyncio.Queue[float] = asyncio.Queue()

    async def drive(conn: Connection) -> None:
        while True:
            due = await due_times.get()
            if due >= stop:
                return
            recorder.record(due, await conn.send(reqs[int((due - start) * rate) % len(reqs)]))

    workers = [asyncio.create_task(drive(conn)) for conn in conns]
    issued = 0
    while True:
        now = time.perf_counter()
        if now >= stop:
            break
        while start + issued / rate <= now:
            due_times.put_nowait(start + issued / rate)
            issued += 1
        # uvloop's timers have millisecond resolution: a shorter sleep returns at once, and the generator spun a
        # whole core away from the server and Kafka. Requests released late are still timed from their due time.
        await asyncio.sleep(max(POLL_S, start + issued / rate - now))
    for _ in workers:
        due_times.put_nowait(stop)
    await asyncio.gather(*workers)


async def run(args: argparse.Namespace) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    reqs = requests(args.port, args.tenant, args.secret)
    conns = []
    for _ in range(args.connections):
        _, conn = await loop.create_connection(Connection, "127.0.0.1", args.port)
        conns.append(conn)
    start = time.perf_counter()
    measure_from = start + args.warmup
    stop = measure_from + args.duration
    recorder = Recorder(measure_from)
    if args.mode == "max":
        await closed_loop(conns, reqs, recorder, stop)
    else:
        await open_loop(conns, reqs, recorder, args.rate, start, stop)
    elapsed = time.perf_counter() - measure_from
    for conn in conns:
        assert conn.transport is not None
        conn.transport.close()
    lat = sorted(recorder.latencies)
    quantiles = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else [0.0] * 99
    return {
        "completed": len(lat),
        "per_second": len(lat) / elapsed,
        "statuses": {str(k): v for k, v in sorted(recorder.statuses.items())},
        "p50_ms": quantiles[49] * 1000,
        "p99_ms": quantiles[98] * 1000,
        "max_ms": (lat[-1] if lat else 0.0) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest_load")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=["max", "rate"], required=True)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--tenant", default="bench")
    parser.add_argument("--secret", default="bench-secret-not-for-production")
    args = parser.parse_args()
    try:
        result = uvloop.run(run(args))
    except (ConnectionError, OSError) as exc:
        print(json.dumps({"error": str(exc)}))
        sys.exit(1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
