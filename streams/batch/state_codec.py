"""JSON encoding of stream-processor state (Faust table changelogs).

State values are plain dicts/lists of primitives plus ``datetime`` and ``Decimal``. JSON has neither, so both
are wrapped in one-key tagged objects; a float round-trip would corrupt money and lose the UTC offset.

This is on the per-event path of the streams worker, so both directions let orjson (C) do the walking:
encoding tags datetimes and Decimals from orjson's ``default`` hook, decoding parses with orjson and then
replaces tagged objects in place. Anything orjson refuses (non-str keys, ints beyond 64 bits, lone
surrogates, subclasses of str/int/dict/list, ...) goes through the stdlib encoder as before. The text is the
same JSON value as the stdlib's, but not always the same bytes (orjson writes non-ASCII as UTF-8, not
``\\uXXXX``): table keys, whose bytes are their identity, use :func:`key_text`.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

_DT = "$dt"
_DEC = "$dec"
# Sorted keys: equal states give equal bytes. Datetimes are passed to `_tag` (orjson would write them untagged).
_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


class _Reparse(Exception):
    """A float in orjson's result: it may be an integer beyond 64 bits that orjson read as a float."""


def _tag(value: Any) -> Any:
    """orjson's ``default``: only the two tagged types; every other type is refused as before (TypeError)."""
    if isinstance(value, datetime):
        return {_DT: value.isoformat()}
    if isinstance(value, Decimal):
        return {_DEC: str(value)}
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _encode(value: Any) -> Any:
    """The fallback: the whole value as JSON-native objects for the stdlib encoder."""
    if isinstance(value, datetime):
        return {_DT: value.isoformat()}
    if isinstance(value, Decimal):
        return {_DEC: str(value)}
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _untag(value: dict[str, Any]) -> Any:
    """A decoded object: its datetime or Decimal if it is a tag, else the object with its children untagged."""
    if len(value) == 1:
        if _DT in value:
            return datetime.fromisoformat(value[_DT])
        if _DEC in value:
            return Decimal(value[_DEC])
    for k, v in value.items():
        kind = type(v)
        if kind is dict:
            value[k] = _untag(v)
        elif kind is list:
            _untag_items(v)
        elif kind is float:
            raise _Reparse
    return value


def _untag_items(items: list[Any]) -> None:
    for i, v in enumerate(items):
        kind = type(v)
        if kind is dict:
            items[i] = _untag(v)
        elif kind is list:
            _untag_items(v)
        elif kind is float:
            raise _Reparse


def _decode(value: Any) -> Any:
    """Untag a freshly parsed JSON value; it is modified in place (nobody else holds it)."""
    kind = type(value)
    if kind is dict:
        return _untag(value)
    if kind is list:
        _untag_items(value)
    elif kind is float:
        raise _Reparse
    return value


def _decode_exact(value: Any) -> Any:
    """The fallback: untag a value parsed by the stdlib (floats are real floats there)."""
    if isinstance(value, dict):
        if len(value) == 1:
            if _DT in value:
                return datetime.fromisoformat(value[_DT])
            if _DEC in value:
                return Decimal(value[_DEC])
        return {k: _decode_exact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_exact(v) for v in value]
    return value


def encode(value: Any) -> bytes:
    """Serialize a state value to UTF-8 JSON bytes; keys are sorted so equal states give equal bytes."""
    try:
        return orjson.dumps(value, default=_tag, option=_ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return key_text(value).encode()


def dumps(value: Any) -> str:
    """Serialize a state value; keys are sorted so equal states give equal bytes."""
    return encode(value).decode()


def loads(text: str | bytes) -> Any:
    try:
        return _decode(orjson.loads(text))
    except (_Reparse, orjson.JSONDecodeError):
        # State holds no floats, so this is rare: exact big integers, or what only the stdlib reads (NaN, lone
        # surrogates), or invalid JSON (then the stdlib's error, as before).
        return _decode_exact(json.loads(text))


def key_text(value: Any) -> str:
    """The stdlib encoding, byte for byte as it always was: for values used as table keys."""
    return json.dumps(_encode(value), sort_keys=True, separators=(",", ":"))
