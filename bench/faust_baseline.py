"""`python -m bench.faust_baseline`: a Faust worker that only consumes, the baseline of bench/streams.py.

The app streams/faustapp/app.py builds (same settings, same co-partitioned entity topics, same batches), with one agent
that takes each batch and does nothing with it: what Faust and aiokafka cost per event before any callpipe
work (no decoding, no state, no output). Faust acks the events and commits their offsets as usual.
"""

from __future__ import annotations

from typing import Any

import faust

from broker.admin import callpipe_topics, ensure_topics
from streams.faustapp.app import entity_source, faust_app
from streams.settings import from_env


def main() -> None:
    settings = from_env()
    ensure_topics(settings.kafka_bootstrap, callpipe_topics(settings.app_id))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust_app(settings)

    @app.agent(entity_source(app))
    async def consume(stream: Any) -> None:
        async for _ in stream.take_events(settings.batch_max_events, settings.batch_window_s):
            pass

    faust.Worker(app, loglevel=settings.log_level.lower()).execute_from_commandline()


if __name__ == "__main__":
    main()
