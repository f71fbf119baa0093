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

from schemas.exact_json import BigInt

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
MONEY_SCALE = 6
MONEY_PRECISION = 18

NaiveTz = Literal["utc", "local"]

# The valid range of every field (docs/DESIGN.md, "Normalized records: conventions"). Instants: what
# ClickHouse's DateTime64(3, 'UTC') stores exactly. Offsets: the widest real-world UTC offsets. Integers and
# durations: Avro's long.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2299, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
MAX_OFFSET = timedelta(hours=14)
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
_ID_TEXT_MAX = 20  # digits of the largest 64-bit value, so int() is never handed a 4,300-digit text


class NormalizationError(ValueError):
    """A provider value that cannot be mapped onto the contract; ``path`` names the field."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason


def _type_name(value: Any) -> str:
    if isinstance(value, BigInt):
        return "integer"
    return "null" if value is None else type(value).__name__


def _short(text: str, limit: int = 60) -> str:
    """A provider text for an error message: a 5,000-character value is cut, with its length."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def to_id(value: Any, path: str) -> int:
    """Required id: int or a string of digits (the provider sends both for the same field)."""
    if value is None:
        raise NormalizationError(path, "missing required id")
    if isinstance(value, BigInt):
        raise NormalizationError(path, f"id out of the 64-bit range: {value.short()}")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise NormalizationError(path, f"id must be an integer or a digit string, got {_type_name(value)}")
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()):
            raise NormalizationError(path, f"id string is not an integer: {_short(value)}")
        if len(value) > _ID_TEXT_MAX:
            raise NormalizationError(path, f"id out of the 64-bit range: {_short(value)}")
        value = int(value)
    if not LONG_MIN <= value <= LONG_MAX:
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
    if isinstance(value, BigInt):
        return value.text
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
    match = _TIMESTAMP.fullmatch(value)
    if match is None:
        raise NormalizationError(path, f"unrecognised datetime {_short(value)}")
    offset = match.group(8)
    if offset is not None and offset[4:6] > "59":  # fromisoformat reads "+00:99" as 99 minutes
        raise NormalizationError(path, f"UTC offset of {value!r} has {offset[4:6]} minutes")
    try:
        # The regex admits only shapes fromisoformat reads the same way, in C; it refuses out-of-range values
        # with other messages than the datetime constructor, so those go through _exact_timestamp.
        moment = datetime.fromisoformat(value)
    except ValueError:
        return _exact_timestamp(match, value, path, naive_tz)
    # timestamp-millis keeps milliseconds; truncating here keeps records equal after an Avro round trip.
    millis = moment.microsecond // 1000 * 1000
    if moment.tzinfo is None:
        moment = moment.replace(microsecond=millis, tzinfo=UTC if naive_tz == "utc" else SAO_PAULO)
    elif moment.microsecond != millis:
        moment = moment.replace(microsecond=millis)
    return _in_range(moment, value, path), value


def _in_range(local: datetime, value: str, path: str) -> datetime:
    """The UTC instant of `local`, refused (naming the field) when its offset or the instant is out of range.
    Checked before the conversion, which overflows near the ends of the datetime range."""
    offset = local.utcoffset()
    if offset is not None and abs(offset) > MAX_OFFSET:
        raise NormalizationError(path, f"UTC offset of {value!r} is beyond ±14:00")
    if not (EARLIEST.year <= local.year <= LATEST.year):
        raise NormalizationError(path, f"{value!r} is outside the years {EARLIEST.year}-{LATEST.year}")
    moment = local.astimezone(UTC)
    if not EARLIEST <= moment <= LATEST:
        raise NormalizationError(path, f"{value!r} is outside {EARLIEST:%Y-%m-%d}..{LATEST:%Y-%m-%d} UTC")
    return moment


def _exact_timestamp(match: re.Match[str], value: str, path: str,
                     naive_tz: NaiveTz) -> tuple[datetime | None, str | None]:
    """``to_timestamp`` field by field from the regex groups (offset minutes already checked): the reference for
    the errors it reports."""
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
        shift = timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
        if shift > MAX_OFFSET:  # before timezone(), which refuses 24 h and more with its own message
            raise NormalizationError(path, f"UTC offset of {value!r} is beyond ±14:00")
        tz = timezone(-shift if offset[0] == "-" else shift)
    try:
        local = datetime(year, month, day, hour, minute, second, millis * 1000, tzinfo=tz)
    except ValueError as exc:
        raise NormalizationError(path, f"invalid datetime {value!r}: {exc}") from None
    return _in_range(local, value, path), value


_MONEY_CONTEXT = Context(prec=MONEY_PRECISION, traps=[InvalidOperation])
_MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)


# ASCII digits only: Decimal() also reads Arabic-Indic and fullwidth digits and underscores ("1_000"), which no
# provider serializer writes; ids refuse them too.
_MONEY_TEXT = re.compile(r"[ \t]*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)[ \t]*", re.ASCII)


def to_money(value: Any, path: str) -> Decimal | None:
    """Money from a JSON number or numeric string, exact through ``str()``, at Avro decimal(18,6) scale.

    Digits beyond 6 decimals are rounded half-even: they only appear as binary-float artefacts
    (``0.30000000000000004``) of a serializer on the provider side.
    """
    if value is None:
        return None
    if isinstance(value, BigInt):
        raise NormalizationError(path, f"money amount exceeds decimal(18,6): {value.short()}")
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise NormalizationError(path, f"expected a money amount, got {_type_name(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise NormalizationError(path, f"money amount is not finite: {value!r}")
    if isinstance(value, str):
        match = _MONEY_TEXT.fullmatch(value)
        if match is None:
            raise NormalizationError(
                path, f"money amount is not a number: {_short(value)} (ASCII digits, sign, point, exponent)")
        text = match.group(1)
    else:
        text = str(value)
    amount = Decimal(text)
    try:
        return amount.quantize(_MONEY_QUANTUM, context=_MONEY_CONTEXT)
    except InvalidOperation:
        raise NormalizationError(path, f"money amount exceeds decimal(18,6): {_short(text)}") from None


_HMS = re.compile(r"(\d+):(\d+):(\d+)", re.ASCII)


def parse_hms(value: Any, path: str) -> int | None:
    """``"HH:MM:SS"`` -> seconds, lenient about component ranges (the provider sends ``"00:00:60"``); the total
    must fit Avro's long."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise NormalizationError(path, f"expected an HH:MM:SS text, got {_type_name(value)}")
    match = _HMS.fullmatch(value.strip())
    if match is None:
        raise NormalizationError(path, f"not an HH:MM:SS duration: {_short(value)}")
    if max(map(len, match.groups())) > _ID_TEXT_MAX:
        raise NormalizationError(path, f"HH:MM:SS duration out of the 64-bit range: {_short(value)}")
    hours, minutes, seconds = map(int, match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total > LONG_MAX:
        raise NormalizationError(path, f"HH:MM:SS duration out of the 64-bit range: {_short(value)}")
    return total


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
