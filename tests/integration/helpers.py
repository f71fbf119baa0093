"""Shared pieces of the integration tests: a real HTTP server in a thread, a Kafka reader, and a gate in front of a
service that a test can close."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from urllib.parse import urlsplit, urlunsplit

import uvicorn
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupState,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from starlette.applications import Starlette

from broker.config import admin_config, consumer_config
from deploy.local.stack import free_port

# What a partition answers a moment after its topic was created on a fresh broker.
NO_LEADER_YET = frozenset({KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                           KafkaError.UNKNOWN_TOPIC_OR_PART})


@contextmanager
def serve(app: Starlette, config: Callable[[Starlette, int], uvicorn.Config] | None = None) -> Iterator[str]:
    """Run the app under uvicorn on a free loopback port; yield its base URL. `config(app, port)` gives the
    server's configuration (default: uvicorn's own)."""
    port = free_port()
    if config is None:
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    else:
        server = uvicorn.Server(config(app, port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def read_topic(bootstrap: str, topic: str, *, timeout: float = 20.0, settle: float = 0.0) -> list[Message]:
    """Every message of `topic` up to the end of each partition as of the call (plus what arrives during
    `settle` seconds more, so that late duplicates show up too)."""
    consumer = Consumer(consumer_config(bootstrap, f"test-{uuid.uuid4().hex}"))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends: dict[int, int] = {}
        for p in partitions:
            low, high = watermarks(consumer, TopicPartition(topic, p))
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        found: list[Message] = []
        deadline = time.monotonic() + timeout
        settle_until: float | None = None
        while time.monotonic() < deadline:
            msg = consumer.poll(0.1)
            if msg is not None and msg.error() is None:
                found.append(msg)
                partition, offset = int(msg.partition() or 0), int(msg.offset() or 0)
                if offset + 1 >= ends.get(partition, 0):
                    ends.pop(partition, None)
            if not ends and settle_until is None:
                settle_until = time.monotonic() + settle
            if settle_until is not None and time.monotonic() >= settle_until:
                return found
        raise TimeoutError(f"{topic}: partitions {sorted(ends)} not read to their end within {timeout}s")
    finally:
        consumer.close()


def eventually(check: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
    """Poll `check` until it holds; fail naming `what` when it does not within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} not reached within {timeout:.0f}s")


def watermarks(consumer: Consumer, partition: TopicPartition, timeout: float = 10.0) -> tuple[int, int]:
    """Low and high watermark of a partition, waiting while it has no leader yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            low, high = consumer.get_watermark_offsets(partition, timeout=timeout)
            return int(low), int(high)
        except KafkaException as exc:
            if exc.args[0].code() not in NO_LEADER_YET or time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def group_members(bootstrap: str, group: str) -> int:
    """Members of a stable group; 0 while it is rebalancing, empty, or the coordinator does not answer (a
    busy 2-core machine or a coordinator move: the caller polls again)."""
    admin = AdminClient(admin_config(bootstrap))
    try:
        description = admin.describe_consumer_groups([group], request_timeout=5)[group].result(timeout=10)
    except (KafkaException, TimeoutError):
        return 0
    return len(description.members) if description.state == ConsumerGroupState.STABLE else 0


def start_at_end(bootstrap: str, group: str, names: list[str]) -> bool:
    """Commit the new group's offsets at the end of the shared topics, so that what the earlier tests left
    there is not this test's input: the load is the one the test makes, whatever ran before it. False when a
    partition has no leader yet (topics created a moment ago on a fresh broker): the caller tries again."""
    consumer = Consumer(consumer_config(bootstrap, group))
    try:
        ends = [TopicPartition(n, p, consumer.get_watermark_offsets(TopicPartition(n, p), timeout=10)[1])
                for n in names for p in consumer.list_topics(n, timeout=10).topics[n].partitions]
        consumer.commit(offsets=ends, asynchronous=False)
        return True
    except KafkaException as exc:
        if exc.args[0].code() not in NO_LEADER_YET and not exc.args[0].retriable():
            raise
        return False
    finally:
        consumer.close()


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True  # opened again on the same port right after a close
    daemon_threads = True


class Gate:
    """A loopback TCP port in front of a real service: open, it forwards every connection; held, it takes them and
    forwards them only once released, as a service that hangs; closed, connections are refused and the open ones
    are cut, as when the service is down."""

    def __init__(self, url: str) -> None:
        target = urlsplit(url)
        self._target = (target.hostname or "127.0.0.1", target.port or 80)
        self.port = free_port()
        self.url = urlunsplit(target._replace(netloc=f"127.0.0.1:{self.port}"))
        self.held = 0
        """connections that waited for `release`"""
        self._server: _Server | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._released = threading.Event()

    def open(self, held: bool = False) -> None:
        if held:
            self._released.clear()
        else:
            self._released.set()
        if self._server is not None:
            return
        gate = self

        class Forward(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                if not gate._released.is_set():
                    with gate._lock:
                        gate.held += 1
                    gate._released.wait(60)
                upstream = socket.create_connection(gate._target, timeout=10)
                with gate._lock:
                    gate._connections |= {self.request, upstream}
                pump = threading.Thread(target=_copy, args=(upstream, self.request), daemon=True)
                pump.start()
                _copy(self.request, upstream)
                pump.join()

        self._server = _Server(("127.0.0.1", self.port), Forward)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def release(self) -> None:
        self._released.set()

    def close(self) -> None:
        self._released.set()  # held connections go on to find the upstream side cut
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            for connection in self._connections:
                with suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()
            self._connections.clear()


def _copy(source: socket.socket, target: socket.socket) -> None:
    with suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    with suppress(OSError):
        target.shutdown(socket.SHUT_WR)
