"""Lifecycle operations a caller asks for directly: feedback on procedures, restore, hard delete."""

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.api.schemas import Feedback
from app.db.models import Job, Memory, MemoryEvent
from app.errors import ApiError
from app.jobs.scope import hold_user, scope_conditions
from app.services.memory_store import get_memory, snapshot
from memory_types import MemoryType
from memory_types.lifecycle import procedure_utility


def record_feedback(
    session: Session, tenant_id: uuid.UUID, memory_id: uuid.UUID, feedback: Feedback, actor: str
) -> Memory:
    memory = get_memory(session, tenant_id, memory_id, for_update=True)
    if memory.type != MemoryType.procedural.value:
        raise ApiError(
            409, f"feedback applies to procedural memories; this one is {memory.type}", code="not_a_procedure"
        )
    if memory.status not in ("active", "archived"):
        raise ApiError(409, f"memory is {memory.status}", code="memory_inactive")
    before = snapshot(memory)
    attributes = dict(memory.attributes)
    counter = "successes" if feedback.outcome == "success" else "failures"
    attributes[counter] = int(attributes.get(counter, 0)) + 1
    memory.attributes = attributes
    memory.version += 1
    memory.updated_at = memory.last_accessed_at = datetime.now(UTC)
    memory.access_count += 1
    after = {**snapshot(memory), "utility": round(procedure_utility(attributes), 4)}
    session.add(
        MemoryEvent(
            tenant_id=tenant_id,
            memory_id=memory.id,
            op="feedback",
            before=before,
            after=after,
            actor=actor,
            reason=feedback.note,
        )
    )
    session.flush()
    return memory


def restore(session: Session, tenant_id: uuid.UUID, memory_id: uuid.UUID, actor: str) -> Memory:
    memory = get_memory(session, tenant_id, memory_id, for_update=True)
    if memory.status not in ("archived", "deleted"):
        raise ApiError(
            409,
            f"only archived or deleted memories can be restored; this one is {memory.status}",
            code="not_restorable",
        )
    before = snapshot(memory)
    now = datetime.now(UTC)
    memory.status, memory.version, memory.updated_at, memory.last_accessed_at = "active", memory.version + 1, now, now
    session.add(
        MemoryEvent(
            tenant_id=tenant_id, memory_id=memory.id, op="restore", before=before, after=snapshot(memory), actor=actor
        )
    )
    session.flush()
    return memory


def hard_delete_scope(session: Session, tenant_id: uuid.UUID, scope: dict[str, Any]) -> int:
    """Remove every memory of a scope and, by cascade, its keys, links and events; jobs recorded for
    the scope go too, since their scope names the user."""
    if all(scope.get(c) is None for c in ("user_id", "agent_id", "session_id")):
        raise ApiError(422, "give at least one of user_id, agent_id or session_id", details={"field": "scope"})
    hold_user(session, tenant_id, scope, erasing=True)
    result = session.execute(delete(Memory).where(*scope_conditions(tenant_id, scope)))
    if scope.get("user_id") is not None:
        jobs = select(Job.id).where(Job.tenant_id == tenant_id, Job.scope["user_id"].astext == scope["user_id"])
        session.execute(delete(Job).where(Job.id.in_(jobs)))
    return result.rowcount or 0
