"""How the metric registers, settled sums and window sums are written as JSON: window keys as their stable JSON
text (a key's bytes are its identity), a register's windows as a list of [key, contribution] pairs. Values written
by earlier versions are read as they would be written now (`contribution`, a register's missing `settled`)."""

from __future__ import annotations

from typing import Any

from streams.batch import state_codec as codec
from streams.batch.window_shares import Settled
from streams.domain.billing.metrics import Contribution, MetricEntity, WindowKey, WindowSum


def dump_key(key: WindowKey) -> str:
    return codec.key_text(list(key))


def load_key(text: str | bytes) -> WindowKey:
    return window_key(codec.loads(text))


def window_key(items: list[Any]) -> WindowKey:
    tenant, size, start, dimension, value = items
    return (str(tenant), str(size), int(start), str(dimension), str(value))


def dump_entity(state: MetricEntity) -> bytes:
    return codec.encode({"version": state["version"], "updated_at": state["updated_at"],
                         "partition": state["partition"], "settled": state["settled"],
                         "windows": [[list(w), c] for w, c in state["windows"].items()]})


def contribution(data: Any) -> Any:
    """A stored contribution as it is now: one written before windows kept concurrency edges holds its clipped
    intervals, ``{"start:end": calls}``, which become the same edges."""
    if data is None or "intervals" not in data:
        return data
    data = dict(data)
    edges: dict[str, int] = {}
    for interval, calls in data.pop("intervals").items():
        for at, delta in zip(interval.split(":"), (calls, -calls), strict=True):
            edges[at] = edges.get(at, 0) + delta
    data["edges"] = {at: delta for at, delta in edges.items() if delta}
    return data


def load_entity(text: str | bytes) -> MetricEntity:
    data = codec.loads(text)
    windows: dict[WindowKey, Contribution | None] = {window_key(w): contribution(c) for w, c in data["windows"]}
    return MetricEntity(version=data["version"], windows=windows, updated_at=data["updated_at"],
                        partition=data["partition"], settled=data.get("settled"))


def dump_sum(window: WindowSum) -> Any:
    """A window sum as JSON-ready data (for the state codec)."""
    return {"sum": window["sum"], "version": window["version"], "updated_at": window["updated_at"]}


def load_sum(data: Any) -> WindowSum:
    return WindowSum(sum=contribution(data["sum"]), version=data["version"], updated_at=data["updated_at"])


SETTLED_PREFIX = "settled/"


def settled_key(partition: int, window: WindowKey) -> str:
    """Where a partition's settled sum of a window is stored: in `metric_entities` beside the registers (whose keys
    start with their entity kind), so that both reach one changelog partition in the order they are written."""
    return f"{SETTLED_PREFIX}{partition}/{dump_key(window)}"


def dump_settled(settled: Settled) -> bytes:
    return codec.encode({"window": list(settled["window"]), "partition": settled["partition"],
                         "through": settled["through"], "clock": settled["clock"], **dump_sum(settled["share"])})


def load_settled(text: str | bytes) -> Settled:
    data = codec.loads(text)
    return Settled(window=window_key(data["window"]), partition=data["partition"], through=data["through"],
                   clock=data["clock"], share=load_sum(data))
