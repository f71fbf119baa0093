"""One way to get a ClickHouse client, for the embedded engine and for a server alike."""

from __future__ import annotations

from pathlib import Path
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


def connect(url: str) -> Client:
    """``chdb:///abs/path`` opens (and creates) an embedded data directory; only one process at a time can
    hold it, and one process one directory at a time. ``http(s)://user:pass@host:port/db`` connects to a
    server."""
    path = chdb_path(url)
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        return clickhouse_connect.get_client(dsn=f"{CHDB_SCHEME}{path}")
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
    )
