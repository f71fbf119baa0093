"""Rating: our own billed seconds and cost per leg, call, single-leg call and SMS, beside the provider's.

Defaults come from the provider evidence (shared/reference/provider-webhooks-notes.md §3d):

* movel 0.35/min — Fim Chamada, Áudio and TTS examples (14/25/10 s talk -> 60 s billed, 0.35);
* fixo 0.12/min — Áudio/Composto report (35 s talk -> 60 s, 0.12). The account example ``preco_fixo "0.060"``
  is a different account's price list; the billed examples are the better evidence of what a leg costs;
* ramal 0.10/min — the two priced ramal legs (10 s and 28 s talk) cost 0.1; their billed seconds (10 vs 60)
  disagree, so ramal reconciliation flags are expected until the provider confirms its ramal cadence;
* SMS 0.09/message (Envio de SMS example; an older doc shows 0.045).

Answered legs with talk > 0 are billed at least ``minimum_seconds`` (60 s: 1-59 s talk -> 60 s). The increment
after the first minute is **not confirmed** by any provider example (none has > 60 s of PSTN talk); 60 s is
the default and is configurable. Unanswered legs, and answered legs with 0 s talk, are 0 s and cost 0.

Rating reads only provider facts and writes only ``rated_*``/``*_mismatch`` fields, so it is idempotent.
Money is ``Decimal`` throughout.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from streams.domain.records import SMS_FAILED, SMS_SENT, STATUS_ANSWERED, Record


@dataclass(frozen=True)
class Tariff:
    price_per_minute: Decimal
    minimum_seconds: int = 60
    increment_seconds: int = 60

    def __post_init__(self) -> None:
        if self.minimum_seconds < 0 or self.increment_seconds <= 0 or self.price_per_minute < 0:
            raise ValueError(f"invalid tariff {self!r}")

    def billed_seconds(self, talk_seconds: int) -> int:
        if talk_seconds <= 0:
            return 0
        if talk_seconds <= self.minimum_seconds:
            return self.minimum_seconds
        steps = -(-(talk_seconds - self.minimum_seconds) // self.increment_seconds)
        return self.minimum_seconds + steps * self.increment_seconds


@dataclass(frozen=True)
class RatingPlan:
    plan_id: str
    tariffs: Mapping[str, Tariff]
    sms_price: Decimal
    places: int = 2
    rounding: str = ROUND_HALF_UP
    _quantum: Decimal = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_quantum", Decimal(1).scaleb(-self.places))

    def money(self, amount: Decimal) -> Decimal:
        return amount.quantize(self._quantum, rounding=self.rounding)

    def leg_cost(self, tariff: Tariff, billed_seconds: int) -> Decimal:
        return self.money(tariff.price_per_minute * billed_seconds / 60)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RatingPlan:
        """Build from a JSON-like mapping; money may be given as string or number (read via ``str``)."""
        tariffs = {
            tipo: Tariff(
                price_per_minute=_decimal(spec["price_per_minute"]),
                minimum_seconds=int(spec.get("minimum_seconds", 60)),
                increment_seconds=int(spec.get("increment_seconds", 60)),
            )
            for tipo, spec in data["tariffs"].items()
        }
        return cls(
            plan_id=str(data["plan_id"]),
            tariffs=tariffs,
            sms_price=_decimal(data["sms_price"]),
            places=int(data.get("places", 2)),
            rounding=str(data.get("rounding", ROUND_HALF_UP)),
        )

    @classmethod
    def from_json(cls, text: str) -> RatingPlan:
        return cls.from_mapping(json.loads(text))

    def to_mapping(self) -> dict[str, Any]:
        return {
            "plan_id": self.plan_id,
            "places": self.places,
            "rounding": self.rounding,
            "sms_price": str(self.sms_price),
            "tariffs": {
                tipo: {
                    "price_per_minute": str(t.price_per_minute),
                    "minimum_seconds": t.minimum_seconds,
                    "increment_seconds": t.increment_seconds,
                }
                for tipo, t in self.tariffs.items()
            },
        }


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value))


DEFAULT_PLAN = RatingPlan(
    plan_id="provider-evidence-2019",
    tariffs={
        "movel": Tariff(Decimal("0.35")),
        "fixo": Tariff(Decimal("0.12")),
        "ramal": Tariff(Decimal("0.10")),
    },
    sms_price=Decimal("0.09"),
)


def rate_leg(leg: Record, plan: RatingPlan, *, final: bool = True) -> Record:
    """A copy of a leg-shaped record (``type``, ``status``, ``answered``, ``talk_seconds``,
    ``billed_seconds``, ``price``) with ``rated_billed_seconds``, ``rated_cost`` and the two mismatch flags.

    Non-final legs and answered legs without a known talk time or tariff are not rated (null), never guessed.
    """
    billed: int | None = None
    cost: Decimal | None = None
    if final:
        answered = bool(leg.get("answered")) or leg.get("status") == STATUS_ANSWERED
        talk = leg.get("talk_seconds")
        tariff = plan.tariffs.get(leg.get("type") or "")
        if not answered or talk == 0:
            billed, cost = 0, plan.money(Decimal(0))
        elif talk is not None and tariff is not None:
            billed = tariff.billed_seconds(talk)
            cost = plan.leg_cost(tariff, billed)
    return {
        **leg,
        "rated_billed_seconds": billed,
        "rated_cost": cost,
        "billed_seconds_mismatch": _differs(leg.get("billed_seconds"), billed),
        "price_mismatch": _differs(leg.get("price"), cost),
    }


def _differs(provider: Any, ours: Any) -> bool | None:
    if provider is None or ours is None:
        return None
    return bool(provider != ours)


def rate_call(call: Record, plan: RatingPlan) -> Record:
    """Rate both legs of a ``Call`` record; only records with the end webhook seen are rated."""
    final = bool(call["end_seen"])
    legs = {name: rate_leg(call[name], plan, final=final) for name in ("origin", "destination")}
    costs = [leg["rated_cost"] for leg in legs.values()]
    seconds = [leg["rated_billed_seconds"] for leg in legs.values()]
    complete = final and None not in costs
    return {
        **call,
        **legs,
        "rated_cost_total": sum(costs, Decimal(0)) if complete else None,
        "rated_billed_seconds_total": sum(s for s in seconds if s is not None) if complete else None,
        "rating_plan_id": plan.plan_id if final else None,
    }


def rate_single_leg(record: Record, plan: RatingPlan) -> Record:
    return {**rate_leg(record, plan), "rating_plan_id": plan.plan_id}


def rate_sms(sms: Record, plan: RatingPlan) -> Record:
    """SMS are charged per message once sent; failed/blocked ones cost 0 (provider failure: preco 0)."""
    status = sms.get("status")
    cost: Decimal | None = None
    if status in SMS_SENT:
        cost = plan.money(plan.sms_price)
    elif status in SMS_FAILED:
        cost = plan.money(Decimal(0))
    return {
        **sms,
        "rated_cost": cost,
        "price_mismatch": _differs(sms.get("price"), cost),
        "rating_plan_id": plan.plan_id,
    }
