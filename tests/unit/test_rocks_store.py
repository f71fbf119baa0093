"""The RocksDB store the workers use (streams/faustapp/patches.py, 6., 7. and 9.): writes for any partition, and
a key count that equals what Faust's own scan of the databases finds, whatever mix of writes, deletes, changelog
recovery and reopening came before."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from faust.types import TP
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.faustapp import patches

Operation = tuple[str, int, str]  # (what, partition, key): put, delete, recover-put, recover-delete, reopen


@pytest.fixture
def store(tmp_path: Path) -> patches.CountedRocksStore:
    return _store(tmp_path)


def _store(datadir: Path) -> patches.CountedRocksStore:
    app = patches.App("rocks-test", rocksdb_memory=8 * 1024**2, store="rocksdb://", datadir=str(datadir))
    table = app.Table("states", default=None, partitions=3, key_type=str, value_type=bytes, use_partitioner=True)
    store = table.data
    assert isinstance(store, patches.CountedRocksStore)
    topic = table.changelog_topic_name  # type: ignore[attr-defined]
    app.assignor.assigned_actives = lambda: {TP(topic, p) for p in range(3)}  # type: ignore[method-assign]
    return store


def _changelog(store: patches.CountedRocksStore, records: list[tuple[int, str, bytes | None]]) -> None:
    events = [SimpleNamespace(message=SimpleNamespace(
        tp=TP("changelog", partition), partition=partition, offset=offset,
        key=store._encode_key(key), value=value)) for offset, (partition, key, value) in enumerate(records)]
    store.apply_changelog_batch(events, to_key=lambda k: k, to_value=lambda v: v)  # type: ignore[arg-type]


def _scan(store: patches.CountedRocksStore) -> int:
    return store._size()  # Faust's own count: every visible key of every active partition's database


def test_writes_deletes_and_recovery_keep_the_count(store: patches.CountedRocksStore) -> None:
    store.write(0, "a", b"1")
    store.write(0, "a", b"2")
    store.write(1, "b", b"1")
    assert store.entries() == 2 == _scan(store)
    store.write(0, "a", None)
    store.write(2, "missing", None)
    assert store.entries() == 1 == _scan(store)
    _changelog(store, [(2, "c", b"1"), (1, "b", None), (2, "c", b"2"), (0, "d", b"1"), (0, "d", None)])
    assert store.entries() == 1 == _scan(store)
    assert store["c"] == b"2"


def test_a_reopened_database_is_counted_from_what_it_holds(tmp_path: Path) -> None:
    store = _store(tmp_path)
    for i in range(20):
        store.write(i % 3, f"k{i}", b"v")
    store.write(1, "k1", None)
    for db in store._dbs.values():
        db.close()
    reopened = _store(tmp_path)
    for partition in range(3):
        reopened._db_for_partition(partition)
    assert reopened.entries() == 19 == _scan(reopened)


def test_a_reopened_database_reads_through_the_shared_cache(tmp_path: Path) -> None:
    """Not through a cache of its own made from the OPTIONS file it left (patches.py, 9.): that cache is outside
    the worker's budget, and a restarted worker grew by 8 MiB for every database it reopened."""
    store = _store(tmp_path)
    for i in range(2000):
        store.write(0, f"k{i}", bytes([i % 251]) * 2000)  # 4 MB, uncompressed in the cache
    store._db_for_partition(0).flush()
    store._db_for_partition(0).close()
    reopened = _store(tmp_path)
    assert isinstance(reopened.rocksdb_options, patches.SharedMemoryOptions)
    cache = reopened.rocksdb_options.memory.cache
    before = cache.get_usage()
    db = reopened._db_for_partition(0)
    assert all(db.get(reopened._encode_key(f"k{i}")) is not None for i in range(2000))
    assert cache.get_usage() - before > 2 * 1024**2


def test_only_the_active_partitions_are_counted(store: patches.CountedRocksStore) -> None:
    store.write(0, "a", b"1")
    store.write(1, "b", b"1")
    topic = store.table.changelog_topic_name  # type: ignore[attr-defined]
    store.app.assignor.assigned_actives = lambda: {TP(topic, 1)}  # type: ignore[method-assign]
    assert store.entries() == 1


def test_a_revoked_partition_comes_back_from_its_changelog_only(store: patches.CountedRocksStore) -> None:
    """A key deleted while the partition was away (its tombstone compacted) must not come back (patches, 11.)."""
    store.write(0, "a", b"1")
    store.write(1, "b", b"1")
    topic = store.table.changelog_topic_name  # type: ignore[attr-defined]
    store.revoke_partitions(store.table, {TP(topic, 0)})
    assert not store.partition_path(0).exists() and store.partition_path(1).exists()
    _changelog(store, [(0, "c", b"1")])  # the recovery when it returns: only what the changelog holds
    assert store.get("a") is None and store["c"] == b"1" and store["b"] == b"1"
    assert store.entries() == 2 == _scan(store)


operations = st.lists(st.tuples(st.sampled_from(["put", "delete", "recover-put", "recover-delete"]),
                                st.integers(0, 2), st.sampled_from("abcdef")), max_size=40)


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(operations, max_size=5))
def test_any_history_counts_what_a_scan_finds(tmp_path_factory: pytest.TempPathFactory,
                                              batches: list[list[Operation]]) -> None:
    store = _store(tmp_path_factory.mktemp("rocks"))
    for batch in batches:
        changelog: list[tuple[int, str, bytes | None]] = []
        for what, partition, key in batch:
            value = None if what.endswith("delete") else b"v"
            if what.startswith("recover"):
                changelog.append((partition, key, value))
            else:
                store.write(partition, key, value)
        _changelog(store, changelog)
        assert store.entries() == _scan(store)


def test_the_metrics_thread_never_makes_a_store_or_a_consumer(tmp_path: Path) -> None:
    """Made from another thread, they would take its event loop, whose tasks never run (patches.py, 7.)."""
    app = patches.App("rocks-test", rocksdb_memory=8 * 1024**2, store="rocksdb://", datadir=str(tmp_path))
    table = app.Table("states", default=None, partitions=3, key_type=str, value_type=bytes, use_partitioner=True)
    assert patches.table_entries(table) == 0 and patches.commit_lag(app) == {}
    assert table._data is None and app._consumer is None  # type: ignore[attr-defined]
    assert isinstance(table.data, patches.CountedRocksStore) and patches.table_entries(table) == 0
