"""Lexical candidates from in-process BM25 indexes, one per (tenant, user_id) scope.

Postgres full-text ranking (ts_rank_cd) has no inverse document frequency: a question's common
words outweigh its one rare, telling word. This index keeps each scope's term statistics in
process and scores two views of every memory with Okapi BM25:

- content: the memory's own indexed text (speaker included: memory_types/content.py);
- context: the memory with its neighbouring turns in the same session (`window` on each side),
  because a reply ("Yes, last Friday!") is often findable only through the turn it answers;
- speaker: 1 where the question names the memory's speaker ("What did Maria say about...").

Like the FAISS index it only proposes ids and scores: the caller's SQL applies every filter, so a
lagging index can cost recall, never correctness. Memories arrive by appending to the statistics
(new rows have higher `seq`); an edit, soft or hard delete changes the scope's stamp in a way
appends cannot explain and the scope is rebuilt.
"""

import threading
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from memory_types.content import indexed_text
from retrieval.query import SearchQuery
from retrieval.scope_cache import ScopeCache, ScopeKey, Stamp, scope_sql, scope_stamp
from retrieval.tokens import name_words, tokenize

K1 = 1.2
B = 0.75


@dataclass(frozen=True)
class _Derived:
    """What every query of an unchanged scope shares, computed once after each change of the scope.

    `ids` is a snapshot (appends go to the lexicon's own list), so a query holds it without a copy.
    """

    ids: list[Any]
    position: dict[Any, int]
    neighbours: np.ndarray  # n x (2w+1) positions of each memory's window, padded with n
    norm_content: np.ndarray  # BM25 length normalisation of each memory's text
    norm_context: np.ndarray  # ... and of its window
    by_speaker_word: dict[str, np.ndarray]  # positions of the memories whose speaker's name has the word
    types: np.ndarray


@dataclass
class ScopeLexicon:
    """BM25 statistics of one scope. Rows are appended in seq order; derived arrays are rebuilt lazily."""

    window: int
    ids: list[Any] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    agents: list[str | None] = field(default_factory=list)
    sessions: list[str | None] = field(default_factory=list)
    speakers: list[frozenset[str]] = field(default_factory=list)
    order: list[tuple[float, int]] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    postings: dict[str, tuple[np.ndarray | list[int], np.ndarray | list[int]]] = field(default_factory=dict)
    max_seq: int = 0
    max_updated: datetime | None = None
    _derived: _Derived | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, rows: list[Any]) -> None:
        with self.lock:
            self._add(rows)

    def _add(self, rows: list[Any]) -> None:
        for row in rows:
            position = len(self.ids)
            counts: dict[str, int] = {}
            for term in tokenize(indexed_text(row.content, row.attributes)):
                counts[term] = counts.get(term, 0) + 1
            for term, tf in counts.items():
                docs, tfs = self.postings.setdefault(term, ([], []))
                if isinstance(docs, np.ndarray):  # frozen by a query since the last append
                    docs, tfs = self.postings[term] = (docs.tolist(), tfs.tolist())
                docs.append(position)  # type: ignore[union-attr]
                tfs.append(tf)  # type: ignore[union-attr]
            self.ids.append(row.id)
            self.types.append(row.type)
            self.agents.append(row.agent_id)
            self.sessions.append(row.session_id)
            self.speakers.append(name_words((row.attributes or {}).get("speaker")))
            self.order.append((row.event_at.timestamp() if row.event_at else 0.0, row.seq))
            self.lengths.append(sum(counts.values()))
            self.max_seq = max(self.max_seq, row.seq)
            if self.max_updated is None or row.updated_at > self.max_updated:
                self.max_updated = row.updated_at
        self._derived = None

    def derived(self) -> _Derived:
        if self._derived is not None:
            return self._derived
        n, w = len(self.ids), self.window
        neighbours = np.full((n, 2 * w + 1), n, dtype=np.int64)
        neighbours[:, w] = np.arange(n)
        by_session: dict[str, list[int]] = {}
        for position, (session_id, kind) in enumerate(zip(self.sessions, self.types, strict=True)):
            if session_id is not None and kind == "episodic":  # turns have neighbours; facts stand alone
                by_session.setdefault(session_id, []).append(position)
        for members in by_session.values():
            members.sort(key=self.order.__getitem__)
            ordered = np.array(members)
            for offset in range(-w, w + 1):
                if offset == 0 or abs(offset) >= len(ordered):
                    continue
                if offset > 0:
                    neighbours[ordered[:-offset], w + offset] = ordered[offset:]
                else:
                    neighbours[ordered[-offset:], w + offset] = ordered[:offset]
        lengths = np.append(np.asarray(self.lengths, dtype=np.float64), 0.0)
        window_lengths = lengths[neighbours].sum(axis=1)
        speaker_words: dict[str, list[int]] = {}
        for position, name in enumerate(self.speakers):
            for word in name:
                speaker_words.setdefault(word, []).append(position)
        self._derived = _Derived(
            ids=list(self.ids),
            position={memory_id: i for i, memory_id in enumerate(self.ids)},
            neighbours=neighbours,
            norm_content=K1 * (1 - B + B * lengths[:n] / max(lengths[:n].mean(), 1.0)) if n else np.zeros(0),
            norm_context=K1 * (1 - B + B * window_lengths / max(window_lengths.mean(), 1.0)) if n else np.zeros(0),
            by_speaker_word={word: np.asarray(positions) for word, positions in speaker_words.items()},
            types=np.asarray(self.types, dtype=object),
        )
        return self._derived

    def _posting(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The term's (positions, term frequencies) as arrays, converted once until the next append."""
        posting = self.postings.get(term)
        if posting is None:
            return None
        docs, tfs = posting
        if not isinstance(docs, np.ndarray):
            docs, tfs = np.asarray(docs, dtype=np.int64), np.asarray(tfs, dtype=np.float64)
            self.postings[term] = (docs, tfs)
        return docs, tfs  # type: ignore[return-value]

    def scores(self, query_text: str) -> dict[str, np.ndarray]:
        """Every view's score of every memory for the query, in index order.

        Only the memories that contain a term (or whose window does) get a term's score: the
        others' BM25 for it is exactly 0, so skipping them changes no value but costs O(postings)
        instead of O(scope) per term.
        """
        n = len(self.ids)
        derived = self.derived()
        speaker = np.zeros(n)
        for word in name_words(query_text):
            if word in derived.by_speaker_word:
                speaker[derived.by_speaker_word[word]] = 1.0
        content, context = np.zeros(n), np.zeros(n)
        if n == 0:
            return {"content": content, "context": context, "speaker": speaker}
        tf = np.zeros(n + 1)  # scratch: one term's frequencies, position n is the window padding
        in_window = np.zeros(n + 1, dtype=bool)  # scratch: the memories whose window holds the term
        for term in tokenize(query_text):
            posting = self._posting(term)
            if posting is None:
                continue
            docs, tfs = posting
            content[docs] += _bm25(tfs, derived.norm_content[docs], len(docs), n)
            # Windows are symmetric (j in i's window iff i in j's), so the memories whose window
            # holds the term are the windows of the memories that hold it.
            in_window[derived.neighbours[docs]] = True
            reached = np.flatnonzero(in_window[:n])
            in_window[:] = False
            tf[docs] = tfs
            window_tf = tf[derived.neighbours[reached]].sum(axis=1)
            tf[docs] = 0.0
            context[reached] += _bm25(window_tf, derived.norm_context[reached], len(reached), n)
        return {"content": content, "context": context, "speaker": speaker}

    def allowed(self, query: SearchQuery) -> np.ndarray:
        """The cheap part of the query's filter (type, agent, session); SQL applies all of it later."""
        mask = np.ones(len(self.ids), dtype=bool)
        if query.types:
            mask &= np.isin(self.derived().types, list(query.types))
        if query.agent_id is not None:
            mask &= np.fromiter((a == query.agent_id for a in self.agents), dtype=bool, count=len(self.agents))
        if query.session_id is not None:
            mask &= np.fromiter((s == query.session_id for s in self.sessions), dtype=bool, count=len(self.sessions))
        return mask


def _bm25(tf: np.ndarray, norm: np.ndarray, df: int, n: int) -> np.ndarray:
    idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
    return idf * tf * (K1 + 1) / (tf + norm)


@dataclass(frozen=True)
class LexicalScores:
    """The scope's view scores for one query ("content", "context", "speaker"), to look up by memory id."""

    ids: list[Any]
    views: dict[str, np.ndarray]
    allowed: np.ndarray
    position: dict[Any, int]

    def top(self, view: str, limit: int) -> list[Any]:
        scores = np.where(self.allowed, self.views[view], 0.0)
        limit = min(limit, int(np.count_nonzero(scores)))
        if limit <= 0:
            return []
        # Ties at the cut go to the older memory, so the same scope always proposes the same ids.
        cut = np.partition(scores, len(scores) - limit)[len(scores) - limit]
        above = np.flatnonzero(scores > cut)
        best = np.concatenate([above, np.flatnonzero(scores == cut)[: limit - len(above)]])
        return [self.ids[i] for i in best[np.argsort(-scores[best], kind="stable")]]

    def of(self, memory_ids: list[Any]) -> dict[str, np.ndarray]:
        """Each view's scores of `memory_ids` (0 for a memory the index has not seen yet)."""
        pick = np.asarray([self.position.get(m, -1) for m in memory_ids], dtype=np.int64)
        known = pick >= 0
        return {name: np.where(known, scores[pick], 0.0) for name, scores in self.views.items()}


_COLUMNS = "id, seq, type, agent_id, session_id, event_at, updated_at, content, attributes"


class LexicalIndexes:
    """The per-scope BM25 indexes of one process; scopes over `max_docs` memories are not indexed."""

    def __init__(self, window: int, max_docs: int, max_scopes: int, recheck_seconds: float) -> None:
        self._window = window
        self._max_docs = max_docs
        self._cache: ScopeCache[ScopeLexicon] = ScopeCache(
            partial(scope_stamp, embedded_only=False), self._refresh, max_scopes, recheck_seconds
        )

    @property
    def refreshes(self) -> int:
        return self._cache.refreshes

    def changed(self) -> None:
        self._cache.changed()

    def scores(self, session: Session, query: SearchQuery) -> LexicalScores | None:
        """Scores over the query's scope, or None when the scope is too large to hold here."""
        lexicon = self._cache.get(session, (query.tenant_id, query.user_id))
        if lexicon is None:
            return None
        with lexicon.lock:  # appends from a concurrent refresh wait: lists and arrays stay one size
            views, allowed = lexicon.scores(query.text), lexicon.allowed(query)
            derived = lexicon.derived()
            return LexicalScores(derived.ids, views, allowed, derived.position)

    def _refresh(
        self, session: Session, key: ScopeKey, previous: ScopeLexicon | None, stamp: Stamp
    ) -> ScopeLexicon | None:
        where, params = scope_sql(key, embedded_only=False)
        count = stamp[0]
        if count > self._max_docs:
            return None
        if previous is not None:
            rows = session.execute(
                text(
                    f"SELECT {_COLUMNS} FROM memories WHERE {where} AND (seq > :seq OR updated_at > :updated)"
                    " ORDER BY seq"
                ),
                {**params, "seq": previous.max_seq, "updated": previous.max_updated},
            ).all()
            appended_only = all(row.seq > previous.max_seq for row in rows)
            if appended_only and len(previous.ids) + len(rows) == count:
                previous.add(rows)
                return previous
        lexicon = ScopeLexicon(self._window)
        lexicon.add(session.execute(text(f"SELECT {_COLUMNS} FROM memories WHERE {where} ORDER BY seq"), params).all())
        return lexicon
