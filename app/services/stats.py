"""How many memories a tenant (or one of its users) holds, and how many still wait for their embedding."""

import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import Memory


def memory_stats(session: Session, tenant_id: uuid.UUID, user_id: str | None) -> dict[str, int]:
    """memories: every row not deleted; pending_embeddings: rows the embedding worker has yet to embed."""
    statement = select(
        func.count().filter(Memory.status != "deleted"),
        func.count().filter(Memory.embedding.is_(None)),
    ).where(Memory.tenant_id == tenant_id)
    if user_id is not None:
        statement = statement.where(Memory.user_id == user_id)
    memories, pending = session.execute(statement).one()
    return {"memories": memories, "pending_embeddings": pending}
