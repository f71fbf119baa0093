"""ingest/server.py overrides uvicorn's HttpToolsProtocol: this fails when a name or signature it relies on
moves upstream (the pin in pyproject.toml is the first guard, this the second); and the shared listening socket."""

from __future__ import annotations

import inspect
import socket

import pytest
from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ingest.body import BadRequest
from ingest.server import refusal_bytes, shared_socket

OVERRIDDEN = {
    "connection_made": ["self", "transport"],
    "connection_lost": ["self", "exc"],
    "data_received": ["self", "data"],
    "on_message_begin": ["self"],
    "on_url": ["self", "url"],
    "on_header": ["self", "name", "value"],
    "on_headers_complete": ["self"],
    "on_message_complete": ["self"],
    "send_400_response": ["self", "msg"],
}
# Attributes of the upstream instance the guarded protocol reads or sets.
USED_STATE = ["timeout_keep_alive", "timeout_keep_alive_task", "connections", "loop", "transport", "client", "url"]


def test_the_overridden_methods_keep_their_upstream_signatures() -> None:
    for name, parameters in OVERRIDDEN.items():
        method = getattr(HttpToolsProtocol, name)
        assert list(inspect.signature(method).parameters) == parameters, name


def test_the_upstream_state_the_guard_uses_is_still_there() -> None:
    init = inspect.getsource(HttpToolsProtocol.__init__) + inspect.getsource(HttpToolsProtocol.connection_made)
    init += inspect.getsource(HttpToolsProtocol.on_message_begin)
    for attribute in USED_STATE:
        assert f"self.{attribute} =" in init or f"self.{attribute}: " in init, attribute
    assert callable(HttpToolsProtocol.timeout_keep_alive_handler)
    # data_received must still hand parser-callback failures to send_400_response (how a refusal is answered).
    assert "send_400_response" in inspect.getsource(HttpToolsProtocol.data_received)
    assert httptools_impl.STATUS_LINE[431].startswith(b"HTTP/1.1 431")


def test_a_refusal_is_a_complete_http_answer_that_closes_the_connection() -> None:
    answer = refusal_bytes(BadRequest(503, "overloaded", "too many"), retry_after_s=7)
    head, body = answer.split(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503") and b"retry-after: 7" in head and b"connection: close" in head
    assert f"content-length: {len(body)}".encode() in head and b'"error":"overloaded"' in body


def test_processes_with_reuse_port_share_one_port_and_others_cannot_take_it() -> None:
    first = shared_socket("127.0.0.1", 0)
    port = first.getsockname()[1]
    second = shared_socket("127.0.0.1", port)  # a second ingest process on the same port
    plain = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        assert second.getsockname()[1] == port
        with pytest.raises(OSError):
            plain.bind(("127.0.0.1", port))
    finally:
        for sock in (first, second, plain):
            sock.close()
