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
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from schemas import topics
from streams.batch import metric_state
from streams.batch.entities import Entities
from streams.batch.events import Batch, Event, Tick
from streams.batch.folds import FEEDS
from streams.batch.staging import Staged
from streams.batch.tenants import Tenants
from streams.batch.tenants import messages as tenant_messages
from streams.domain.billing.metrics import ENTITY_CALL
from streams.domain.billing.rating import DEFAULT_PLAN
from tests import metrics_oracle as oracle
from tests.unit.streams_sample import AVRO, PARTITIONS, RECEIVED, sample_events

EVENTS, ALERTS = sample_events(limit=160)
LATER = RECEIVED + timedelta(days=1)
ITEMS: list[Event | Tick] = [*EVENTS, *(Tick(p, LATER) for p in range(PARTITIONS))]
BATCH = 40
GRACE = timedelta(hours=48)
SETTLING = timedelta(seconds=360)
"""A retention that evicts the sample's entities while their windows are still open: their metric registers
settle."""
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
        """Every row without its processing time (`updated_at`), and a balance without its `version`, which
        counts the balance's changes: a replay can bring an older version of a record after a newer one, which
        changes nothing but is one change fewer."""
        return {key: {k: v for k, v in r.items()
                      if k != "updated_at" and not (k == "version" and key[0] == topics.OUT_BALANCE.name)}
                for key, r in self.rows.items()}


def sends(agent: Any, batch: Batch) -> list[Write]:
    out: list[Write] = [("send", (o.topic.name, o.key, o.record)) for o in batch.outputs.values()]
    if isinstance(agent, Entities):
        out += [("send", (m.topic, str(m.partition), m.value))
                for m in tenant_messages(batch, agent.shares.clocks, lambda key: zlib.crc32(key) % PARTITIONS)]
    return out


def entities(retention: timedelta) -> Callable[[Callable[..., Staged]], Entities]:
    return lambda staged: Entities.over(staged, AVRO.decode, DEFAULT_PLAN, timedelta(seconds=120), GRACE, retention)


def tenants(staged: Callable[..., Staged]) -> Tenants:
    return Tenants.over(staged, AVRO.decode, GRACE, GRACE)


def restart(agent: Agent) -> Any:
    live = agent.start()
    live.recover(range(PARTITIONS))
    return live


@dataclass
class Run:
    sink: Sink
    writes: dict[tuple[str, int], int]
    """The number of writes of each (agent, batch number)."""
    registers: dict[str, bytes]
    """The durable `metric_entities` at the end."""
    evicted: dict[int, int]
    """Per batch number of the entities agent, the metric registers it evicted."""


def run(crash: tuple[str, int, int, int] | None = None, *, commit_anyway: bool = False, in_flight: bool = False,
        retention: timedelta = GRACE, size: int = BATCH, items: list[Event | Tick] = ITEMS) -> Run:
    """The sample through both agents, batch by batch; ``crash`` = (agent, batch number, writes kept, seed).
    ``commit_anyway`` commits the crashed batch's input as if it had been processed (a bug the test must be able
    to see). ``in_flight``: the entities agent's writes of a batch are acknowledged only after its next batch, as
    the Faust adapter's can be (`seal`, ``durable``), so a crash loses any of the writes of two batches."""
    sink, log = Sink(), list(ALERTS)
    ent, ten = Agent(entities(retention)), Agent(tenants)
    live = {"entities": restart(ent), "tenants": restart(ten)}
    step = {"entities": 0, "tenants": 0}
    counts: dict[tuple[str, int], int] = {}
    evicted: dict[int, int] = {}
    unacknowledged: list[tuple[list[Write], int]] = []
    """The entities agent's batches in flight: their writes and how many items they took."""

    def acknowledge(agent: Agent, keep: int) -> None:
        while len(unacknowledged) > keep:
            writes, taken = unacknowledged.pop(0)
            agent.land(writes, sink, log)
            agent.committed += taken

    def batch_of(name: str, agent: Agent) -> None:
        """One batch of the agent from where it is; on a crash, the restart."""
        lagging = in_flight and name == "entities"
        start = agent.committed + sum(taken for _, taken in unacknowledged) if lagging else agent.committed
        todo = items[start:start + size] if name == "entities" else log[start:]
        if not todo:
            acknowledge(agent, 0)
            return
        step[name] += 1
        batch = live[name].process(todo, RECEIVED, step[name] - 2 if lagging else None)
        assert not batch.failures and not batch.late, (batch.failures, batch.late)
        for table in live[name].staged():
            table.flush()
        writes = agent.pending + sends(live[name], batch)
        agent.pending = []
        if lagging:
            live[name].seal(step[name])
        counts[(name, step[name])] = len(writes)
        if name == "entities":
            evicted[step[name]] = batch.evicted["metric_entities"]
        if crash is not None and crash[:2] == (name, step[name]):
            lost = [write for pending, _ in unacknowledged for write in pending] + writes
            random.Random(crash[3]).shuffle(lost)
            agent.land(lost[:crash[2]], sink, log)
            unacknowledged.clear()
            live[name] = restart(agent)
            if commit_anyway:
                agent.committed += len(todo)
            return
        if lagging:
            unacknowledged.append((writes, len(todo)))
            acknowledge(agent, 1)
        else:
            agent.land(writes, sink, log)
            agent.committed += len(todo)

    while ent.committed < len(items):
        batch_of("entities", ent)
        while ten.committed < len(log):
            batch_of("tenants", ten)
    return Run(sink, counts, ent.durable.get("metric_entities", {}), evicted)


CLEAN = run()
# Small batches, and ticks again at the end, so that settling registers go through every step.
SETTLING_RUN: dict[str, Any] = {"retention": SETTLING, "size": 20,
                                "items": [*ITEMS, *(Tick(p, LATER) for p in range(PARTITIONS) for _ in range(3))]}
SETTLED = run(**SETTLING_RUN)


def counts_every_final_record_once(sink: Sink) -> bool:
    finals = [(r, FEEDS.get(topic, ENTITY_CALL)) for (topic, _), r in sink.rows.items()
              if topic in (topics.OUT_CALLS.name, *FEEDS)]
    published = [(metric_state.load_key(key), r) for (topic, key), r in sink.rows.items()
                 if topic == topics.OUT_METRICS.name]
    assert len(published) > 50
    return bool(oracle.contents(published) == oracle.window_records(oracle.aggregate(finals)))


def test_the_clean_run_counts_every_final_record_once() -> None:
    assert counts_every_final_record_once(CLEAN.sink)


@pytest.mark.parametrize(("agent", "number"), [("entities", 1), ("entities", 2), ("entities", 4),
                                               ("tenants", 2), ("tenants", 3)])
def test_a_crash_at_any_write_of_a_batch_leaves_every_row_exact(agent: str, number: int) -> None:
    total = CLEAN.writes[(agent, number)]
    assert total > 10
    for kept in range(total):
        for seed in (0, 1):
            assert run((agent, number, kept, seed)).sink.content() == CLEAN.sink.content(), (agent, number, kept, seed)


def test_settled_registers_leave_every_row_as_it_was() -> None:
    """Entities evicted while their windows are open: their registers go, their settled sums stay until the
    windows close, and every row is as with a retention that evicts nothing (calls still waiting for their end
    webhook, which the ticks at the end publish there, are published when they are evicted here)."""
    registers = [key for key in SETTLED.registers if not key.startswith(metric_state.SETTLED_PREFIX)]
    assert sum(SETTLED.evicted.values()) >= 8 and len(registers) < len(CLEAN.registers) * 0.6
    assert any(key.startswith(metric_state.SETTLED_PREFIX) for key in SETTLED.registers)
    assert SETTLED.sink.content() == CLEAN.sink.content()


@pytest.mark.parametrize("number", [5, 6, 7, 8, 9])
def test_a_crash_at_any_write_of_a_settling_batch_leaves_every_row_exact(number: int) -> None:
    """Batches that mark registers settled, write settled sums and tombstone the registers marked before."""
    total = SETTLED.writes[("entities", number)]
    for kept in range(total):
        for seed in (0, 1):
            crashed = run(("entities", number, kept, seed), **SETTLING_RUN).sink.content()
            assert crashed == SETTLED.sink.content(), (number, kept, seed)


@pytest.mark.parametrize("number", [5, 6, 7, 8, 9])
def test_a_crash_with_two_batches_in_flight_leaves_every_row_exact(number: int) -> None:
    """Writes of a batch are acknowledged only after the next: what must follow them (a settled sum after the
    mark, a register's or an entity's tombstone after what it was kept for) waits."""
    reference = run(in_flight=True, **SETTLING_RUN)
    assert reference.sink.content() == SETTLED.sink.content()
    total = reference.writes[("entities", number - 1)] + reference.writes[("entities", number)]
    for kept in range(total):
        crashed = run(("entities", number, kept, 0), in_flight=True, **SETTLING_RUN).sink.content()
        assert crashed == SETTLED.sink.content(), (number, kept)


def test_the_simulation_sees_a_batch_lost_without_replay() -> None:
    """The check has teeth: the same crashes with the crashed batch's input committed unprocessed lose windows."""
    total = CLEAN.writes[("entities", 2)]
    lossy = [kept for kept in range(0, total, 5)
             if run(("entities", 2, kept, 0), commit_anyway=True).sink.windows() != CLEAN.sink.windows()]
    assert lossy
