"""The webhook endpoint: one POST route per webhook kind, plus health, readiness, metrics and OpenAPI.

A 2xx is answered only after Kafka acknowledged every write of the request (see docs/DESIGN.md, Guarantees).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from broker.producer import AsyncProducer, DeliveryError, Sender
from ingest.auth import SECRET_HEADER, Authenticator
from ingest.backlog import Backlog
from ingest.body import BadRequest, Disconnected, check_content_type, parse_json, read_limited
from ingest.metrics import IngestMetrics
from ingest.openapi import openapi
from ingest.publish import Outcome, Webhook, records_for
from ingest.settings import Settings
from schemas import topics
from schemas.codec import Codec, RegistryUnavailable, codec_from_settings

log = logging.getLogger("callpipe.ingest")


class _Json(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _error(status: int, error: str, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return _Json({"error": error, "detail": detail, **extra}, status_code=status, headers=headers)


# An incomplete body leaves the connection mid-request: it is closed after the answer.
_CLOSE = {"connection": "close"}
# Status counted for a client that went away before its body arrived (nginx's convention; nothing is sent).
CLIENT_CLOSED = 499
UNKNOWN_KIND = "unknown"
NO_KIND = "-"  # answers the server gives before a request is parsed (ingest/server.py)


class _TooLargeForKafka(Exception):
    """Kafka refused the webhook's records as too large even with the archived headers cut."""


class Ingest:
    def __init__(self, settings: Settings, producer: Sender, codec: Codec) -> None:
        self.settings = settings
        self.backlog = Backlog(settings.kafka_bootstrap, settings.max_backlog, settings.backlog_interval_s,
                               settings.streams_app_id, settings.sink_group_id) if settings.max_backlog else None
        self.producer = producer
        self.codec = codec
        self.auth = Authenticator(settings.tenants)
        self.metrics = IngestMetrics()
        if (backlog := self.backlog) is not None:
            self.metrics.backlog.set_function(lambda: backlog.behind)
        # Labelled metric children by label values: prometheus_client's labels() takes a lock and validates the
        # values on every call, a noticeable share of a request's CPU.
        self._requests_by: dict[tuple[str, int], Any] = {}
        self._latency_by: dict[str, Any] = {}
        self._registered = False
        """every schema ingest writes is registered: from then on no request asks the registry"""

    async def webhook(self, request: Request) -> Response:
        kind = request.path_params["kind"]
        if kind not in topics.KIND_TOPICS:
            return await self.unknown_kind(request)
        started = time.perf_counter()
        self.metrics.in_flight.inc()
        status = 500
        try:
            response = await self._handle(request, kind)
            status = response.status_code
            return response
        except Exception:  # a defect in the handler itself: nothing was stored, so the provider must retry
            log.exception("unhandled error in the webhook handler", extra={"kind": kind})
            return _error(500, "internal_error", "the event was not stored; retry later")
        finally:
            self.metrics.in_flight.dec()
            self.count(kind, status)
            self._latency_histogram(kind).observe(time.perf_counter() - started)

    def count(self, kind: str, status: int) -> None:
        counter = self._requests_by.get((kind, status))
        if counter is None:
            counter = self._requests_by[kind, status] = self.metrics.requests.labels(kind, str(status))
        counter.inc()

    def _latency_histogram(self, kind: str) -> Any:
        histogram = self._latency_by.get(kind)
        if histogram is None:
            histogram = self._latency_by[kind] = self.metrics.latency.labels(kind)
        return histogram

    async def _handle(self, request: Request, kind: str) -> Response:
        tenant = request.path_params["tenant"]
        secret = request.path_params.get("secret") or request.headers.get(SECRET_HEADER)
        if not self.auth.check(tenant, secret):
            return _error(401, "unauthorized", "unknown tenant or wrong secret")
        try:
            body = await read_limited(request, self.settings.max_body_bytes, self.settings.body_timeout_s)
        except BadRequest as exc:  # too large or too slow: not read whole, so nothing can be kept
            log.warning("rejected webhook", extra={"kind": kind, "tenant": tenant, "reason": exc.detail})
            return _error(exc.status, exc.error, exc.detail, headers=_CLOSE)
        except Disconnected:
            log.info("client left before its body arrived", extra={"kind": kind, "tenant": tenant})
            return Response(status_code=CLIENT_CLOSED)
        # The body is read first so that the connection can be kept alive.
        refused = self.backlog.refusal() if self.backlog else None
        if refused is not None:
            return _error(refused.status, refused.error, refused.detail,
                          headers={"Retry-After": str(self.settings.retry_after_s)})
        parsed: Any = None
        rejected: BadRequest | None = None
        try:
            check_content_type(request.headers.get("content-type"))
            parsed = parse_json(body, self.settings.max_json_depth)
        except BadRequest as exc:
            rejected = exc
        webhook = Webhook(tenant, kind, body, datetime.now(UTC), request.headers,
                          request.client.host if request.client else None)
        try:
            outcome = await self._store(webhook, parsed, rejected)
        except (DeliveryError, RegistryUnavailable) as exc:
            self.metrics.delivery_errors.inc()
            log.error("kafka write failed", extra={"kind": kind, "tenant": tenant, "reason": str(exc)})
            return _error(503, "unavailable", "the event could not be stored; retry later",
                          headers={"Retry-After": str(self.settings.retry_after_s)})
        except _TooLargeForKafka as exc:
            log.warning("rejected webhook", extra={"kind": kind, "tenant": tenant, "reason": str(exc)})
            return _error(413, "too_large_for_kafka", str(exc))
        if outcome.error is not None:
            self.metrics.dead_letters.labels(kind).inc()
            if outcome.unexpected:
                self.metrics.unexpected_errors.labels(kind).inc()
                log.error("dead-lettered webhook on an unexpected error",
                          extra={"kind": kind, "tenant": tenant, "reason": outcome.error})
            else:
                log.warning("dead-lettered webhook", extra={"kind": kind, "tenant": tenant, "reason": outcome.error})
            if rejected is not None:
                return _error(rejected.status, rejected.error, rejected.detail, kept=True)
            error = "internal_error" if outcome.unexpected else "unprocessable"
            return _error(422, error, outcome.error, kept=True, event_id=outcome.event_id)
        return _Json({"status": "accepted", "event_id": outcome.event_id})

    async def _store(self, webhook: Webhook, parsed: Any, rejected: BadRequest | None) -> Outcome:
        """Plan and write the webhook's records. A record Kafka refuses as too large is written again with the
        archived headers cut (never the body); if it is still refused, `_TooLargeForKafka`."""
        rejection = rejected.detail if rejected else None
        if not self._registered:
            # Off the loop: a registry that is slow or down holds the requests that need it, not every request.
            await asyncio.to_thread(self._register)
        outcome = records_for(webhook, parsed, self.codec, rejection)
        if await self._sent(outcome):
            return outcome
        outcome = records_for(webhook.with_trimmed_headers(), parsed, self.codec, rejection)
        if await self._sent(outcome):
            return outcome
        raise _TooLargeForKafka(f"the body of {len(webhook.body)} bytes exceeds what Kafka accepts in one record; "
                                "the webhook was not stored")

    def _register(self) -> None:
        for topic in topics.INGEST_WRITES:
            self.codec.register(topic.name, topic.schema)
        self._registered = True

    async def _sent(self, outcome: Outcome) -> bool:
        """True once Kafka acknowledged every write; False when it refused one as too large."""
        try:
            await self.producer.send_all(outcome.writes, self.settings.kafka_timeout_s)
        except DeliveryError as exc:
            if exc.too_large:
                return False
            raise
        return True

    async def unknown_kind(self, request: Request) -> Response:
        self.count(UNKNOWN_KIND, 404)
        kinds = ", ".join(topics.KIND_TOPICS)
        return _error(404, "unknown_kind", f"no webhook kind at {request.url.path}; kinds: {kinds}")

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        if await asyncio.to_thread(self.producer.reachable):
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "kafka unreachable"}, status_code=503,
                            headers={"Retry-After": str(self.settings.retry_after_s)})

    async def metrics_endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def openapi_endpoint(self, request: Request) -> Response:
        return Response(orjson.dumps(openapi()), media_type="application/json")

    def routes(self) -> list[Route]:
        # Two routes for the 15 kinds, the kind looked up in a dict: one route per kind made Starlette try up to
        # 30 path patterns per request.
        return [
            Route("/hooks/{tenant}/{kind}", self.webhook, methods=["POST"]),
            Route("/hooks/{tenant}/{secret}/{kind}", self.webhook, methods=["POST"]),
            Route("/hooks/{rest:path}", self.unknown_kind, methods=["POST"]),
            Route("/healthz", self.healthz),
            Route("/readyz", self.readyz),
            Route("/metrics", self.metrics_endpoint),
            Route("/openapi.json", self.openapi_endpoint),
        ]


def create_app(settings: Settings, producer: Sender | None = None, codec: Codec | None = None) -> Starlette:
    """The ASGI app. Without a producer, one is created on start-up and flushed on shutdown."""
    owned = producer is None
    producer = producer or AsyncProducer(settings.kafka_bootstrap, int(settings.kafka_timeout_s * 1000),
                                         **{"linger.ms": settings.kafka_linger_ms})
    ingest = Ingest(settings, producer, codec or codec_from_settings(settings.schema_registry_url))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # What exists at start-up (modules, schemas, the app) lives as long as the process: frozen, it is left out
        # of the collector's full passes, which otherwise paused the loop for ~20 ms each (bench/RESULTS.md).
        gc.collect()
        gc.freeze()
        if ingest.backlog:
            ingest.backlog.monitor.start()
        yield
        if ingest.backlog:
            ingest.backlog.monitor.stop()
        if owned:
            await asyncio.to_thread(ingest.producer.close)

    app = Starlette(routes=ingest.routes(), lifespan=lifespan)
    app.state.ingest = ingest
    return app
