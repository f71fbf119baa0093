"""Event-id deduplication over a retention period (at-least-once input, provider retries).

Ids are remembered in time buckets (default 1 h) by the time they were first seen (use the ingest clock,
``received_at``). The watermark is the max time seen; whole buckets older than ``watermark - retention`` are
dropped, so an id is remembered for at least ``retention`` and at most ``retention + bucket`` of watermark
progress. Check-and-add is O(1); expiry is amortized O(1) per id.

Memory is bounded by the ids seen in ``retention + bucket``: about 150 bytes per id in CPython (32-char hex
string + dict and set slots), e.g. 1 M events/day ~ 160 MB with the 24 h default — size the retention to the
provider's retry horizon, not longer. ``to_json`` serializes it for a changelog or snapshot.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

MIN_RETENTION = timedelta(hours=24)


class EventDedup:
    def __init__(self, retention: timedelta = MIN_RETENTION, bucket: timedelta = timedelta(hours=1)) -> None:
        if retention < MIN_RETENTION:
            raise ValueError("retention must cover at least 24 h of provider retries")
        if bucket <= timedelta(0) or bucket > retention:
            raise ValueError("bucket must be positive and not longer than the retention")
        self._retention_ms = int(retention / timedelta(milliseconds=1))
        self._bucket_ms = int(bucket / timedelta(milliseconds=1))
        self._bucket_of: dict[str, int] = {}
        self._buckets: dict[int, set[str]] = {}
        self._watermark_ms: int | None = None

    def __len__(self) -> int:
        return len(self._bucket_of)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._bucket_of

    def check_and_add(self, event_id: str, seen_at: datetime) -> bool:
        """True when ``event_id`` is new (and remembers it), False for a duplicate within the retention."""
        at_ms = int(seen_at.timestamp() * 1000)
        # Advance first: an id older than the retention at this watermark is new again, not a duplicate.
        if self._watermark_ms is None or at_ms > self._watermark_ms:
            self._watermark_ms = at_ms
            self._expire()
        if event_id in self._bucket_of:
            return False
        bucket = at_ms // self._bucket_ms
        if bucket < self._oldest_kept():
            return True  # already beyond the retention: storing it would only delay its expiry
        self._bucket_of[event_id] = bucket
        self._buckets.setdefault(bucket, set()).add(event_id)
        return True

    def _oldest_kept(self) -> int:
        assert self._watermark_ms is not None
        return (self._watermark_ms - self._retention_ms) // self._bucket_ms

    def _expire(self) -> None:
        oldest_kept = self._oldest_kept()
        # Few buckets (retention / bucket + 1), so scanning them on watermark progress is cheap.
        for bucket in [b for b in self._buckets if b < oldest_kept]:
            for event_id in self._buckets.pop(bucket):
                del self._bucket_of[event_id]

    def to_json(self) -> str:
        return json.dumps(
            {
                "retention_ms": self._retention_ms,
                "bucket_ms": self._bucket_ms,
                "watermark_ms": self._watermark_ms,
                "buckets": {str(b): sorted(ids) for b, ids in self._buckets.items()},
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> EventDedup:
        data = json.loads(text)
        dedup = cls(
            retention=timedelta(milliseconds=data["retention_ms"]),
            bucket=timedelta(milliseconds=data["bucket_ms"]),
        )
        dedup._watermark_ms = data["watermark_ms"]
        for bucket_text, ids in data["buckets"].items():
            bucket = int(bucket_text)
            dedup._buckets[bucket] = set(ids)
            dedup._bucket_of.update(dict.fromkeys(ids, bucket))
        return dedup
