"""Memory routes: create (single, batch, chat messages), read, list, change, delete, history."""

import json
import logging
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from app.api.deps import Reader, RuntimeDep, Writer
from app.api.schemas import (
    DeleteResponse,
    EventOut,
    HistoryResponse,
    IdsResponse,
    MemoryBatch,
    MemoryCreate,
    MemoryOut,
    MemoryPage,
    MemoryPatch,
    MessagesCreate,
)
from app.api.serialize import memory_out
from app.db.tenancy import tenant_session
from app.errors import ApiError
from app.logs import content_fields
from app.services import memory_store
from app.services.limits import check_batch_size, check_memory_sizes
from app.services.tenants import Principal
from memory_types import MemoryType

router = APIRouter(prefix="/v1", tags=["memories"])
log = logging.getLogger(__name__)

# A write that lost the race for its idempotency key runs once more and finds the winner's id; a
# third try only if the winner was deleted meanwhile and another write took the key again.
IDEMPOTENCY_ATTEMPTS = 3
_CREATE_BODY = TypeAdapter(MemoryCreate | MemoryBatch).json_schema(ref_template="#/components/schemas/{model}")


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise ApiError(422, f"body is not valid JSON: {exc}", code="validation_error") from None


def _parse_create(body: Any, runtime: RuntimeDep) -> tuple[list[MemoryCreate], bool]:
    """One memory or {"memories": [...]}; checks counts before validating, so a huge batch fails fast."""
    batched = isinstance(body, dict) and "memories" in body
    if batched and isinstance(body["memories"], list):
        check_batch_size(len(body["memories"]), runtime.settings)
    try:
        items = MemoryBatch.model_validate(body).memories if batched else [MemoryCreate.model_validate(body)]
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False, include_context=False)]
        ) from None
    check_memory_sizes([(i.content, i.metadata) for i in items], runtime.settings, batched)
    return items, batched


@router.post(
    "/memories",
    status_code=201,
    response_model=IdsResponse,
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _CREATE_BODY}}}},
    summary="Store one memory, or a batch of up to 1000 (all or nothing)",
)
async def create_memories(request: Request, runtime: RuntimeDep, principal: Writer) -> IdsResponse:
    items, _ = _parse_create(await _json_body(request), runtime)
    return await _store(runtime, principal, items, f"key:{principal.key_id}")


async def _store(runtime: RuntimeDep, principal: Principal, items: list[MemoryCreate], actor: str) -> IdsResponse:
    tenant_id = principal.tenant_id
    # Large batches return once committed; the embedding worker embeds them (lexical search sees them at once).
    embed = len(items) < runtime.settings.async_embed_batch_min

    def work() -> list[uuid.UUID]:
        vectors = memory_store.embed_items(runtime.embedder, items, embed)  # before the transaction opens
        attempts_left = IDEMPOTENCY_ATTEMPTS
        while True:
            try:
                with tenant_session(runtime, principal) as session:
                    return memory_store.create_memories(
                        session, tenant_id, items, vectors, actor, runtime.settings.near_duplicate_threshold
                    )
            except IntegrityError as exc:
                attempts_left -= 1
                if attempts_left == 0 or not memory_store.lost_an_idempotency_race(exc):
                    raise

    ids = await run_in_threadpool(work)
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "stored memories",
            extra={
                "tenant_id": str(tenant_id),
                "ids": [str(i) for i in ids],
                **content_fields(runtime.settings.log_content, contents=[item.content for item in items]),
            },
        )
    if not embed and runtime.embedding_worker is not None:
        runtime.embedding_worker.notify()
    return IdsResponse(ids=ids)


@router.post(
    "/messages", status_code=201, response_model=IdsResponse, summary="Store chat messages as episodic memories"
)
async def create_messages(payload: MessagesCreate, runtime: RuntimeDep, principal: Writer) -> IdsResponse:
    check_batch_size(len(payload.messages), runtime.settings)
    check_memory_sizes([(m.content, None) for m in payload.messages], runtime.settings, batched=True)
    items = memory_store.messages_to_memories(payload)
    return await _store(runtime, principal, items, f"key:{principal.key_id}")


@router.get("/memories/{memory_id}", response_model=MemoryOut)
def get_memory(memory_id: uuid.UUID, runtime: RuntimeDep, principal: Reader) -> MemoryOut:
    with tenant_session(runtime, principal) as session:
        return memory_out(memory_store.get_memory(session, principal.tenant_id, memory_id))


@router.patch("/memories/{memory_id}", response_model=MemoryOut)
def patch_memory(memory_id: uuid.UUID, patch: MemoryPatch, runtime: RuntimeDep, principal: Writer) -> MemoryOut:
    check_memory_sizes([(patch.content, patch.metadata)], runtime.settings, batched=False)
    with tenant_session(runtime, principal) as session:
        text = memory_store.text_to_embed(session, principal.tenant_id, memory_id, patch)
    prepared = None if text is None else memory_store.PreparedVector(text, runtime.embedder.embed([text])[0])
    with tenant_session(runtime, principal) as session:
        memory = memory_store.update_memory(
            session, principal.tenant_id, memory_id, patch, runtime.embedder, f"key:{principal.key_id}", prepared
        )
        return memory_out(memory)


@router.delete("/memories/{memory_id}", response_model=DeleteResponse)
def delete_memory(memory_id: uuid.UUID, runtime: RuntimeDep, principal: Writer, hard: bool = False) -> DeleteResponse:
    with tenant_session(runtime, principal) as session:
        memory_store.delete_memory(session, principal.tenant_id, memory_id, hard, f"key:{principal.key_id}")
    return DeleteResponse(id=memory_id, deleted="hard" if hard else "soft")


@router.get("/memories", response_model=MemoryPage)
def list_memories(
    runtime: RuntimeDep,
    principal: Reader,
    user_id: Annotated[str | None, Query(max_length=200)] = None,
    agent_id: Annotated[str | None, Query(max_length=200)] = None,
    session_id: Annotated[str | None, Query(max_length=200)] = None,
    type: MemoryType | None = None,
    status: Literal["active", "superseded", "archived", "deleted", "all"] = "active",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> MemoryPage:
    filters = {"user_id": user_id, "agent_id": agent_id, "session_id": session_id, "type": type.value if type else None}
    with tenant_session(runtime, principal) as session:
        memories, next_cursor = memory_store.list_memories(session, principal.tenant_id, filters, status, limit, cursor)
        return MemoryPage(memories=[memory_out(m) for m in memories], next_cursor=next_cursor)


@router.get("/memories/{memory_id}/history", response_model=HistoryResponse)
def memory_history(memory_id: uuid.UUID, runtime: RuntimeDep, principal: Reader) -> HistoryResponse:
    with tenant_session(runtime, principal) as session:
        events = memory_store.memory_history(session, principal.tenant_id, memory_id)
        return HistoryResponse(events=[EventOut.model_validate(e, from_attributes=True) for e in events])
