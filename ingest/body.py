"""Request body checks: size, content type, JSON syntax and nesting depth. Each failure is a `BadRequest`
carrying the status code and a message that tells the sender what is wrong."""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.requests import Request

JSON_TYPES = ("application/json",)


class BadRequest(Exception):
    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, "body_too_large", f"body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:  # chunked bodies declare no length: stop reading as soon as the limit is passed
            raise BadRequest(413, "body_too_large", f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def check_content_type(value: str | None) -> None:
    media = (value or "").split(";", 1)[0].strip().lower()
    if media not in JSON_TYPES and not media.endswith("+json"):
        raise BadRequest(415, "unsupported_media_type", f"content-type must be application/json, got {value!r}")


def parse_json(body: bytes, max_depth: int) -> Any:
    if not body.strip():
        raise BadRequest(400, "empty_body", "the body is empty; a JSON object is expected")
    _check_depth(body, max_depth)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
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
