"""Admin routes that move a tenant, user, agent or session out and back in as `loci-export` JSON Lines.

The export streams (memory use stays flat whatever the size). The import reads its body whole, so
it is bounded by LOCI_MAX_BODY_BYTES and the request deadline (LOCI_REQUEST_TIMEOUT_S); larger
files go through `loci import`, which streams a file with neither bound (docs/operations.md).
"""

import logging
import time
from collections.abc import Iterable, Iterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.api.deps import Admin, RuntimeDep
from app.db.tenancy import confined_session, tenant_session
from app.errors import ApiError
from app.services.portability import (
    ImportSummary,
    OnConflict,
    Scope,
    TargetModel,
    export_lines,
    export_records,
    import_lines,
    snapshot_sessions,
)

router = APIRouter(prefix="/v1/admin", tags=["admin"])
log = logging.getLogger(__name__)

NDJSON = "application/x-ndjson"
CHUNK_BYTES = 64 * 1024
# The import gives up (and rolls back) this far into the request deadline, so it never commits
# after the deadline already answered 503.
DEADLINE_SHARE = 0.9
ScopePart = Annotated[str | None, Query(min_length=1, max_length=200)]


def _chunks(lines: Iterable[str]) -> Iterator[bytes]:
    """Lines grouped into ~64 KiB writes: one send per line would cost more than the line."""
    buffer: list[bytes] = []
    size = 0
    for line in lines:
        data = line.encode()
        buffer.append(data)
        size += len(data)
        if size >= CHUNK_BYTES:
            yield b"".join(buffer)
            buffer, size = [], 0
    if buffer:
        yield b"".join(buffer)


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"description": "A loci-export file", "content": {NDJSON: {"schema": {"type": "string"}}}}},
    summary="Export memories, links, keys and history of the tenant or a scope as JSON Lines",
)
def export(
    runtime: RuntimeDep,
    principal: Admin,
    user_id: ScopePart = None,
    agent_id: ScopePart = None,
    session_id: ScopePart = None,
) -> StreamingResponse:
    scope = Scope(user_id, agent_id, session_id)
    with tenant_session(runtime, principal):  # the key re-checked now: the stream's own check comes after the 200
        pass
    log.info("export", extra={"tenant_id": str(principal.tenant_id), "key_id": str(principal.key_id)})

    def body() -> Iterator[bytes]:
        sessions = snapshot_sessions(runtime.engine)
        with confined_session(
            sessions, principal.tenant_id, runtime.settings.request_timeout_s, principal.key_id
        ) as session:
            model = runtime.embedder
            yield from _chunks(
                export_lines(export_records(session, principal.tenant_id, scope, model.model_name, model.dim))
            )

    headers = {"Content-Disposition": 'attachment; filename="loci-export.jsonl"'}
    return StreamingResponse(body(), media_type=NDJSON, headers=headers)


@router.post(
    "/import",
    response_model=ImportSummary,
    openapi_extra={"requestBody": {"required": True, "content": {NDJSON: {"schema": {"type": "string"}}}}},
    summary="Import a loci-export file into this tenant (all or nothing)",
)
async def import_file(
    request: Request,
    runtime: RuntimeDep,
    principal: Admin,
    on_conflict: Annotated[OnConflict, Query(description="An id already stored: fail the import, or skip it")] = "fail",
) -> ImportSummary:
    give_up_at = time.monotonic() + runtime.settings.request_timeout_s * DEADLINE_SHARE
    body = await request.body()

    def deadline() -> None:
        if time.monotonic() > give_up_at:
            raise ApiError(
                503, "the import ran past the request deadline and was rolled back; use `loci import`", code="timeout"
            )

    target = TargetModel(runtime.embedder.model_name, runtime.embedder.dim, runtime.embedder.embed)

    def work() -> ImportSummary:
        with tenant_session(runtime, principal) as session:
            summary = import_lines(session, principal.tenant_id, body.split(b"\n"), target, on_conflict, deadline)
            deadline()
            return summary

    summary = await run_in_threadpool(work)
    log.info(
        "import",
        extra={"tenant_id": str(principal.tenant_id), "key_id": str(principal.key_id), **summary.model_dump()},
    )
    return summary
