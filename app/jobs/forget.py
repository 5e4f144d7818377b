"""Forgetting: archive what has expired, faded, proven useless, or overflows a scope's capacity.

Archiving is reversible (POST /v1/memories/{id}/restore); only an explicit hard delete removes data.
A dry run computes the same decisions and changes nothing.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db.models import Memory, MemoryEvent
from app.jobs.scope import scope_conditions
from app.runtime import Runtime
from memory_types import MemoryType
from memory_types.lifecycle import procedure_is_useless, retention

ACTOR = "job:forget"


@dataclass(frozen=True)
class Decision:
    memory_id: uuid.UUID
    reason: str
    """expired | decayed | useless_procedure | over_capacity"""
    strength: float


def decide(memories: list[Memory], now: datetime, threshold: float, capacity: int | None) -> list[Decision]:
    """Which active memories to archive, and why; the weakest go first when over capacity."""
    decisions: dict[uuid.UUID, Decision] = {}
    strength: dict[uuid.UUID, float] = {}
    for memory in memories:
        last_used = memory.last_accessed_at or memory.created_at
        strength[memory.id] = retention(MemoryType(memory.type), memory.importance, memory.access_count, last_used, now)
        if memory.expires_at is not None and memory.expires_at <= now:
            decisions[memory.id] = Decision(memory.id, "expired", strength[memory.id])
        elif memory.type == MemoryType.procedural.value and procedure_is_useless(memory.attributes):
            decisions[memory.id] = Decision(memory.id, "useless_procedure", strength[memory.id])
        elif strength[memory.id] < threshold:
            decisions[memory.id] = Decision(memory.id, "decayed", strength[memory.id])
    if capacity is not None:
        by_user: dict[tuple[str | None, str | None], list[Memory]] = {}
        for memory in memories:
            if memory.id not in decisions:
                by_user.setdefault((memory.user_id, memory.agent_id), []).append(memory)
        for kept in by_user.values():
            overflow = len(kept) - capacity
            for memory in sorted(kept, key=lambda m: strength[m.id])[: max(0, overflow)]:
                decisions[memory.id] = Decision(memory.id, "over_capacity", strength[memory.id])
    return list(decisions.values())


def forget(runtime: Runtime, tenant_id: uuid.UUID, scope: dict[str, Any], dry_run: bool = False) -> dict[str, int]:
    settings = runtime.settings
    runtime.access_counts.flush()  # this process's recent uses count (another process's land within a second)
    now = datetime.now(UTC)
    with runtime.sessions.begin() as session:
        memories = list(
            session.scalars(
                select(Memory)
                .where(*scope_conditions(tenant_id, scope), Memory.status == "active")
                .with_for_update(skip_locked=True)
            )
        )
        decisions = decide(memories, now, settings.forget_threshold, settings.scope_capacity)
        if not dry_run:
            _archive(session, tenant_id, decisions, now)
    counts = {"examined": len(memories), "archived": len(decisions)}
    for reason in ("expired", "decayed", "useless_procedure", "over_capacity"):
        counts[reason] = sum(1 for d in decisions if d.reason == reason)
    return counts


def _archive(session: Session, tenant_id: uuid.UUID, decisions: list[Decision], now: datetime) -> None:
    if not decisions:
        return
    session.execute(
        update(Memory)
        .where(Memory.id.in_([d.memory_id for d in decisions]))
        .values(status="archived", updated_at=now, version=Memory.version + 1)
    )
    session.add_all(
        MemoryEvent(
            tenant_id=tenant_id,
            memory_id=d.memory_id,
            op="archive",
            before={"status": "active"},
            after={"status": "archived", "strength": round(d.strength, 4)},
            actor=ACTOR,
            reason=d.reason,
        )
        for d in decisions
    )
