"""The HTTP server: uvicorn with httptools, with the bounds uvicorn lacks applied before any request reaches the
app (and so before authentication).

What `GuardedProtocol` changes in uvicorn's `HttpToolsProtocol` (uvicorn/protocols/http/httptools_impl.py), and
why; `tests/unit/test_ingest_server.py` fails when one of these names or signatures moves upstream:
- `connection_made`: uvicorn arms its keep-alive timer only after a response, so a connection that never sends
  a byte was held forever. Here the idle timer (`INGEST_IDLE_TIMEOUT_S`) starts at accept.
- `data_received`: a request head must arrive within `INGEST_HEADER_TIMEOUT_S` of its first byte (slow-header
  clients), else 408. Bytes of a head without its end are counted before httptools buffers them, so a
  16 MiB header is refused after the limit instead of being read whole.
- `on_url`, `on_header`: exact URL length (414), header bytes and count (431).
- `on_headers_complete`: above `INGEST_MAX_CONNECTIONS` open connections, 503 + Retry-After. uvicorn's own
  `limit_concurrency` answers 503 without Retry-After.
- `send_400_response`: a refused head is answered with its own status (uvicorn answers every parser-callback
  failure 400).
The body's own deadline and size are the app's (`ingest/body.py`), which answers 408 and 413 itself.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ingest.app import NO_KIND, Ingest
from ingest.body import BadRequest
from ingest.settings import Settings

log = logging.getLogger("callpipe.ingest")

# Per header line the parser drops ": " and CRLF, which the rough pre-parse count includes.
_LINE_OVERHEAD = 4
HEAD_END = b"\r\n\r\n"


def refusal_bytes(refused: BadRequest, retry_after_s: int) -> bytes:
    body = orjson.dumps({"error": refused.error, "detail": refused.detail})
    lines = [STATUS_LINE[refused.status],
             b"content-type: application/json\r\n",
             b"content-length: %d\r\n" % len(body),
             b"connection: close\r\n"]
    if refused.status == 503:
        lines.append(b"retry-after: %d\r\n" % retry_after_s)
    return b"".join([*lines, b"\r\n", body])


def guarded_protocol(settings: Settings, count: Callable[[int], None]) -> type[HttpToolsProtocol]:
    """The protocol class for uvicorn's `http` setting; `count(status)` is told of every answer it gives."""
    head_budget = settings.max_url_bytes + settings.max_header_bytes + settings.max_headers * _LINE_OVERHEAD + 64

    class GuardedProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.timeout_keep_alive = settings.idle_timeout_s  # type: ignore[assignment]  # uvicorn's is an int
            self._in_head = True  # between requests or inside a head: what arrives now is a head
            self._head_seen = 0  # bytes received of the current head (rough: may include some body)
            self._head_size = 0  # exact: URL plus header names and values
            self._header_count = 0
            self._head_timer: asyncio.TimerHandle | None = None
            self._refused: BadRequest | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler)

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._in_head:
                if self._head_timer is None:
                    self._head_timer = self.loop.call_later(settings.header_timeout_s, self._head_timed_out)
                self._head_seen += len(data)
                if self._head_seen > head_budget and HEAD_END not in data:
                    self._refuse(BadRequest(431, "headers_too_large",
                                            f"request head exceeds {settings.max_header_bytes} bytes of headers"))
                    return
            super().data_received(data)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._head_size = self._header_count = 0

        def on_url(self, url: bytes) -> None:
            super().on_url(url)
            if len(self.url) > settings.max_url_bytes:
                self._refuse_in_parser(BadRequest(414, "uri_too_long",
                                                  f"the URL exceeds {settings.max_url_bytes} bytes"))

        def on_header(self, name: bytes, value: bytes) -> None:
            self._header_count += 1
            self._head_size += len(name) + len(value)
            if self._header_count > settings.max_headers:
                self._refuse_in_parser(BadRequest(431, "too_many_headers",
                                                  f"more than {settings.max_headers} headers"))
            if self._head_size > settings.max_header_bytes:
                self._refuse_in_parser(BadRequest(431, "headers_too_large",
                                                  f"headers exceed {settings.max_header_bytes} bytes"))
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._cancel_head_timer()
            self._in_head = False
            if len(self.connections) > settings.max_connections:
                self._refuse_in_parser(BadRequest(503, "overloaded",
                                                  f"more than {settings.max_connections} open connections"))
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_head, self._head_seen = True, 0

        def send_400_response(self, msg: str) -> None:
            if self._refused is None:
                count(400)
                super().send_400_response(msg)
            else:
                self._refuse(self._refused)

        def _refuse_in_parser(self, refused: BadRequest) -> None:
            self._refused = refused
            raise refused

        def _refuse(self, refused: BadRequest) -> None:
            self._cancel_head_timer()
            if self.transport.is_closing():
                return
            count(refused.status)
            log.warning("refused request", extra={"status": refused.status, "reason": refused.detail,
                                                  "client": self.client[0] if self.client else None})
            self.transport.write(refusal_bytes(refused, settings.retry_after_s))
            self.transport.close()

        def _head_timed_out(self) -> None:
            self._head_timer = None
            self._refuse(BadRequest(408, "head_timeout",
                                    f"the request head did not arrive within {settings.header_timeout_s:g}s"))

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

    return GuardedProtocol


def server_config(app: Starlette, settings: Settings) -> uvicorn.Config:
    """uvicorn's configuration for the ingest app (`ingest.app.create_app`): the guarded protocol, whose answers
    the app's metrics count under kind `NO_KIND` and whose keep-alive is the idle timeout, and proxy headers
    believed only from `INGEST_TRUSTED_PROXIES` (uvicorn trusts 127.0.0.1 by default)."""
    ingest: Ingest = app.state.ingest

    def count(status: int) -> None:
        ingest.count(NO_KIND, status)

    return uvicorn.Config(
        app, host=settings.host, port=settings.port, loop="uvloop", http=guarded_protocol(settings, count),
        ws="none", log_config=None, access_log=False,
        proxy_headers=bool(settings.trusted_proxies), forwarded_allow_ips=list(settings.trusted_proxies) or None,
    )


def shared_socket(host: str, port: int) -> socket.socket:
    """A listening socket with SO_REUSEPORT, which other ingest processes bind too (`INGEST_REUSE_PORT`): the
    kernel spreads new connections over them; they share nothing but Kafka."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock
