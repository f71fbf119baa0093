"""Every retry loop of callpipe, as a named policy on tenacity: what is retried, how long it waits, when it gives
up. The callers say only which failures are transient for them.

- `until_stopped`: the sink's ClickHouse writes. A batch is never dropped, so it is retried until it lands or
  the service stops: 0.5 s, doubling to 30 s, logged before each wait.
- `until_available`: the streams worker's wait for the schema registry before a batch: 0.5 s, doubling to 5 s
  (`REGISTRY_BACKOFF_S`; the sink pauses the same), until the caller gives up. A lookup is one small request, and
  the records go on within 5 s of the registry's return.
- `while_broker_settles`: admin calls against a broker that just started or just created a topic: once a second,
  at most 30 times.
- `http_delivery`: the replay's POSTs: a dropped connection is retried after 0.4 s, doubling; a 503 after its
  Retry-After (at most 30 s); at most 6 attempts, then the last answer stands.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import tenacity

MAX_BACKOFF_S = 30.0
REGISTRY_BACKOFF_S = 5.0
BROKER_ATTEMPTS = 30
HTTP_ATTEMPTS = 6
MAX_RETRY_AFTER_S = 30.0


def _logged(log: logging.Logger, what: str, extra: dict[str, Any]) -> Callable[[tenacity.RetryCallState], None]:
    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else None
        log.error(f"{what} failed; retrying", extra={**extra, "error": str(error), "retry_in_s": wait})

    return before_sleep


def backoff_s(attempt: int, most: float = MAX_BACKOFF_S) -> float:
    """The wait after the ``attempt``-th failure in a row: 0.5 s, doubling to ``most``."""
    return float(min(0.5 * 2 ** (attempt - 1), most))


def _backoff(most: float) -> Callable[[tenacity.RetryCallState], float]:
    return lambda state: backoff_s(state.attempt_number, most)


def until_stopped(stop: threading.Event, transient: type[Exception], log: logging.Logger,
                  what: str, **extra: Any) -> tenacity.Retrying:
    return tenacity.Retrying(retry=tenacity.retry_if_exception_type(transient), stop=lambda state: stop.is_set(),
                             wait=_backoff(MAX_BACKOFF_S), before_sleep=_logged(log, what, extra), reraise=True)


def until_available(transient: type[Exception], log: logging.Logger, what: str,
                    give_up: Callable[[], bool]) -> tenacity.AsyncRetrying:
    return tenacity.AsyncRetrying(retry=tenacity.retry_if_exception_type(transient),
                                  wait=_backoff(REGISTRY_BACKOFF_S), stop=lambda state: give_up(),
                                  before_sleep=_logged(log, what, {}), reraise=True)


def while_broker_settles(transient: Callable[[BaseException], bool]) -> tenacity.Retrying:
    return tenacity.Retrying(retry=tenacity.retry_if_exception(transient),
                             stop=tenacity.stop_after_attempt(BROKER_ATTEMPTS), wait=tenacity.wait_fixed(1),
                             reraise=True)


def retry_after(value: str | None) -> float:
    """Seconds of a Retry-After header, bounded; an HTTP date (ingest never sends one) is a short pause."""
    try:
        return min(max(float(value or 1), 0.0), MAX_RETRY_AFTER_S)
    except ValueError:
        return 1.0


def _http_wait(state: tenacity.RetryCallState) -> float:
    outcome = state.outcome
    if outcome is None or outcome.failed:
        return float(0.2 * 2**state.attempt_number)
    return retry_after(outcome.result().headers.get("retry-after"))


def http_delivery(transport_error: type[Exception]) -> tenacity.AsyncRetrying:
    """Retries a coroutine returning an HTTP response (anything with `status_code` and `headers`)."""
    return tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception_type(transport_error)
        | tenacity.retry_if_result(lambda answer: answer.status_code == 503),
        stop=tenacity.stop_after_attempt(HTTP_ATTEMPTS),
        wait=_http_wait,
        # After the last attempt: its answer (a 503), or None for a connection that failed every time.
        retry_error_callback=lambda state: None if state.outcome is None or state.outcome.failed
        else state.outcome.result(),
    )
