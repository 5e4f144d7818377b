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
a write 40 ms p50 against 17 for a plain one; with the tail it is 17 (docs/performance.md).

Edits and deletes do not rebuild the index either. A memory whose vector changed joins the tail
with its new vector, and its old position is dead: searches skip it. A memory deleted, or whose
vector is gone, leaves a dead position. A change that leaves the vector as it was (status,
metadata, a consolidation mark) changes nothing here, since the database filters every proposal.
Once dead positions pass MAX_DEAD_SHARE of the index, the scope is built anew.
"""

from collections.abc import Iterable
from dataclasses import dataclass, replace
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
# Positions left dead by edits and deletes, as a share of all, before the scope is built anew.
MAX_DEAD_SHARE = 0.2


@dataclass(frozen=True)
class _Built:
    """An index, its tail and the memory ids of their rows, replaced together so a reader never mixes
    two builds."""

    index: faiss.Index | None  # None while the scope's vectors all fit in the tail
    ids: list[Any]  # the index's rows, then the tail's
    max_seq: int = 0  # of the rows built from: later rows are appends
    max_updated: datetime | None = None
    tail: np.ndarray | None = None  # vectors added since the index was built, searched exactly
    dead: frozenset[int] = frozenset()  # positions of a vector since replaced, or of a memory gone

    @cached_property
    def positions(self) -> dict[Any, int]:
        """Each live memory's position (an edited memory's latest)."""
        return {memory_id: p for p, memory_id in enumerate(self.ids) if p not in self.dead}

    @property
    def tail_start(self) -> int:
        """The position of the tail's first row (the index holds those before it)."""
        return len(self.ids) - (0 if self.tail is None else len(self.tail))

    def vector(self, position: int) -> np.ndarray:
        offset = self.tail_start
        if position >= offset:
            assert self.tail is not None
            return self.tail[position - offset]
        assert self.index is not None
        return self.index.reconstruct(position)

    def search(self, qvec: np.ndarray, fetch: int, ef_search: int) -> list[Any]:
        """The ids of the `fetch` rows of the index and the tail nearest `qvec`, best first."""
        found: list[tuple[float, Any]] = []
        if self.index is not None:
            if isinstance(self.index, faiss.IndexHNSWFlat):
                params = faiss.SearchParametersHNSW(efSearch=max(ef_search, fetch))
                scores, positions = self.index.search(qvec, fetch, params=params)
            else:
                scores, positions = self.index.search(qvec, fetch)
            found += [
                (float(s), self.ids[p])
                for s, p in zip(scores[0], positions[0], strict=True)
                if p >= 0 and p not in self.dead
            ]
        if self.tail is not None:
            offset = self.tail_start
            similarities = self.tail @ qvec[0]
            best = np.argsort(-similarities)[:fetch]
            found += [(float(similarities[i]), self.ids[offset + i]) for i in best if offset + i not in self.dead]
            found.sort(key=lambda pair: -pair[0])
        return [memory_id for _, memory_id in found[:fetch]]


@dataclass(frozen=True)
class _Rows:
    """Embedded rows read for an index, in seq order, with what the next refresh reads after."""

    ids: list[Any]
    seqs: list[int]
    vectors: np.ndarray
    max_updated: datetime | None  # the latest of the rows read, those `only` leaves out included

    def only(self, keep: list[int]) -> "_Rows":
        return _Rows([self.ids[i] for i in keep], [self.seqs[i] for i in keep], self.vectors[keep], self.max_updated)

    def plus(self, other: "_Rows") -> "_Rows":
        latest = max((t for t in (self.max_updated, other.max_updated) if t is not None), default=None)
        if not other.ids:
            return replace(self, max_updated=latest)
        if not self.ids:
            return replace(other, max_updated=latest)
        return _Rows(self.ids + other.ids, self.seqs + other.seqs, np.vstack([self.vectors, other.vectors]), latest)


@dataclass(frozen=True)
class _Changes:
    """A scope's changes since an index was built: rows whose vectors join it (new memories and
    edited ones) and the positions that no longer stand for their memory."""

    rows: _Rows
    dead: frozenset[int]


def _load_vectors(
    session: Session,
    key: ScopeKey,
    after: _Built | None = None,
    ids: list[Any] | None = None,
    reread_from: datetime | None = None,
) -> _Rows:
    """The scope's embedded rows; only those added or edited since `after` was built (read back to
    `reread_from` at least: scope_cache.changed_since); only `ids`."""
    where, params = scope_sql(key, embedded_only=True)
    if after is not None:
        where += f" AND {changed_since(after.max_seq, after.max_updated, reread_from)}"
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


def _changes(
    session: Session, key: ScopeKey, previous: _Built, count: int, reread_from: datetime | None
) -> _Changes | None:
    """What changed in the scope (of `count` embedded rows) since `previous` was built, or None when
    the scope is better built anew: too many dead positions, or rows missing that cannot be found.

    The rows added or edited since (by seq and updated_at) tell new memories and changed vectors.
    When the count still disagrees, rows were deleted or committed out of seq order: the missing
    ones are looked for among the scope's recent ids (scope_cache.lacking_ids) when only rows are
    missing, else among all its ids (ids only, an index read: a rebuild reads every vector)."""
    changed = _load_vectors(session, key, after=previous, reread_from=reread_from)
    live = previous.positions
    joining: list[int] = []
    dead: set[int] = set()
    for i, memory_id in enumerate(changed.ids):
        position = live.get(memory_id)
        if position is None:
            joining.append(i)
        elif not np.array_equal(previous.vector(position), changed.vectors[i]):
            joining.append(i)
            dead.add(position)
    rows = changed.only(joining)
    held = len(live) + len(rows.ids) - len(dead)
    if held != count:
        where, params = scope_sql(key, embedded_only=True)
        joined = set(rows.ids)
        known = {*live, *joined}
        lacking = lacking_ids(session, where, params, known, held) if held < count else None
        if lacking is None:
            scope_ids = set(session.scalars(text(f"SELECT id FROM memories WHERE {where}"), params))
            dead |= {p for memory_id, p in live.items() if memory_id not in scope_ids and memory_id not in joined}
            lacking = [memory_id for memory_id in scope_ids if memory_id not in known]
            held = len(scope_ids)
        else:
            held += len(lacking)
        if len(lacking) > TAIL_ROWS:
            return None
        found = _load_vectors(session, key, ids=lacking) if lacking else changed.only([])
        if len(found.ids) != len(lacking):
            return None  # changed meanwhile: the next check sees it
        rows = rows.plus(found)
        if len(live) + len(rows.ids) - len(dead) != held:
            return None
    if len(previous.dead) + len(dead) > MAX_DEAD_SHARE * (len(previous.ids) + len(rows.ids)):
        return None
    return _Changes(rows, frozenset(dead))


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

    def changed(self, keys: Iterable[ScopeKey] | None = None, edited: datetime | None = None) -> None:
        """Memory vectors changed in the scopes `keys` (None: any): each is refreshed before its next use,
        reading back to `edited` at least (ScopeCache.changed)."""
        self._cache.changed(keys, edited)

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
        # committed out of seq order needs the ids held (mapped once per build: O(scope)).
        fresh = [row for row in rows if row.seq > built.max_seq or row.id not in built.positions]
        if not fresh:
            return built, 0
        vectors = np.asarray(np.stack([np.asarray(row.embedding, dtype=np.float32) for row in fresh]))
        new = _Rows(
            [row.id for row in fresh], [row.seq for row in fresh], vectors, max(row.updated_at for row in fresh)
        )
        return self._extended(built, new), len(fresh)

    def _rebuild(
        self, session: Session, key: ScopeKey, previous: _Built | None, stamp: Stamp, reread_from: datetime | None
    ) -> _Built:
        """Bring `previous` up to date with the scope's changes where it can (reloading a 10k scope
        took ~110 ms, a 100k HNSW graph tens of seconds of a core); else build anew."""
        if previous is not None:
            changes = _changes(session, key, previous, stamp[0], reread_from)
            if changes is not None:
                return self._extended(previous, changes.rows, changes.dead)
        rows = _load_vectors(session, key)
        if not rows.ids:
            return _Built(None, [])
        return self._build(rows.ids, rows.vectors, max(rows.seqs), rows.max_updated)

    def _extended(self, built: _Built, new: _Rows, dead: frozenset[int] = frozenset()) -> _Built:
        """`built` with `new` rows in its tail and `dead` positions more, the tail folded into a copy
        of the index once longer than TAIL_ROWS (or the whole built anew without the dead positions,
        when that takes a flat index past the HNSW threshold)."""
        dead = built.dead | dead if dead else built.dead  # (no copy on a plain append)
        max_updated = max((t for t in (built.max_updated, new.max_updated) if t is not None), default=None)
        if not new.ids:
            return replace(built, dead=dead, max_updated=max_updated)
        tail = new.vectors if built.tail is None else np.vstack([built.tail, new.vectors])
        ids = built.ids + new.ids
        max_seq = max(built.max_seq, *new.seqs)
        if len(tail) <= TAIL_ROWS:
            return _Built(built.index, ids, max_seq, max_updated, tail, dead)
        index = built.index
        if index is not None and (isinstance(index, faiss.IndexHNSWFlat) or len(ids) < self._hnsw_threshold):
            index = faiss.clone_index(index)
            index.add(tail)
            return _Built(index, ids, max_seq, max_updated, dead=dead)
        vectors = tail if index is None else np.vstack([index.reconstruct_n(0, index.ntotal), tail])
        keep = [p for p in range(len(ids)) if p not in dead]
        return self._build([ids[p] for p in keep], vectors[keep], max_seq, max_updated)

    def _build(self, ids: list[Any], vectors: np.ndarray, max_seq: int, max_updated: datetime | None) -> _Built:
        dim = vectors.shape[1]
        if len(vectors) >= self._hnsw_threshold:
            index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        else:
            index = faiss.IndexFlatIP(dim)  # exact: vectors are L2-normalised, so inner product is cosine
        index.add(vectors)
        return _Built(index, ids, max_seq, max_updated)
