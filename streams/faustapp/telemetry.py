"""Prometheus metrics of a streams worker, served on `STREAMS_METRICS_PORT` (0: not served) from a registry of
its own: what an operator needs to see that state stays bounded and the worker keeps up."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from runtime import malloc


class _StateEntries(Collector):
    """Entries per state table, counted at scrape time (`entries` of each table)."""

    def __init__(self, tables: Mapping[str, Callable[[], int]]) -> None:
        self.tables = tables

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily("callpipe_streams_state_entries", "Keys held in each state table",
                                   labels=["table"])
        for name, entries in sorted(self.tables.items()):
            family.add_metric([name], entries())
        yield family


class _CommitLag(Collector):
    def __init__(self, lag: Callable[[], Mapping[tuple[str, int], int]]) -> None:
        self.lag = lag

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily("callpipe_streams_commit_lag",
                                   "Messages past the last committed offset, per assigned partition",
                                   labels=["topic", "partition"])
        for (topic, partition), lag in sorted(self.lag().items()):
            family.add_metric([topic, str(partition)], lag)
        yield family


class _Memory(Collector):
    """Where a worker's memory goes: RocksDB's shared cache (memtables are charged to it), the Python heap and
    glibc's arenas (live and free bytes), so that a growing RSS can be told apart from a growing store."""

    def __init__(self, rocksdb: Mapping[str, Callable[[], int]]) -> None:
        self.rocksdb = rocksdb

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily("callpipe_streams_rocksdb_memory_bytes",
                                   "Bytes held by the worker's shared RocksDB memory", labels=["what"])
        for what, usage in sorted(self.rocksdb.items()):
            family.add_metric([what], usage())
        yield family
        yield GaugeMetricFamily("callpipe_streams_python_allocated_blocks",
                                "Memory blocks the Python allocator holds (sys.getallocatedblocks)",
                                value=sys.getallocatedblocks())
        held = malloc.usage()
        if held is not None:
            family = GaugeMetricFamily("callpipe_streams_malloc_bytes",
                                       "Bytes the C allocator handed out (in_use) and holds resident besides (free)",
                                       labels=["what", "allocator"])
            family.add_metric(["in_use", malloc.allocator()], held.in_use)
            family.add_metric(["free", malloc.allocator()], held.free)
            yield family


class StreamsTelemetry:
    def __init__(self, tables: Mapping[str, Callable[[], int]],
                 lag: Callable[[], Mapping[tuple[str, int], int]],
                 rocksdb: Mapping[str, Callable[[], int]]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_StateEntries(tables))
        self.registry.register(_CommitLag(lag))
        self.registry.register(_Memory(rocksdb))
        self.batch_events = Histogram(
            "callpipe_streams_batch_events", "Events per batch", ["agent"], registry=self.registry,
            buckets=(1, 5, 20, 50, 100, 250, 500, 1000, 2000))
        self.batch_seconds = Histogram(
            "callpipe_streams_batch_seconds", "Time to fold a batch and hand its writes to the producer",
            ["agent"], registry=self.registry, buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 5))
        self.records_out = Counter("callpipe_streams_records_out", "Records sent, by topic", ["topic"],
                                   registry=self.registry)
        self.evictions = Counter("callpipe_streams_evictions", "State keys evicted (tombstones), by table",
                                 ["table"], registry=self.registry)
        self.late = Counter("callpipe_streams_late", "Late records and shares not counted, by what was late",
                            ["what"], registry=self.registry)
        self.dead_letters = Counter("callpipe_streams_dead_letters", "Events dead-lettered by the streams stage",
                                    registry=self.registry)
        self.rebalances = Counter("callpipe_streams_rebalances", "Changelog recoveries (start and rebalances)",
                                  registry=self.registry)

    def serve(self, port: int) -> None:
        if port:
            start_http_server(port, registry=self.registry)
