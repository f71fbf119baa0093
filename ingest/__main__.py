"""`python -m ingest`: serve the webhook endpoint with uvicorn."""

from __future__ import annotations

import uvicorn

from broker.admin import callpipe_topics, ensure_topics
from ingest.app import create_app
from ingest.server import server_config, shared_socket
from ingest.settings import from_env
from runtime import logs


def main() -> None:
    settings = from_env()
    logs.setup(settings.log_level)
    ensure_topics(settings.kafka_bootstrap, callpipe_topics())
    app = create_app(settings)
    server = uvicorn.Server(server_config(app, settings))
    server.run(sockets=[shared_socket(settings.host, settings.port)] if settings.reuse_port else None)


if __name__ == "__main__":
    main()
