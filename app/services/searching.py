"""Search as the API and CLI run it: embed the query, run the pipeline, load and score the rows."""

import logging
import time
import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.schemas import ScoreParts, SearchRequest, SearchResponse, SearchResult
from app.api.serialize import memory_fields
from app.db.models import Memory, without_vectors
from app.db.tenancy import tenant_session
from app.logs import content_fields
from app.runtime import Runtime
from app.services.limits import check_query_size
from app.services.tenants import Principal
from retrieval import SearchQuery, search
from retrieval.budget import within_budget
from retrieval.query import SearchParams

log = logging.getLogger(__name__)


def search_params(runtime: Runtime) -> SearchParams:
    s = runtime.settings
    return SearchParams(
        overfetch=s.search_overfetch,
        min_candidates=s.search_min_candidates,
        rrf_k=s.rrf_k,
        dense_weight=s.dense_weight,
        dense_min_spread=s.dense_min_spread,
        lexical_weight=s.lexical_weight,
        context_weight=s.context_weight,
        speaker_weight=s.speaker_weight,
        time_weight=s.time_weight,
        when_weight=s.when_weight,
        length_weight=s.length_weight,
        use_keys=s.memory_keys_searched,
        key_weight=s.key_weight,
        dense_exact_share=s.dense_exact_share,
    )


def _load_hits(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, Memory]:
    statement = select(Memory).where(Memory.id.in_(ids)).options(*without_vectors())
    return {memory.id: memory for memory in session.scalars(statement)}


def run_search(
    runtime: Runtime, principal: Principal, body: SearchRequest, count_access: bool = True
) -> SearchResponse:
    """count_access=False for a person inspecting memories (app.ui): looking is not an agent recalling."""
    started = time.perf_counter()
    check_query_size(body.query, runtime.settings)
    query = SearchQuery(
        tenant_id=principal.tenant_id,
        text=body.query,
        vector=runtime.queries.submit(body.query),
        k=body.k,
        user_id=body.user_id,
        agent_id=body.agent_id,
        session_id=body.session_id,
        types=tuple(t.value for t in body.types or ()),
        metadata_filters=body.metadata_filters(),
        as_of=body.as_of,
        include_superseded=body.include_superseded,
        min_trust=body.min_trust,
        exclude_flagged=body.exclude_flagged,
        asked_at=body.when_asked(datetime.now(UTC)),
        event_after=body.event_after,
        event_before=body.event_before,
    )
    # Generic plans: planning the candidate statement took 0.7 ms of its 2 ms, and its plan depends on
    # which filters are present, not their values (retrieval.candidates writes LIMITs as literals).
    with tenant_session(runtime, principal, generic_plans=True) as session:
        hits = search(session, query, search_params(runtime), runtime.dense_index, runtime.lexical_index)
        rows = _load_hits(session, [h.id for h in hits])
        results = [
            SearchResult(
                **memory_fields(rows[hit.id]),
                score=hit.fused,
                scores=ScoreParts(dense=hit.dense, lexical=hit.lexical, keys=hit.keys, fused=hit.fused),
            )
            for hit in hits
            if hit.id in rows
        ]
    if body.max_words is not None:
        results = within_budget(results, [len(r.content.split()) for r in results], body.max_words)
    if count_access and runtime.settings.track_access and results:
        # Being recalled is a use: it slows forgetting (memory_types.lifecycle.retention).
        runtime.access_counts.record(principal.tenant_id, [r.id for r in results])
    took_ms = (time.perf_counter() - started) * 1000.0
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "searched",
            extra={
                "tenant_id": str(principal.tenant_id),
                "k": body.k,
                "hits": [str(h.id) for h in hits],
                "took_ms": round(took_ms, 2),
                **content_fields(runtime.settings.log_content, query=body.query),
            },
        )
    return SearchResponse(results=results, took_ms=took_ms)
