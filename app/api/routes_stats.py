"""GET /v1/stats: counts for the caller's tenant, so a bulk loader can wait for deferred embeddings
(and, before measuring search, for the words the service still learns for query expansion)."""

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from app.api.deps import Reader, RuntimeDep
from app.db.tenancy import tenant_session
from app.services.stats import memory_stats

router = APIRouter(prefix="/v1", tags=["stats"])


class Stats(BaseModel):
    memories: int
    pending_embeddings: int
    pending_words: int = Field(
        description="Words of indexed memories this server process is still embedding for query expansion "
        "(retrieval/term_expansion.py): searches expand with every word once it is 0. Not per tenant."
    )


@router.get("/stats", response_model=Stats, summary="Memory count and embeddings still pending")
def stats(
    runtime: RuntimeDep,
    principal: Reader,
    user_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> Stats:
    with tenant_session(runtime, principal) as session:
        counts = memory_stats(session, principal.tenant_id, user_id)
    lexical = runtime.lexical_index
    return Stats(**counts, pending_words=lexical.pending_words if lexical is not None else 0)
