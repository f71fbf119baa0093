"""A small table language for mapping provider JSON objects onto contract fields.

A ``Spec`` maps each known provider key to a converter; a converter turns the provider value (``None`` when
the key is absent) into one or more output fields. Keys a spec does not know are kept as ``extra_json``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

import orjson

from schemas.fields import (
    NaiveTz,
    NormalizationError,
    parse_hms,
    split_disconnect,
    to_bool,
    to_id,
    to_int,
    to_money,
    to_text,
    to_timestamp,
)

Convert = Callable[[Any, str], dict[str, Any]]
Spec = Mapping[str, Convert]

# (seconds field, HH:MM:SS field): the parsed text fills the seconds when the provider left them out.
_DURATION_PAIRS = (
    ("total_seconds", "total_hms"),
    ("billed_seconds", "billed_hms"),
    ("talk_seconds", "talk_hms"),
)


def json_text(value: Any, path: str) -> str:
    """Canonical JSON text (sorted keys, no whitespace) of a provider value."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError as exc:
        raise NormalizationError(path, f"cannot be written as JSON: {exc}") from None


def _single(out: str, rule: Callable[[Any, str], Any]) -> Convert:
    return lambda value, path: {out: rule(value, path)}


def ident(out: str) -> Convert:
    return _single(out, to_id)


def integer(out: str) -> Convert:
    return _single(out, to_int)


def text(out: str) -> Convert:
    return _single(out, to_text)


def flag(out: str) -> Convert:
    return _single(out, to_bool)


def money(out: str) -> Convert:
    return _single(out, to_money)


def required_money(out: str) -> Convert:
    def convert(value: Any, path: str) -> dict[str, Any]:
        if value is None:
            raise NormalizationError(path, "missing required amount")
        return {out: to_money(value, path)}

    return convert


def instant(out: str, naive_tz: NaiveTz) -> Convert:
    """Timestamp pair ``<out>_at`` / ``<out>_raw``."""

    def convert(value: Any, path: str) -> dict[str, Any]:
        at, raw = to_timestamp(value, path, naive_tz)
        return {f"{out}_at": at, f"{out}_raw": raw}

    return convert


def hms(out: str) -> Convert:
    """Keeps the HH:MM:SS text as sent, after checking that it parses."""

    def convert(value: Any, path: str) -> dict[str, Any]:
        parse_hms(value, path)
        return {out: value}

    return convert


def disconnect(value: Any, path: str) -> dict[str, Any]:
    code, reason, raw = split_disconnect(value, path)
    return {"disconnect_code": code, "disconnect_text": reason, "disconnect_raw": raw}


def json_list(out: str) -> Convert:
    """A JSON value kept as text; absent or null becomes ``[]`` (the provider's empty value for these)."""
    return lambda value, path: {out: json_text([] if value is None else value, path)}


def nested(out: str, spec: Spec) -> Convert:
    """A nested provider object mapped by its own spec, with its own ``extra_json``."""

    def convert(value: Any, path: str) -> dict[str, Any]:
        if value is None:
            return {out: None}
        if not isinstance(value, dict):
            raise NormalizationError(path, f"expected an object, got {type(value).__name__}")
        return {out: map_object(spec, value, f"{path}.")}

    return convert


def map_fields(spec: Spec, obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every field of ``spec`` mapped from ``obj`` (absent keys as ``None``), without ``extra_json``."""
    fields: dict[str, Any] = {}
    for key, convert in spec.items():
        fields.update(convert(obj.get(key), prefix + key))
    for seconds, text_field in _DURATION_PAIRS:
        if seconds in fields and fields[seconds] is None and fields.get(text_field) is not None:
            fields[seconds] = parse_hms(fields[text_field], text_field)
    return fields


def extra_json(obj: Mapping[str, Any], known: Collection[str], prefix: str = "") -> str:
    """JSON object text of the keys of ``obj`` that are not in ``known``."""
    return json_text({k: v for k, v in obj.items() if k not in known}, prefix or "$")


def map_object(spec: Spec, obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    return {**map_fields(spec, obj, prefix), "extra_json": extra_json(obj, spec, prefix)}
