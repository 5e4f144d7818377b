"""ORM rows to response bodies."""

from typing import Any

from app.api.schemas import MemoryOut
from app.db.models import Memory


def memory_out(memory: Memory) -> MemoryOut:
    return MemoryOut(**memory_fields(memory))


def memory_fields(memory: Memory) -> dict[str, Any]:
    """A memory's response fields (read with `without_vectors()` where possible: none shows the vector)."""
    embedded = memory.embedded if memory.embedded is not None else memory.embedding is not None
    return dict(
        id=memory.id,
        type=memory.type,
        content=memory.content,
        user_id=memory.user_id,
        agent_id=memory.agent_id,
        session_id=memory.session_id,
        attributes=memory.attributes,
        metadata=memory.metadata_,
        importance=memory.importance,
        access_count=memory.access_count,
        last_accessed_at=memory.last_accessed_at,
        event_at=memory.event_at,
        created_at=memory.created_at,
        updated_at=memory.updated_at,
        valid_from=memory.valid_from,
        valid_to=memory.valid_to,
        expires_at=memory.expires_at,
        status=memory.status,
        superseded_by=memory.superseded_by,
        source=memory.source,
        trust=memory.trust,
        flags=list(memory.flags or ()),
        embedding_model=memory.embedding_model,
        embedding_status="ready" if embedded else "pending",
        version=memory.version,
    )
