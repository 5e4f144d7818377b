"""The scope a job works on, as SQL conditions on memories."""

import uuid
from typing import Any

from sqlalchemy import ColumnElement

from app.db.models import Memory


def scope_conditions(tenant_id: uuid.UUID, scope: dict[str, Any]) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [Memory.tenant_id == tenant_id]
    for column in ("user_id", "agent_id", "session_id"):
        if scope.get(column) is not None:
            conditions.append(getattr(Memory, column) == scope[column])
    return conditions
