"""`python -m streams`: one Faust worker. Run several (same STREAMS_APP_ID) to share the partitions."""

from __future__ import annotations

import logging
from collections.abc import Callable

import faust

from broker.admin import callpipe_topics, ensure_topics
from runtime import logs, malloc
from streams.faustapp.app import create_app
from streams.faustapp.patches import Worker
from streams.settings import Settings, from_env


def run(build: Callable[[Settings], faust.App]) -> None:
    """A worker of the app `build` makes, on the process set-up every streams worker has (allocator, logs, topics,
    the patched Worker): bench/faust_baseline.py runs its do-nothing app through this too."""
    settings = from_env()
    if settings.allocator == "jemalloc":
        malloc.run_on_jemalloc(settings.malloc_arenas)  # when it is installed, the process starts over on it
    malloc.limit_arenas(settings.malloc_arenas)
    logs.setup(settings.log_level)
    logging.getLogger("callpipe.streams").info("allocator", extra={"allocator": malloc.allocator()})
    ensure_topics(settings.kafka_bootstrap, callpipe_topics(settings.app_id))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = build(settings)
    Worker(app, loglevel=settings.log_level.lower(),
           logging_config=logs.dict_config(settings.log_level)).execute_from_commandline()


def main() -> None:
    run(create_app)


if __name__ == "__main__":
    main()
