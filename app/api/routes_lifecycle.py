"""Lifecycle routes on memories and users: procedure feedback, restore, and hard deletes of scopes."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.convertors import PathConvertor, register_url_convertor

from app.api.deps import RuntimeDep, Writer
from app.api.schemas import DeletedCount, Feedback, MemoryOut
from app.api.serialize import memory_out
from app.db.tenancy import tenant_session
from app.services import lifecycle

router = APIRouter(prefix="/v1", tags=["lifecycle"])


class UserPathConvertor(PathConvertor):
    """A user id in a path: slashes allowed, but not ending in "/footprint".

    Otherwise `DELETE /v1/users/ana/footprint` would hard-delete a user named "ana/footprint" (none,
    so 200 with 0 deleted) while the caller believes Ana's data is gone. It is a 405 now (the
    footprint is read-only); a user whose id does end so is deleted by `DELETE /v1/memories?user_id=`.
    """

    regex = ".+(?<!/footprint)"


register_url_convertor("user_id", UserPathConvertor())


@router.post("/memories/{memory_id}/feedback", response_model=MemoryOut, summary="Record a procedure's outcome")
def procedure_feedback(memory_id: uuid.UUID, body: Feedback, runtime: RuntimeDep, principal: Writer) -> MemoryOut:
    with tenant_session(runtime, principal) as session:
        memory = lifecycle.record_feedback(session, principal.tenant_id, memory_id, body, f"key:{principal.key_id}")
        return memory_out(memory)


@router.post(
    "/memories/{memory_id}/restore", response_model=MemoryOut, summary="Bring back an archived or deleted memory"
)
def restore_memory(memory_id: uuid.UUID, runtime: RuntimeDep, principal: Writer) -> MemoryOut:
    with tenant_session(runtime, principal) as session:
        return memory_out(lifecycle.restore(session, principal.tenant_id, memory_id, f"key:{principal.key_id}"))


@router.delete("/users/{user_id:user_id}", response_model=DeletedCount, summary="Hard-delete everything of one user")
def delete_user(user_id: Annotated[str, Path(max_length=200)], runtime: RuntimeDep, principal: Writer) -> DeletedCount:
    with tenant_session(runtime, principal) as session:
        return DeletedCount(deleted=lifecycle.hard_delete_scope(session, principal.tenant_id, {"user_id": user_id}))


@router.delete("/memories", response_model=DeletedCount, summary="Hard-delete every memory of a scope")
def delete_scope(
    runtime: RuntimeDep,
    principal: Writer,
    user_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    agent_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    session_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> DeletedCount:
    scope = {"user_id": user_id, "agent_id": agent_id, "session_id": session_id}
    with tenant_session(runtime, principal) as session:
        return DeletedCount(deleted=lifecycle.hard_delete_scope(session, principal.tenant_id, scope))
