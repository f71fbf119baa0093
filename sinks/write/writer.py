"""Writes batches to ClickHouse: column-oriented insert with a deduplication token, bad records to
``dead_letters`` (the rest of the batch still lands), transient failures raised as retryable.

Failure classes:
- a record that ``sinks.write.rows`` cannot convert -> dead letter (reason = the conversion error);
- an insert that fails because of the data (client-side serialization or a ClickHouse parse/type/range
  error) -> the batch is bisected until the offending records are isolated, those become dead letters;
- connection and overload errors -> ``RetryableWriteError``: nothing is lost, write the same batch again;
- anything else (missing table or column, permissions) -> ``FatalWriteError``: dead-lettering every record
  would silently empty the pipeline, so the sink must stop instead.
Every insert carries a token derived from the batch token, so a retried batch (same offsets) inserts nothing
twice, dead letters included.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.datatypes.base import ClickHouseType
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DataError, OperationalError

from sinks.schema.tables import DEAD_LETTERS, Catalog, TableSpec, catalog
from sinks.write.batcher import Entry, InsertBatch
from sinks.write.rows import RowError, to_row

STAGE = "sink"
MAX_REASON_CHARS = 2000
# ClickHouse error codes caused by the inserted values themselves.
DATA_ERROR_CODES = frozenset(
    {6, 27, 38, 41, 53, 69, 70, 72, 131, 349, 407, 472, 691}
)  # CANNOT_PARSE_*, TYPE_MISMATCH, ARGUMENT_OUT_OF_BOUND, CANNOT_CONVERT_TYPE, DECIMAL_OVERFLOW, ...
# Codes after which the same insert can succeed later.
TRANSIENT_ERROR_CODES = frozenset(
    {3, 159, 164, 202, 203, 209, 210, 225, 236, 241, 242, 252, 319, 425, 999}
)  # timeouts, network, memory/parts pressure, read-only replica, Keeper, unknown status of insert
_CODE = re.compile(r"Code: (\d+)")


class RetryableWriteError(RuntimeError):
    """Nothing of the batch may be assumed written; write the same batch again later."""


class FatalWriteError(RuntimeError):
    """Retrying cannot help (schema or configuration problem); stop consuming."""


@dataclass(frozen=True)
class WriteResult:
    rows_inserted: int
    dead_letters: int


def error_code(exc: BaseException) -> int | None:
    match = _CODE.search(str(exc))
    return int(match.group(1)) if match else None


def classify(exc: Exception) -> str:
    """``data``, ``transient`` or ``fatal``."""
    if isinstance(exc, OperationalError | ConnectionError | TimeoutError):
        return "transient"
    if isinstance(exc, DataError | ValueError | TypeError | OverflowError):
        return "data"
    code = error_code(exc)
    if code in DATA_ERROR_CODES:
        return "data"
    if code in TRANSIENT_ERROR_CODES:
        return "transient"
    return "fatal"


@dataclass(frozen=True)
class _Failure:
    entry: Entry
    error: Exception


class Writer:
    def __init__(
        self,
        client: Client,
        catalogue: Catalog | None = None,
        lock: threading.Lock | threading.RLock | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``lock``: shared with the query server when both use the embedded engine's one client."""
        self._client = client
        self._catalog = catalogue or catalog()
        self._column_types: dict[str, Sequence[ClickHouseType]] = {}
        self._lock: AbstractContextManager[Any] = lock if lock is not None else nullcontext()
        self._clock = clock

    def write(self, batch: InsertBatch) -> WriteResult:
        spec = self._catalog.table(batch.table)
        rows: list[tuple[Entry, list[Any]]] = []
        failures: list[_Failure] = []
        for entry in batch.entries:
            if entry.undecodable is not None:
                failures.append(_Failure(entry, entry.undecodable))
                continue
            try:
                rows.append((entry, to_row(entry.record, list(spec.columns))))
            except RowError as exc:
                failures.append(_Failure(entry, exc))
        inserted = self._insert_isolating(spec, rows, batch.token, failures)
        self._dead_letter(batch, failures)
        return WriteResult(inserted, len(failures))

    def _insert_isolating(
        self, spec: TableSpec, rows: Sequence[tuple[Entry, list[Any]]], token: str, failures: list[_Failure]
    ) -> int:
        if not rows:
            return 0
        try:
            self._insert(spec, [row for _, row in rows], token)
            return len(rows)
        except Exception as exc:
            kind = classify(exc)
            if kind == "transient":
                raise RetryableWriteError(f"insert into {spec.name} failed: {exc}") from exc
            if kind == "fatal":
                raise FatalWriteError(f"insert into {spec.name} failed: {exc}") from exc
            if len(rows) == 1:
                failures.append(_Failure(rows[0][0], exc))
                return 0
        # Halves get their own tokens, derived from their offsets: bisecting the same batch again on a retry
        # produces the same halves, so what landed the first time is deduplicated.
        middle = len(rows) // 2
        return sum(
            self._insert_isolating(spec, half, f"{token}/{_span(half[0][0], half[-1][0])}", failures)
            for half in (rows[:middle], rows[middle:])
        )

    def _insert(self, spec: TableSpec, rows: list[list[Any]], token: str) -> None:
        names = [c.name for c in spec.columns]
        with self._lock:
            types = self._column_types.get(spec.name)
            if types is None:
                # Described once per table and process (the sink migrated its tables before it writes): given no
                # types, clickhouse-connect runs DESCRIBE TABLE before every insert.
                types = self._client.create_insert_context(spec.name, names).column_types
                self._column_types[spec.name] = types
            self._client.insert(
                spec.name,
                rows,
                column_names=names,
                column_types=types,
                settings={"insert_deduplication_token": token, "insert_deduplicate": 1},
            )

    def _dead_letter(self, batch: InsertBatch, failures: list[_Failure]) -> None:
        if not failures:
            return
        spec = self._catalog.table(DEAD_LETTERS)
        now = self._clock()
        records = [
            self._dead_letter_record(batch, f, now) for f in sorted(failures, key=lambda f: f.entry.offset)
        ]
        try:
            self._insert(
                spec, [to_row(r, list(spec.columns)) for r in records], f"{batch.token}/{DEAD_LETTERS}"
            )
        except RowError as exc:
            raise FatalWriteError(f"dead letters of {batch.token} do not fit {DEAD_LETTERS}: {exc}") from exc
        except Exception as exc:
            error = RetryableWriteError if classify(exc) == "transient" else FatalWriteError
            raise error(f"insert into {DEAD_LETTERS} failed: {exc}") from exc

    @staticmethod
    def _dead_letter_record(batch: InsertBatch, failure: _Failure, now: datetime) -> dict[str, Any]:
        record = failure.entry.record

        def text(key: str) -> str:
            value = record.get(key) if isinstance(record, dict) else None
            return value if isinstance(value, str) else ""

        return {
            "kind": text("kind"),
            "tenant": text("tenant"),
            "received_at": now,
            "stage": STAGE,
            "reason": f"{batch.table}: {failure.error}"[:MAX_REASON_CHARS],
            "error_type": type(failure.error).__name__,
            "headers": dict(failure.entry.headers),
            "body": failure.entry.raw,
            "source_topic": batch.topic,
            "source_partition": failure.entry.partition,
            "source_offset": failure.entry.offset,
        }


def _span(first: Entry, last: Entry) -> str:
    return f"{first.partition}:{first.offset}-{last.partition}:{last.offset}"
