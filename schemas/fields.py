"""Field rules for provider values: ids, timestamps, money, durations, disconnect reasons, scalars.

Pure functions. Each takes the provider value and the path of the field (for error messages) and raises
``NormalizationError`` when the value cannot be mapped; ``None`` (JSON null or an absent field) maps to
``None`` except for ids, which are required.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Context, Decimal, InvalidOperation
from typing import Any, Literal
from zoneinfo import ZoneInfo

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
MONEY_SCALE = 6
MONEY_PRECISION = 18

NaiveTz = Literal["utc", "local"]


class NormalizationError(ValueError):
    """A provider value that cannot be mapped onto the contract; ``path`` names the field."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def to_id(value: Any, path: str) -> int:
    """Required id: int or a string of digits (the provider sends both for the same field)."""
    if value is None:
        raise NormalizationError(path, "missing required id")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise NormalizationError(path, f"id must be an integer or a digit string, got {_type_name(value)}")
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()):
            raise NormalizationError(path, f"id string is not an integer: {value!r}")
        value = int(value)
    if not -(2**63) <= value < 2**63:
        raise NormalizationError(path, f"id out of the 64-bit range: {value}")
    return value


def to_int(value: Any, path: str) -> int | None:
    """Optional integer (counts, seconds, optional ids): int or a digit string, never bool or float."""
    if value is None:
        return None
    return to_id(value, path)


def to_text(value: Any, path: str) -> str | None:
    """Optional text; ints are rendered: phone numbers and extensions arrive as JSON numbers too."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise NormalizationError(path, f"expected text, got {_type_name(value)}")


def to_bool(value: Any, path: str) -> bool | None:
    """Optional boolean; 0/1 ints accepted because queue reports send ``ativa: 0``."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise NormalizationError(path, f"expected a boolean, got {_type_name(value)} {value!r}")


_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}:\d{2})?",
    re.ASCII,
)


def to_timestamp(value: Any, path: str, naive_tz: NaiveTz) -> tuple[datetime | None, str | None]:
    """Provider datetime -> (tz-aware UTC instant truncated to milliseconds, original text).

    Shapes: ``2019-09-06T14:21:33`` (naive, read as UTC or America/Sao_Paulo per ``naive_tz``),
    ``...-03:00``, ``...T16:38:50.000-03:00``, ``...T00:51:22.000Z``. An empty string has no instant.
    """
    if value is None:
        return None, None
    if not isinstance(value, str):
        raise NormalizationError(path, f"expected a datetime text, got {_type_name(value)}")
    if value == "":
        return None, value
    if _TIMESTAMP.fullmatch(value) is None:
        raise NormalizationError(path, f"unrecognised datetime {value!r}")
    try:
        # The regex admits only shapes fromisoformat reads the same way, in C; it refuses out-of-range values
        # with other messages than the datetime constructor, so those go through _exact_timestamp.
        moment = datetime.fromisoformat(value)
    except ValueError:
        return _exact_timestamp(value, path, naive_tz)
    # timestamp-millis keeps milliseconds; truncating here keeps records equal after an Avro round trip.
    millis = moment.microsecond // 1000 * 1000
    if moment.tzinfo is None:
        moment = moment.replace(microsecond=millis, tzinfo=UTC if naive_tz == "utc" else SAO_PAULO)
    elif moment.microsecond != millis:
        moment = moment.replace(microsecond=millis)
    return moment.astimezone(UTC), value


def _exact_timestamp(value: str, path: str, naive_tz: NaiveTz) -> tuple[datetime | None, str | None]:
    """``to_timestamp`` field by field from the regex groups: the reference for the errors it reports."""
    match = _TIMESTAMP.fullmatch(value)
    if match is None:
        raise NormalizationError(path, f"unrecognised datetime {value!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, offset = match.group(7), match.group(8)
    # timestamp-millis keeps milliseconds; truncating here keeps records equal after an Avro round trip.
    millis = int((fraction or "0").ljust(3, "0")[:3])
    tz: timezone | ZoneInfo
    if offset is None:
        tz = UTC if naive_tz == "utc" else SAO_PAULO
    elif offset == "Z":
        tz = UTC
    else:
        sign = -1 if offset[0] == "-" else 1
        tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
    try:
        local = datetime(year, month, day, hour, minute, second, millis * 1000, tzinfo=tz)
    except ValueError as exc:
        raise NormalizationError(path, f"invalid datetime {value!r}: {exc}") from None
    return local.astimezone(UTC), value


_MONEY_CONTEXT = Context(prec=MONEY_PRECISION, traps=[InvalidOperation])
_MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)


def to_money(value: Any, path: str) -> Decimal | None:
    """Money from a JSON number or numeric string, exact through ``str()``, at Avro decimal(18,6) scale.

    Digits beyond 6 decimals are rounded half-even: they only appear as binary-float artefacts
    (``0.30000000000000004``) of a serializer on the provider side.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise NormalizationError(path, f"expected a money amount, got {_type_name(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise NormalizationError(path, f"money amount is not finite: {value!r}")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise NormalizationError(path, f"money amount is not a number: {value!r}") from None
    if not amount.is_finite():
        raise NormalizationError(path, f"money amount is not finite: {value!r}")
    try:
        return amount.quantize(_MONEY_QUANTUM, context=_MONEY_CONTEXT)
    except InvalidOperation:
        raise NormalizationError(path, f"money amount exceeds decimal(18,6): {value!r}") from None


_HMS = re.compile(r"(\d+):(\d+):(\d+)", re.ASCII)


def parse_hms(value: Any, path: str) -> int | None:
    """``"HH:MM:SS"`` -> seconds, lenient about component ranges (the provider sends ``"00:00:60"``)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise NormalizationError(path, f"expected an HH:MM:SS text, got {_type_name(value)}")
    match = _HMS.fullmatch(value.strip())
    if match is None:
        raise NormalizationError(path, f"not an HH:MM:SS duration: {value!r}")
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds)


_DISCONNECT = re.compile(r"\s*(\d{1,9})\s*\.\s*(.*)", re.ASCII | re.DOTALL)


def split_disconnect(value: Any, path: str) -> tuple[int | None, str | None, str | None]:
    """``motivo_desconexao`` -> (Q.850 code, text, raw): ``"16. normal"`` -> (16, "normal", "16. normal")."""
    if value is None:
        return None, None, None
    if not isinstance(value, str):
        raise NormalizationError(path, f"expected a disconnect reason text, got {_type_name(value)}")
    match = _DISCONNECT.fullmatch(value)
    if match is None:
        return None, value.strip() or None, value
    return int(match.group(1)), match.group(2).strip() or None, value
