"""Candidate generators: dense (pgvector HNSW), index keys and lexical (Postgres full-text), each over-fetched."""

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from retrieval.filters import memory_filter, scope_filter
from retrieval.query import SearchQuery

# How many ts_rank candidates per wanted lexical candidate get the (costly) ts_rank_cd ordering.
LEXICAL_PREFETCH = 4


ANY_TERM_QUERY = "CAST(replace(CAST(plainto_tsquery('english', :qtext) AS text), '&', '|') AS tsquery)"
"""The query's stemmed terms OR-ed: a question rarely shares every word with its answer."""


PROPOSED_ROWS = "proposed AS MATERIALIZED (SELECT * FROM memories WHERE id = ANY(:ids))"
"""The proposed rows by primary key, then the filter on just those: left to itself the planner ANDs the
primary-key bitmap with the scope index's, which reads every row id of the scope (1.5 ms at 10k of a
100k tenant, and growing with the scope)."""


def _exact_choice(name: str, table: str) -> str:
    """A CTE `name` whose `chosen` says whether a scope of :scope_rows memories is at most
    :exact_share of `table`'s planner row count: then its dense matches are found exactly."""
    return f"""{name} AS (
    SELECT coalesce(CAST(:scope_rows AS bigint) < :exact_share * reltuples, false) AS chosen
    FROM pg_class WHERE oid = CAST('{table}' AS regclass)
)"""


_DENSE_ROWS = (
    _exact_choice("exact_scan", "memories")
    + """,
dense_rows AS MATERIALIZED (
    (SELECT m.id, m.embedding <=> CAST(:qvec AS vector) AS distance
    FROM memories m
    WHERE {where} AND m.embedding IS NOT NULL AND NOT (SELECT chosen FROM exact_scan)
    ORDER BY m.embedding <=> CAST(:qvec AS vector)
    LIMIT {limit:d})
    UNION ALL
    (SELECT id, distance FROM (
        SELECT m.id, m.embedding <=> CAST(:qvec AS vector) AS distance
        FROM memories m
        WHERE {where} AND m.embedding IS NOT NULL AND (SELECT chosen FROM exact_scan)
        OFFSET 0
    ) scoped
    ORDER BY distance
    LIMIT {limit:d})
)"""
)
"""The nearest `limit`: by pgvector's HNSW, or exactly when the scope is a small share of the table.

The HNSW graph spans the whole table, so a filter that keeps 1 % of it makes the scan walk ~100
rows per row it returns (61 ms for a user's 10k of 1M, warm) where reading the scope through its
b-tree and sorting the distances takes 11 ms; `exact_share` (LOCI_DENSE_EXACT_SHARE) against the
table's planner row count picks one branch per query, the other is never run (a one-time filter).
The OFFSET 0 fence keeps the exact branch off the HNSW index. Iterative index scans
(hnsw.iterative_scan, set with the tenant wall: app.db.tenancy) keep filtered HNSW queries
returning `limit`; relaxed_order may return rows slightly out of order, so readers re-sort the
materialised rows exactly. LIMITs are literals here: searches run with generic plans
(app.services.searching), which would guess a parameter's LIMIT."""

_KEY_DENSE = (
    _exact_choice("key_exact_scan", "memory_keys")
    + """,
key_dense AS MATERIALIZED (
    (SELECT k.memory_id AS id, 1 - (k.embedding <=> CAST(:qvec AS vector)) AS score
    FROM memory_keys k JOIN memories m ON m.id = k.memory_id
    WHERE {key_scope} AND {where} AND k.embedding IS NOT NULL AND NOT (SELECT chosen FROM key_exact_scan)
    ORDER BY k.embedding <=> CAST(:qvec AS vector)
    LIMIT {limit:d})
    UNION ALL
    (SELECT scoped.id, scoped.score FROM (
        SELECT k.memory_id AS id, 1 - (k.embedding <=> CAST(:qvec AS vector)) AS score
        FROM memory_keys k
        WHERE {key_scope} AND k.embedding IS NOT NULL AND (SELECT chosen FROM key_exact_scan)
        ORDER BY score DESC
        OFFSET 0
    ) scoped JOIN memories m ON m.id = scoped.id
    WHERE {where}
    ORDER BY scoped.score DESC
    LIMIT {limit:d})
)"""
)
"""The keys nearest the query, by the keys' HNSW or, as for memories (`_DENSE_ROWS`), exactly over
the scope's keys when the scope is a small share of the keys table: a consolidated tenant has about
a key per memory, and filtered HNSW over a million keys for one user's 10k took a search p50 / p95
119 / 179 ms. The exact branch reads the scope's keys from their own index (keys carry their
memory's scope, migrations/versions/0006) and sorts them; only the best are joined to their memories
for the full filter, in order, until `limit` pass. The share is of the keys, not of the memories, so
that an unconsolidated table (few keys) keeps the graph, which is then cheap."""

_KEY_LEXICAL = f"""q AS MATERIALIZED (
    SELECT {ANY_TERM_QUERY} AS tsq
),
key_prefetch AS MATERIALIZED (
    SELECT k.memory_id, k.text_tsv
    FROM memory_keys k JOIN memories m ON m.id = k.memory_id, q
    WHERE {{key_scope}} AND {{where}} AND k.text_tsv @@ q.tsq
    ORDER BY ts_rank(k.text_tsv, q.tsq) DESC
    LIMIT {{limit:d}} * {LEXICAL_PREFETCH}
),
key_lexical AS MATERIALIZED (
    SELECT k.memory_id AS id, ts_rank_cd(k.text_tsv, q.tsq) AS score
    FROM key_prefetch k, q
    ORDER BY score DESC
    LIMIT {{limit:d}}
)"""
"""`q` is materialised: a search plans generically (app/db/tenancy.py), where the query text is a
parameter, and inlined `q` then parsed it into a tsquery again for every key of the tenant (a
consolidated 100k scope with 7k keys: search p50 117 -> 44 ms). As for memories' full text
(`lexical_candidates`), the cheap ts_rank picks LEXICAL_PREFETCH x limit keys and ts_rank_cd
orders only those (44 -> 35 ms). The match is still linear in the tenant's keys: under the tenant
wall `@@` (not leakproof) cannot use the GIN index."""


def _key_rows(query: SearchQuery, where: str, limit: int, lexical: bool) -> str:
    """CTEs ending in `key_rows`: memories reached through their index keys (facts, keywords,
    summaries from consolidation) by dense match on the key text and, with `lexical`, full-text
    match too, fused by rank; `r` orders them.

    The lexical match is for the rank-fusion pipeline only. Beside the in-process BM25 it is
    redundant, since keys are words and facts taken from the memory's own text (LoCoMo dev, back to
    back: recall@5 / @10 0.687 / 0.781 without it, 0.690 / 0.784 with; 5 of 997 questions changed,
    2 for the better), and it is the one part of a search that is linear in the tenant's keys, of
    which consolidation makes about one per episode."""
    key_scope = " AND ".join(scope_filter(query, "k")[0])  # its parameters are the memory filter's
    lists = {"key_dense": _KEY_DENSE} | ({"key_lexical": _KEY_LEXICAL} if lexical else {})
    union = "\n    UNION ALL\n    ".join(
        f"SELECT id, score, row_number() OVER (ORDER BY score DESC, id) AS r FROM {name}" for name in lists
    )
    return (
        ",\n".join(sql.format(key_scope=key_scope, where=where, limit=limit) for sql in lists.values())
        + f""",
key_ranked AS (
    {union}
),
key_rows AS (
    SELECT id, max(score) AS score, row_number() OVER (ORDER BY sum(1.0 / (60 + r)) DESC, max(score) DESC, id) AS r
    FROM key_ranked GROUP BY id
)"""
    )


def _exact_scan(scope_rows: int | None, exact_share: float) -> dict[str, Any]:
    """Parameters of the exact-scan choices (`_exact_choice`); an unknown scope size keeps HNSW."""
    return {"scope_rows": scope_rows, "exact_share": exact_share}


def dense_candidates(
    session: Session, query: SearchQuery, limit: int, scope_rows: int | None = None, exact_share: float = 0.0
) -> list[tuple[Any, float]]:
    """(id, cosine similarity), best first; `scope_rows` (the scope's memories, when known) and
    `exact_share` choose between HNSW and an exact scan (`_DENSE_ROWS`)."""
    where, params = memory_filter(query)
    rows = session.execute(
        text(
            f"WITH {_DENSE_ROWS.format(where=where, limit=limit)} SELECT id, distance FROM dense_rows ORDER BY distance"
        ),
        {**params, **_exact_scan(scope_rows, exact_share), "qvec": query.embedding_param},
    ).all()
    return [(row.id, 1.0 - float(row.distance)) for row in rows]


def key_candidates(
    session: Session,
    query: SearchQuery,
    limit: int,
    lexical: bool,
    scope_rows: int | None = None,
    exact_share: float = 0.0,
) -> list[tuple[Any, float]]:
    """(memory id, best key similarity or rank), best first; `lexical`: full-text matches of the keys
    too; `scope_rows` and `exact_share` as for `dense_candidates`."""
    where, params = memory_filter(query)
    rows = session.execute(
        text(
            f"WITH {_key_rows(query, where, limit, lexical)} SELECT id, score FROM key_rows WHERE r <= {limit:d} ORDER BY r"
        ),
        {**params, **_exact_scan(scope_rows, exact_share), "qtext": query.text, "qvec": query.embedding_param},
    ).all()
    return [(row.id, float(row.score)) for row in rows]


def proposals_with_cosines(
    session: Session,
    query: SearchQuery,
    limit: int,
    proposed: list[Any],
    with_keys: bool,
    scope_rows: int | None = None,
    exact_share: float = 0.0,
) -> tuple[list[tuple[Any, float]], list[tuple[Any, float]], dict[Any, float | None]]:
    """In one round trip: `dense_candidates`, `key_candidates` (if with_keys; by vector only, as this
    serves the BM25 pipeline), and `filtered_cosines` of everything proposed (the given ids, e.g.
    the lexical side's, plus both candidate lists)."""
    where, params = memory_filter(query)
    key_ctes = f", {_key_rows(query, where, limit, lexical=False)}" if with_keys else ""
    key_ids = f"UNION SELECT id FROM key_rows WHERE r <= {limit:d}" if with_keys else ""
    key_found = f"UNION ALL SELECT 'key', id, score, r FROM key_rows WHERE r <= {limit:d}" if with_keys else ""
    rows = session.execute(
        text(
            f"""
            WITH {_DENSE_ROWS.format(where=where, limit=limit)}{key_ctes},
            proposed_ids AS (
                SELECT unnest(CAST(:ids AS uuid[])) AS id UNION SELECT id FROM dense_rows {key_ids}
            ),
            proposed AS MATERIALIZED (SELECT * FROM memories WHERE id IN (SELECT id FROM proposed_ids))
            SELECT 'dense' AS kind, id, 1 - distance AS score, row_number() OVER (ORDER BY distance) AS r
            FROM dense_rows
            {key_found}
            UNION ALL
            SELECT 'cosine', m.id, 1 - (m.embedding <=> CAST(:qvec AS vector)), 0 FROM proposed m WHERE {where}
            ORDER BY kind, r
            """
        ),
        {
            **params,
            **_exact_scan(scope_rows, exact_share),
            "qvec": query.embedding_param,
            "ids": proposed,
        },
    ).all()
    dense: list[tuple[Any, float]] = []
    keys: list[tuple[Any, float]] = []
    cosines: dict[Any, float | None] = {}
    for kind, memory_id, score, _ in rows:
        if kind == "cosine":
            cosines[memory_id] = score
        else:
            (dense if kind == "dense" else keys).append((memory_id, score))
    return dense, keys, cosines


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
        {**params, "qvec": query.embedding_param, "ids": ids},
    ).all()
    return {row.id: None if row.cosine is None else float(row.cosine) for row in rows}


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
                LIMIT {LEXICAL_PREFETCH * limit:d}
            )
            SELECT pre.id, ts_rank_cd(pre.content_tsv, q.tsq) AS rank
            FROM pre, q
            ORDER BY rank DESC, pre.seq
            LIMIT {limit:d}
            """
        ),
        {**params, "qtext": query.text},
    ).all()
    return [(row.id, float(row.rank)) for row in rows]
