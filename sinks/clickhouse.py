"""One way to get a ClickHouse client, for the embedded engine and for a server alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

CHDB_SCHEME = "chdb://"


def chdb_path(url: str) -> Path | None:
    """The data directory of a ``chdb:///abs/path`` URL, ``None`` for a server URL."""
    if not url.startswith(CHDB_SCHEME):
        return None
    path = Path(url[len(CHDB_SCHEME) :])
    if not path.is_absolute():
        raise ValueError(f"{url}: the chdb data directory must be an absolute path (chdb:///abs/path)")
    return path


READ_ONLY_SETTINGS: dict[str, Any] = {
    "max_execution_time": 30,
    "max_result_rows": 1_000_000,
    "result_overflow_mode": "throw",
    # Last: once the session is read-only it may not change any other setting.
    "readonly": 1,
}
"""Session settings of a read-only client. Read-only is a separate session rather than a per-query setting:
clickhouse-connect applies per-query settings on chdb with SET and restores them afterwards, and after a
failed read-only query the restore itself is refused, leaving a shared session read-only (seen on 26.9)."""


def connect(url: str, readonly: bool = False) -> Client:
    """``chdb:///abs/path`` opens (and creates) an embedded data directory; only one process at a time can
    hold it, and one process one directory at a time. ``http(s)://user:pass@host:port/db`` connects to a
    server."""
    settings = dict(READ_ONLY_SETTINGS) if readonly else None
    path = chdb_path(url)
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        return clickhouse_connect.get_client(dsn=f"{CHDB_SCHEME}{path}", settings=settings)
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(
            f"unsupported ClickHouse URL {url!r}: use chdb:///abs/path or http(s)://host:port/db"
        )
    return clickhouse_connect.get_client(
        interface=parts.scheme,
        host=parts.hostname,
        port=parts.port or (8443 if parts.scheme == "https" else 8123),
        username=unquote(parts.username or "default"),
        password=unquote(parts.password or ""),
        database=parts.path.strip("/") or "default",
        settings=settings,
    )
