"""Lexical candidates from in-process BM25 indexes, one per (tenant, user_id) scope.

Postgres full-text ranking (ts_rank_cd) has no inverse document frequency: a question's common
words outweigh its one rare, telling word. This index keeps each scope's term statistics in
process and scores two views of every memory with Okapi BM25:

- content: the memory's own indexed text (speaker included: memory_types/content.py);
- context: the memory with its neighbouring turns in the same session (`window` on each side),
  because a reply ("Yes, last Friday!") is often findable only through the turn it answers;
- speaker: 1 where the question names the memory's speaker ("What did Maria say about...");
- time: 1 where the memory's event time falls in the period the question names ("in May 2023",
  or "last week" counted back from when it is asked: retrieval/periods.py);
- when: for a question asking when, 1 where the memory's text says when ("last Friday", "in 2022").

Like the FAISS index it only proposes ids and scores: the caller's SQL applies every filter, so a
lagging index can cost recall, never correctness. Memories arrive by appending to the statistics
(new rows have higher `seq`, or committed late below it: scope_cache.lacking_ids). An edited memory
(any change of updated_at: content, status) is appended again and its earlier position superseded:
scores skip superseded positions, so BM25 stays exact, and a scope is rebuilt only when a quarter of
its positions are superseded, or when a hard delete changes its stamp in a way appends cannot explain.

Queries read a published snapshot (`_Derived`) and take no lock of the lexicon: a refresh appends
and builds the next snapshot beside it, scores a large scope's common terms into it, then swaps it
in. So a search during a refresh neither waits for it (~1 s of arrays at a million memories) nor
finds the common terms' scores gone. A term the previous snapshot kept is carried over an append
(its changed windows summed again, its BM25 recomputed) rather than scored anew.
"""

import math
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from memory_types.content import indexed_text
from retrieval.periods import asks_when, event_month, event_seconds, named_period, tells_when
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
from retrieval.term_expansion import ExpansionParams, ScopeWords, WordVectors
from retrieval.tokens import name_words, tokenize

K1 = 1.2
B = 0.75
# Scored terms kept per scope, in bytes per memory of the scope: room for the few dozen common terms
# that recur in queries (the benchmarks' generated text: all its 69 terms, 340 bytes a memory, with
# the windows' term frequencies that carry them over appends).
VIEW_BYTES_PER_MEMORY = 384
SAMPLE_FOR_TOP = 16_384
COMMON_SHARE = 0.01  # terms in this share of a scope are the ones kept, and scored ahead in a large scope
MAX_SUPERSEDED_SHARE = 0.25  # of a scope's positions, left by edits, before it is rebuilt to reclaim them
# Postings, kept term scores and each query's score arrays are single precision with 32-bit positions
# (a scope holds at most LOCI_LEXICAL_MAX_DOCS): half the bytes of float64 and int64, so twice the
# terms fit the kept-term room, and scoring a term the first time reads half the memory.
SCORE = np.float32
POSITION = np.int32


@dataclass(frozen=True)
class _Derived:
    """What every query of an unchanged scope reads, built once after each change of the scope.

    A snapshot: `ids` and `postings` are copies (appends go to the lexicon's own), so queries hold
    them without a lock while the next snapshot is built.
    """

    ids: list[Any]
    postings: dict[str, tuple[np.ndarray, np.ndarray]]  # term -> (positions, term frequencies)
    kept: "_KeptViews"
    carried: "_Carried | None"  # the previous snapshot's kept views, to bring up to date on first use
    position: dict[Any, int]  # the lexicon's own, which appends extend: positions past `ids` are newer
    superseded: np.ndarray | None  # positions whose memory was edited and appended again; None: none are
    held: int  # the memories the scope holds: positions less the superseded ones, BM25's N
    neighbours: np.ndarray  # n x (2w+1) positions of each memory's window, padded with n
    # The same windows as runs: memories in window order (each session's turns in order, then every
    # memory that stands alone); the window of the memory at rank r is ranks window_lo[r]..window_hi[r].
    window_order: np.ndarray
    window_rank: np.ndarray
    window_lo: np.ndarray
    window_hi: np.ndarray
    norm_content: np.ndarray  # BM25 length normalisation of each memory's text
    norm_context: np.ndarray  # ... and of its window
    by_speaker_word: dict[str, np.ndarray]  # positions of the memories whose speaker's name has the word
    event_times: np.ndarray  # Unix seconds, 0 for a memory without an event time
    event_months: np.ndarray  # 1-12, 0 for a memory without an event time
    tells_when: np.ndarray  # the memory's text says when something happened
    log_length: np.ndarray  # a turn's log(1 + indexed words) less the turns' mean; 0 for other memories
    types: np.ndarray
    agents: np.ndarray
    sessions: np.ndarray

    def scores(
        self, query_text: str, expansions: dict[str, float] | None = None, asked_at: datetime | None = None
    ) -> dict[str, np.ndarray]:
        """Every view's score of every memory for the query, in index order; `expansions` are more
        terms with their weights (retrieval/term_expansion.py), a query term's being 1; `asked_at`
        is the moment relative periods ("last week") count back from.

        Only the memories that contain a term (or whose window does) get a term's score: the
        others' BM25 for it is exactly 0, so a term costs O(its postings) rather than O(scope).
        """
        n = len(self.ids)
        speaker = np.zeros(n, dtype=SCORE)
        for word in name_words(query_text):
            if word in self.by_speaker_word:
                speaker[self.by_speaker_word[word]] = 1.0
        period = named_period(query_text, asked_at)
        time = (
            period.holds(self.event_times, self.event_months).astype(SCORE)
            if period is not None
            else np.zeros(n, dtype=SCORE)
        )
        when = self.tells_when.astype(SCORE) if asks_when(query_text) else np.zeros(n, dtype=SCORE)
        if self.superseded is not None:
            speaker[self.superseded] = time[self.superseded] = when[self.superseded] = 0.0
        content, context = np.zeros(n, dtype=SCORE), np.zeros(n, dtype=SCORE)
        weighted = [(term, 1.0) for term in tokenize(query_text)] + list((expansions or {}).items())
        for term, weight in weighted:
            views = self.term_views(term)
            if views is not None:
                # Positions are unique within a term: add.at is the plain sum, and faster than += here.
                np.add.at(content, views.content_at, views.content if weight == 1.0 else weight * views.content)
                np.add.at(context, views.context_at, views.context if weight == 1.0 else weight * views.context)
        return {
            "content": content,
            "context": context,
            "speaker": speaker,
            "time": time,
            "when": when,
            "length": self.log_length,  # query-blind, already 0 where superseded: shared, never written to
        }

    def term_views(self, term: str) -> "_TermViews | None":
        """The term's BM25 in each view. A common term's is kept with the snapshot: in a large scope it
        costs tens of ms to score, mostly to find and sum the windows that hold it. A term in fewer
        than COMMON_SHARE of the memories costs O(its postings) and is scored anew each time, so a
        query's rare words never evict the terms that are dear to score."""
        views = self.kept.get(term)
        if views is not None:
            return views
        posting = self.postings.get(term)
        if posting is None:
            return None
        docs, tfs = posting
        if self.superseded is not None:  # an edit's earlier text no longer counts
            live = ~self.superseded[docs]
            docs, tfs = docs[live], tfs[live]
            if not len(docs):
                return None
        n = len(self.ids)
        carried = self.carried.term_windows(term, docs, tfs) if self.carried is not None else None
        if carried is not None:
            reached, window_tf = carried
        elif len(docs) * self.neighbours.shape[1] * 4 > n:  # its windows reach a large share of the scope
            reached, window_tf = _window_tf_by_runs(self, docs, tfs, n)
        else:
            reached, window_tf = _window_tf_by_neighbours(self, docs, tfs, n)
        views = _TermViews(
            content_at=docs,
            content=_bm25(tfs, self.norm_content[docs], len(docs), self.held),
            context_at=reached.astype(POSITION),
            context=_bm25(window_tf, self.norm_context[reached], len(reached), self.held),
            context_tf=window_tf,
        )
        if len(docs) >= COMMON_SHARE * self.held:
            self.kept.keep(term, views)
        return views

    def score_common_terms(self) -> None:
        """Score ahead the terms held by at least COMMON_SHARE of the scope, most common first, until
        the kept-term room is full. First use of such a term costs O(scope) (~25 ms at a million
        memories) and would land on a query; a refresh of a large scope calls this before it
        publishes the snapshot."""
        n = len(self.ids)
        common = sorted(
            ((len(docs), term) for term, (docs, _) in self.postings.items() if len(docs) >= COMMON_SHARE * n),
            reverse=True,
        )
        for _, term in common:
            if self.kept.full:
                return
            self.term_views(term)

    def allowed(self, query: SearchQuery) -> np.ndarray | None:
        """The cheap part of the query's filter (type, agent, session, event time: for a memory told
        without one, when it was stored, as in SQL), None when it keeps every memory; SQL applies all
        of it later."""
        bounds = (query.event_after, query.event_before)
        if not (query.types or query.agent_id is not None or query.session_id is not None or any(bounds)):
            return None
        mask = np.ones(len(self.ids), dtype=bool)
        if any(bounds):
            after = -np.inf if query.event_after is None else event_seconds(query.event_after)
            before = np.inf if query.event_before is None else event_seconds(query.event_before)
            mask &= (self.event_times >= after) & (self.event_times < before)
        if query.types:
            mask &= np.isin(self.types, list(query.types))
        if query.agent_id is not None:
            mask &= self.agents == query.agent_id
        if query.session_id is not None:
            mask &= self.sessions == query.session_id
        return mask


@dataclass(frozen=True)
class _TermViews:
    """One term's BM25 score in the content view (memories that hold it) and in the context view
    (memories whose window holds it); every other memory scores exactly 0 for the term. The
    windows' term frequencies stay beside their scores, so that the next snapshot can carry the
    views over an append instead of finding the windows again."""

    content_at: np.ndarray
    content: np.ndarray
    context_at: np.ndarray
    context: np.ndarray
    context_tf: np.ndarray

    @property
    def nbytes(self) -> int:
        """What the views add to the index (content_at is the posting itself)."""
        return self.content.nbytes + self.context_at.nbytes + self.context.nbytes + self.context_tf.nbytes


@dataclass
class _KeptViews:
    """The common terms' views of one snapshot, least recently used out beyond `room` bytes
    (VIEW_BYTES_PER_MEMORY of the scope). Queries share it, so each use holds a lock briefly."""

    room: int
    views: "OrderedDict[str, _TermViews]" = field(default_factory=OrderedDict)
    nbytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, term: str) -> _TermViews | None:
        with self.lock:
            views = self.views.get(term)
            if views is not None:
                self.views.move_to_end(term)
            return views

    def keep(self, term: str, views: _TermViews) -> None:
        with self.lock:
            if term in self.views:  # two queries scored it at once
                return
            self.views[term] = views
            self.nbytes += views.nbytes
            while self.nbytes > self.room and len(self.views) > 1:
                self.nbytes -= self.views.popitem(last=False)[1].nbytes

    @property
    def full(self) -> bool:
        return self.nbytes >= self.room


@dataclass
class _Carried:
    """The kept views of the snapshot before an append, for the next snapshot to bring a term up to
    date on its first use rather than score it anew.

    An append changes a term's windows only around the new rows (the rows whose neighbours changed,
    and the new rows), and its BM25 elsewhere only through the scope's size and mean lengths, which
    a pass over its arrays recomputes: O(the term's postings and windows) instead of O(scope) to
    find the windows again (~25 ms a common term at a million memories).
    """

    views: dict[str, _TermViews]
    changed: np.ndarray  # positions whose window changed, the new rows included
    is_changed: np.ndarray
    windows: np.ndarray  # the changed positions' windows now, padded with n (which no posting holds)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def between(cls, before: "_Derived", neighbours: np.ndarray, superseded: np.ndarray | None) -> "_Carried | None":
        """What the snapshot with these `neighbours` and `superseded` positions carries from
        `before`: its kept views, and the ones it had still to carry itself (appends with no query
        between them), with the changes of both appends: summing a window that did not change again
        is merely wasted. A superseded position counts as changed: its window holds nothing now."""
        with before.kept.lock:
            views = dict(before.kept.views)
        earlier = before.carried
        if earlier is not None:
            with earlier.lock:
                views = {**earlier.views, **views}
        if not views:
            return None
        n_before, n = len(before.ids), len(neighbours)
        was = np.where(before.neighbours == n_before, -1, before.neighbours)
        now = np.where(neighbours[:n_before] == n, -1, neighbours[:n_before])
        is_changed = np.zeros(n, dtype=bool)
        is_changed[np.flatnonzero((was != now).any(axis=1))] = True
        is_changed[n_before:] = True
        if superseded is not None:
            is_changed |= superseded
        if earlier is not None:
            is_changed[: len(earlier.is_changed)] |= earlier.is_changed
        changed = np.flatnonzero(is_changed).astype(POSITION)
        return cls(views, changed, is_changed, neighbours[changed])

    def term_windows(self, term: str, docs: np.ndarray, tfs: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The memories whose window holds the term now (`docs`: the positions that hold it, the
        superseded left out), and its frequency in each window: those of before the append with the
        changed windows summed again. None if the term was not kept; each
        term is carried once (the new snapshot keeps its own views after that)."""
        with self.lock:
            before = self.views.pop(term, None)
        if before is None:
            return None
        at = np.minimum(np.searchsorted(docs, self.windows), len(docs) - 1)  # positions ascend: rows come in order
        window_tf = np.where(docs[at] == self.windows, tfs[at], 0).sum(axis=1, dtype=SCORE)
        unchanged = ~self.is_changed[before.context_at]
        held = window_tf > 0
        return (
            np.concatenate([before.context_at[unchanged], self.changed[held]]),
            np.concatenate([before.context_tf[unchanged], window_tf[held]]),
        )


@dataclass
class _Column:
    """One attribute of every memory: an array up to the last build and a list of the values appended
    since. A build joins them, so an append costs its new rows rather than a conversion of the whole
    scope's lists (25 of the 36 ms of a build at 100k memories)."""

    dtype: Any
    built: np.ndarray | None = None
    pending: list[Any] = field(default_factory=list)

    def array(self) -> np.ndarray:
        if self.built is None or self.pending:
            fresh = np.asarray(self.pending, dtype=self.dtype)
            self.built = fresh if self.built is None else np.concatenate([self.built, fresh])
            self.pending = []
        return self.built


@dataclass
class ScopeLexicon:
    """BM25 statistics of one scope. Rows are appended by the scope's refresh in the order it finds
    them (seq order, but for writes that commit late; an edited memory again, superseding its earlier
    position); `prepare` turns them into the snapshot that queries read."""

    window: int
    ids: list[Any] = field(default_factory=list)
    types: _Column = field(default_factory=lambda: _Column(object))
    agents: _Column = field(default_factory=lambda: _Column(object))
    sessions: _Column = field(default_factory=lambda: _Column(object))
    # Kept as rows arrive, so that building a snapshot after an append is array work, not a pass in Python:
    position: dict[Any, int] = field(default_factory=dict)  # memory id -> position
    runs: _Column = field(default_factory=lambda: _Column(np.int64))  # each turn's session by first turn; -1 alone
    _run_of_session: dict[str, int] = field(default_factory=dict)
    event_times: _Column = field(default_factory=lambda: _Column(np.float64))
    event_months: _Column = field(default_factory=lambda: _Column(np.int8))
    tells_when: _Column = field(default_factory=lambda: _Column(bool))
    seqs: _Column = field(default_factory=lambda: _Column(np.int64))
    updated: _Column = field(default_factory=lambda: _Column(np.float64))  # each row's updated_at, Unix seconds
    lengths: _Column = field(default_factory=lambda: _Column(np.float64))
    by_speaker_word: dict[str, _Column] = field(default_factory=dict)  # positions, ascending
    # term -> (positions, term frequencies): two columns, in a dict the refresh alone changes
    postings: dict[str, tuple[_Column, _Column]] = field(default_factory=dict)
    terms: list[str] = field(default_factory=list)  # the postings' terms in the order they arrived
    words: ScopeWords = field(default_factory=ScopeWords)  # the vocabulary's words among them
    _appended_terms: set[str] = field(default_factory=set)  # terms with postings appended since the last build
    superseded: list[int] = field(default_factory=list)  # positions of memories appended again since
    max_seq: int = 0
    max_updated: datetime | None = None
    _published: _Derived | None = None
    _posting_arrays: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # as of the last build
    lock: threading.Lock = field(default_factory=threading.Lock)  # appends and builds, never queries
    _unpublished: bool = False  # committed rows appended since the last build (`append_committed`)
    _publishing: threading.Lock = field(default_factory=threading.Lock)

    @property
    def held(self) -> int:
        """The memories the lexicon holds (each edited one once)."""
        return len(self.ids) - len(self.superseded)

    def add(self, rows: list[Any]) -> None:
        """Append rows; a row whose memory the lexicon holds already is its edit and supersedes it."""
        with self.lock:
            self._add(rows)

    def append_committed(self, rows: list[Any]) -> list[Any]:
        """Append the rows this process has just committed that the lexicon does not hold yet (a
        refresh may have read them) and return them. No snapshot is built here: the next query builds
        one for every append since, so a stream of writes costs one build per query, not per write."""
        with self.lock:
            fresh = [row for row in rows if row.id not in self.position]
            self._add(fresh)
            self._unpublished = self._unpublished or bool(fresh)
        return fresh

    def _add(self, rows: list[Any]) -> None:
        for row in rows:
            position = len(self.ids)
            counts: dict[str, int] = {}
            for term in tokenize(indexed_text(row.content, row.attributes)):
                counts[term] = counts.get(term, 0) + 1
            self._appended_terms.update(counts)
            for term, tf in counts.items():
                posting = self.postings.get(term)
                if posting is None:
                    posting = self.postings[term] = (_Column(POSITION), _Column(SCORE))
                    self.terms.append(term)
                docs, tfs = posting
                docs.pending.append(position)
                tfs.pending.append(tf)
            if row.id in self.position:
                self.superseded.append(self.position[row.id])
            self.position[row.id] = position
            self.ids.append(row.id)
            self.types.pending.append(row.type)
            self.agents.pending.append(row.agent_id)
            self.sessions.pending.append(row.session_id)
            in_run = row.session_id is not None and row.type == "episodic"  # turns have neighbours; facts stand alone
            self.runs.pending.append(
                self._run_of_session.setdefault(row.session_id, len(self._run_of_session)) if in_run else -1
            )
            self.event_times.pending.append(event_seconds(row.event_at))
            self.event_months.pending.append(event_month(row.event_at))
            self.tells_when.pending.append(tells_when(row.content))
            self.seqs.pending.append(row.seq)
            self.updated.pending.append(row.updated_at.timestamp())
            for word in name_words((row.attributes or {}).get("speaker")):
                speakers = self.by_speaker_word.get(word)
                if speakers is None:
                    speakers = self.by_speaker_word[word] = _Column(np.int64)
                speakers.pending.append(position)
            self.lengths.pending.append(sum(counts.values()))
            self.max_seq = max(self.max_seq, row.seq)
            if self.max_updated is None or row.updated_at > self.max_updated:
                self.max_updated = row.updated_at

    def not_held(self, rows: list[Any]) -> list[Any]:
        """The rows the lexicon does not hold as they are: new, or edited since (a refresh reads the
        last few seconds' rows again, scope_cache.EDIT_MARGIN)."""
        with self.lock:  # appends change both the positions and the times
            updated = self.updated.array()
            return [
                row
                for row in rows
                if row.id not in self.position or updated[self.position[row.id]] != row.updated_at.timestamp()
            ]

    @property
    def published(self) -> _Derived:
        """The snapshot queries read: that of the last `prepare` (a refresh prepares before it hands
        the lexicon out), or one built now if this process's committed rows were appended since."""
        if self._unpublished:
            with self._publishing:  # the first query builds it; those behind it read that one
                if self._unpublished:
                    self.prepare()
        assert self._published is not None, "a lexicon is prepared before it is queried"
        return self._published

    def prepare(self, score_ahead: bool = False) -> _Derived:
        """Build the snapshot of the rows added so far and publish it. With `score_ahead` (a large
        scope, refreshed in the background) the common terms are scored into it before it replaces
        the previous one, so no query meets them unscored."""
        with self.lock:
            self._unpublished = False
            built = self._build()
        if score_ahead:
            built.score_common_terms()
        self._published = built
        return built

    def _build(self) -> _Derived:
        """Derived arrays, and the postings as arrays: those of the terms appended to are joined anew,
        the others shared with the previous snapshot. Arrays also take less than half the room of
        lists of Python ints."""
        for term in self._appended_terms:
            docs, tfs = self.postings[term]
            self._posting_arrays[term] = (docs.array(), tfs.array())
        self._appended_terms.clear()
        n, w = len(self.ids), self.window
        superseded = None
        if self.superseded:
            superseded = np.zeros(n, dtype=bool)
            superseded[self.superseded] = True
        runs = self.runs.array()
        in_run = runs >= 0 if superseded is None else (runs >= 0) & ~superseded
        members = np.flatnonzero(in_run)
        # Each session's turns in (event time, seq) order, the sessions in the order they began.
        times, seqs = self.event_times.array(), self.seqs.array()
        ordered = members[np.lexsort((seqs[members], times[members], runs[members]))]
        run_of = runs[ordered]
        neighbours = np.full((n, 2 * w + 1), n, dtype=np.int64)
        neighbours[:, w] = np.arange(n)
        for offset in range(1, w + 1):
            same = run_of[offset:] == run_of[:-offset]
            earlier, later = ordered[:-offset][same], ordered[offset:][same]
            neighbours[earlier, w + offset] = later
            neighbours[later, w - offset] = earlier
        alone = np.flatnonzero(~in_run)  # a superseded position stands alone, in no one's window
        window_order = np.concatenate([ordered, alone]).astype(np.int64)
        window_rank = np.empty(n, dtype=np.int64)
        window_rank[window_order] = np.arange(n)
        sizes = np.concatenate([np.bincount(run_of), np.ones(len(alone), dtype=np.int64)]).astype(np.int64)
        run_start = np.repeat(np.cumsum(sizes) - sizes, sizes)
        ranks = np.arange(n)
        lengths = np.append(self.lengths.array(), 0.0)
        window_lengths = lengths[neighbours].sum(axis=1)
        return _Derived(
            ids=list(self.ids),
            postings=dict(self._posting_arrays),
            kept=_KeptViews(VIEW_BYTES_PER_MEMORY * n),
            carried=_Carried.between(self._published, neighbours, superseded) if self._published is not None else None,
            position=self.position,
            superseded=superseded,
            held=self.held,
            neighbours=neighbours,
            window_order=window_order,
            window_rank=window_rank,
            window_lo=np.maximum(ranks - w, run_start),
            window_hi=np.minimum(ranks + w, run_start + np.repeat(sizes, sizes) - 1),
            norm_content=_length_norm(lengths[:n], superseded),
            norm_context=_length_norm(window_lengths, superseded),
            by_speaker_word={word: positions.array() for word, positions in self.by_speaker_word.items()},
            event_times=times,
            event_months=self.event_months.array(),
            tells_when=self.tells_when.array(),
            log_length=_log_lengths(lengths[:n], in_run),
            types=self.types.array(),
            agents=self.agents.array(),
            sessions=self.sessions.array(),
        )


def _window_tf_by_neighbours(
    derived: _Derived, docs: np.ndarray, tfs: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """The memories whose window holds the term, and its frequency in each window; costs
    O(postings x window). Windows are symmetric (j in i's window iff i in j's), so the memories
    whose window holds the term are the windows of the memories that hold it."""
    in_window = np.zeros(n + 1, dtype=bool)  # position n is the window padding
    in_window[derived.neighbours[docs]] = True
    reached = np.flatnonzero(in_window[:n])
    tf = np.zeros(n + 1, dtype=SCORE)
    tf[docs] = tfs
    return reached, tf[derived.neighbours[reached]].sum(axis=1)


def _window_tf_by_runs(derived: _Derived, docs: np.ndarray, tfs: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The same as `_window_tf_by_neighbours` in one sequential pass over the scope: a window is a
    run of ranks, so its frequency is a difference of prefix sums (exact: the sums are of integers).
    A term in 143k of 1M memories: 20 ms instead of 42."""
    prefix = np.zeros(n + 1)  # double precision: a running total over the scope outgrows float32's integers
    prefix[derived.window_rank[docs] + 1] = tfs
    np.cumsum(prefix, out=prefix)
    by_rank = prefix[derived.window_hi + 1] - prefix[derived.window_lo]
    held = np.flatnonzero(by_rank)
    return derived.window_order[held], by_rank[held].astype(SCORE)


def _log_lengths(lengths: np.ndarray, turns: np.ndarray) -> np.ndarray:
    """The length view: log(1 + indexed words) of each conversation turn (`turns`: episodic, in a
    session, not superseded), less the turns' mean. On LoCoMo's dev split a turn of 40 or more words
    is 2.2 times as likely to be a question's evidence as a turn picked at random, one under 8 words
    a fifth as likely: long turns tell things, one-liners acknowledge them. Other memories (facts,
    notes, summaries: short by nature) get 0, the turns' mean, as does a memory the snapshot has not
    seen yet (`LexicalScores.of`): neither is held back for its length."""
    logs = np.log1p(lengths)
    mean = float(logs[turns].mean()) if turns.any() else 0.0
    return np.where(turns, logs - mean, 0.0).astype(SCORE)


def _length_norm(lengths: np.ndarray, superseded: np.ndarray | None) -> np.ndarray:
    """BM25's per-document length normalisation, K1 * (1 - B + B * length / average length), the
    average over the memories held (superseded positions left out)."""
    counted = lengths if superseded is None else lengths[~superseded]
    if not len(counted):
        return np.zeros(len(lengths), dtype=SCORE)
    return (K1 * (1 - B + B * lengths / max(counted.mean(), 1.0))).astype(SCORE)


def _bm25(tf: np.ndarray, norm: np.ndarray, df: int, n: int) -> np.ndarray:
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))  # a Python float keeps the arrays' precision
    return idf * tf * (K1 + 1) / (tf + norm)


def _top_positions(scores: np.ndarray, limit: int) -> np.ndarray:
    """Positions of the `limit` highest positive scores (unordered); ties at the cut go to the older
    memory, so the same scope always proposes the same ids.

    A large scope selects among the scores at or above a floor taken from a sample first: one
    partition of a million scores took 16 ms when many of them tie, as generated text does.
    """
    if limit <= 0 or len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    step = len(scores) // SAMPLE_FOR_TOP
    if step > 1:
        sample = scores[::step]
        rank = min(len(sample), 4 * limit // step + 1)  # expect ~4x `limit` scores at or above it
        floor = np.partition(sample, len(sample) - rank)[len(sample) - rank]
        candidates = np.flatnonzero(scores >= floor) if floor > 0 else np.zeros(0, dtype=np.int64)
        if len(candidates) < limit:  # few memories score at all (the speaker view, rare terms)
            candidates = np.flatnonzero(scores > 0)
            if len(candidates) <= limit:
                return candidates
    else:
        candidates = np.arange(len(scores))
    picked = scores[candidates]
    cut = np.partition(picked, max(len(picked) - limit, 0))[max(len(picked) - limit, 0)]
    if cut <= 0:  # fewer than `limit` memories match at all: all of them
        return candidates[picked > 0]
    above = candidates[picked > cut]
    return np.concatenate([above, candidates[picked == cut][: limit - len(above)]])


@dataclass(frozen=True)
class LexicalScores:
    """The scope's view scores for one query ("content", "context", "speaker", "time", "when", and the
    query-blind "length"), to look up by memory id."""

    ids: list[Any]
    views: dict[str, np.ndarray]
    allowed: np.ndarray | None  # None: every memory
    position: dict[Any, int]

    def top(self, view: str, limit: int) -> list[Any]:
        scores = self.views[view] if self.allowed is None else np.where(self.allowed, self.views[view], 0.0)
        best = _top_positions(scores, limit)
        return [self.ids[i] for i in best[np.argsort(-scores[best], kind="stable")]]

    def of(self, memory_ids: list[Any]) -> dict[str, np.ndarray]:
        """Each view's scores of `memory_ids` (0 for a memory the index has not seen yet)."""
        pick = np.asarray([self.position.get(m, -1) for m in memory_ids], dtype=np.int64)
        known = (pick >= 0) & (pick < len(self.ids))  # appended after these scores were taken: unseen
        pick = np.where(known, pick, 0)
        return {name: np.where(known, scores[pick], 0.0) for name, scores in self.views.items()}


# A memory told without a time happened, as far as anyone knows, when it was stored: the period view
# and the event window then see it (as SQL's event filter does, retrieval/filters.py).
_COLUMNS = (
    "id, seq, type, agent_id, session_id, coalesce(event_at, created_at) AS event_at, updated_at, content, attributes"
)


class LexicalIndexes:
    """The per-scope BM25 indexes of one process; scopes over `max_docs` memories are not indexed.
    With `vocabulary` (and an expansion weight above 0), the words of every memory read are learned
    and queries are expanded with them."""

    def __init__(
        self,
        window: int,
        max_docs: int,
        max_scopes: int,
        recheck_seconds: float,
        open_session: OpenSession | None = None,
        background_rows: int = 100_000,
        vocabulary: WordVectors | None = None,
        expansion: ExpansionParams | None = None,
    ) -> None:
        self._window = window
        self._expansion = expansion or ExpansionParams()
        self._vocabulary = vocabulary if self._expansion.weight > 0 else None
        self._max_docs = max_docs
        self._background_rows = background_rows if open_session is not None else None
        self._cache: ScopeCache[ScopeLexicon] = ScopeCache(
            partial(scope_stamp, embedded_only=False),
            self._refresh,
            max_scopes,
            recheck_seconds,
            open_session,
            background_rows,
        )

    @property
    def refreshes(self) -> int:
        return self._cache.refreshes

    def changed(self, keys: Iterable[ScopeKey] | None = None, edited: datetime | None = None) -> None:
        """Memories changed in the scopes `keys` (None: any): each is refreshed before its next use,
        reading back to `edited` at least (ScopeCache.changed)."""
        self._cache.changed(keys, edited)

    @property
    def busy(self) -> bool:
        """A scope's index is being built or checked, or its words learned, in the background
        (benchmarks wait for it)."""
        return self._cache.busy or self.pending_words > 0

    @property
    def pending_words(self) -> int:
        return self._vocabulary.pending if self._vocabulary is not None else 0

    def close(self) -> None:
        self._cache.close()

    def scores(self, session: Session, query: SearchQuery) -> LexicalScores | None:
        """Scores over the query's scope, or None when the scope is too large to hold here or its
        index is still being built."""
        lexicon = self._cache.get(session, (query.tenant_id, query.user_id))
        if lexicon is None:
            return None
        derived = lexicon.published  # a refresh running meanwhile swaps in a new one when it is whole
        expansions = None
        if self._vocabulary is not None:
            words = self._vocabulary.query_words(query.text)
            rows = lexicon.words.rows(self._vocabulary, lexicon.terms)
            expansions = self._vocabulary.expansions(words, rows, derived.postings, self._expansion)
        return LexicalScores(
            derived.ids,
            derived.scores(query.text, expansions, query.asked_at),
            derived.allowed(query),
            derived.position,
        )

    def appended(self, rows: list[InsertedRow]) -> None:
        """Memories this process has just committed, added to the built indexes of their scopes (the
        user's and the tenant-wide one), so that the writer's next search finds them without stamping
        the scope first (app.vector_changes: such inserts are not reported to `changed`)."""
        self._cache.hand_over(rows, self._append)

    def _append(self, rows: list[InsertedRow], lexicon: ScopeLexicon) -> tuple[ScopeLexicon, int]:
        fresh = lexicon.append_committed(rows)
        self._learn(fresh)
        return lexicon, len(fresh)

    def _refresh(
        self, session: Session, key: ScopeKey, previous: ScopeLexicon | None, stamp: Stamp, reread_from: datetime | None
    ) -> ScopeLexicon | None:
        where, params = scope_sql(key, embedded_only=False)
        count = stamp[0]
        if count > self._max_docs:
            return None
        if previous is not None:
            rows = _new_rows(session, where, params, previous, count, reread_from)
            if rows == []:
                return previous
            if rows is not None:
                previous.add(rows)
                self._learn(rows)
                return self._prepared(previous)
        lexicon = ScopeLexicon(self._window)
        rows = session.execute(text(f"SELECT {_COLUMNS} FROM memories WHERE {where} ORDER BY seq"), params).all()
        lexicon.add(rows)
        self._learn(rows)
        return self._prepared(lexicon)

    def _learn(self, rows: list[Any]) -> None:
        if self._vocabulary is not None:
            self._vocabulary.read([indexed_text(row.content, row.attributes) for row in rows])

    def _prepared(self, lexicon: ScopeLexicon) -> ScopeLexicon:
        large = self._background_rows is not None and len(lexicon.ids) > self._background_rows  # off the request path
        lexicon.prepare(score_ahead=large)
        return lexicon


def _new_rows(
    session: Session,
    where: str,
    params: dict[str, Any],
    previous: ScopeLexicon,
    count: int,
    reread_from: datetime | None,
) -> list[Any] | None:
    """The rows written or edited since `previous` was refreshed, or None when more happened (a hard
    delete), or so many edits that the scope is better rebuilt (MAX_SUPERSEDED_SHARE).

    Usually they are the rows past its seq and time watermarks, the new ones as many as the scope's
    stamp (`count`) has gained. When the numbers disagree, because writes committed after the stamp
    or late, below the seq already read past, the scope's count and its most recent ids are read
    together and the rows the lexicon lacks are loaded by id."""
    since = changed_since(previous.max_seq, previous.max_updated, reread_from)
    read = session.execute(text(f"SELECT {_COLUMNS} FROM memories WHERE {where} AND {since} ORDER BY seq"), params)
    rows = previous.not_held(read.all())
    edited = [row for row in rows if row.id in previous.position]
    if len(previous.superseded) + len(edited) > MAX_SUPERSEDED_SHARE * (len(previous.ids) + len(rows)):
        return None
    if previous.held + len(rows) - len(edited) == count:
        return rows
    lacking = lacking_ids(session, where, params, previous.position, previous.held)
    if lacking is None:
        return None
    new = session.execute(
        text(f"SELECT {_COLUMNS} FROM memories WHERE {where} AND id = ANY(:lacking) ORDER BY seq"),
        {**params, "lacking": lacking},
    ).all()
    return edited + new if len(new) == len(lacking) else None
