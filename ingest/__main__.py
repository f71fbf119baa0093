"""`python -m ingest`: serve the webhook endpoint with uvicorn."""

from __future__ import annotations

import uvicorn

from broker.admin import callpipe_topics, ensure_topics
from ingest.app import create_app
from ingest.server import server_config
from ingest.settings import from_env
from runtime import logs


def main() -> None:
    settings = from_env()
    logs.setup(settings.log_level)
    ensure_topics(settings.kafka_bootstrap, callpipe_topics())
    app = create_app(settings)
    uvicorn.Server(server_config(app, settings)).run()


if __name__ == "__main__":
    main()
