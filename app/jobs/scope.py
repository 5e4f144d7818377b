"""The scope a job works on, as SQL conditions on memories, and the lock that keeps a job's
writes out of a user's erasure."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from app.db.advisory_locks import lock_names
from app.db.models import Memory

if TYPE_CHECKING:
    from app.runtime import Runtime


def scope_conditions(tenant_id: uuid.UUID, scope: dict[str, Any]) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [Memory.tenant_id == tenant_id]
    for column in ("user_id", "agent_id", "session_id"):
        if scope.get(column) is not None:
            conditions.append(getattr(Memory, column) == scope[column])
    return conditions


def hold_user(session: Session, tenant_id: uuid.UUID, scope: dict[str, Any], erasing: bool = False) -> None:
    """Take the scope's user's advisory lock for the rest of the transaction: shared by each of a
    job's transactions, before they read; exclusive by a hard delete of the user's memories. A
    delete reads the rows to remove when its statement starts, so the facts and summary that a
    consolidation running meanwhile committed after that were left behind, with their keys, links
    and events (19-21 rows in five of six tries, the user's footprint not zero after its
    erasure). Now the delete waits for the job's transaction in flight and removes what it wrote,
    and the job's next transaction finds nothing left to consolidate."""
    if scope.get("user_id") is None:
        return
    lock_names(session, [f"{tenant_id} user {scope['user_id']}"], shared=not erasing)


@contextmanager
def job_transaction(runtime: "Runtime", tenant_id: uuid.UUID, scope: dict[str, Any]) -> Iterator[Session]:
    """A transaction of a job on `scope`, committed at the end, holding its user (hold_user) from
    its first statement on."""
    with runtime.sessions.begin() as session:
        hold_user(session, tenant_id, scope)
        yield session
