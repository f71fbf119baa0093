"""A small table language for mapping provider JSON objects onto contract fields.

A ``Spec`` maps each known provider key to a converter; a converter turns the provider value (``None`` when
the key is absent) into one or more output fields. Keys a spec does not know are kept as ``extra_json``.

Specs are compiled once into mappers (``object_mapper``, ``fields_mapper``): the field paths used in error
messages, the known keys and the duration pairs are worked out at import, so mapping a body is one loop over
the spec's keys.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from schemas import exact_json
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

Rule = Callable[[Any, str], Any]
Mapper = Callable[[Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Field:
    """``rule(value, path)`` gives the output field ``out``, or a tuple of values when ``out`` names several."""

    out: str | tuple[str, ...]
    rule: Rule


@dataclass(frozen=True)
class Nested:
    """A nested provider object mapped by its own spec, with its own ``extra_json``; absent or null: ``None``."""

    out: str
    spec: Spec


Convert = Field | Nested
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
        return exact_json.canonical(value)
    except TypeError as exc:  # orjson's JSONEncodeError is a TypeError
        raise NormalizationError(path, f"cannot be written as JSON: {exc}") from None


def ident(out: str) -> Field:
    return Field(out, to_id)


def integer(out: str) -> Field:
    return Field(out, to_int)


def text(out: str) -> Field:
    return Field(out, to_text)


def flag(out: str) -> Field:
    return Field(out, to_bool)


def money(out: str) -> Field:
    return Field(out, to_money)


def required_money(out: str) -> Field:
    def convert(value: Any, path: str) -> Any:
        if value is None:
            raise NormalizationError(path, "missing required amount")
        return to_money(value, path)

    return Field(out, convert)


def instant(out: str, naive_tz: NaiveTz) -> Field:
    """Timestamp pair ``<out>_at`` / ``<out>_raw``."""
    return Field((f"{out}_at", f"{out}_raw"), lambda value, path: to_timestamp(value, path, naive_tz))


def _checked_hms(value: Any, path: str) -> Any:
    parse_hms(value, path)
    return value


def hms(out: str) -> Field:
    """Keeps the HH:MM:SS text as sent, after checking that it parses."""
    return Field(out, _checked_hms)


disconnect = Field(("disconnect_code", "disconnect_text", "disconnect_raw"), split_disconnect)


def _json_or_empty_list(value: Any, path: str) -> str:
    return json_text([] if value is None else value, path)


def json_list(out: str) -> Field:
    """A JSON value kept as text; absent or null becomes ``[]`` (the provider's empty value for these)."""
    return Field(out, _json_or_empty_list)


def nested(out: str, spec: Spec) -> Nested:
    return Nested(out, spec)


def _nested_rule(spec: Spec, path: str) -> Rule:
    map_inner = object_mapper(spec, f"{path}.")

    def convert(value: Any, path: str) -> Any:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise NormalizationError(path, f"expected an object, got {type(value).__name__}")
        return map_inner(value)

    return convert


def fields_mapper(spec: Spec, prefix: str = "") -> Mapper:
    """Maps every field of ``spec`` from an object (absent keys as ``None``), without ``extra_json``."""
    # (provider key, path for errors, output name or names, whether it is one name, rule), in spec order:
    # the first field that does not fit is the one reported.
    steps: list[tuple[str, str, Any, bool, Rule]] = []
    outputs: set[str] = set()
    for key, convert in spec.items():
        path = prefix + key
        if isinstance(convert, Nested):
            convert = Field(convert.out, _nested_rule(convert.spec, path))
        steps.append((key, path, convert.out, isinstance(convert.out, str), convert.rule))
        outputs.update([convert.out] if isinstance(convert.out, str) else convert.out)
    pairs = [(seconds, hms_field) for seconds, hms_field in _DURATION_PAIRS if seconds in outputs]

    def map_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        get = obj.get
        for key, path, out, single, rule in steps:
            if single:
                fields[out] = rule(get(key), path)
            else:
                fields.update(zip(out, rule(get(key), path), strict=True))
        for seconds, hms_field in pairs:
            if fields[seconds] is None and fields.get(hms_field) is not None:
                fields[seconds] = parse_hms(fields[hms_field], hms_field)
        return fields

    return map_fields


def extra_json(obj: Mapping[str, Any], known: frozenset[str], prefix: str = "") -> str:
    """JSON object text of the keys of ``obj`` that are not in ``known``."""
    if known.issuperset(obj):
        return "{}"  # the usual case: nothing unknown, nothing to serialize
    return json_text({k: v for k, v in obj.items() if k not in known}, prefix or "$")


def object_mapper(spec: Spec, prefix: str = "") -> Mapper:
    """Maps an object onto every field of ``spec`` plus ``extra_json``."""
    map_fields = fields_mapper(spec, prefix)
    known = frozenset(spec)

    def map_object(obj: Mapping[str, Any]) -> dict[str, Any]:
        record = map_fields(obj)
        record["extra_json"] = extra_json(obj, known, prefix)
        return record

    return map_object
