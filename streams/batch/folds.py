"""The entity families the `entities` agent folds besides two-leg calls: which state table, which id, which
domain module and which output record, per webhook kind. Also how rated records feed the per-tenant agent.

Plain data over the domain modules (no Faust), shared by streams/faustapp/app.py and the tests that run the same folds
without Kafka.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from schemas import topics
from schemas.topics import Topic
from streams.domain import billing, conference, extension, single_leg, sms, validation, voicemail
from streams.domain.billing.metrics import ENTITY_SINGLE_LEG, ENTITY_SMS
from streams.domain.billing.rating import RatingPlan
from streams.domain.records import Record


@dataclass(frozen=True)
class Fold:
    table: str
    """Name of the state table (and of its changelog)."""
    key: str
    """The record field that identifies the entity; also the key of its output messages."""
    apply: Callable[[Any, Record], Any]
    """The domain fold: (state or None, event) -> state, or conference's (state, participant)."""
    out: Topic
    to_record: Callable[[Any], Record]
    """What `apply` returned -> the output record, rated where the family is billed."""


def state_of(result: Any) -> Any:
    """The state in what a fold returned (conference returns it with the participant the event concerned)."""
    return result[0] if isinstance(result, tuple) else result


def folds(plan: RatingPlan) -> dict[str, Fold]:
    """Per webhook kind, its fold."""
    single = Fold("single_leg", "call_id", single_leg.apply, topics.OUT_SINGLE_LEG_CALLS,
                  lambda s: billing.price(ENTITY_SINGLE_LEG, single_leg.to_record(s), plan))
    ext = Fold("extensions", "call_id", extension.apply, topics.OUT_EXTENSION_CALLS, extension.to_record)
    text = Fold("sms", "sms_id", sms.apply, topics.OUT_SMS, lambda s: billing.price(ENTITY_SMS, sms.to_record(s), plan))
    return {
        **dict.fromkeys(("chamada_did_fim", "tts_fim", "audio_fim", "composto_fim"), single),
        **dict.fromkeys(("ramal_evento", "did_evento"), ext),
        **dict.fromkeys(("envio_sms", "resposta_sms"), text),
        "conferencia_evento": Fold("conferences", "conference_id", conference.apply,
                                   topics.OUT_CONFERENCE_SESSIONS, lambda result: conference.to_record(*result)),
        "voicemail": Fold("voicemails", "voicemail_id", voicemail.apply, topics.OUT_VOICEMAILS,
                          voicemail.to_record),
        "valida_numero": Fold("validations", "validation_id", validation.apply, topics.OUT_NUMBER_VALIDATIONS,
                              validation.to_record),
    }


# Which derived records feed the per-tenant agent (for its metrics and the spend: streams/domain/billing).
FEEDS = {topics.OUT_SMS.name: ENTITY_SMS, topics.OUT_SINGLE_LEG_CALLS.name: ENTITY_SINGLE_LEG}
