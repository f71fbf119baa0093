"""The test oracle of the metric windows: every window and every entity's last contribution in memory, folded
one record at a time with the domain functions (streams/domain/billing/metrics.py). The agents' tables must hold
what it holds."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from streams.batch import state_codec as codec
from streams.batch.metric_state import entity_json, entity_value
from streams.domain.billing.metrics import (
    Aggregate,
    EntityState,
    WindowKey,
    _ms,
    entity_key,
    replace,
    update_window,
    window_key,
    window_record,
)
from streams.domain.records import Record


class MetricsState:
    """Windows plus the last contribution of each entity (for retraction). Both maps are JSON-serializable.

    Window ``version`` is a per-window change counter (kept in the window's state), so the sink keeps the
    newest value; a window emptied by retractions is kept (and emitted with zeros) so that its version never
    restarts.
    """

    def __init__(self) -> None:
        self.windows: dict[WindowKey, Aggregate] = {}
        self.entities: dict[str, EntityState] = {}
        # Windows before this were dropped: late records must not resurrect them with partial sums.
        self.expired_before_ms = 0

    def upsert(self, record: Record, entity: str, now: datetime) -> set[WindowKey]:
        """Apply a record version; returns the windows whose value changed (to be emitted)."""
        key = entity_key(record, entity)
        replaced = replace(self.entities.get(key), record, entity)
        if replaced is None:
            return set()
        self.entities[key], changes = replaced
        live = {window: change for window, change in changes.items() if window[2] >= self.expired_before_ms}
        for window, (old, new) in live.items():
            self.windows[window] = update_window(self.windows.get(window), old, new, now)
        return set(live)

    def records(self, keys: Iterable[WindowKey] | None = None) -> list[Record]:
        chosen = sorted(self.windows if keys is None else keys)
        return [window_record(key, self.windows[key]) for key in chosen]

    def expire(self, before: datetime) -> None:
        """Forget windows that start before ``before`` and entities that only touched such windows."""
        limit = max(self.expired_before_ms, _ms(before))
        self.expired_before_ms = limit
        self.windows = {k: v for k, v in self.windows.items() if k[2] >= limit}
        self.entities = {
            k: v for k, v in self.entities.items() if any(key[2] >= limit for key in v["contributions"])
        }

    def to_json(self) -> str:
        return codec.dumps(
            {
                "expired_before_ms": self.expired_before_ms,
                "windows": [[list(k), v] for k, v in self.windows.items()],
                "entities": {k: entity_json(v) for k, v in self.entities.items()},
            }
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> MetricsState:
        data = codec.loads(text)
        state = cls()
        state.expired_before_ms = data.get("expired_before_ms", 0)
        state.windows = {window_key(k): v for k, v in data["windows"]}
        state.entities = {k: entity_value(v) for k, v in data["entities"].items()}
        return state
