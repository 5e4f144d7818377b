"""POST /v1/search: hybrid retrieval within the caller's tenant."""

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from app.api.deps import Reader, RuntimeDep
from app.api.schemas import SearchRequest, SearchResponse
from app.services.searching import run_search

router = APIRouter(prefix="/v1", tags=["search"])


@router.post("/search", response_model=SearchResponse, summary="Hybrid dense + lexical search within a scope")
async def search_memories(body: SearchRequest, runtime: RuntimeDep, principal: Reader) -> SearchResponse:
    # async with one explicit hop: a sync route would cost a second thread hop to validate the response.
    return await run_in_threadpool(run_search, runtime, principal, body)
