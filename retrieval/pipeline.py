"""Search: candidates from each generator, fused, cut to k; each hit keeps its score components.

With a BM25 index (the default) every candidate gets every view's score (dense cosine, content and
context BM25, speaker named, period named, time told for a question asking when, key rank) and the standardised scores are summed with weights (retrieval/fusion.py).
Without one (LOCI_LEXICAL_BACKEND=postgres, or a scope too large to index in process) the lists
from pgvector and Postgres full text are fused by reciprocal rank.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from retrieval.candidates import (
    dense_candidates,
    filtered_cosines,
    key_candidates,
    lexical_candidates,
    proposals_with_cosines,
)
from retrieval.faiss_index import FaissIndexes
from retrieval.fusion import reciprocal_rank_fusion, standardised_sum
from retrieval.lexical_index import LexicalIndexes, LexicalScores
from retrieval.query import SearchParams, SearchQuery

LENGTH_MIN_SPREAD = 0.5
"""The least spread of log lengths the length view is divided by: among a handful of candidates, two
turns of 8 and 6 words would otherwise be as far apart as a turn the question names and one it does not."""


@dataclass(frozen=True)
class Hit:
    id: Any
    fused: float
    dense: float | None
    lexical: float | None
    keys: float | None = None


def search(
    session: Session,
    query: SearchQuery,
    params: SearchParams,
    dense_index: FaissIndexes | None = None,
    lexical_index: LexicalIndexes | None = None,
) -> list[Hit]:
    """`dense_index` given: FAISS proposes the dense candidates instead of pgvector (same filters either way)."""
    limit = max(query.k * params.overfetch, params.min_candidates)
    # Lexical first: it needs only the text, so it runs while the query vector may still be computed.
    lexical = lexical_index.scores(session, query) if lexical_index is not None else None
    if lexical is None:
        dense = _dense(session, query, limit, dense_index)
        keys = key_candidates(session, query, limit, lexical=True) if params.use_keys else []
        return _rank_fusion(dense, lexical_candidates(session, query, limit), keys, query.k, params)
    lexical_ids = list(dict.fromkeys(lexical.top("content", limit) + lexical.top("context", limit)))
    if dense_index is None:
        dense, keys, cosines = proposals_with_cosines(
            session, query, limit, lexical_ids, params.use_keys, len(lexical.ids), params.dense_exact_share
        )
    else:
        dense = dense_index.candidates(session, query, limit)
        keys = (
            key_candidates(
                session, query, limit, lexical=False, scope_rows=len(lexical.ids), exact_share=params.dense_exact_share
            )
            if params.use_keys
            else []
        )
        proposed = [i for i, _ in dense] + lexical_ids + [i for i, _ in keys]
        cosines = filtered_cosines(session, query, list(dict.fromkeys(proposed)))
    return _score_fusion(params, query.k, dense, lexical, keys, lexical_ids, cosines)


def _dense(
    session: Session, query: SearchQuery, limit: int, dense_index: FaissIndexes | None
) -> list[tuple[Any, float]]:
    if dense_index is None:
        return dense_candidates(session, query, limit)
    return dense_index.candidates(session, query, limit)


def _score_fusion(
    params: SearchParams,
    k: int,
    dense: list[tuple[Any, float]],
    lexical: LexicalScores,
    keys: list[tuple[Any, float]],
    lexical_ids: list[Any],
    cosines: dict[Any, float | None],
) -> list[Hit]:
    """Every proposal that passed the filter (it has an entry in `cosines`), scored by every view."""
    proposed = list(dict.fromkeys([i for i, _ in dense] + lexical_ids + [i for i, _ in keys]))
    ids = [i for i in proposed if i in cosines]
    if not ids:
        return []
    known = [c for c in cosines.values() if c is not None]
    floor = min(known) if known else 0.0
    dense_scores = np.array([floor if cosines[i] is None else cosines[i] for i in ids])  # pending embeddings
    views = lexical.of(ids)
    key_rank = {memory_id: 1.0 / (params.rrf_k + rank) for rank, (memory_id, _) in enumerate(keys, start=1)}
    key_scores = np.array([key_rank.get(i, 0.0) for i in ids])
    fused = standardised_sum(
        [
            (dense_scores, params.dense_weight, params.dense_min_spread),
            (views["content"], params.lexical_weight),
            (views["context"], params.context_weight),
            (views["speaker"], params.speaker_weight),
            (views["time"], params.time_weight),
            (views["when"], params.when_weight),
            (views["length"], params.length_weight, LENGTH_MIN_SPREAD),
            (key_scores, params.key_weight),
        ]
    )
    best_key = dict(keys)
    order = np.argsort(-fused, kind="stable")[:k]
    return [
        Hit(ids[i], float(fused[i]), cosines[ids[i]], float(views["content"][i]), best_key.get(ids[i]))
        for i in order.tolist()
    ]


def _rank_fusion(
    dense: list[tuple[Any, float]],
    lexical: list[tuple[Any, float]],
    keys: list[tuple[Any, float]],
    k: int,
    params: SearchParams,
) -> list[Hit]:
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

    ranked = sorted(fused.items(), key=order, reverse=True)[:k]
    return [Hit(i, score, dense_scores.get(i), lexical_scores.get(i), key_scores.get(i)) for i, score in ranked]
