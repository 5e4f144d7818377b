"""Forgetting: archive what has expired, faded, proven useless, or overflows a scope's capacity.

Archiving is reversible (POST /v1/memories/{id}/restore); only an explicit hard delete removes data.
A dry run computes the same decisions and changes nothing.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, select, text
from sqlalchemy.orm import Session

from app.db.models import Memory, MemoryEvent
from app.jobs.scope import job_transaction, scope_conditions
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


# What a decision reads: never the vector or the text. `version` (bumped by every edit), the use
# count and the last use are what the archive checks again, since the read takes no locks.
DECISION_COLUMNS = (
    Memory.id,
    Memory.type,
    Memory.user_id,
    Memory.agent_id,
    Memory.importance,
    Memory.access_count,
    Memory.last_accessed_at,
    Memory.created_at,
    Memory.expires_at,
    Memory.attributes,
    Memory.version,
)

_ARCHIVE_UNCHANGED = text(
    """
    WITH seen AS (
        SELECT * FROM unnest(
            CAST(:ids AS uuid[]), CAST(:versions AS int[]), CAST(:uses AS int[]), CAST(:used AS timestamptz[])
        ) AS seen(id, version, uses, used)
        ORDER BY id
    )
    UPDATE memories m SET status = 'archived', updated_at = :now, version = m.version + 1
    FROM seen
    WHERE m.id = seen.id AND m.tenant_id = :tenant AND m.status = 'active' AND m.version = seen.version
      AND m.access_count = seen.uses AND m.last_accessed_at IS NOT DISTINCT FROM seen.used
    RETURNING m.id
    """
)
"""Archive the decided rows that no one used or edited since they were read, locking them in id order
(as the use-count flush does, app/jobs/access_counts.py); a row that changed waits for the next sweep."""


def decide(memories: Sequence[Row[Any]], now: datetime, threshold: float, capacity: int | None) -> list[Decision]:
    """Which active memories (rows of DECISION_COLUMNS) to archive, and why; the weakest go first when over capacity."""
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
        by_user: dict[tuple[str | None, str | None], list[Row[Any]]] = {}
        for memory in memories:
            if memory.id not in decisions:
                by_user.setdefault((memory.user_id, memory.agent_id), []).append(memory)
        for kept in by_user.values():
            overflow = len(kept) - capacity
            for memory in sorted(kept, key=lambda m: strength[m.id])[: max(0, overflow)]:
                decisions[memory.id] = Decision(memory.id, "over_capacity", strength[memory.id])
    return list(decisions.values())


def forget(runtime: Runtime, tenant_id: uuid.UUID, scope: dict[str, Any], dry_run: bool = False) -> dict[str, int]:
    """One pass over a scope's active memories. The read is a plain snapshot of the few columns a
    decision needs: whole rows read under FOR UPDATE (vectors parsed into Python, every row's lock
    written to its page) made a 10k user's pass with nothing to archive 0.75 s and ~22 MB of
    write-ahead log, against 0.09 s and none now (`loci bench jobs`), and held up use-count
    flushes meanwhile; the sweep makes one such pass per user every 15 minutes."""
    settings = runtime.settings
    runtime.access_counts.flush()  # this process's recent uses count (another process's land within a second)
    now = datetime.now(UTC)
    with job_transaction(runtime, tenant_id, scope) as session:
        memories = session.execute(
            select(*DECISION_COLUMNS).where(*scope_conditions(tenant_id, scope), Memory.status == "active")
        ).all()
        decisions = decide(memories, now, settings.forget_threshold, settings.scope_capacity)
        if not dry_run:
            decisions = archive_unchanged(session, tenant_id, decisions, {m.id: m for m in memories}, now)
    counts = {"examined": len(memories), "archived": len(decisions)}
    for reason in ("expired", "decayed", "useless_procedure", "over_capacity"):
        counts[reason] = sum(1 for d in decisions if d.reason == reason)
    return counts


def archive_unchanged(
    session: Session, tenant_id: uuid.UUID, decisions: list[Decision], seen: dict[uuid.UUID, Row[Any]], now: datetime
) -> list[Decision]:
    """Archive what is still as it was read; returns the decisions carried out."""
    if not decisions:
        return []
    rows = [seen[d.memory_id] for d in decisions]
    archived = set(
        session.scalars(
            _ARCHIVE_UNCHANGED,
            {
                "ids": [r.id for r in rows],
                "versions": [r.version for r in rows],
                "uses": [r.access_count for r in rows],
                "used": [r.last_accessed_at for r in rows],
                "tenant": tenant_id,
                "now": now,
            },
        )
    )
    done = [d for d in decisions if d.memory_id in archived]
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
        for d in done
    )
    return done
