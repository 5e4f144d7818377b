"""Dense candidates from in-process FAISS indexes built from Postgres, one per (tenant, user_id) scope.

FAISS only proposes ids. One SQL query then applies the filter every generator shares
(retrieval/filters.py) to those ids and takes the cosine from the stored vectors, so an index that
lags the database can cost recall but never correctness: a deleted, expired, superseded or
filtered-out memory cannot come back, and scores and order are always the database's.

Coherence and the per-scope LRU: retrieval/scope_cache.py (the stamp: count of embedded rows,
max(seq), max(updated_at)). A change that only adds rows (in seq order or not: a row committed or
embedded late) adds their vectors to a copy of the index; any other change rebuilds it.
"""

from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import faiss
import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from retrieval.candidates import PROPOSED_ROWS, dense_candidates
from retrieval.filters import memory_filter
from retrieval.query import SearchQuery
from retrieval.scope_cache import (
    OpenSession,
    ScopeCache,
    ScopeKey,
    Stamp,
    changed_since,
    lacking_ids,
    scope_sql,
    scope_stamp,
)
from retrieval.vector_param import unpack_vectors

HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
# A filter that keeps fewer than this share of the FAISS order goes to pgvector instead of widening forever.
MAX_FETCH_SHARE = 0.25


@dataclass(frozen=True)
class _Built:
    """An index and the memory ids of its rows, replaced together so a reader never mixes two builds."""

    index: faiss.Index | None  # None for a scope with no embedded memories
    ids: list[Any]
    max_seq: int = 0  # of the rows built from: later rows are appends
    max_updated: datetime | None = None

    def search(self, qvec: np.ndarray, fetch: int, ef_search: int) -> list[Any]:
        if self.index is None:
            return []
        if isinstance(self.index, faiss.IndexHNSWFlat):
            params = faiss.SearchParametersHNSW(efSearch=max(ef_search, fetch))
            _, positions = self.index.search(qvec, fetch, params=params)
        else:
            _, positions = self.index.search(qvec, fetch)
        return [self.ids[p] for p in positions[0] if p >= 0]


@dataclass(frozen=True)
class _Rows:
    """Embedded rows read for an index, in seq order, with what the next refresh reads after."""

    ids: list[Any]
    seqs: list[int]
    vectors: np.ndarray
    max_updated: datetime | None


def _load_vectors(session: Session, key: ScopeKey, after: _Built | None = None, ids: list[Any] | None = None) -> _Rows:
    """The scope's embedded rows; only those added or edited since `after` was built; only `ids`."""
    where, params = scope_sql(key, embedded_only=True)
    if after is not None:
        where += f" AND {changed_since(after.max_seq, after.max_updated)}"
    if ids is not None:
        where += " AND id = ANY(:ids)"
        params["ids"] = ids
    rows = session.execute(
        text(f"SELECT id, seq, updated_at, vector_send(embedding) FROM memories WHERE {where} ORDER BY seq"), params
    ).all()
    if not rows:
        return _Rows([], [], np.zeros((0, 0), dtype=np.float32), None)
    vectors = unpack_vectors([bytes(r[3]) for r in rows])
    return _Rows([r[0] for r in rows], [r[1] for r in rows], vectors, max(r[2] for r in rows))


def _new_vectors(session: Session, key: ScopeKey, previous: _Built, count: int) -> _Rows | None:
    """The embedded rows added since `previous` was built, or None when more than appends happened
    (an edit, a delete: the scope is rebuilt). Rows embedded or committed out of seq order are
    looked for among the scope's recent ids (scope_cache.lacking_ids) when the count says some are
    missing."""
    new = _load_vectors(session, key, after=previous)
    if len(previous.ids) + len(new.ids) == count and all(seq > previous.max_seq for seq in new.seqs):
        return new
    known = set(previous.ids)
    if any(memory_id in known for memory_id in new.ids):
        return None
    where, params = scope_sql(key, embedded_only=True)
    lacking = lacking_ids(session, where, params, known, len(previous.ids))
    if lacking is None:
        return None
    new = _load_vectors(session, key, ids=lacking)
    return new if len(new.ids) == len(lacking) else None


class FaissIndexes:
    """The per-scope indexes of one process."""

    def __init__(
        self,
        hnsw_threshold: int,
        ef_search: int,
        max_scopes: int,
        recheck_seconds: float,
        open_session: OpenSession | None = None,
        background_rows: int = 100_000,
    ) -> None:
        self._hnsw_threshold = hnsw_threshold
        self._ef_search = ef_search
        self._cache: ScopeCache[_Built] = ScopeCache(
            partial(scope_stamp, embedded_only=True),
            self._rebuild,
            max_scopes,
            recheck_seconds,
            open_session,
            background_rows,
        )

    @property
    def rebuilds(self) -> int:
        return self._cache.refreshes

    def changed(self) -> None:
        """Some memory vectors changed in this process: every scope checks its stamp before its next use."""
        self._cache.changed()

    @property
    def busy(self) -> bool:
        """A scope's index is being built or checked in the background (benchmarks wait for it)."""
        return self._cache.busy

    def close(self) -> None:
        self._cache.close()

    def candidates(self, session: Session, query: SearchQuery, limit: int) -> list[tuple[Any, float]]:
        """(id, cosine similarity), best first, like `dense_candidates` (its fallback)."""
        built = self._cache.get(session, (query.tenant_id, query.user_id))
        if built is None:  # a large scope whose index is still being built in the background
            return dense_candidates(session, query, limit)
        size = len(built.ids)
        if size == 0:
            return []
        where, params = memory_filter(query)
        params.update(qvec=query.embedding_param)
        qvec = np.ascontiguousarray(query.embedding, dtype=np.float32).reshape(1, -1)
        fetch = min(size, max(4 * limit, limit + 32))
        while True:
            ids = built.search(qvec, fetch, self._ef_search)
            rows = session.execute(
                text(
                    f"""
                    WITH {PROPOSED_ROWS}
                    SELECT m.id, m.embedding <=> CAST(:qvec AS vector) AS distance
                    FROM proposed m
                    WHERE {where} AND m.embedding IS NOT NULL
                    ORDER BY distance, m.seq
                    LIMIT {limit:d}
                    """
                ),
                {**params, "ids": ids},
            ).all()
            if len(rows) >= limit or fetch >= size:
                return [(row.id, 1.0 - float(row.distance)) for row in rows]
            if fetch >= MAX_FETCH_SHARE * size:
                return dense_candidates(session, query, limit)
            fetch = min(size, fetch * 4)

    def _rebuild(self, session: Session, key: ScopeKey, previous: _Built | None, stamp: Stamp) -> _Built:
        """Add the rows written since `previous` to a copy of it when that is all that changed (the
        common write-then-search step: reloading a 10k scope took ~110 ms); else build anew. A copy,
        because queries may be searching `previous` meanwhile."""
        if previous is not None and previous.index is not None:
            new = _new_vectors(session, key, previous, stamp[0])
            same_kind = new is not None and (
                isinstance(previous.index, faiss.IndexHNSWFlat)
                or len(previous.ids) + len(new.ids) < self._hnsw_threshold
            )
            if new is not None and new.ids and same_kind:
                index = faiss.clone_index(previous.index)
                index.add(new.vectors)
                edited = [t for t in (previous.max_updated, new.max_updated) if t is not None]
                max_seq = max(previous.max_seq, *new.seqs)
                return _Built(index, previous.ids + new.ids, max_seq, max(edited, default=None))
        rows = _load_vectors(session, key)
        return self._build(rows)

    def _build(self, rows: _Rows) -> _Built:
        if not rows.ids:
            return _Built(None, [])
        dim = rows.vectors.shape[1]
        if len(rows.vectors) >= self._hnsw_threshold:
            index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        else:
            index = faiss.IndexFlatIP(dim)  # exact: vectors are L2-normalised, so inner product is cosine
        index.add(rows.vectors)
        return _Built(index, rows.ids, max(rows.seqs), rows.max_updated)
