# One image for the three callpipe services; deploy/compose/docker-compose.yml picks the service by `command:`.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# jemalloc for the streams workers (runtime/malloc.py)
RUN apt-get update && apt-get install -y --no-install-recommends libjemalloc2 && rm -rf /var/lib/apt/lists/*

# The packages one by one rather than `COPY . .`: the checkout holds .venv, .data and .cache (hundreds of MB).
COPY pyproject.toml README.md ./
COPY broker/ broker/
COPY deploy/ deploy/
COPY ingest/ ingest/
COPY runtime/ runtime/
COPY schemas/ schemas/
COPY sinks/ sinks/
COPY streams/ streams/

RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app callpipe \
    && mkdir -p /data \
    && chown callpipe /data

USER callpipe

CMD ["python", "-m", "ingest"]
