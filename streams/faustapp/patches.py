"""Every change callpipe makes to Faust's, mode's and aiokafka's behaviour, in one place: each closes a hole in
their at-least-once guarantee or does what Faust's public API cannot. Pinned versions: faust-streaming 0.15.3,
aiokafka 0.14.0 (pyproject.toml); tests/unit/test_streams_patches.py fails when a replaced name or signature
moves upstream.

1. Commits wait for deliveries. Replaces `faust.transport.producer.ProducerBuffer` (installed by overriding
   `faust.App._new_producer`): Faust commits a consumer offset after `producer.flush()`, which drains its
   buffer, the queue every table write goes through on its way to the changelog. That drain gives up when one
   message takes more than 0.1 s to hand over (`ProducerBuffer.flush_atmost`), which a busy worker easily
   exceeds; and a changelog write that fails is only logged. Either way the offset can be committed past a state
   change that never reached its changelog. `DeliveryBuffer` keeps each message it is given, and each output
   record the agents register with `track`, until Kafka acknowledged it; its `flush` waits for all of them and
   raises once any write failed, so the commit does not happen. It also numbers the writes in generations (one
   per batch, `seal`), so that an agent knows which of its earlier batches are acknowledged
   (`delivered_through`) before it writes what must only follow them (docs/DESIGN.md, "Guarantees").
2. Nothing fetched around a rebalance is dropped. Replaces `mode.utils.queues.FlowControlEvent.resume` (through
   `faust.App.flow_control`): when recovery ends, Faust resumes the stream partitions and seeks them to their
   committed offsets, and only then resumes flow control, whose `resume()` empties the stream queues: whatever
   the fetcher read in between was dropped unacked, with the fetch position already past it. Faust already
   empties the queues itself when a rebalance starts (`flow_control.clear()` on revoke and assign) and skips
   events of an older generation, so the app's flow control keeps the queues on resume.
3. "Seek to committed" seeks. Replaces `faust.transport.drivers.aiokafka.AIOKafkaConsumerThread.seek_to_committed`
   (through `faust.App._new_consumer` and `Consumer._new_consumer_thread`): aiokafka's `seek_to_committed` only
   seeks offsets > 0, so a partition committed at offset 0, or never, kept whatever position it had; partitions
   taken over from a killed worker were left at their end during recovery and their events never processed.
   Offset 0 is sought too, and the first offset of a partition with no commit (auto.offset.reset=earliest).
4. A partition's commit does not crawl. Wraps `faust.transport.consumer.Consumer._new_offset`: after a rebalance
   Faust can record a "gap" (a delivered offset past its read offset) and counts the gap's offsets as acked by
   adding them to `_acked` without `_acked_index`; when those records are acked for real they are listed twice,
   and the commit then advances about one offset per commit. The repeats are removed before Faust computes the
   offset to commit.
5. A table write for a given partition. `write_to_table` does what `table[key] = value` and `del table[key]` do
   (`Table.send_changelog` plus the store, `Table.data`; `Table.on_key_del` for the tombstone) with the
   changelog partition given instead of taken from Faust's current event: a batch holds events of several
   partitions.
6. The RocksDB store written and read for any partition. `faust.stores.rocksdb.Store._set` writes to the
   database of the current event's partition, and `_get` reads only that database unless the table uses the
   partitioner: a batch writes and reads keys of several partitions. The tables are declared with
   `use_partitioner=True` (reads search the partitions' databases through Faust's key index and bloom
   filters), and `write_to_table` writes to the given partition's database itself (`Store._db_for_partition`,
   `Store._encode_key`/`_encode_value`, `Store._key_index`).
7. Table sizes without a scan. `table_entries` replaces `len(table)` for the RocksDB store, whose
   `Store._size` iterates every key of every partition's database, with a count of the keys each partition's
   database holds, for the workers' `/metrics`: counted once when the database opens (`Store._open_for_partition`,
   the keys Faust's `Store._visible_keys` shows), then kept by every write (`write_to_table` and
   `Store.apply_changelog_batch`, the changelog recovery), each of which looks the key up first. It reads the
   store only once the table made it (`Collection._data`): a store made from the metrics server's thread would
   take that thread's event loop for the table (`Service.loop`), whose tasks then never run, and the worker's
   stop waited for them until it was killed.
8. Commit lag. `commit_lag` reads, for the worker's `/metrics`, each assigned partition's high watermark
   (`Consumer.highwater`) and the offset Faust last committed for it (`Consumer._committed_offset`, which Faust
   exposes nowhere else), from the consumer once the app made it (`App._consumer`, for the reason in 7.).
9. One memory budget for every RocksDB database of a worker. Replaces `faust.stores.rocksdb.RocksDBOptions.as_options`
   (through `faust.tables.base.Collection._new_store_by_url`, the `Table` class given to the app): Faust gives
   each database (one per table and partition: 66 on a worker holding every partition) a block cache of its own
   (2 GiB) and 3 memtables of 64 MiB, so a worker's memory grows with the partitions it holds until RocksDB
   happens to flush. Every database of the worker shares one LRU block cache of `STREAMS_ROCKSDB_MEMORY_MB`,
   and one write-buffer manager charges all their memtables (4 MiB each, at most 2) to that cache, with index
   and filter blocks cached there too. Replaces `RocksDBOptions.open` as well: for a database that already
   exists, `rocksdict.Rdict` reads its column families' options from the database's OPTIONS file, each with a
   new 8 MiB block cache of its own, and prefers them to the options given, unless column families are given
   too. Every database a restarted worker reopened read through a cache of its own that no budget bounded (the
   soak's restarted worker: +100 MiB of data blocks in 40 minutes). The column family gets the same options.
10. Fetches that wait for data. Wraps `faust.transport.drivers.aiokafka.AIOKafkaConsumerThread._create_worker_consumer`:
   Faust creates its consumer with `fetch_max_wait_ms=1500` and aiokafka's `fetch_min_bytes=1`, so the broker
   answers a fetch as soon as any record arrives, one fetch per few events at a live rate. The worker's settings
   (`STREAMS_FETCH_MIN_BYTES`, `STREAMS_FETCH_MAX_WAIT_MS`) are set on the consumer before it starts
   (`AIOKafkaConsumer._fetch_min_bytes`, `_fetch_max_wait_ms`, which its fetcher reads at start).
11. A revoked partition's database is dropped. Extends `faust.stores.rocksdb.Store.revoke_partitions`, which
   only forgets the database: when the partition came back, Faust reopened it and read the changelog from the
   offset it held, so every key deleted meanwhile whose tombstone compaction had already dropped
   (`delete.retention.ms`) came back to life (the soak's settled metric registers, counted again). The database
   is closed and deleted, so a partition that returns is restored from its compacted changelog, which holds no
   deleted key. A worker that restarts keeps its databases (no partition is revoked by a stop).
12. No terminal spinner. `Worker` replaces `faust.Worker.spinner` (a `faust.utils.terminal.Spinner`, made in
   `faust.Worker.__init__`) with None: at a log level of WARNING or above, `Worker.on_setup_root_logger` keeps
   the spinner, sets the root logger to DEBUG and adds a handler that spins it on every record, so that every
   debug call of Faust and aiokafka (several per fetch) built a log record that no handler printed: 7 % of a
   streams worker's CPU at 300 webhooks/s with `LOG_LEVEL=WARNING` (bench/RESULTS.md, session 16).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiokafka
import faust
import rocksdict
from faust.stores.rocksdb import RocksDBOptions
from faust.stores.rocksdb import Store as RocksStore
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer
from faust.transport.producer import ProducerBuffer
from faust.types import TP, EventT, StoreT, TableT
from faust.types.transports import ConsumerT, ProducerT
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent
from yarl import URL

DEFAULT_COLUMN_FAMILY = "default"
"""RocksDB's name for the column family every Faust table's database keeps its keys in."""


class DeliveryFailed(RuntimeError):
    """A changelog or output write was not acknowledged: committing the offsets would lose it."""


class DeliveryBuffer(ProducerBuffer):
    """Also numbers the writes in generations (`seal`), so that an agent can tell which of its earlier writes
    are acknowledged (`delivered_through`) before it writes what must only follow them."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.undelivered: set[asyncio.Future[Any]] = set()
        self.failure: BaseException | None = None
        self.generation = 0
        self._open: dict[int, int] = {}
        """generation -> its writes not acknowledged yet"""

    def track(self, delivery: Awaitable[Any]) -> None:
        """Count `delivery` (what a send returned) among the writes the next commit waits for."""
        future = asyncio.ensure_future(delivery)  # already a future for a Faust send: returned as it is
        self.undelivered.add(future)
        self._open[self.generation] = self._open.get(self.generation, 0) + 1
        future.add_done_callback(partial(self._delivered, self.generation))

    def _delivered(self, generation: int, future: asyncio.Future[Any]) -> None:
        self.undelivered.discard(future)
        error = None if future.cancelled() else future.exception()
        if error is not None and self.failure is None:
            self.failure = error
        if error is None:  # a failed write keeps its generation open: nothing that must follow it is written
            self._open[generation] -= 1
            if not self._open[generation]:
                del self._open[generation]

    def seal(self) -> int:
        """End the current generation: the writes tracked so far belong to it or an earlier one. Returns it."""
        self.generation += 1
        return self.generation - 1

    def delivered_through(self) -> int:
        """The latest generation whose writes, and every earlier generation's, are acknowledged (-1: none)."""
        return (min(self._open) if self._open else self.generation) - 1

    def put(self, fut: Any) -> None:
        self.track(fut)
        super().put(fut)

    async def flush(self) -> None:
        await super().flush()
        if self.undelivered:
            await asyncio.wait(list(self.undelivered))
        if self.failure is not None:
            raise DeliveryFailed(f"a write was not acknowledged by Kafka: {self.failure!r}") from self.failure


def write_to_table(table: TableT[str, bytes], partition: int, key: str, value: bytes | None) -> None:
    """`table[key] = value`, or `del table[key]` for None (`Table.on_key_del`: a tombstone), with the changelog
    partition given (5. above)."""
    if value is None:
        table.send_changelog(partition, key, None, value_serializer="raw")
    else:
        table.send_changelog(partition, key, value)
    store = table.data
    if isinstance(store, CountedRocksStore):
        store.write(partition, key, value)
    elif value is None:
        store.pop(key, None)
    else:
        store[key] = value


def table_entries(table: TableT[str, bytes]) -> int:
    """How many keys the table holds for the partitions this worker serves (7. above)."""
    store = table._data  # type: ignore[attr-defined]
    if store is None:
        return 0
    return store.entries() if isinstance(store, CountedRocksStore) else len(store)


class RocksMemory:
    """The block cache and write-buffer manager every RocksDB database of a worker shares (9. above)."""

    WRITE_BUFFER = 4 * 1024**2
    WRITE_BUFFERS = 2

    def __init__(self, budget: int) -> None:
        self.cache = rocksdict.Cache(budget)
        self.write_buffers = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
            budget // 2, False, self.cache)
        self.usage = {"block_cache": self.cache.get_usage, "memtables": self.write_buffers.get_usage}

    def options(self, faust_options: RocksDBOptions) -> rocksdict.Options:
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        if faust_options.max_open_files is not None:
            options.set_max_open_files(faust_options.max_open_files)
        options.set_write_buffer_size(self.WRITE_BUFFER)
        options.set_max_write_buffer_number(self.WRITE_BUFFERS)
        options.set_target_file_size_base(faust_options.target_file_size_base)
        options.set_write_buffer_manager(self.write_buffers)
        tables = rocksdict.BlockBasedOptions()
        tables.set_bloom_filter(faust_options.bloom_filter_size, True)
        tables.set_block_cache(self.cache)
        tables.set_cache_index_and_filter_blocks(True)
        tables.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        options.set_block_based_table_factory(tables)
        return options


class SharedMemoryOptions(RocksDBOptions):
    memory: RocksMemory

    def as_options(self) -> rocksdict.Options:
        return self.memory.options(self)

    def open(self, path: Path, *, read_only: bool = False) -> rocksdict.Rdict:
        """The database at ``path`` with its column family on these options too (9. above)."""
        options = self.as_options()
        access = rocksdict.AccessType.read_write() if self.ttl is None else rocksdict.AccessType.with_ttl(self.ttl)
        db = rocksdict.Rdict(str(path), options=options, column_families={DEFAULT_COLUMN_FAMILY: options},
                             access_type=access)
        db.set_read_options(rocksdict.ReadOptions())
        return db


class CountedRocksStore(RocksStore):
    """Faust's RocksDB store on the worker's shared memory (9. above), written for a given partition (6. above)
    and counting the keys of each partition's database (7. above)."""

    def __init__(self, *args: Any, memory: RocksMemory, **kwargs: Any) -> None:
        super().__init__(*args, driver="rocksdict", **kwargs)
        options = SharedMemoryOptions(**(self.options or {}), use_rocksdict=True)
        options.memory = memory
        self.rocksdb_options = options
        self._keys: dict[int, int] = {}

    def revoke_partitions(self, table: Any, tps: set[TP]) -> None:
        """Drop the revoked partitions' databases (11. above)."""
        revoked = {tp.partition: self._dbs.get(tp.partition) for tp in tps
                   if tp.topic in table.changelog_topic.topics}
        super().revoke_partitions(table, tps)
        for partition, db in revoked.items():
            if db is not None:
                db.close()
            rocksdict.Rdict.destroy(str(self.partition_path(partition)))
            self._keys.pop(partition, None)
            for key in [k for k, p in self._key_index.items() if p == partition]:
                del self._key_index[key]

    def _open_for_partition(self, partition: int) -> rocksdict.Rdict:
        db = super()._open_for_partition(partition)
        self._keys[partition] = sum(1 for _ in self._visible_keys(db))
        return db

    def _holds(self, db: rocksdict.Rdict, encoded: bytes) -> bool:
        return bool(db.key_may_exist(encoded)) and db.get(encoded) is not None

    def write(self, partition: int, key: str, value: bytes | None) -> None:
        """`Store._set`/`_del` with the partition's database given."""
        encoded = self._encode_key(key)
        db = self._db_for_partition(partition)
        held = self._holds(db, encoded)
        if value is None:
            db.delete(encoded)
            self._key_index.pop(encoded, None)
        else:
            db.put(encoded, self._encode_value(value))
            self._key_index[encoded] = partition
        self._keys[partition] += (value is not None) - held

    def apply_changelog_batch(self, batch: Iterable[EventT], to_key: Callable[[Any], Any],
                              to_value: Callable[[Any], Any]) -> None:
        events = list(batch)
        final = {(event.message.partition, event.message.key): event.message.value is not None
                 for event in events if event.message.key is not None}
        held = {(partition, key): self._holds(self._db_for_partition(partition), key) for partition, key in final}
        super().apply_changelog_batch(events, to_key, to_value)
        for (partition, key), present in final.items():
            self._keys[partition] += present - held[(partition, key)]

    def entries(self) -> int:
        actives = self.app.assignor.assigned_actives()
        topic = self.table.changelog_topic_name  # type: ignore[attr-defined]
        return sum(self._keys.get(partition, 0) for partition in list(self._dbs)
                   if TP(topic=topic, partition=partition) in actives)


class Table(faust.Table[str, bytes]):
    """Tables whose RocksDB store is `CountedRocksStore` (9. above)."""

    def _new_store_by_url(self, url: str | URL) -> StoreT:
        if URL(url).scheme != "rocksdb":
            return super()._new_store_by_url(url)
        app = self.app
        assert isinstance(app, App)
        return CountedRocksStore(url, app, self, table_name=self.name, key_type=self.key_type,
                                 key_serializer=self.key_serializer, value_serializer=self.value_serializer,
                                 value_type=self.value_type, loop=self.loop, options=self.options,
                                 memory=app.rocks_memory)


def commit_lag(app: faust.App) -> dict[tuple[str, int], int]:
    """Per assigned (topic, partition): messages past the last committed offset (8. above). Read from the
    metrics server's thread: a snapshot, and nothing at all while the consumer is not running."""
    consumer = app._consumer
    if not isinstance(consumer, Consumer):
        return {}
    lag = {}
    try:
        for tp in list(consumer.assignment()):
            committed = consumer._committed_offset.get(tp)
            high = consumer.highwater(tp)
            if high is not None:
                lag[(tp.topic, tp.partition)] = max(0, high - (0 if committed is None else committed + 1))
    except (AttributeError, KeyError, RuntimeError):
        return {}
    return lag


@dataclass(frozen=True)
class Fetching:
    min_bytes: int
    max_wait_ms: int


class App(faust.App):
    def __init__(self, id: str, *, rocksdb_memory: int, fetching: Fetching | None = None, **options: Any) -> None:
        """``fetching``: None keeps Faust's own fetch settings (10. above)."""
        super().__init__(id, Table=Table, **options)
        self._rocksdb_budget, self.fetching = rocksdb_memory, fetching

    @cached_property
    def rocks_memory(self) -> RocksMemory:
        return RocksMemory(self._rocksdb_budget)

    def _new_producer(self) -> ProducerT:
        producer = super()._new_producer()
        buffer = DeliveryBuffer(loop=producer.loop, beacon=producer.beacon)
        buffer.app = self
        producer.buffer = buffer  # before the producer starts: it starts its buffer as a dependency
        return producer

    @property
    def deliveries(self) -> DeliveryBuffer:
        buffer = self.producer.buffer
        assert isinstance(buffer, DeliveryBuffer)
        return buffer

    def _new_consumer(self) -> ConsumerT:
        return SeekingConsumer(self.transport, callback=self.topics.on_message, loop=self.loop,
                               on_partitions_revoked=self._on_partitions_revoked,
                               on_partitions_assigned=self._on_partitions_assigned, beacon=self.beacon)

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return KeepQueuesOnResume(loop=self.loop)


class Worker(faust.Worker):
    """12. A worker whose root logger keeps the level it is given."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spinner = None


class KeepQueuesOnResume(FlowControlEvent):
    def resume(self) -> None:
        self._suspend.clear()
        self._resume.set()


class SeekingConsumerThread(AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        app = self.app
        if isinstance(app, App) and app.fetching is not None:
            consumer._fetch_min_bytes = app.fetching.min_bytes
            consumer._fetch_max_wait_ms = app.fetching.max_wait_ms
        return consumer

    async def seek_to_committed(self) -> Mapping[TP, int]:
        return await self.call_thread(self._seek_to_committed)

    async def _seek_to_committed(self) -> Mapping[TP, int]:
        consumer = self._ensure_consumer()
        committed: Mapping[TP, int] = await consumer.seek_to_committed()
        changelogs = self.app.tables.changelog_topics  # never committed: Faust's recovery positions them
        for tp, offset in committed.items():
            if tp.topic in changelogs:
                continue
            if offset is None or offset < 0:
                await consumer.seek_to_beginning(tp)
            elif offset == 0:
                consumer.seek(tp, 0)
        return committed


class SeekingConsumer(Consumer):
    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return SeekingConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _new_offset(self, tp: TP) -> int | None:
        # Faust fills a gap by adding its offsets to the acked list but not to the acked index, so those records,
        # when acked for real, are listed twice; its search for the first run of consecutive offsets then stops
        # at the first repeat, and each commit moves about one offset (4. above).
        acked = self._acked[tp]
        if len(acked) != len(set(acked)):
            acked[:] = sorted(set(acked))
        return super()._new_offset(tp)
