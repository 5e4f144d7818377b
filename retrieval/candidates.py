"""Candidate generators: dense (pgvector HNSW) and lexical (Postgres full-text), each over-fetched."""

from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from retrieval.filters import memory_filter
from retrieval.query import SearchQuery

# How many ts_rank candidates per wanted lexical candidate get the (costly) ts_rank_cd ordering.
LEXICAL_PREFETCH = 4


ANY_TERM_QUERY = "CAST(replace(CAST(plainto_tsquery('english', :qtext) AS text), '&', '|') AS tsquery)"
"""The query's stemmed terms OR-ed: a question rarely shares every word with its answer."""


PROPOSED_ROWS = "proposed AS MATERIALIZED (SELECT * FROM memories WHERE id = ANY(:ids))"
"""The proposed rows by primary key, then the filter on just those: left to itself the planner ANDs the
primary-key bitmap with the scope index's, which reads every row id of the scope (1.5 ms at 10k of a
100k tenant, and growing with the scope)."""


def _vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in vector.tolist()) + "]"


def dense_candidates(session: Session, query: SearchQuery, limit: int, ef_search: int) -> list[tuple[Any, float]]:
    """(id, cosine similarity), best first. Iterative index scans keep filtered queries returning `limit`."""
    where, params = memory_filter(query)
    session.execute(  # one round trip for both settings
        text(
            "SELECT set_config('hnsw.ef_search', :ef, true), set_config('hnsw.iterative_scan', 'relaxed_order', true)"
        ),
        {"ef": str(int(ef_search))},
    )
    # relaxed_order may return rows slightly out of order; the materialised CTE re-sorts them exactly.
    rows = session.execute(
        text(
            f"""
            WITH c AS MATERIALIZED (
                SELECT m.id, m.embedding <=> CAST(:qvec AS vector) AS distance
                FROM memories m
                WHERE {where} AND m.embedding IS NOT NULL
                ORDER BY m.embedding <=> CAST(:qvec AS vector)
                LIMIT :limit
            )
            SELECT id, distance FROM c ORDER BY distance
            """
        ),
        {**params, "qvec": _vector_literal(query.embedding), "limit": limit},
    ).all()
    return [(row.id, 1.0 - float(row.distance)) for row in rows]


def filtered_cosines(session: Session, query: SearchQuery, ids: list[Any]) -> dict[Any, float | None]:
    """The proposed ids that pass the query's full filter, with their cosine (None while embedding is pending)."""
    if not ids:
        return {}
    where, params = memory_filter(query)
    rows = session.execute(
        text(
            f"""
            WITH {PROPOSED_ROWS}
            SELECT m.id, 1 - (m.embedding <=> CAST(:qvec AS vector)) AS cosine
            FROM proposed m
            WHERE {where}
            """
        ),
        {**params, "qvec": _vector_literal(query.embedding), "ids": ids},
    ).all()
    return {row.id: None if row.cosine is None else float(row.cosine) for row in rows}


def key_candidates(session: Session, query: SearchQuery, limit: int) -> list[tuple[Any, float]]:
    """Memories reached through their index keys (facts, keywords, summaries from consolidation),
    by dense and lexical match on the key text; (memory id, best key similarity or rank)."""
    where, params = memory_filter(query)
    rows = session.execute(
        text(
            f"""
            WITH q AS (
                SELECT {ANY_TERM_QUERY} AS tsq
            ),
            dense AS MATERIALIZED (
                SELECT k.memory_id AS id, 1 - (k.embedding <=> CAST(:qvec AS vector)) AS score
                FROM memory_keys k JOIN memories m ON m.id = k.memory_id
                WHERE {where} AND k.embedding IS NOT NULL
                ORDER BY k.embedding <=> CAST(:qvec AS vector)
                LIMIT :limit
            ),
            lexical AS MATERIALIZED (
                SELECT k.memory_id AS id, ts_rank_cd(k.text_tsv, q.tsq) AS score
                FROM memory_keys k JOIN memories m ON m.id = k.memory_id, q
                WHERE {where} AND k.text_tsv @@ q.tsq
                ORDER BY score DESC
                LIMIT :limit
            ),
            ranked AS (
                SELECT id, score, row_number() OVER (ORDER BY score DESC, id) AS r FROM dense
                UNION ALL
                SELECT id, score, row_number() OVER (ORDER BY score DESC, id) AS r FROM lexical
            )
            SELECT id, max(score) AS score, sum(1.0 / (60 + r)) AS rrf FROM ranked GROUP BY id
            ORDER BY rrf DESC, score DESC, id LIMIT :limit
            """
        ),
        {**params, "qtext": query.text, "qvec": _vector_literal(query.embedding), "limit": limit},
    ).all()
    return [(row.id, float(row.score)) for row in rows]


def lexical_candidates(session: Session, query: SearchQuery, limit: int) -> list[tuple[Any, float]]:
    """(id, ts_rank_cd), best first. Query terms are OR-ed: a question rarely shares every word with its answer.

    An OR of common words matches thousands of rows, and ts_rank_cd costs about 10 us a row against
    1 us for ts_rank; so ts_rank picks the best LEXICAL_PREFETCH x limit and ts_rank_cd orders only
    those (on 10k memories: same top 50 on 40 of 40 benchmark queries, 4x faster; docs/performance.md).
    """
    where, params = memory_filter(query)
    rows = session.execute(
        text(
            f"""
            WITH q AS (
                SELECT {ANY_TERM_QUERY} AS tsq
            ),
            pre AS MATERIALIZED (
                SELECT m.id, m.seq, m.content_tsv
                FROM memories m, q
                WHERE {where} AND m.content_tsv @@ q.tsq
                ORDER BY ts_rank(m.content_tsv, q.tsq) DESC, m.seq
                LIMIT :prefetch
            )
            SELECT pre.id, ts_rank_cd(pre.content_tsv, q.tsq) AS rank
            FROM pre, q
            ORDER BY rank DESC, pre.seq
            LIMIT :limit
            """
        ),
        {**params, "qtext": query.text, "limit": limit, "prefetch": LEXICAL_PREFETCH * limit},
    ).all()
    return [(row.id, float(row.rank)) for row in rows]
