"""Search: candidates from each generator, fused, cut to k; each hit keeps its score components."""

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from retrieval.candidates import dense_candidates, lexical_candidates
from retrieval.fusion import reciprocal_rank_fusion
from retrieval.query import SearchParams, SearchQuery


@dataclass(frozen=True)
class Hit:
    id: Any
    fused: float
    dense: float | None
    lexical: float | None


def search(session: Session, query: SearchQuery, params: SearchParams) -> list[Hit]:
    limit = max(query.k * params.overfetch, params.min_candidates)
    dense = dense_candidates(session, query, limit, params.ef_search)
    lexical = lexical_candidates(session, query, limit)
    fused = reciprocal_rank_fusion(
        [([i for i, _ in dense], params.dense_weight), ([i for i, _ in lexical], params.lexical_weight)],
        rrf_k=params.rrf_k,
    )
    dense_scores, lexical_scores = dict(dense), dict(lexical)
    ranked = sorted(fused.items(), key=lambda item: item[1], reverse=True)[: query.k]
    return [Hit(i, score, dense_scores.get(i), lexical_scores.get(i)) for i, score in ranked]
