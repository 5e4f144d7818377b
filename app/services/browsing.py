"""Reading memories the way a person browses them (app.ui): newest first within a time window, and
the links around one memory.

The API lists in insertion order for stable paging by machines; a person wants to see what happened
when, so browsing orders by a memory's time (when it happened, else when it was stored) and pages on
(time, seq), which stays stable while memories are added.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, or_, select, tuple_
from sqlalchemy.orm import Session

from app.db.models import Memory, MemoryLink, without_vectors


def memory_time() -> ColumnElement[datetime]:
    """When a memory happened, else when it was stored: the time a timeline places it at."""
    return func.coalesce(Memory.event_at, Memory.created_at)


@dataclass(frozen=True)
class BrowseFilters:
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    type: str | None = None
    status: str = "active"  # a status, or "all"
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive


def browse(
    session: Session, tenant_id: uuid.UUID, filters: BrowseFilters, limit: int, after_seq: int | None = None
) -> tuple[list[Memory], int | None]:
    """One page of memories, newest first, and the seq to pass as after_seq for the next page (or None)."""
    when = memory_time()
    statement = select(Memory).where(Memory.tenant_id == tenant_id)
    for column in ("user_id", "agent_id", "session_id", "type"):
        value = getattr(filters, column)
        if value is not None:
            statement = statement.where(getattr(Memory, column) == value)
    if filters.status != "all":
        statement = statement.where(Memory.status == filters.status)
    if filters.start is not None:
        statement = statement.where(when >= filters.start)
    if filters.end is not None:
        statement = statement.where(when < filters.end)
    if after_seq is not None:
        # An unknown seq (or another tenant's) makes the subquery NULL and the page empty.
        cursor_time = select(when).where(Memory.seq == after_seq, Memory.tenant_id == tenant_id).scalar_subquery()
        statement = statement.where(tuple_(when, Memory.seq) < tuple_(cursor_time, after_seq))
    rows = list(
        session.scalars(statement.order_by(when.desc(), Memory.seq.desc()).limit(limit + 1).options(*without_vectors()))
    )
    next_seq = rows[limit - 1].seq if len(rows) > limit else None
    return rows[:limit], next_seq


@dataclass(frozen=True)
class Neighbour:
    """A memory linked to the one in view; outgoing when the link points from that one to this."""

    kind: str
    outgoing: bool
    weight: float
    memory: Memory


def neighbours(session: Session, tenant_id: uuid.UUID, memory_id: uuid.UUID, limit: int) -> list[Neighbour]:
    """The memories linked to memory_id in either direction, strongest links first."""
    outgoing = MemoryLink.src_id == memory_id
    joined = or_(
        and_(outgoing, Memory.id == MemoryLink.dst_id),
        and_(MemoryLink.dst_id == memory_id, Memory.id == MemoryLink.src_id),
    )
    rows = session.execute(
        select(MemoryLink.kind, outgoing, MemoryLink.weight, Memory)
        .join(Memory, joined)
        .where(MemoryLink.tenant_id == tenant_id, or_(outgoing, MemoryLink.dst_id == memory_id))
        .order_by(MemoryLink.weight.desc(), MemoryLink.kind, Memory.seq)
        .limit(limit)
    ).all()
    return [Neighbour(kind, bool(out), weight, memory) for kind, out, weight, memory in rows]


def users(session: Session, tenant_id: uuid.UUID, limit: int) -> list[tuple[str, int]]:
    """The tenant's users with their memory counts, most memories first: where a timeline can start."""
    count = func.count()
    rows = session.execute(
        select(Memory.user_id, count)
        .where(Memory.tenant_id == tenant_id, Memory.user_id.is_not(None))
        .group_by(Memory.user_id)
        .order_by(count.desc(), Memory.user_id)
        .limit(limit)
    ).all()
    return [(user_id, n) for user_id, n in rows]
