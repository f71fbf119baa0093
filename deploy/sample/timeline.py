"""What every sample builder shares: the clock and its timestamp shapes, the id sequences, the billing rule
and the list of deliveries."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

BRT = timezone(timedelta(hours=-3))
# A stale tz database still applies Brazil's abolished summer time (Nov-Feb): same instant, -02:00 label.
OLD_DST = timezone(timedelta(hours=-2))
BASE = datetime(2026, 11, 20, 9, 0, tzinfo=BRT)

PRICE_PER_MINUTE = {"movel": 0.35, "fixo": 0.12, "ramal": 0.10}
DDDS = ("11", "21", "31", "41", "48", "51")
CLIENTS = ((3101, 3101), (5722, 5731))  # (cliente_id, conta_id): the second tenant client bills a sub-account


def moment(t: int) -> datetime:
    return BASE + timedelta(seconds=t)


def naive_local(t: int) -> str:
    return moment(t).strftime("%Y-%m-%dT%H:%M:%S")


def naive_utc(t: int) -> str:
    return moment(t).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def with_offset(t: int) -> str:
    return moment(t).isoformat(timespec="seconds")


def with_millis(t: int) -> str:
    return moment(t).isoformat(timespec="milliseconds")


def with_old_dst(t: int) -> str:
    return moment(t).astimezone(OLD_DST).isoformat(timespec="seconds")


def hms(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def billing(tipo: str, talk: int) -> tuple[int, float | int]:
    """(billed seconds, price) of one leg. The billing evidence (notes §3d) only covers talk up to 59 s:
    1-59 s are billed as one minute at the per-minute price of the phone type, no talk is free. Builders stay
    inside it."""
    if talk == 0:
        return 0, 0
    if not 0 < talk < 60:
        raise ValueError(f"talk time {talk}s is outside what the billing evidence covers")
    return 60, PRICE_PER_MINUTE[tipo]


@dataclass(frozen=True)
class Delivery:
    at: float  # seconds after BASE when the provider POSTs it
    kind: str
    body: dict[str, Any]


@dataclass
class Sample:
    rng: random.Random
    deliveries: list[Delivery] = field(default_factory=list)
    # Ids of the entities that have their own counters (notes §5: calls, SMS and torpedos share the main one).
    counters: dict[str, int] = field(
        default_factory=lambda: {
            "conference": 42870,
            "voicemail": 1408,
            "sms_reply": 16340,
            "validation": 430,
        }
    )

    def send(self, at: float, kind: str, body: dict[str, Any]) -> None:
        # Network and provider queueing: a fraction of a second, so one entity's events keep their order.
        self.deliveries.append(Delivery(at + self.rng.uniform(0.05, 0.6), kind, body))

    def next(self, counter: str) -> int:
        self.counters[counter] += self.rng.randint(1, 3)
        return self.counters[counter]

    def phone(self, tipo: str) -> str:
        ddd = self.rng.choice(DDDS)
        if tipo == "movel":
            return f"{ddd}9{self.rng.randint(8100_0000, 9999_9999)}"
        return f"{ddd}{self.rng.randint(3000_0000, 3999_9999)}"

    def token(self) -> str:
        return f"{self.rng.getrandbits(40):010x}"

    def recording(self, call_id: int, client: int) -> str:
        return f"https://api.evoline.com.br/rec/?id={call_id}&x={self.token()}&cid={client}"
