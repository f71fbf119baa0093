"""Vocabulary of the normalized input records (docs/DESIGN.md) that the domain logic relies on.

Input records are the dicts decoded from the normalized Avro topics; timestamps are tz-aware UTC datetimes in
``<x>_at`` fields, money is ``Decimal``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

Record = dict[str, Any]

KIND_CALL_EVENT = "chamada_evento"
KIND_CALL_STATUS = "status_tempo_real"
KIND_CALL_END = "chamada_fim"
KIND_DID_END = "chamada_did_fim"
SINGLE_LEG_END_KINDS = frozenset({"tts_fim", "audio_fim", "composto_fim"})
EXTENSION_KINDS = frozenset({"ramal_evento", "did_evento"})
KIND_SMS_STATUS = "envio_sms"
KIND_SMS_REPLY = "resposta_sms"
KIND_CONFERENCE = "conferencia_evento"
KIND_VOICEMAIL = "voicemail"
KIND_BALANCE = "aviso_saldo"
KIND_VALIDATION = "valida_numero"

STATUS_PREPARING = "preparando"
STATUS_RINGING = "chamando"
STATUS_ANSWERED = "atendida"
_LIVE_LIFECYCLE = {STATUS_PREPARING: 1, STATUS_RINGING: 2, STATUS_ANSWERED: 3}
_ENDED = 4

SMS_DELIVERED = frozenset({"entregue"})
SMS_FAILED = frozenset({"erro", "bloqueado"})
# Statuses after which the provider has accepted the message for sending (and, per its examples, charges it).
SMS_SENT = frozenset({"enviada", "entregue"})


def lifecycle_rank(status: str | None, active: bool | None) -> int:
    """How far a leg (call leg, extension or DID call) had come when it was observed: no status < preparando <
    chamando < atendida < ended. Ended is every other status (the final ones: sem resposta, ocupado, congestionado,
    falha, cancelada, não existe; desconhecido; and any the provider adds, which its docs announce) and an atendida
    leg no longer active (hung up). The provider's leg times have 1 s resolution, so observations of one second
    are ordered by this rank: a leg's status never goes back within its second."""
    if not status:
        return 0
    if status == STATUS_ANSWERED and active is False:
        return _ENDED
    return _LIVE_LIFECYCLE.get(status, _ENDED)


def plus_seconds(at: datetime | None, seconds: int | None) -> datetime | None:
    if at is None or seconds is None:
        return None
    return at + timedelta(seconds=seconds)


def millis_between(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return int((end - start) / timedelta(milliseconds=1))


def epoch_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def from_epoch_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def event_time(record: Record) -> datetime | None:
    """The latest provider time an event carries, its own or its legs' (``received_at``, the ingest clock, is
    not one); None when it carries none."""
    times = [value for name, value in record.items()
             if name.endswith("_at") and name != "received_at" and isinstance(value, datetime)]
    for leg in ("origin", "destination"):
        nested = record.get(leg)
        if isinstance(nested, dict):
            times += [value for name, value in nested.items() if name.endswith("_at") and isinstance(value, datetime)]
    return max(times, default=None)
