"""Request body checks: size, time to arrive, content type, JSON syntax and nesting depth. Each failure is a
`BadRequest` carrying the status code and a message that tells the sender what is wrong."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from starlette.requests import ClientDisconnect, Request

from schemas import exact_json

# application/json, or a structured-syntax suffix on a real application subtype (RFC 6838 restricted names).
_JSON_MEDIA = re.compile(r"application/(?:json|[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\+json)", re.ASCII)


class BadRequest(Exception):
    """A request refused with an HTTP status, an error code and a detail that tells the sender what is wrong
    (raised by the body checks here, and by the server's bounds in ingest/server.py)."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


class Disconnected(Exception):
    """The client went away before its body arrived: there is nobody to answer and nothing to keep."""


async def read_limited(request: Request, limit: int, timeout: float) -> bytes:
    """The whole body, at most `limit` bytes, arrived within `timeout` seconds; else 413 or 408, nothing kept
    (an incomplete body is not the webhook)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, "body_too_large", f"body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:  # chunked bodies declare no length: stop reading as soon as the limit is passed
                    raise BadRequest(413, "body_too_large", f"body exceeds the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise BadRequest(408, "body_timeout", f"the body did not arrive within {timeout:g}s") from None
    except ClientDisconnect:
        raise Disconnected from None
    return b"".join(chunks)


def check_content_type(value: str | None) -> None:
    media = (value or "").split(";", 1)[0].strip().lower()
    if _JSON_MEDIA.fullmatch(media) is None:
        raise BadRequest(415, "unsupported_media_type",
                         f"content-type must be application/json or application/<subtype>+json, got {value!r}")


def parse_json(body: bytes, max_depth: int) -> Any:
    """The body as JSON, integers exact (`schemas.exact_json`)."""
    if not body.strip():
        raise BadRequest(400, "empty_body", "the body is empty; a JSON object is expected")
    _check_depth(body, max_depth)
    try:
        return exact_json.loads(body)
    except json.JSONDecodeError as exc:
        raise BadRequest(400, "invalid_json", f"body is not valid JSON: {exc}") from None


_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _check_depth(body: bytes, max_depth: int) -> None:
    """Reject deep nesting before parsing, so a hostile body cannot exhaust the parser; strings are removed
    first (brackets inside them do not nest), then only the brackets are walked."""
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return  # cannot nest deeper than it has opening brackets; spares the string scan for ordinary bodies
    depth = 0
    for byte in _STRINGS.sub(b"", body).translate(None, _NOT_BRACKETS):
        if byte in b"[{":
            depth += 1
            if depth > max_depth:
                raise BadRequest(400, "too_deep", f"JSON nesting deeper than {max_depth} levels")
        else:
            depth -= 1
