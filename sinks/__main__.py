"""`python -m sinks`: the sink service (one per embedded ClickHouse data directory)."""

from __future__ import annotations

import signal
import threading

from runtime import logs
from sinks.settings import from_env
from sinks.write.service import Sink


def main() -> None:
    settings = from_env()
    logs.setup(settings.log_level)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    Sink(settings, stop).run()


if __name__ == "__main__":
    main()
