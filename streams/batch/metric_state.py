"""How the per-tenant agent's metric state is written to its tables: window keys as their stable JSON text (a
key's bytes are its identity) and entity states as JSON with their window keys as lists."""

from __future__ import annotations

from typing import Any

from streams.batch import state_codec as codec
from streams.domain.billing.metrics import EntityState, WindowKey, window_key


def dump_key(key: WindowKey) -> str:
    return codec.key_text(list(key))


def load_key(text: str | bytes) -> WindowKey:
    return window_key(codec.loads(text))


def entity_json(state: EntityState) -> dict[str, Any]:
    return {"version": state["version"], "contributions": [[list(w), c] for w, c in state["contributions"].items()]}


def entity_value(data: dict[str, Any]) -> EntityState:
    return {"version": data["version"], "contributions": {window_key(w): c for w, c in data["contributions"]}}


def dump_entity(state: EntityState) -> bytes:
    return codec.encode(entity_json(state))


def load_entity(text: str | bytes) -> EntityState:
    return entity_value(codec.loads(text))
