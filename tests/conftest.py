"""The one fixture layer for real services.

- Kafka: `KAFKA_BOOTSTRAP_SERVERS` when set; else a Docker engine with testcontainers when
  `CALLPIPE_TESTCONTAINERS=1`; else the local stack (deploy/local), a real KRaft broker started once per session.
- Schema registry: `SCHEMA_REGISTRY_URL` when set, else the local stack's Apicurio registry.
- ClickHouse: the embedded engine (chdb). One process can open one data directory at a time, so the test process
  uses one directory and each test gets a database of its own (`clickhouse`). Services under test run in their
  own processes with their own directories.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from broker.admin import callpipe_topics, ensure_topics
from deploy.local import stack
from sinks.clickhouse import connect

CHDB_URL = f"chdb://{Path(tempfile.gettempdir()) / f'callpipe-sink-tests-{os.getpid()}'}"


@dataclass(frozen=True)
class Services:
    bootstrap: str
    registry_url: str | None
    data: Path


def _testcontainers_kafka() -> Iterator[str]:
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer().with_kraft() as kafka:
        yield kafka.get_bootstrap_server()


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    data = Path(tempfile.mkdtemp(prefix="callpipe-test-"))
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    registry = os.environ.get("SCHEMA_REGISTRY_URL")
    try:
        if bootstrap:
            yield Services(bootstrap, registry, data)
        elif os.environ.get("CALLPIPE_TESTCONTAINERS") == "1":
            for server in _testcontainers_kafka():
                yield Services(server, registry, data)
        else:
            try:
                running = stack.up(data, stack.free_port(), stack.free_port(),
                                   None if registry else stack.free_port())
            except stack.StackError as exc:
                pytest.fail(f"local stack did not start: {exc}", pytrace=False)
            try:
                yield Services(running.bootstrap, registry or running.registry_url, data)
            finally:
                stack.down(data)
    finally:
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka(services: Services) -> str:
    """Bootstrap address of a broker on which every callpipe topic exists."""
    ensure_topics(services.bootstrap, callpipe_topics())
    return services.bootstrap


@pytest.fixture(scope="session")
def registry_url(services: Services) -> str:
    if services.registry_url is None:
        pytest.fail("no schema registry: set SCHEMA_REGISTRY_URL or let the local stack start one", pytrace=False)
    return services.registry_url


@pytest.fixture
def clickhouse() -> Iterator[Client]:
    """A client of the embedded engine on a fresh database, dropped afterwards."""
    client = connect(CHDB_URL)
    database = f"t_{uuid.uuid4().hex}"
    client.command(f"CREATE DATABASE {database}")
    client.database = database
    yield client
    client.close()  # a test may have closed it already, to reopen
    cleanup = connect(CHDB_URL)
    cleanup.command(f"DROP DATABASE {database}")
    cleanup.close()
