"""A memory's audit log as a person reads it: per event, the fields it changed and their new values."""

from dataclasses import dataclass
from typing import Any

from app.db.models import MemoryEvent

SHOWN_ON_CREATE = ("status", "version", "source", "trust")


@dataclass(frozen=True)
class Change:
    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class EventView:
    event: MemoryEvent
    changes: list[Change]


def changes(op: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[Change]:
    """Fields whose value differs; a create shows only the few that say how the memory began (its
    content and the rest are on the page)."""
    after = after or {}
    if op == "create":
        return [Change(name, None, after[name]) for name in SHOWN_ON_CREATE if name in after]
    before = before or {}
    names = sorted(set(before) | set(after))
    return [Change(n, before.get(n), after.get(n)) for n in names if before.get(n) != after.get(n)]


def event_views(events: list[MemoryEvent]) -> list[EventView]:
    return [EventView(e, changes(e.op, e.before, e.after)) for e in events]
