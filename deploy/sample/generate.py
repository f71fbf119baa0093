"""`python -m deploy.sample.generate`: (re)write the bundled sample `deploy/sample/webhooks.jsonl`.

One JSON object per line, `{"kind": <webhook kind>, "body": <provider JSON>}`, in the order the provider
would deliver them on 2026-11-20 between 09:00 and about 10:00 (São Paulo, -03:00). Seeded: the output is
byte-identical on every run, so the checked-in file can be verified (tests/unit/test_sample.py).

Besides every kind's documented shape it carries the delivery quirks a receiver must survive: re-delivered
webhooks (at-least-once), events overtaking each other, calls whose end webhook never comes.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

from deploy.sample import account, broadcast, calls, pbx
from deploy.sample.timeline import CLIENTS, Delivery, Sample

SEED = 20261120
OUTPUT = Path(__file__).resolve().with_name("webhooks.jsonl")
FIRST_ID = 48_210_000
WINDOW = 3000  # seconds in which entities start

# Creates one entity whose id comes from the provider's shared sequence (calls, SMS, torpedos):
# (sample, id, start).
Builder = Callable[[Sample, int, int], None]


CONFERENCE_ID = 42874


def _entities(rng: random.Random, conference_id: int) -> list[tuple[int, Builder]]:
    entities: list[tuple[int, Builder]] = []

    def add(builder: Builder, start: int | None = None) -> None:
        entities.append((rng.randint(0, WINDOW) if start is None else start, builder))

    outcomes = ["answered"] * 26 + ["busy"] * 6 + ["no_answer"] * 5 + ["a_no_answer"] * 3
    rng.shuffle(outcomes)
    lost = set(rng.sample(range(len(outcomes)), 3))
    for i, outcome in enumerate(outcomes):
        add(partial(calls.two_leg_call, outcome=outcome, end_lost=i in lost))
    for outcome, flat, legacy, voicemail in (
        ("atendida", False, False, False),
        ("atendida", True, False, False),
        ("sem resposta", False, False, True),
        ("atendida", True, True, False),
        ("sem resposta", True, False, False),
        ("atendida", False, False, False),
    ):
        add(partial(pbx.did_call, outcome=outcome, flat_end=flat, legacy=legacy, voicemail=voicemail))
    for outcome, voicemail in (
        ("atendida", False),
        ("atendida", False),
        ("sem resposta", True),
        ("ocupado", True),
        ("atendida", False),
        ("sem resposta", False),
    ):
        add(partial(pbx.extension_call, outcome=outcome, voicemail=voicemail))
    for kind, outcome, quirk in (
        ("tts_fim", "atendida", None),
        ("tts_fim", "silent", None),
        ("tts_fim", "ocupado", None),
        ("tts_fim", "atendida", None),
        ("audio_fim", "atendida", None),
        ("audio_fim", "atendida", "hms60"),
        ("audio_fim", "sem resposta", "null_reason"),
        ("composto_fim", "atendida", None),
        ("composto_fim", "atendida", None),
        ("composto_fim", "sem resposta", None),
    ):
        add(partial(broadcast.single_leg_call, kind=kind, outcome=outcome, quirk=quirk))
    for delivered, replies, old_dst in (
        (True, ("SIM",), True),
        (True, ("NAO", "quero remarcar pra sexta"), False),
        (True, (), False),
        (False, (), False),
        (True, ("1",), False),
        (True, (), False),
        (True, (), False),
        (False, (), False),
        (True, (), False),
        (True, (), False),
    ):
        add(partial(broadcast.sms, delivered=delivered, replies=replies, old_dst_reply=old_dst))
    for number, created in enumerate((600, 2400)):
        conference = pbx.Conference(conference_id + number * 5, created, CLIENTS[number][0], record=number == 0)
        for joined in (5, 9, 31):
            add(
                partial(pbx.conference_participant, conference=conference, stay=rng.randint(60, 600)),
                created + joined,
            )
    return entities


def build(seed: int = SEED, first_id: int = FIRST_ID, counter_offset: int = 0) -> list[Delivery]:
    """The sample's deliveries; another seed and ids give another hour of the same mix (bench/soak.py)."""
    rng = random.Random(seed)
    sample = Sample(rng)
    sample.counters = {name: value + counter_offset for name, value in sample.counters.items()}
    call_id = first_id
    # Conference ids have no counter of their own: each copy needs its own, or one conference would gather the
    # participants of every copy (the soak's first 1 MB state).
    conferences = CONFERENCE_ID + counter_offset * 10
    for start, builder in sorted(_entities(rng, conferences), key=lambda entry: entry[0]):
        call_id += rng.randint(1, 40)  # other customers' traffic uses the same id sequence
        builder(sample, call_id, start)
    for t, balance in ((1800, "148.3725"), (3300, "56.8616")):
        account.balance_alert(sample, t, balance)
    for t, valid in ((300, True), (1500, False), (2700, True)):
        account.number_validation(sample, t, valid=valid)
    deliveries = _overtake(rng, sample.deliveries, calls=6)
    deliveries = _redeliver(rng, deliveries, count=8)
    return sorted(deliveries, key=lambda d: d.at)


def _overtake(rng: random.Random, deliveries: list[Delivery], calls: int) -> list[Delivery]:
    """Delay one real-time event of a few calls until after the event that followed it."""
    by_call: dict[int, list[int]] = defaultdict(list)
    for i, delivery in enumerate(deliveries):
        if delivery.kind == "chamada_evento":
            by_call[delivery.body["id"]].append(i)
    delayed = list(deliveries)
    for call_id in rng.sample(sorted(by_call), calls):
        events = sorted(by_call[call_id], key=lambda i: deliveries[i].at)
        pick = rng.randrange(len(events) - 1)
        late, overtaker = events[pick], events[pick + 1]
        delayed[late] = replace(deliveries[late], at=deliveries[overtaker].at + rng.uniform(0.2, 2.0))
    return delayed


def _redeliver(rng: random.Random, deliveries: list[Delivery], count: int) -> list[Delivery]:
    """The provider retries when it saw no answer in time: the same body again, up to two minutes later."""
    again = [replace(d, at=d.at + rng.uniform(15, 120)) for d in rng.sample(deliveries, count)]
    return deliveries + again


def render(deliveries: list[Delivery]) -> str:
    return "".join(
        json.dumps({"kind": d.kind, "body": d.body}, ensure_ascii=False, separators=(",", ":")) + "\n"
        for d in deliveries
    )


def main() -> None:
    text = render(build())
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT} ({text.count(chr(10))} webhooks, {len(text.encode())} bytes)")


if __name__ == "__main__":
    main()
