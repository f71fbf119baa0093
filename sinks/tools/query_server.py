"""Read-only ad-hoc SQL over HTTP on 127.0.0.1, served by the process that holds the embedded engine.

chdb lets one process open a data directory; without this, nobody could look at the data while the sink runs.
``GET /query?sql=...&format=TSV`` or ``POST /query`` with the SQL as body. Two guards:
- the statement check (``read_only_statement``): one statement, starting with SELECT / WITH / SHOW /
  DESCRIBE / DESC / EXPLAIN / EXISTS, and no ``INTO OUTFILE`` (embedded chdb writes that file even in
  read-only mode) — also because chdb runs ``a; b`` as two statements;
- the queries run on their own read-only client session (``sinks.clickhouse.connect(..., readonly=True)``),
  which ClickHouse itself enforces, with a time and result-size limit.
Queries and the sink's inserts take the same lock: one statement at a time in the embedded engine.
"""

from __future__ import annotations

import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from typing import Any
from urllib.parse import parse_qs, urlsplit

from clickhouse_connect.driver.client import Client

HOST = "127.0.0.1"
DEFAULT_PORT = 8124
FORMATS = {
    "TSV": "TabSeparatedWithNames",
    "CSV": "CSVWithNames",
    "JSON": "JSON",
    "JSONEachRow": "JSONEachRow",
    "Pretty": "PrettyCompactMonoBlock",
}
READ_KEYWORDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"})
MAX_SQL_BYTES = 1_000_000
_WORD = re.compile(r"[A-Za-z_]+")


class RejectedStatement(ValueError):
    pass


def _skeleton(sql: str) -> str:
    """The SQL with comments removed and every quoted literal or identifier blanked to ``''``."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if sql.startswith("--", i) or ch == "#":
            end = sql.find("\n", i)
            i = n if end < 0 else end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
            out.append(" ")
        elif ch in "'\"`":
            i += 1
            while i < n and sql[i] != ch:
                i += 2 if sql[i] == "\\" else 1
            i += 1
            out.append("''")
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def read_only_statement(sql: str) -> str:
    """``sql`` without a trailing ``;`` if it is one read-only statement; raises ``RejectedStatement``."""
    skeleton = _skeleton(sql).strip().rstrip(";").strip()
    words = [w.upper() for w in _WORD.findall(skeleton)]
    if not words or words[0] not in READ_KEYWORDS:
        raise RejectedStatement(f"only {', '.join(sorted(READ_KEYWORDS))} statements are accepted")
    if ";" in skeleton:
        raise RejectedStatement("one statement per request")
    if ("INTO", "OUTFILE") in pairwise(words):
        raise RejectedStatement("INTO OUTFILE is not accepted")
    return sql.strip().rstrip(";").rstrip()


def run_read_only(client: Client, sql: str, fmt: str = "TSV") -> bytes:
    """Check and run one statement on a read-only client; the result in ``FORMATS[fmt]``."""
    if fmt not in FORMATS:
        raise RejectedStatement(f"format must be one of {', '.join(FORMATS)}")
    return client.raw_query(read_only_statement(sql), fmt=FORMATS[fmt])


class QueryServer:
    def __init__(
        self,
        client: Client,
        lock: threading.Lock | threading.RLock,
        host: str = HOST,
        port: int = DEFAULT_PORT,
    ) -> None:
        """``client``: a read-only client (``connect(url, readonly=True)``); ``lock``: the sink's engine lock.
        ``port=0`` picks a free port (see ``port``)."""
        self._client, self._lock = client, lock
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> QueryServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="sink-query", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    def execute(self, sql: str, fmt: str = "TSV") -> bytes:
        with self._lock:
            return run_read_only(self._client, sql, fmt)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._query(None)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_SQL_BYTES:
                    self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"SQL too long\n")
                    return
                self._query(self.rfile.read(length).decode("utf-8"))

            def _query(self, body: str | None) -> None:
                parts = urlsplit(self.path)
                if parts.path == "/health":
                    self._reply(HTTPStatus.OK, b"ok\n")
                    return
                if parts.path != "/query":
                    self._reply(HTTPStatus.NOT_FOUND, b"use /query?sql=...\n")
                    return
                params = parse_qs(parts.query)
                sql = params.get("sql", [body or ""])[0]
                try:
                    result = server.execute(sql, params.get("format", ["TSV"])[0])
                except RejectedStatement as exc:
                    self._reply(HTTPStatus.FORBIDDEN, f"{exc}\n".encode())
                except Exception as exc:
                    self._reply(HTTPStatus.BAD_REQUEST, f"{type(exc).__name__}: {exc}\n".encode())
                else:
                    self._reply(HTTPStatus.OK, result)

            def _reply(self, status: HTTPStatus, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # Access logs would interleave with the sink's structured logs; errors go to the caller.

        return Handler
