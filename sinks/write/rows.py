"""A decoded record -> one row of its table's columns (sinks/schema/columns.py says which columns; the rules for
nulls, JSON columns and nested records are written there)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sinks.schema.columns import NO_DEFAULT, Column, logical_type, type_name

_INT_RANGE = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


class RowError(ValueError):
    """A record that cannot become a row of its table (a data problem of that one record)."""


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _convert(value: Any, avro: Any, where: str) -> Any:
    kind, logical = type_name(avro), logical_type(avro)
    if logical in {"timestamp-millis", "timestamp-micros"}:
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise RowError(f"{where}: expected a tz-aware datetime, got {value!r}")
        return value.astimezone(UTC)
    if logical == "date":
        if not isinstance(value, date) or isinstance(value, datetime):
            raise RowError(f"{where}: expected a date, got {value!r}")
        return value
    if logical == "decimal":
        return _decimal(value, int(avro["precision"]), int(avro.get("scale", 0)), where)
    if kind in _INT_RANGE:
        low, high = _INT_RANGE[kind]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise RowError(f"{where}: expected {kind}, got {value!r}")
        return value
    if kind in {"float", "double"}:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise RowError(f"{where}: expected {kind}, got {value!r}")
        return float(value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise RowError(f"{where}: expected boolean, got {value!r}")
        return value
    if kind in {"bytes", "fixed"}:
        if not isinstance(value, bytes):
            raise RowError(f"{where}: expected bytes, got {type(value).__name__}")
        return value
    if kind == "enum":
        if value not in avro["symbols"]:
            raise RowError(f"{where}: {value!r} is not a symbol of enum {avro['name']}")
        return value
    if kind == "string":
        if not isinstance(value, str):
            raise RowError(f"{where}: expected string, got {type(value).__name__}")
        return value
    if kind == "array":
        if not isinstance(value, list | tuple):
            raise RowError(f"{where}: expected an array, got {type(value).__name__}")
        return [_convert(item, avro["items"], f"{where}[]") for item in value]
    if kind == "map":
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise RowError(f"{where}: expected a map with string keys, got {type(value).__name__}")
        return {k: _convert(v, avro["values"], f"{where}[{k}]") for k, v in value.items()}
    raise RowError(f"{where}: Avro type {kind} has no column mapping")


def _decimal(value: Any, precision: int, scale: int, where: str) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise RowError(f"{where}: expected a finite Decimal, got {value!r}")
    quantized = value.quantize(Decimal(1).scaleb(-scale))
    if quantized != value or abs(quantized) >= Decimal(10) ** (precision - scale):
        raise RowError(f"{where}: {value} does not fit decimal({precision},{scale})")
    return quantized


def _lookup(record: Mapping[str, Any], column: Column) -> Any:
    value: Any = record
    for key, default in zip(column.path, column.defaults, strict=True):
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise RowError(f"{column.name}: expected a record at {key!r}, got {type(value).__name__}")
        if key in value:
            value = value[key]
        elif default is not NO_DEFAULT:
            value = default
        else:
            raise RowError(f"{column.name}: required field {'.'.join(column.path)} is missing")
    return value


# ------------------------------------------------------------------------------------ compiled row conversion
#
# ``to_row`` runs for every record the sink writes, so it does not interpret the ``Column`` metadata per cell:
# each column list is compiled once into one closure per column (lookup plus conversion). A closure handles the
# common exact types (``dict`` records, ``str``, ``int``, ``datetime``, ``Decimal``, ...) inline and hands
# anything else to the generic ``_lookup``/``_convert`` above, which give the result or the ``RowError``.

_MISSING: Any = object()
_JSON = json.JSONEncoder(default=_json_default, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
"""One encoder for every JSON column (sorted keys, compact, UTF-8): built once, not per cell."""
_SIMPLE_KINDS = frozenset({"string", "long", "int", "boolean", "bytes", "fixed", "enum"})

_Cell = Callable[[Mapping[str, Any]], Any]
_Value = Callable[[Any], Any]


def _null(column: Column) -> Callable[[], Any]:
    """The cell of a null value: an empty array or map for those columns (ClickHouse has no Nullable of them),
    None for a nullable column, a ``RowError`` for the others."""
    try:
        kind = type_name(column.avro)
    except Exception:  # e.g. a JSON union column: let the conversion itself raise
        return lambda: type_name(column.avro)
    if not column.json and kind == "array":
        return list
    if not column.json and kind == "map":
        return dict
    if not column.nullable:
        message = f"{column.name}: null in a non-nullable field"

        def refuse() -> Any:
            raise RowError(message)

        return refuse
    return lambda: None


def _fits(avro: Any) -> Callable[[Any], bool] | None:
    """A check that ``_convert`` returns a value of the exact type unchanged; ``None`` when there is none."""
    try:
        kind, logical = type_name(avro), logical_type(avro)
    except Exception:
        return None
    if logical is not None or kind not in _SIMPLE_KINDS:
        return None
    if kind in _INT_RANGE:
        low, high = _INT_RANGE[kind]
        return lambda v: type(v) is int and low <= v <= high
    if kind == "boolean":
        return lambda v: v is True or v is False
    if kind in {"bytes", "fixed"}:
        return lambda v: type(v) is bytes
    if kind == "enum":
        try:
            symbols = frozenset(s for s in avro["symbols"] if type(s) is str)
        except Exception:
            return None
        return lambda v: type(v) is str and v in symbols
    return lambda v: type(v) is str


def _value_converter(column: Column) -> _Value:
    """value -> cell, for a value already looked up (``None`` included)."""
    name, avro = column.name, column.avro
    null = _null(column)

    def slow(value: Any) -> Any:
        return null() if value is None else _convert(value, avro, name)

    if column.json:
        encode = _JSON.encode

        def to_json(value: Any) -> Any:
            if value is None:
                return null()
            try:
                return encode(value)
            except (TypeError, ValueError) as exc:
                raise RowError(f"{name}: cannot encode as JSON: {exc}") from exc

        return to_json
    try:
        kind, logical = type_name(avro), logical_type(avro)
    except Exception:
        return slow
    if logical in {"timestamp-millis", "timestamp-micros"}:

        def timestamp(value: Any) -> Any:
            if type(value) is datetime and value.tzinfo is not None:
                return value.astimezone(UTC)
            return slow(value)

        return timestamp
    if logical == "date":
        return lambda value: value if type(value) is date else slow(value)
    if logical == "decimal":
        try:
            precision, scale = int(avro["precision"]), int(avro.get("scale", 0))
            exponent = Decimal(1).scaleb(-scale)
            limit = Decimal(10) ** (precision - scale)
        except Exception:
            return slow

        def decimal(value: Any) -> Any:
            if type(value) is Decimal and value.is_finite():
                quantized = value.quantize(exponent)
                if quantized == value and abs(quantized) < limit:
                    return quantized
            return slow(value)

        return decimal
    if logical is None and kind in {"float", "double"}:
        return lambda value: value if type(value) is float else slow(value)
    if logical is None and kind == "array":
        item_fits = _fits(avro["items"])
        if item_fits is None:
            return slow

        def array(value: Any) -> Any:
            if type(value) is list and all(map(item_fits, value)):
                return list(value)
            return slow(value)

        return array
    if logical is None and kind == "map":
        value_fits = _fits(avro["values"])
        if value_fits is None:
            return slow

        def mapping(value: Any) -> Any:
            if type(value) is dict and all(type(k) is str for k in value) and all(map(value_fits, value.values())):
                return dict(value)
            return slow(value)

        return mapping
    fits = _fits(avro)
    if fits is None:
        return slow
    if kind == "string":  # the most common column: the check inline
        return lambda value: value if type(value) is str else slow(value)
    return lambda value: value if fits(value) else slow(value)


def _compile(column: Column) -> _Cell:
    """record -> cell; the record is a ``Mapping`` (checked by ``to_row``)."""
    convert = _value_converter(column)
    path, defaults = column.path, column.defaults
    missing = f"{column.name}: required field {'.'.join(path)} is missing"

    def generic(record: Mapping[str, Any]) -> Any:
        return convert(_lookup(record, column))

    if len(path) != len(defaults) or len(path) not in {1, 2}:
        return generic
    key, default = path[0], defaults[0]
    if len(path) == 1:

        def top(record: Mapping[str, Any]) -> Any:
            if type(record) is not dict:
                return generic(record)
            value = record.get(key, _MISSING)
            if value is _MISSING:
                if default is NO_DEFAULT:
                    raise RowError(missing)
                value = default
            return convert(value)

        return top
    child, child_default = path[1], defaults[1]

    def nested(record: Mapping[str, Any]) -> Any:
        if type(record) is not dict:
            return generic(record)
        parent = record.get(key, _MISSING)
        if parent is _MISSING:
            if default is NO_DEFAULT:
                raise RowError(missing)
            parent = default
        if type(parent) is not dict:
            return convert(None) if parent is None else generic(record)
        value = parent.get(child, _MISSING)
        if value is _MISSING:
            if child_default is NO_DEFAULT:
                raise RowError(missing)
            value = child_default
        return convert(value)

    return nested


_COMPILED: dict[tuple[int, ...], tuple[tuple[Column, ...], tuple[_Cell, ...]]] = {}
"""Column list (by the identity of its columns) -> (the columns, their cell functions). The entry holds the
columns, so their ids cannot be reused by other objects while it exists."""
_COMPILED_MAX = 256


def _cells(columns: tuple[Column, ...] | list[Column]) -> tuple[_Cell, ...]:
    key = tuple(map(id, columns))
    entry = _COMPILED.get(key)
    if entry is None:
        if len(_COMPILED) >= _COMPILED_MAX:
            _COMPILED.clear()
        entry = (tuple(columns), tuple(_compile(column) for column in columns))
        _COMPILED[key] = entry
    return entry[1]


def to_row(record: Mapping[str, Any], columns: Iterable[Column]) -> list[Any]:
    """One row (values in ``columns`` order); raises ``RowError`` when the record does not fit."""
    if type(record) is not dict and not isinstance(record, Mapping):
        raise RowError(f"expected a decoded record (dict), got {type(record).__name__}")
    if not isinstance(columns, list | tuple):
        columns = list(columns)
    return [cell(record) for cell in _cells(columns)]
