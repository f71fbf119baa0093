"""Webhook JSON read and written without losing integers.

orjson reads an integer outside the 64-bit range as a float, so `{"n": 1180591620717411303424}` and
`{"n": 1180591620717411303425}` would parse equal (same event id, the second dropped downstream as a retry) and
`extra_json` would keep `1.1805916207174113e+21`. Bodies that may hold such an integer (19 digits in a row
somewhere) are parsed by the standard library instead, held to orjson's validity rules, which hands each
integer's text to `BigInt` when it is outside the 64-bit range; `canonical` writes that text back unchanged.
Every other value parses exactly as orjson reads it, so event ids of ordinary bodies do not depend on which
path parsed them.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

# 2**63 has 19 digits: a shorter integer literal always fits the signed 64-bit range orjson reads exactly.
_MAYBE_BIG = re.compile(rb"\d{19}")
_INT64_DIGITS = 18  # an integer literal of at most this many digits is in the signed 64-bit range


class BigInt:
    """A JSON integer outside the 64-bit range, kept as the digits that were sent."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BigInt) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"BigInt({self.short()})"

    def short(self, limit: int = 40) -> str:
        """The digits for an error message: a 5,000-digit number is cut, with its length."""
        if len(self.text) <= limit:
            return self.text
        return f"{self.text[:limit]}... ({len(self.text)} characters)"


def _integer(text: str) -> int | BigInt:
    digits = len(text) - text.startswith("-")
    if digits <= _INT64_DIGITS:
        return int(text)
    if digits <= 20:  # the 19- and 20-digit literals are checked by value: int() is cheap at that length
        value = int(text)
        if -(2**63) <= value < 2**64:  # orjson reads up to the unsigned 64-bit maximum as an int
            return value
    return BigInt(text)


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} is out of the double range")
    return value


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


def loads(data: bytes) -> Any:
    """Parse JSON; raises `json.JSONDecodeError` (orjson's is a subclass) for a text that is not JSON."""
    if _MAYBE_BIG.search(data) is None:
        return orjson.loads(data)
    return exact(data)


def exact(data: bytes) -> Any:
    """The standard parser held to orjson's rules: UTF-8 without a byte order mark, no NaN or Infinity, no
    float beyond the double range, no lone surrogate. orjson itself cannot be asked first: it refuses an
    integer beyond the double range as "infinity"."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError(f"not UTF-8 ({exc.reason})", "", exc.start) from None
    try:
        value = json.loads(text, parse_int=_integer, parse_float=_finite, parse_constant=_no_constant)
    except json.JSONDecodeError:
        raise
    except ValueError as exc:
        raise json.JSONDecodeError(str(exc), text, 0) from None
    try:
        canonical(value)  # a lone surrogate ("\ud800") parses but cannot be written as UTF-8
    except TypeError as exc:
        raise json.JSONDecodeError(str(exc), text, 0) from None
    return value


def _fragment(value: Any) -> orjson.Fragment:
    if isinstance(value, BigInt):
        return orjson.Fragment(value.text.encode())
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps(value: Any) -> bytes:
    """JSON bytes in the value's own key order; `BigInt` written as sent."""
    return orjson.dumps(value, default=_fragment)


def canonical(value: Any) -> str:
    """JSON text with keys sorted at every depth and no whitespace; `BigInt` written as sent."""
    return orjson.dumps(value, default=_fragment, option=orjson.OPT_SORT_KEYS).decode()
