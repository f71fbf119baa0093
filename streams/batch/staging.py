"""A state table as one batch of events sees it: reads go through to the store, writes are staged, and at the
end of the batch each changed key is encoded and written once.

A batch often holds several events of one entity (a call's legs, status snapshots and end webhook arrive
together), and a per-tenant metric window changes with every call of the tenant: writing the state, and its
changelog record, once per batch instead of once per event is most of what batching saves. The writer is given
the partition of the events that changed the key, which is the changelog partition Faust would have used
(tables are co-partitioned with their input topics), so the batch can be applied outside Faust's per-event
context. No Faust import: the agents pass a writer that updates a Faust table and its changelog, the tests and
the benchmark a dict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from streams.batch import state_codec as codec

StoreWrite = Callable[[int, str, bytes | None], None]
"""(partition, key, encoded value) -> None: stores the value and queues its changelog record; a None value
deletes the key and queues a tombstone (compaction then drops the key)."""


def dict_writer(store: dict[str, bytes]) -> StoreWrite:
    def write(partition: int, key: str, value: bytes | None) -> None:
        if value is None:
            store.pop(key, None)
        else:
            store[key] = value

    return write


class Staged:
    """Decoded values are cached across batches (`cache` most recent keys) only for tables whose domain
    functions never modify their input (calls: correlate is pure; metric windows), because cached values are handed out
    shared. A cached value is used only while the store still holds the bytes it was decoded from, so a
    changelog restore can never leave it stale (bytes compare by identity first: with the in-memory store,
    which keeps the very object, the check is free)."""

    def __init__(self, store: Mapping[str, bytes], write: StoreWrite, *, cache: int = 0,
                 encode: Callable[[Any], bytes] = codec.encode, decode: Callable[[bytes], Any] = codec.loads) -> None:
        self.store, self.write, self.cache_size = store, write, cache
        self.encode, self.decode = encode, decode
        self._changed: dict[str, tuple[int, Any]] = {}
        self._cache: dict[str, tuple[bytes, Any]] = {}  # insertion order is recency order

    def get(self, key: str) -> Any:
        changed = self._changed.get(key)
        if changed is not None:
            return changed[1]
        text = self.store.get(key)
        if text is None:
            return None
        if not self.cache_size:
            return self.decode(text)
        item = self._cache.pop(key, None)
        value = item[1] if item is not None and item[0] == text else self.decode(text)
        self._remember(key, text, value)
        return value

    def put(self, partition: int, key: str, value: Any) -> None:
        self._changed[key] = (partition, value)

    def delete(self, partition: int, key: str) -> None:
        self._changed[key] = (partition, None)

    def flush(self) -> int:
        """Write every changed key once; returns how many."""
        for key, (partition, value) in self._changed.items():
            if value is None:
                self.write(partition, key, None)
                self._cache.pop(key, None)
                continue
            text = self.encode(value)
            self.write(partition, key, text)
            if self.cache_size:
                self._cache.pop(key, None)
                self._remember(key, text, value)
        written = len(self._changed)
        self._changed.clear()
        return written

    def _remember(self, key: str, text: bytes, value: Any) -> None:
        self._cache[key] = (text, value)
        if len(self._cache) > self.cache_size:
            del self._cache[next(iter(self._cache))]
