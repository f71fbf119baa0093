"""Billing: what each billed entity costs and how it counts.

`price` is the one entry that rates any billed entity (two-leg calls, single-leg calls, SMS) with a rating plan
(rating.py: tariffs, the minute rule, our cost beside the provider's); `spend` is what a rated record adds to
its tenant's spend since the last balance alert (balance.py); metrics.py turns rated records into metric-window
contributions (with causes.py, the disconnect causes that count as network failures).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.domain.billing import balance
from streams.domain.billing.metrics import ENTITY_CALL, ENTITY_SINGLE_LEG, ENTITY_SMS
from streams.domain.billing.rating import RatingPlan, rate_call, rate_single_leg, rate_sms
from streams.domain.records import Record

_RATE: dict[str, Callable[[Record, RatingPlan], Record]] = {
    ENTITY_CALL: rate_call,
    ENTITY_SINGLE_LEG: rate_single_leg,
    ENTITY_SMS: rate_sms,
}


def price(entity: str, record: Record, plan: RatingPlan) -> Record:
    """The record of a billed entity (`ENTITY_CALL`, `ENTITY_SINGLE_LEG`, `ENTITY_SMS`) with our rating."""
    return _RATE[entity](record, plan)


def _single_leg_spend(state: balance.BalanceState | None, record: Record) -> balance.BalanceState:
    return balance.apply_spend(state, record["tenant"], f"single_leg:{record['call_id']}", record["version"],
                               record["end_at"], record["rated_cost"])


_SPEND: dict[str, Callable[[Any, Record], balance.BalanceState]] = {
    ENTITY_CALL: balance.apply_call,
    ENTITY_SMS: balance.apply_sms,
    ENTITY_SINGLE_LEG: _single_leg_spend,
}


def spend(entity: str, state: balance.BalanceState | None, record: Record) -> balance.BalanceState:
    """The tenant's balance state with the rated record's cost counted in its spend since the last alert."""
    return _SPEND[entity](state, record)
