"""JSON encoding of stream-processor state (Faust table changelogs).

State values are plain dicts/lists of primitives plus ``datetime`` and ``Decimal``. JSON has neither, so both
are wrapped in one-key tagged objects; a float round-trip would corrupt money and lose the UTC offset.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

_DT = "$dt"
_DEC = "$dec"


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {_DT: value.isoformat()}
    if isinstance(value, Decimal):
        return {_DEC: str(value)}
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            if _DT in value:
                return datetime.fromisoformat(value[_DT])
            if _DEC in value:
                return Decimal(value[_DEC])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """Serialize a state value; keys are sorted so equal states give equal bytes."""
    return json.dumps(_encode(value), sort_keys=True, separators=(",", ":"))


def loads(text: str | bytes) -> Any:
    return _decode(json.loads(text))
