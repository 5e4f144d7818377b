"""Dense candidates from in-process FAISS indexes built from Postgres, one per (tenant, user_id) scope.

FAISS only proposes ids. One SQL query then applies the filter every generator shares
(retrieval/filters.py) to those ids and takes the cosine from the stored vectors, so an index that
lags the database can cost recall but never correctness: a deleted, expired, superseded or
filtered-out memory cannot come back, and scores and order are always the database's.

Coherence and the per-scope LRU: retrieval/scope_cache.py (the stamp: count of embedded rows,
max(seq), max(updated_at)). Rows this process inserts are handed over once committed (`appended`,
app/vector_changes.py); rows only added elsewhere (in seq order or not: a row committed or embedded
late) are read after the stamp. Either way they join a tail searched exactly beside the index, and
a long tail is folded into a copy of it (a copy, because queries may be searching the index
meanwhile). At 10k, stamping, reading and copying after every write made the search that follows
a write 40 ms p50 against 17 for a plain one; with the tail it is 17 (docs/performance.md). Any
other change rebuilds the index.
"""

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property, partial
from typing import Any

import faiss
import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from retrieval.candidates import PROPOSED_ROWS, dense_candidates
from retrieval.filters import memory_filter
from retrieval.query import SearchQuery
from retrieval.scope_cache import (
    InsertedRow,
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
# Rows added since an index was built are searched exactly, beside it, up to this many; then they are
# folded into a copy of the index (~15 MB copied for a 10k flat index).
TAIL_ROWS = 1024
# A filter that keeps fewer than this share of the FAISS order goes to pgvector instead of widening forever.
MAX_FETCH_SHARE = 0.25


@dataclass(frozen=True)
class _Built:
    """An index, its tail and the memory ids of their rows, replaced together so a reader never mixes
    two builds."""

    index: faiss.Index | None  # None while the scope's vectors all fit in the tail
    ids: list[Any]  # the index's rows, then the tail's
    max_seq: int = 0  # of the rows built from: later rows are appends
    max_updated: datetime | None = None
    tail: np.ndarray | None = None  # vectors added since the index was built, searched exactly

    @cached_property
    def known(self) -> frozenset[Any]:
        return frozenset(self.ids)

    def search(self, qvec: np.ndarray, fetch: int, ef_search: int) -> list[Any]:
        """The ids of the `fetch` rows of the index and the tail nearest `qvec`, best first."""
        found: list[tuple[float, Any]] = []
        if self.index is not None:
            if isinstance(self.index, faiss.IndexHNSWFlat):
                params = faiss.SearchParametersHNSW(efSearch=max(ef_search, fetch))
                scores, positions = self.index.search(qvec, fetch, params=params)
            else:
                scores, positions = self.index.search(qvec, fetch)
            found += [(float(s), self.ids[p]) for s, p in zip(scores[0], positions[0], strict=True) if p >= 0]
        if self.tail is not None:
            offset = len(self.ids) - len(self.tail)
            similarities = self.tail @ qvec[0]
            best = np.argsort(-similarities)[:fetch]
            found += [(float(similarities[i]), self.ids[offset + i]) for i in best]
            found.sort(key=lambda pair: -pair[0])
        return [memory_id for _, memory_id in found[:fetch]]


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
    if any(memory_id in previous.known for memory_id in new.ids):
        return None
    where, params = scope_sql(key, embedded_only=True)
    lacking = lacking_ids(session, where, params, previous.known, len(previous.ids))
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

    def appended(self, rows: list[InsertedRow]) -> None:
        """Memories this process has just committed, added to the built indexes of their scopes, so
        that the writer's next search needs no stamp of the scope (app.vector_changes: such inserts
        are not reported to `changed`). A row stored without its vector waits for the embedding
        worker's, which is reported."""
        embedded = [row for row in rows if row.embedding is not None]
        if embedded:
            self._cache.hand_over(embedded, self._append)

    def _append(self, rows: list[InsertedRow], built: _Built) -> tuple[_Built, int]:
        # A refresh may have read them already. Every row held has a seq up to max_seq, so only a row
        # committed out of seq order needs the set of ids held (built once per build: O(scope)).
        fresh = [row for row in rows if row.seq > built.max_seq or row.id not in built.known]
        if not fresh:
            return built, 0
        vectors = np.asarray(np.stack([np.asarray(row.embedding, dtype=np.float32) for row in fresh]))
        new = _Rows(
            [row.id for row in fresh], [row.seq for row in fresh], vectors, max(row.updated_at for row in fresh)
        )
        return self._extended(built, new), len(fresh)

    def _rebuild(self, session: Session, key: ScopeKey, previous: _Built | None, stamp: Stamp) -> _Built:
        """Add the rows written since `previous` to it when that is all that changed (the common
        write-then-search step: reloading a 10k scope took ~110 ms); else build anew."""
        if previous is not None:
            new = _new_vectors(session, key, previous, stamp[0])
            if new is not None:
                return self._extended(previous, new) if new.ids else previous
        rows = _load_vectors(session, key)
        if not rows.ids:
            return _Built(None, [])
        return self._build(rows.ids, rows.vectors, max(rows.seqs), rows.max_updated)

    def _extended(self, built: _Built, new: _Rows) -> _Built:
        """`built` with `new` rows in its tail, the tail folded into a copy of the index once longer
        than TAIL_ROWS (or the whole built anew, when that takes a flat index past the HNSW threshold)."""
        tail = new.vectors if built.tail is None else np.vstack([built.tail, new.vectors])
        ids = built.ids + new.ids
        max_seq = max(built.max_seq, *new.seqs)
        max_updated = max((t for t in (built.max_updated, new.max_updated) if t is not None), default=None)
        if len(tail) <= TAIL_ROWS:
            return _Built(built.index, ids, max_seq, max_updated, tail)
        index = built.index
        if index is not None and (isinstance(index, faiss.IndexHNSWFlat) or len(ids) < self._hnsw_threshold):
            index = faiss.clone_index(index)
            index.add(tail)
            return _Built(index, ids, max_seq, max_updated)
        vectors = tail if index is None else np.vstack([index.reconstruct_n(0, index.ntotal), tail])
        return self._build(ids, vectors, max_seq, max_updated)

    def _build(self, ids: list[Any], vectors: np.ndarray, max_seq: int, max_updated: datetime | None) -> _Built:
        dim = vectors.shape[1]
        if len(vectors) >= self._hnsw_threshold:
            index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        else:
            index = faiss.IndexFlatIP(dim)  # exact: vectors are L2-normalised, so inner product is cosine
        index.add(vectors)
        return _Built(index, ids, max_seq, max_updated)
