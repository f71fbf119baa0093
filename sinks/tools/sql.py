"""``python -m sinks.tools.sql "SELECT ..."``: ad-hoc read-only SQL against the sink's ClickHouse.

Asks the running sink's query server first (``SINK_QUERY_URL``, default ``http://127.0.0.1:8124``); when no
sink answers, opens the data directory of ``CLICKHOUSE_URL`` itself with a read-only session (possible only
while no other process holds it).
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request

from sinks.clickhouse import connect
from sinks.settings import query_from_env
from sinks.tools.query_server import FORMATS, RejectedStatement, run_read_only


class QueryFailed(RuntimeError):
    pass


def ask_server(query_url: str, sql: str, fmt: str, timeout: float = 60) -> bytes | None:
    """The query server's answer; ``None`` when no server listens."""
    request = urllib.request.Request(
        f"{query_url.rstrip('/')}/query?format={fmt}", data=sql.encode("utf-8"), method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        raise QueryFailed(exc.read().decode("utf-8", "replace").strip()) from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionRefusedError):
            return None
        raise


def query_directly(clickhouse_url: str, sql: str, fmt: str) -> bytes:
    client = connect(clickhouse_url, readonly=True)
    try:
        return run_read_only(client, sql, fmt)
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sinks.tools.sql", description=__doc__)
    parser.add_argument("sql")
    parser.add_argument("--format", default="TSV", choices=sorted(FORMATS))
    defaults = query_from_env()
    parser.add_argument("--query-url", default=defaults.query_url)
    parser.add_argument("--clickhouse-url", default=defaults.clickhouse_url)
    args = parser.parse_args(argv)
    try:
        result = ask_server(args.query_url, args.sql, args.format)
        if result is None:
            result = query_directly(args.clickhouse_url, args.sql, args.format)
    except (QueryFailed, RejectedStatement) as exc:
        print(exc, file=sys.stderr)
        return 1
    sys.stdout.buffer.write(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
