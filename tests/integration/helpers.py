"""Shared pieces of the integration tests: a real HTTP server in a thread, and a Kafka reader."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from confluent_kafka import Consumer, Message
from starlette.applications import Starlette

from broker.config import consumer_config
from deploy.local.stack import free_port


@contextmanager
def serve(app: Starlette) -> Iterator[str]:
    """Run the app under uvicorn on a free loopback port; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def read_topic(bootstrap: str, topic: str, *, min_messages: int = 1, timeout: float = 20.0,
               settle: float = 0.0) -> list[Message]:
    """Every message of `topic` from the beginning; waits for at least `min_messages`, then `settle` seconds more
    so that unexpected extra messages (duplicates) show up too."""
    consumer = Consumer(consumer_config(bootstrap, f"test-{uuid.uuid4().hex}"))
    consumer.subscribe([topic])
    found: list[Message] = []
    deadline = time.monotonic() + timeout
    settle_until: float | None = None
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                found.append(msg)
            if len(found) >= min_messages and settle_until is None:
                settle_until = time.monotonic() + settle
            if settle_until is not None and time.monotonic() >= settle_until:
                break
    finally:
        consumer.close()
    return found
