"""runtime/retry.py: each named policy retries what it says, waits what it says and gives up when it says."""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field

import pytest
from tenacity import wait_none

from runtime import retry


class Flaky(Exception):
    pass


def test_until_stopped_retries_a_transient_failure_until_it_succeeds() -> None:
    calls: list[int] = []

    def write() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise Flaky("down")
        return "written"

    policy = retry.until_stopped(threading.Event(), Flaky, logging.getLogger("test"), "write").copy(wait=wait_none())
    assert policy(write) == "written" and len(calls) == 4


def test_until_stopped_gives_up_once_the_service_stops_and_never_retries_other_errors() -> None:
    stop = threading.Event()
    stop.set()
    policy = retry.until_stopped(stop, Flaky, logging.getLogger("test"), "write").copy(wait=wait_none())
    with pytest.raises(Flaky):
        policy(lambda: (_ for _ in ()).throw(Flaky("down")))
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise ValueError("not transient")

    with pytest.raises(ValueError):
        retry.until_stopped(threading.Event(), Flaky, logging.getLogger("test"), "write")(broken)
    assert len(calls) == 1


def test_while_broker_settles_stops_after_its_attempts() -> None:
    calls: list[int] = []

    def ask() -> None:
        calls.append(1)
        raise Flaky("not yet")

    with pytest.raises(Flaky):
        retry.while_broker_settles(lambda exc: isinstance(exc, Flaky)).copy(wait=wait_none())(ask)
    assert len(calls) == retry.BROKER_ATTEMPTS


@dataclass
class Answer:
    status_code: int
    headers: dict[str, str] = field(default_factory=dict)


def test_http_delivery_waits_the_retry_after_of_a_503_and_keeps_the_last_answer() -> None:
    answers = [Answer(503, {"retry-after": "0"}), Answer(503, {"retry-after": "0"}), Answer(200)]

    async def post() -> Answer:
        return answers.pop(0)

    assert asyncio.run(retry.http_delivery(Flaky)(post)) == Answer(200)
    always = [Answer(503, {"retry-after": "0"})] * retry.HTTP_ATTEMPTS

    async def busy() -> Answer:
        return always.pop()

    assert asyncio.run(retry.http_delivery(Flaky)(busy)).status_code == 503 and always == []


def test_http_delivery_answers_none_for_a_connection_that_fails_every_time() -> None:
    async def refused() -> Answer:
        raise Flaky("connection refused")

    policy = retry.http_delivery(Flaky).copy(wait=wait_none())
    assert asyncio.run(policy(refused)) is None


@pytest.mark.parametrize(("value", "seconds"), [(None, 1.0), ("3", 3.0), ("999", 30.0), ("-1", 0.0),
                                                ("Wed, 21 Oct 2015 07:28:00 GMT", 1.0)])
def test_retry_after_is_bounded(value: str | None, seconds: float) -> None:
    assert retry.retry_after(value) == seconds
