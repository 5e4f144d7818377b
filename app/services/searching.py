"""Search as the API and CLI run it: embed the query, run the pipeline, load and score the rows."""

import time
import uuid

from sqlalchemy import func, select, update

from app.api.schemas import ScoreParts, SearchRequest, SearchResponse, SearchResult
from app.api.serialize import memory_out
from app.db.models import Memory
from app.runtime import Runtime
from app.services.limits import check_query_size
from retrieval import SearchQuery, search
from retrieval.query import SearchParams


def search_params(runtime: Runtime) -> SearchParams:
    s = runtime.settings
    return SearchParams(
        overfetch=s.search_overfetch,
        min_candidates=s.search_min_candidates,
        ef_search=s.hnsw_ef_search,
        rrf_k=s.rrf_k,
        dense_weight=s.dense_weight,
        lexical_weight=s.lexical_weight,
        use_keys=s.use_memory_keys,
        key_weight=s.key_weight,
    )


def run_search(runtime: Runtime, tenant_id: uuid.UUID, body: SearchRequest) -> SearchResponse:
    started = time.perf_counter()
    check_query_size(body.query, runtime.settings)
    query = SearchQuery(
        tenant_id=tenant_id,
        text=body.query,
        embedding=runtime.embedder.embed([body.query])[0],
        k=body.k,
        user_id=body.user_id,
        agent_id=body.agent_id,
        session_id=body.session_id,
        types=tuple(t.value for t in body.types or ()),
        metadata_filters=body.metadata_filters(),
        as_of=body.as_of,
        include_superseded=body.include_superseded,
    )
    with runtime.sessions.begin() as session:
        hits = search(session, query, search_params(runtime))
        rows = {m.id: m for m in session.scalars(select(Memory).where(Memory.id.in_([h.id for h in hits])))}
        results = [
            SearchResult(
                **memory_out(rows[hit.id]).model_dump(),
                score=hit.fused,
                scores=ScoreParts(dense=hit.dense, lexical=hit.lexical, keys=hit.keys, fused=hit.fused),
            )
            for hit in hits
            if hit.id in rows
        ]
        if runtime.settings.track_access and hits:
            # Being recalled is a use: it slows forgetting (memory_types.lifecycle.retention).
            session.execute(
                update(Memory)
                .where(Memory.id.in_([h.id for h in hits]))
                .values(access_count=Memory.access_count + 1, last_accessed_at=func.now())
            )
    return SearchResponse(results=results, took_ms=(time.perf_counter() - started) * 1000.0)
