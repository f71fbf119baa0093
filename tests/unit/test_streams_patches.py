"""streams/faustapp/patches.py replaces or wraps upstream Faust, mode and aiokafka names: this fails when one of
them, or its signature, moves in an upgrade (the pins in pyproject.toml are the first guard, this the second).
The behaviour of each patch is shown in test_streams_delivery.py and test_streams_consumer.py."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import aiokafka
import faust
import pytest
from faust.stores.rocksdb import RocksDBOptions
from faust.stores.rocksdb import Store as RocksStore
from faust.tables.base import Collection
from faust.transport.consumer import Consumer as BaseConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer
from faust.transport.producer import ProducerBuffer
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

from runtime import logs
from schemas import topics
from streams.faustapp import patches
from streams.faustapp.app import TABLES

UPSTREAM: list[tuple[Callable[..., Any], list[str]]] = [
    (ProducerBuffer.flush, ["self"]),
    (ProducerBuffer.put, ["self", "fut"]),
    (ProducerBuffer.__post_init__, ["self"]),
    (ProducerBuffer.flush_atmost, ["self", "max_messages"]),
    (FlowControlEvent.resume, ["self"]),
    (AIOKafkaConsumerThread.seek_to_committed, ["self"]),
    (AIOKafkaConsumerThread._ensure_consumer, ["self"]),
    (AIOKafkaConsumerThread.call_thread, ["self", "fun", "args", "kwargs"]),
    (aiokafka.AIOKafkaConsumer.seek_to_committed, ["self", "partitions"]),
    (BaseConsumer._new_offset, ["self", "tp"]),
    (Consumer._new_consumer_thread, ["self"]),
    (faust.App._new_producer, ["self"]),
    (faust.App._new_consumer, ["self"]),
    (Collection.send_changelog, ["self", "partition", "key", "value", "key_serializer", "value_serializer"]),
    (RocksStore._set, ["self", "key", "value"]),
    (RocksStore._get, ["self", "key"]),
    (RocksStore._db_for_partition, ["self", "partition"]),
    (RocksStore._encode_key, ["self", "key"]),
    (RocksStore._encode_value, ["self", "value"]),
    (RocksStore._dbs_for_actives, ["self"]),
    (RocksStore._open_for_partition, ["self", "partition"]),
    (RocksStore._visible_keys, ["self", "db"]),
    (RocksStore._size, ["self"]),
    (RocksStore.apply_changelog_batch, ["self", "batch", "to_key", "to_value"]),
    (RocksDBOptions.as_options, ["self"]),
    (Collection._new_store_by_url, ["self", "url"]),
    (AIOKafkaConsumerThread._create_worker_consumer, ["self", "transport"]),
]


@pytest.mark.parametrize(("function", "parameters"), UPSTREAM, ids=lambda v: getattr(v, "__qualname__", ""))
def test_each_replaced_upstream_function_keeps_its_signature(function: Callable[..., Any],
                                                              parameters: list[str]) -> None:
    assert list(inspect.signature(function).parameters) == parameters


def test_the_upstream_state_the_patches_read_is_still_there() -> None:
    assert isinstance(inspect.getattr_static(faust.App, "flow_control"), cached_property)
    consumer_source = inspect.getsource(BaseConsumer)
    for attribute in ("self._acked", "self._acked_index"):  # patch 4 de-duplicates _acked
        assert attribute in consumer_source, attribute
    assert "self.data" in inspect.getsource(Collection)  # patch 5 writes the store beside the changelog
    assert "flush_atmost" in inspect.getsource(ProducerBuffer.flush)  # patch 1 waits beyond it
    get_source = inspect.getsource(RocksStore._get)  # patch 6: use_partitioner makes reads search every partition
    assert "use_partitioner" in get_source and "_get_bucket_for_key" in get_source
    assert "self._key_index" in inspect.getsource(RocksStore.__init__)
    assert "self._committed_offset" in consumer_source  # patch 8 reads it
    assert "rocksdict.Cache(self.block_cache_size)" in inspect.getsource(RocksDBOptions.as_options)  # patch 9
    aiokafka_consumer = inspect.getsource(aiokafka.AIOKafkaConsumer)  # patch 10 sets what its fetcher reads
    assert "fetch_min_bytes=self._fetch_min_bytes" in aiokafka_consumer
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in aiokafka_consumer
    assert "if self.spinner:" in inspect.getsource(faust.Worker._setup_spinner_handler)  # patch 12 unsets it


def test_the_patched_classes_override_what_the_docstring_says() -> None:
    assert patches.App._new_producer is not faust.App._new_producer
    assert patches.KeepQueuesOnResume.resume is not FlowControlEvent.resume
    assert patches.SeekingConsumerThread.seek_to_committed is not AIOKafkaConsumerThread.seek_to_committed
    assert patches.SeekingConsumer._new_offset is not BaseConsumer._new_offset
    assert issubclass(patches.DeliveryBuffer, ProducerBuffer)
    assert patches.SharedMemoryOptions.as_options is not RocksDBOptions.as_options
    assert patches.SharedMemoryOptions.open is not RocksDBOptions.open
    assert patches.Table._new_store_by_url is not Collection._new_store_by_url


def test_the_versions_are_the_pinned_ones() -> None:
    assert version("faust-streaming") == "0.15.3"
    assert version("aiokafka") == "0.14.0"


def test_every_state_table_has_its_changelog_topic_in_the_one_topic_list() -> None:
    assert sorted(TABLES) == sorted(topics.STATE_TABLES)


@pytest.mark.parametrize("level", ["INFO", "WARNING", "ERROR"])
def test_the_worker_keeps_the_root_logger_at_the_level_it_is_given(level: str) -> None:
    """Patch 12: with Faust's own worker the root logger went to DEBUG at WARNING and above."""
    root = logging.getLogger()
    saved = root.level, root.handlers[:]
    try:
        worker = patches.Worker(faust.App("patch-12", broker="kafka://127.0.0.1:1"), loglevel=level.lower(),
                                logging_config=logs.dict_config(level), redirect_stdouts=False)
        worker._setup_logging()
        assert root.level == logging.getLevelName(level)
        assert not logging.getLogger("aiokafka.consumer.fetcher").isEnabledFor(logging.DEBUG)
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
