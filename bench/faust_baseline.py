"""`python -m bench.faust_baseline`: a Faust worker that only consumes, the baseline of bench/streams.py and the
streams workers of bench/pipeline.py's `frameworks` phase.

The app streams/faustapp/app.py builds (same settings, same co-partitioned entity topics, same batches), with one agent
that takes each batch and does nothing with it: what Faust and aiokafka cost per event before any callpipe
work (no decoding, no state, no output). Faust acks the events and commits their offsets as usual. The process is
set up as a streams worker is (`streams.__main__.run`: allocator, logs, the patched Worker).
"""

from __future__ import annotations

from typing import Any

import faust

from streams.__main__ import run
from streams.faustapp.app import entity_source, faust_app
from streams.settings import Settings


def baseline_app(settings: Settings) -> faust.App:
    app = faust_app(settings)

    @app.agent(entity_source(app))
    async def consume(stream: Any) -> None:
        async for _ in stream.take_events(settings.batch_max_events, settings.batch_window_s):
            pass

    return app


if __name__ == "__main__":
    run(baseline_app)
