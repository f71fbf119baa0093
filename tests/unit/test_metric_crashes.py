"""A crash at any write of a batch, whatever order the batch's writes reached Kafka, leaves the metric windows of
the final result exact, and every other row with them.

The two agents' batch code runs over a simulated Kafka: every write of a batch (each state table key, which is its
changelog record, and each message it sends: records, tenant-feed items, window shares) is pending until the
batch commits. A crash keeps a prefix of the pending writes in a shuffled order (what reached the broker before
the process died), drops the rest and the agent's memory, and restarts the agent from its durable tables (the
changelogs) at its last committed batch, rebuilding its derived state as the Faust adapter does after a
recovery. A sink keeps the highest version of every key, as ClickHouse's ReplacingMergeTree does. The windows it
ends with must equal those of a run without a crash, version included, and the aggregate of the final records.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from schemas import topics
from streams.batch import metric_state, state_codec
from streams.batch.entities import Entities
from streams.batch.events import Batch, Event, Tick
from streams.batch.folds import FEEDS
from streams.batch.staging import Staged
from streams.batch.tenants import Tenants, share_message
from streams.domain.billing.metrics import ENTITY_CALL
from streams.domain.billing.rating import DEFAULT_PLAN
from tests import metrics_oracle as oracle
from tests.unit.streams_sample import AVRO, PARTITIONS, RECEIVED, sample_events

EVENTS, ALERTS = sample_events(limit=160)
LATER = RECEIVED + timedelta(days=1)
ITEMS: list[Event | Tick] = [*EVENTS, *(Tick(p, LATER) for p in range(PARTITIONS))]
BATCH = 40
GRACE = timedelta(hours=48)
Write = tuple[str, Any]
"""("table:<name>", (key, value)) or ("send", (topic, key, record or message))"""


@dataclass
class Agent:
    """One agent over its durable tables (the changelogs) and a live copy of them (its memory)."""

    make: Callable[[Callable[..., Staged]], Any]
    durable: dict[str, dict[str, bytes]] = field(default_factory=dict)
    pending: list[Write] = field(default_factory=list)
    committed: int = 0

    def start(self) -> Any:
        live = {name: dict(store) for name, store in self.durable.items()}

        def staged(name: str, **options: Any) -> Staged:
            store = live.setdefault(name, {})

            def write(partition: int, key: str, value: bytes | None) -> None:
                if value is None:
                    store.pop(key, None)
                else:
                    store[key] = value
                self.pending.append((f"table:{name}", (key, value)))

            return Staged(store, write, **options)

        self.pending = []
        return self.make(staged)

    def land(self, writes: list[Write], sink: Sink, log: list[Event]) -> None:
        for target, item in writes:
            if target.startswith("table:"):
                key, value = item
                store = self.durable.setdefault(target[6:], {})
                if value is None:
                    store.pop(key, None)
                else:
                    store[key] = value
            elif item[0] in (topics.TENANT_FEED, topics.WINDOW_SHARES):
                log.append(Event(item[0], 0, len(log), item[2]))
            else:
                sink.put(*item)


class Sink:
    """The last record of every key by version (ReplacingMergeTree(version))."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}

    def put(self, topic: str, key: str, record: dict[str, Any]) -> None:
        held = self.rows.get((topic, key))
        if held is None or record["version"] >= held["version"]:
            self.rows[(topic, key)] = record

    def windows(self) -> dict[Any, Any]:
        return {key: r for (topic, key), r in self.content().items() if topic == topics.OUT_METRICS.name}

    def content(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Every row without its processing time (`updated_at`)."""
        return {key: {k: v for k, v in r.items() if k != "updated_at"} for key, r in self.rows.items()}


def sends(agent: Any, batch: Batch) -> list[Write]:
    out: list[Write] = [("send", (o.topic.name, o.key, o.record)) for o in batch.outputs.values()]
    out += [("send", (topics.TENANT_FEED, r["tenant"], state_codec.encode({"entity": e, "record": r})))
            for e, r in batch.feed.values()]
    if isinstance(agent, Entities):
        out += [("send", (topics.WINDOW_SHARES, metric_state.dump_key(w),
                          share_message(p, w, s, agent.shares.clocks.get(p)))) for p, w, s in batch.shares]
    return out


def entities(staged: Callable[..., Staged]) -> Entities:
    return Entities.over(staged, AVRO.decode, DEFAULT_PLAN, timedelta(seconds=120), GRACE, GRACE)


def tenants(staged: Callable[..., Staged]) -> Tenants:
    return Tenants.over(staged, AVRO.decode, GRACE, GRACE)


def restart(agent: Agent) -> Any:
    live = agent.start()
    live.recover(range(PARTITIONS))
    return live


def run(crash: tuple[str, int, int, int] | None = None, *, commit_anyway: bool = False
        ) -> tuple[Sink, dict[tuple[str, int], int]]:
    """The sample through both agents, batch by batch; ``crash`` = (agent, batch number, writes kept, seed).
    Returns the sink and the number of writes of each (agent, batch number). ``commit_anyway`` commits the
    crashed batch's input as if it had been processed (a bug the test must be able to see)."""
    sink, log = Sink(), list(ALERTS)
    ent, ten = Agent(entities), Agent(tenants)
    live = {"entities": restart(ent), "tenants": restart(ten)}
    step = {"entities": 0, "tenants": 0}
    counts: dict[tuple[str, int], int] = {}

    def batch_of(name: str, agent: Agent) -> bool:
        """One batch of the agent from its committed position; False when it crashed (then restarted)."""
        items = ITEMS[agent.committed:agent.committed + BATCH] if name == "entities" else log[agent.committed:]
        if not items:
            return True
        batch = live[name].process(items, RECEIVED)
        assert not batch.failures and not batch.late
        for table in live[name].staged():
            table.flush()
        writes = agent.pending + sends(live[name], batch)
        step[name] += 1
        counts[(name, step[name])] = len(writes)
        if crash is not None and crash[:2] == (name, step[name]):
            random.Random(crash[3]).shuffle(writes)
            agent.land(writes[:crash[2]], sink, log)
            live[name] = restart(agent)
            if commit_anyway:
                agent.committed += len(items)
            return False
        agent.land(writes, sink, log)
        agent.committed += len(items)
        agent.pending = []
        return True

    while ent.committed < len(ITEMS):
        batch_of("entities", ent)
        while ten.committed < len(log):
            batch_of("tenants", ten)
    return sink, counts


CLEAN, WRITES = run()


def test_the_clean_run_counts_every_final_record_once() -> None:
    finals = [(r, FEEDS.get(topic, ENTITY_CALL)) for (topic, _), r in CLEAN.rows.items()
              if topic in (topics.OUT_CALLS.name, *FEEDS)]
    published = [(metric_state.load_key(key), r) for (topic, key), r in CLEAN.rows.items()
                 if topic == topics.OUT_METRICS.name]
    assert len(published) > 50
    assert oracle.contents(published) == oracle.window_records(oracle.aggregate(finals))


@pytest.mark.parametrize(("agent", "number"), [("entities", 1), ("entities", 2), ("entities", 4),
                                               ("tenants", 2), ("tenants", 3)])
def test_a_crash_at_any_write_of_a_batch_leaves_every_row_exact(agent: str, number: int) -> None:
    total = WRITES[(agent, number)]
    assert total > 10
    for kept in range(total):
        for seed in (0, 1):
            assert run((agent, number, kept, seed))[0].content() == CLEAN.content(), (agent, number, kept, seed)


def test_the_simulation_sees_a_batch_lost_without_replay() -> None:
    """The check has teeth: the same crashes with the crashed batch's input committed unprocessed lose windows."""
    total = WRITES[("entities", 2)]
    lossy = [kept for kept in range(0, total, 5)
             if run(("entities", 2, kept, 0), commit_anyway=True)[0].windows() != CLEAN.windows()]
    assert lossy
