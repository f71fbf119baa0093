"""`python -m ingest`: serve the webhook endpoint with uvicorn."""

from __future__ import annotations

import uvicorn

from broker.admin import TopicSpec, ensure_topics
from ingest.app import create_app
from ingest.settings import from_env
from runtime import logs
from schemas import topics


def main() -> None:
    settings = from_env()
    logs.setup(settings.log_level)
    ensure_topics(settings.kafka_bootstrap, [TopicSpec(t.name, t.partitions) for t in topics.ALL_TOPICS])
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None,
                access_log=False, http="httptools", loop="uvloop")


if __name__ == "__main__":
    main()
