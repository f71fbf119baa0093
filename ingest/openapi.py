"""The OpenAPI description of the endpoint, generated from the same kind list as the routes."""

from __future__ import annotations

from functools import cache
from typing import Any

from schemas import topics

_ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "detail": {"type": "string"},
        "kept": {"type": "boolean", "description": "the body was archived and dead-lettered"},
    },
}


def _answer(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


def _operation(kind: str, with_secret_in_path: bool) -> dict[str, Any]:
    topic = topics.KIND_TOPICS[kind]
    params: list[dict[str, Any]] = [{"name": "tenant", "in": "path", "required": True, "schema": {"type": "string"}}]
    if with_secret_in_path:
        params.append({"name": "secret", "in": "path", "required": True, "schema": {"type": "string"}})
    else:
        params.append({"name": "X-Callpipe-Secret", "in": "header", "required": True, "schema": {"type": "string"}})
    return {
        "post": {
            "summary": f"Provider webhook `{kind}` (normalized to {topic.schema} on {topic.name})",
            "operationId": f"{kind}{'_path_secret' if with_secret_in_path else ''}",
            "parameters": params,
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": {
                "200": {
                    "description": "stored: Kafka acknowledged the raw and the normalized record",
                    "content": {"application/json": {"schema": {
                        "type": "object",
                        "properties": {"status": {"type": "string"}, "event_id": {"type": "string"}},
                    }}},
                },
                "400": _answer("invalid JSON, empty body or nesting too deep (kept in the dead-letter topic)"),
                "401": _answer("unknown tenant or wrong secret (nothing stored)"),
                "408": _answer("the head or the body did not arrive in time (nothing stored)"),
                "413": _answer("body larger than INGEST_MAX_BODY_BYTES, or than Kafka accepts (nothing stored)"),
                "414": _answer("URL longer than INGEST_MAX_URL_BYTES (nothing stored)"),
                "415": _answer("content-type is not application/json or application/*+json (kept in the "
                               "dead-letter topic)"),
                "422": _answer("valid JSON that cannot be normalized, the detail naming the field, or an "
                               "unexpected error (error: internal_error); kept in the dead-letter topic"),
                "431": _answer("headers over INGEST_MAX_HEADER_BYTES or INGEST_MAX_HEADERS (nothing stored)"),
                "500": _answer("a defect before anything was stored: retry"),
                "503": _answer("Kafka or the schema registry did not answer in time, or too many open "
                               "connections: retry after the Retry-After seconds"),
            },
        }
    }


@cache
def openapi() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for kind in topics.KIND_TOPICS:
        paths[f"/hooks/{{tenant}}/{{secret}}/{kind}"] = _operation(kind, True)
        paths[f"/hooks/{{tenant}}/{kind}"] = _operation(kind, False)
    for path, summary in (("/healthz", "process is alive"), ("/readyz", "Kafka is reachable"),
                          ("/metrics", "Prometheus metrics")):
        paths[path] = {"get": {"summary": summary, "responses": {"200": {"description": "ok"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "callpipe ingest", "version": "1"},
        "paths": paths,
    }
