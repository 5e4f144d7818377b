"""What Loci holds about one end user: row counts behind a data-subject request.

Everything derived from a user's memories (consolidation keys, links, the audit log with its
before/after snapshots) counts, soft-deleted memories included: they still hold the content.
"""

import uuid

from sqlalchemy import ColumnElement, ScalarSelect, func, or_, select
from sqlalchemy.orm import Session

from app.db.models import Base, Memory, MemoryEvent, MemoryKey, MemoryLink


def _count(model: type[Base], *conditions: ColumnElement[bool]) -> ScalarSelect[int]:
    return select(func.count()).select_from(model).where(*conditions).scalar_subquery()


def user_footprint(session: Session, tenant_id: uuid.UUID, user_id: str) -> dict[str, int]:
    """Rows per table that belong to `user_id` within the tenant, counted in one statement."""
    mine = select(Memory.id).where(Memory.tenant_id == tenant_id, Memory.user_id == user_id).scalar_subquery()
    row = session.execute(
        select(
            _count(Memory, Memory.tenant_id == tenant_id, Memory.user_id == user_id).label("memories"),
            _count(MemoryKey, MemoryKey.tenant_id == tenant_id, MemoryKey.memory_id.in_(mine)).label("memory_keys"),
            _count(
                MemoryLink,
                MemoryLink.tenant_id == tenant_id,
                or_(MemoryLink.src_id.in_(mine), MemoryLink.dst_id.in_(mine)),
            ).label("memory_links"),
            _count(MemoryEvent, MemoryEvent.tenant_id == tenant_id, MemoryEvent.memory_id.in_(mine)).label(
                "memory_events"
            ),
        )
    ).one()
    return dict(row._mapping)
