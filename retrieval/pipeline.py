"""Search: candidates from each generator, fused, cut to k; each hit keeps its score components."""

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from retrieval.candidates import dense_candidates, key_candidates, lexical_candidates
from retrieval.faiss_index import FaissIndexes
from retrieval.fusion import reciprocal_rank_fusion
from retrieval.query import SearchParams, SearchQuery


@dataclass(frozen=True)
class Hit:
    id: Any
    fused: float
    dense: float | None
    lexical: float | None
    keys: float | None = None


def search(
    session: Session, query: SearchQuery, params: SearchParams, dense_index: FaissIndexes | None = None
) -> list[Hit]:
    """`dense_index` given: FAISS proposes the dense candidates instead of pgvector (same filters either way)."""
    limit = max(query.k * params.overfetch, params.min_candidates)
    dense_source = dense_index.candidates if dense_index is not None else dense_candidates
    dense = dense_source(session, query, limit, params.ef_search)
    lexical = lexical_candidates(session, query, limit)
    keys = key_candidates(session, query, limit) if params.use_keys else []
    fused = reciprocal_rank_fusion(
        [
            ([i for i, _ in dense], params.dense_weight),
            ([i for i, _ in lexical], params.lexical_weight),
            ([i for i, _ in keys], params.key_weight),
        ],
        rrf_k=params.rrf_k,
    )
    dense_scores, lexical_scores, key_scores = dict(dense), dict(lexical), dict(keys)

    def order(item: tuple[Any, float]) -> tuple[float, float]:
        # Equal fused ranks are common with few candidates; the closer cosine match (content or key) wins.
        best_cosine = max(dense_scores.get(item[0], -1.0), key_scores.get(item[0], -1.0))
        return item[1], best_cosine

    ranked = sorted(fused.items(), key=order, reverse=True)[: query.k]
    return [Hit(i, score, dense_scores.get(i), lexical_scores.get(i), key_scores.get(i)) for i, score in ranked]
