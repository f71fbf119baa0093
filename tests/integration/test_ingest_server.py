"""The server's bounds before authentication (ingest/server.py), over real sockets against the real broker:
header bytes and count, URL length, idle and slow connections, slow bodies, the connection cap, proxy headers."""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from ingest.app import NO_KIND, Ingest, create_app
from ingest.server import server_config
from ingest.settings import Settings
from schemas import topics
from schemas.codec import SingleObjectCodec
from tests.integration.helpers import read_topic, serve

pytestmark = pytest.mark.integration

SECRET = "s3cret-for-tests"
PATH = f"/hooks/acme/{SECRET}/aviso_saldo"
LIMITS = {"max_header_bytes": 4096, "max_headers": 20, "max_url_bytes": 512, "header_timeout_s": 1.0,
          "body_timeout_s": 1.0, "idle_timeout_s": 1.0, "max_connections": 50}


@dataclass(frozen=True)
class Server:
    url: str
    address: tuple[str, int]
    ingest: Ingest

    def count(self, kind: str, status: int) -> float:
        value = self.ingest.metrics.registry.get_sample_value(
            "callpipe_ingest_requests_total", {"kind": kind, "status": str(status)})
        return value or 0.0


@contextmanager
def guarded(kafka: str, **overrides: Any) -> Iterator[Server]:
    chosen: dict[str, Any] = {"max_body_bytes": 64 * 1024, **LIMITS, **overrides}
    settings = Settings(host="127.0.0.1", port=0, kafka_bootstrap=kafka, schema_registry_url=None,
                        tenants={"acme": SECRET}, max_json_depth=16, kafka_timeout_s=5, retry_after_s=3,
                        kafka_linger_ms=2, log_level="WARNING", **chosen)
    app = create_app(settings, codec=SingleObjectCodec())
    ingest: Ingest = app.state.ingest

    def config(app: Starlette, port: int) -> uvicorn.Config:
        return server_config(app, replace(settings, port=port))

    with serve(app, config) as url:
        parts = urlsplit(url)
        yield Server(url, (parts.hostname or "127.0.0.1", parts.port or 80), ingest)


@pytest.fixture(scope="module")
def server(kafka: str) -> Iterator[Server]:
    with guarded(kafka) as running:
        yield running


def head(path: str = PATH, headers: dict[str, str] | None = None, length: int | None = None) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "host: ingest", "content-type: application/json"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if length is not None:
        lines.append(f"content-length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answer_of(sock: socket.socket, timeout: float = 5.0) -> tuple[int, bytes]:
    """Status and everything the server sent until it closed the connection."""
    sock.settimeout(timeout)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    status = int(received.split(b" ", 2)[1]) if received else 0
    return status, received


def body_for(marker: str) -> bytes:
    return f'{{"saldo": "10.50", "marker": "{marker}"}}'.encode()


def test_headers_over_the_limit_get_431_before_the_rest_is_even_sent(server: Server) -> None:
    before = server.count(NO_KIND, 431)
    with socket.create_connection(server.address) as sock:
        sock.sendall(head().split(b"\r\n\r\n")[0] + b"\r\nx-big: " + b"a" * 16384)  # no end of head yet
        status, received = answer_of(sock)
        assert status == 431 and b"headers_too_large" in received
        with pytest.raises(OSError):  # the server closed: the remaining 16 MiB have nowhere to go
            for _ in range(256):
                sock.sendall(b"a" * 65536)
    assert server.count(NO_KIND, 431) == before + 1


def test_too_many_headers_get_431_and_a_long_url_414(server: Server) -> None:
    with socket.create_connection(server.address) as sock:
        sock.sendall(head(headers={f"x-h{i}": "v" for i in range(30)}, length=2) + b"{}")
        status, received = answer_of(sock)
        assert status == 431 and b"too_many_headers" in received
    with socket.create_connection(server.address) as sock:
        sock.sendall(head(path=PATH + "?" + "q" * 1024, length=2) + b"{}")
        assert answer_of(sock)[0] == 414


def test_an_idle_connection_is_closed_after_the_idle_timeout(server: Server) -> None:
    with socket.create_connection(server.address) as sock:
        started = time.monotonic()
        sock.settimeout(10)
        assert sock.recv(1) == b""
        assert 0.8 <= time.monotonic() - started < 5


def test_a_head_that_arrives_too_slowly_gets_408(server: Server) -> None:
    with socket.create_connection(server.address) as sock:
        sock.sendall(head().split(b"\r\n")[0] + b"\r\nhost: ingest\r\n")
        started = time.monotonic()
        status, received = answer_of(sock)
        assert status == 408 and b"head_timeout" in received
        assert time.monotonic() - started < 5


def test_a_body_that_arrives_too_slowly_gets_408_and_nothing_is_written(kafka: str, server: Server) -> None:
    marker = uuid.uuid4().hex
    body = body_for(marker)
    with socket.create_connection(server.address) as sock:
        sock.sendall(head(length=len(body) + 100) + body)  # 100 bytes never come
        status, received = answer_of(sock)
        assert status == 408 and b"body_timeout" in received
    assert [m for m in read_topic(kafka, topics.RAW.name, settle=1) if marker.encode() in (m.value() or b"")] == []
    letters = read_topic(kafka, topics.DEADLETTER.name)
    assert [m for m in letters if marker.encode() in (m.value() or b"")] == []


def test_a_client_leaving_mid_body_leaves_no_traceback(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    before = server.count("aviso_saldo", 499)
    with socket.create_connection(server.address) as sock:
        sock.sendall(head(length=500) + b'{"saldo":')
        time.sleep(0.2)
    deadline = time.monotonic() + 5
    while server.count("aviso_saldo", 499) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.count("aviso_saldo", 499) == before + 1
    assert [r for r in caplog.records if r.exc_info] == []


def test_keep_alive_and_pipelined_requests_are_served_one_after_the_other(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        for _ in range(3):
            answer = client.post(PATH, content=body_for(uuid.uuid4().hex),
                                 headers={"content-type": "application/json"})
            assert answer.status_code == 200, answer.text
    first, second = body_for(uuid.uuid4().hex), body_for(uuid.uuid4().hex)
    with socket.create_connection(server.address) as sock:
        sock.sendall(head(length=len(first)) + first + head(length=len(second), headers={"connection": "close"})
                     + second)
        _, received = answer_of(sock)
    assert received.count(b"HTTP/1.1 200") == 2


def test_above_the_connection_cap_a_request_gets_503_with_retry_after(kafka: str) -> None:
    with guarded(kafka, max_connections=2, idle_timeout_s=30.0) as capped:
        idle = [socket.create_connection(capped.address) for _ in range(2)]
        try:
            time.sleep(0.2)
            with socket.create_connection(capped.address) as sock:
                sock.sendall(head(length=2) + b"{}")
                status, received = answer_of(sock)
            assert status == 503 and b"retry-after: 3" in received.lower()
        finally:
            for sock in idle:
                sock.close()


def raw_remote_addr(kafka: str, marker: str) -> str | None:
    codec = SingleObjectCodec()
    [message] = [m for m in read_topic(kafka, topics.RAW.name) if marker.encode() in (m.value() or b"")]
    remote: str | None = codec.decode(topics.RAW.name, message.value() or b"")["remote_addr"]
    return remote


@pytest.mark.parametrize(("trusted", "archived"), [((), "127.0.0.1"), (("127.0.0.1",), "203.0.113.9")])
def test_forwarded_for_is_believed_only_from_a_trusted_proxy(kafka: str, trusted: tuple[str, ...],
                                                            archived: str) -> None:
    marker = uuid.uuid4().hex
    with guarded(kafka, trusted_proxies=trusted) as running:
        answer = httpx.post(running.url + PATH, content=body_for(marker),
                            headers={"content-type": "application/json", "x-forwarded-for": "203.0.113.9"})
        assert answer.status_code == 200, answer.text
    assert raw_remote_addr(kafka, marker) == archived


def test_kafka_refusing_a_record_as_too_large_is_a_permanent_answer_never_a_503(kafka: str) -> None:
    """librdkafka refuses records over message.max.bytes (1,000,000): headers are cut to fit, never the body;
    a body that cannot fit is a 413 that names the cause."""
    marker = uuid.uuid4().hex
    with guarded(kafka, max_body_bytes=2_000_000, max_header_bytes=64 * 1024, max_headers=100) as running:
        fits = body_for(marker)[:-1] + b', "pad": "' + b"p" * 960_000 + b'"}'
        answer = httpx.post(running.url + PATH, content=fits, timeout=30,
                            headers={"content-type": "application/json", **{f"x-h{i}": "v" * 1000 for i in range(40)}})
        assert answer.status_code == 200, answer.text
        too_big = body_for(marker)[:-1] + b', "pad": "' + b"p" * 1_200_000 + b'"}'
        answer = httpx.post(running.url + PATH, content=too_big, timeout=30,
                            headers={"content-type": "application/json"})
        assert answer.status_code == 413 and answer.json()["error"] == "too_large_for_kafka", answer.text
    codec = SingleObjectCodec()
    archived = [codec.decode(topics.RAW.name, m.value() or b"") for m in read_topic(kafka, topics.RAW.name)
                if marker.encode() in (m.value() or b"")]
    assert [r["body"] for r in archived] == [fits]
    assert "x-callpipe-headers-truncated" in archived[0]["headers"]
