"""In-process per-scope indexes built from Postgres and kept coherent with it, shared by the FAISS
dense index and the BM25 lexical index.

Each entry carries the stamp of the rows it was built from (an aggregate over the scope); a
changed stamp means refresh. The stamp is not taken on every query, only when this process has
written memories since the scope was last checked (`changed()`, wired to the engine by the app):
then the query waits for it, so a process reads its own writes. An index that is handed the rows
this process inserts (`hand_over`) needs no stamp for them. Writes in other processes are
reported as they commit too, scope by scope (`changed(keys)`, from app/memory_notices.py); where
those reports cannot arrive, a recheck every `recheck_seconds` catches them, which the app runs
off the request path (given `open_session`): the query that finds the scope due is served the
index as it is, like the ones before it. The stamp still counts the scope's rows (~85 ms for a
tenant of a million, from an index), so a scope is rechecked no more often than STAMP_SHARE of the
time allows. A large scope is built and refreshed only off the request path (see ScopeCache).
Least recently used scopes are dropped beyond `max_scopes`.
"""

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Container, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Generic, NamedTuple, TypeVar

from sqlalchemy import text
from sqlalchemy.orm import Session

ScopeKey = tuple[Any, str | None]
"""(tenant_id, user_id): the unit a search almost always names."""


class InsertedRow(NamedTuple):
    """A memory this process has just committed, as the indexes handed it read it: the BM25 index's
    columns (lexical_index._COLUMNS), its scope, and its vector (None until the embedding worker
    embeds it, which the dense index then learns of as any other vector change)."""

    tenant_id: Any
    user_id: str | None
    id: Any
    seq: int
    type: str
    agent_id: str | None
    session_id: str | None
    event_at: datetime | None
    updated_at: datetime
    content: str
    attributes: dict[str, Any] | None
    embedding: Any


def scope_keys(tenant_id: Any, user_id: str | None) -> set[ScopeKey]:
    """The scopes a memory belongs to: its user's and its tenant's as a whole."""
    return {(tenant_id, user_id), (tenant_id, None)}


Built = TypeVar("Built")
Stamp = tuple[Any, ...]
OpenSession = Callable[[Any], AbstractContextManager[Session]]
"""A session confined to the given tenant, for rechecks that run outside any request."""

EDIT_MARGIN = timedelta(seconds=5)
"""How far before the latest change an index has read its next refresh reads again. `updated_at` is
set before its transaction commits, so an edit that commits after a later one has been read falls
below that one's (two concurrent editors of a scope, in tests, made an index keep a stale text or
vector until its next rebuild)."""
EVER = datetime.min.replace(tzinfo=UTC)
"""A `reread_from` that reads every row of a scope back: after changes may have gone unreported."""
RECENT_ROWS = 512  # a write that commits after more than this many later seqs costs its scope a rebuild
STAMP_SHARE = 0.1  # of the wall time, at most, that the rechecks of one scope spend stamping it
# Of the wall time, at most, that a large scope's background checks spend, refreshes included: writes
# that arrive faster are taken in batches. At 100k memories a refresh with its common terms took
# ~250 ms; one after every write of a write-and-search loop kept a core busy under the searches.
BACKGROUND_SHARE = 0.25

log = logging.getLogger(__name__)


def scope_sql(key: ScopeKey, embedded_only: bool) -> tuple[str, dict[str, Any]]:
    """WHERE clause and parameters selecting a scope's memories (only embedded ones for a dense index)."""
    tenant_id, user_id = key
    where = "tenant_id = :tenant_id" + (" AND embedding IS NOT NULL" if embedded_only else "")
    params: dict[str, Any] = {"tenant_id": tenant_id}
    if user_id is not None:
        where += " AND user_id = :user_id"
        params["user_id"] = user_id
    return where, params


def changed_since(max_seq: int, max_updated: datetime | None, reread_from: datetime | None = None) -> str:
    """SQL condition for the rows added (seq) or edited (updated_at) after an index was built from
    rows up to these, for an index to catch up by reading only those. Edits are read from
    EDIT_MARGIN before `max_updated`, or before `reread_from` where an edit was reported that far
    back (see ScopeCache): each index tells a row read again unchanged from an edit.

    The bounds are literals (an int and a timestamp the index read itself, never user input): a
    search transaction forces generic plans (app/db/tenancy.py), and the generic plan of
    `seq > $n OR updated_at > $m` expects a third of the scope and reads all of it (9 ms at 10k, on
    the first search after every write); a plan for the values reads the few new rows from two
    indexes (migration 0005)."""
    bound = max_updated if reread_from is None or max_updated is None else min(max_updated, reread_from)
    updated = "-infinity" if bound is None or bound <= EVER + EDIT_MARGIN else (bound - EDIT_MARGIN).isoformat()
    return f"(seq > {max_seq:d} OR updated_at > '{updated}'::timestamptz)"


def lacking_ids(
    session: Session, where: str, params: dict[str, Any], known: Container[Any], held: int
) -> list[Any] | None:
    """The ids of the scope (`where`) that an index holding `held` rows (`known`) lacks, or None
    when they are not all among its RECENT_ROWS highest seqs (the caller rebuilds).

    A write takes its seq when it inserts and is seen when it commits, so concurrent writes become
    visible out of seq order: a refresh that read up to seq 120 can miss 118, still uncommitted
    then, and `changed_since` never returns it (122 full rebuilds of a scope in 30 s of the load
    benchmark, a third of the API's CPU). The scope's count and its recent ids are read in one
    statement, so they agree; ids only, an index range read."""
    count, ids = session.execute(
        text(
            f"SELECT (SELECT count(*) FROM memories WHERE {where}),"
            f" ARRAY(SELECT id FROM memories WHERE {where} ORDER BY seq DESC LIMIT {RECENT_ROWS:d})"
        ),
        params,
    ).one()
    lacking = [memory_id for memory_id in ids if memory_id not in known]
    return lacking if held + len(lacking) == count else None


def _stamp_sql(key: ScopeKey, embedded_only: bool) -> tuple[str, dict[str, Any]]:
    """The stamp with each aggregate from an index (migration 0005): one scan of the scope took 1 s
    for a tenant of a million and 9 ms for a user's 10k, on the first search after every write.
    Embedded rows are counted as all rows less the pending ones, which a partial index holds; the
    maxima read an index backwards to the first row that qualifies."""
    where, params = scope_sql(key, embedded_only=False)
    only = " AND embedding IS NOT NULL" if embedded_only else ""
    count = f"(SELECT count(*) FROM memories WHERE {where})"
    if embedded_only:
        count += f" - (SELECT count(*) FROM memories WHERE {where} AND embedding IS NULL)"
    return (
        f"SELECT {count}, (SELECT coalesce(max(seq), 0) FROM memories WHERE {where}{only}),"
        f" (SELECT max(updated_at) FROM memories WHERE {where}{only})",
        params,
    )


def scope_stamp(session: Session, key: ScopeKey, embedded_only: bool) -> Stamp:
    """Count, max(seq) and max(updated_at) of the scope: any insert, delete or edit changes it."""
    sql, params = _stamp_sql(key, embedded_only)
    return tuple(session.execute(text(sql), params).one())


@dataclass
class _Entry(Generic[Built]):
    stamp: Stamp | None = None  # of the rows `built` was made from
    built: Built | None = None
    rows: int | None = None  # the scope's size at its last stamp
    generation: int = -1  # of the cache, when this scope's last check began
    changed: int = -1  # of the cache, when a change of this scope alone was last reported
    reread_from: datetime | None = None  # the oldest `updated_at` of the edits reported since its last check
    checked_at: float = 0.0
    recheck_after: float = 0.0
    settled_at: float = 0.0  # a large scope is not checked again in the background before this
    rechecking: bool = False  # a background check is queued or running
    lock: threading.Lock = field(default_factory=threading.Lock)


def _read_back(entry: _Entry[Any], edited: datetime | None) -> None:
    """Have the scope's next refresh read back to `edited` too (the cache's lock is held)."""
    if edited is not None:
        entry.reread_from = edited if entry.reread_from is None else min(entry.reread_from, edited)


class ScopeCache(Generic[Built]):
    """`stamp(session, key)` says whether a scope changed; `refresh(session, key, previous, stamp)`
    builds its index anew, or updates `previous` in place of a rebuild where it can (the new stamp,
    whose first element is the scope's row count, comes along so it need not be counted again).

    A stamp can miss an edit: `updated_at` is set before its transaction commits, so an edit that
    commits after a later one leaves max(updated_at) as it was. So a reported change (`changed()`,
    after its commit: this process's own, or another's heard by app/memory_notices.py) refreshes
    the scope whatever its stamp, and a refresh reads back EDIT_MARGIN (`changed_since`), far enough
    to find such an edit, or further, to the `updated_at` of an edit reported with it (`edited`),
    whose transaction may have run for longer than the margin.

    Without `open_session` every check runs in the caller's session. With it, checks run in a
    background thread where the caller need not wait: when only other processes can have written,
    and always for a scope of more than `background_rows` memories, whose build takes seconds (30 s
    for a million in BM25): until its first build is done such a scope gets None, as a scope too
    large to index does, and the caller does without the index.
    """

    def __init__(
        self,
        stamp: Callable[[Session, ScopeKey], Stamp],
        refresh: Callable[[Session, ScopeKey, Built | None, Stamp, datetime | None], Built | None],
        max_scopes: int,
        recheck_seconds: float,
        open_session: OpenSession | None = None,
        background_rows: int = 100_000,
    ) -> None:
        self._stamp = stamp
        self._refresh = refresh
        self._max_scopes = max_scopes
        self._recheck = recheck_seconds
        self._open_session = open_session
        self._background_rows = background_rows
        self._rechecks = ThreadPoolExecutor(1, "loci-scope-recheck") if open_session is not None else None
        self._entries: OrderedDict[ScopeKey, _Entry[Built]] = OrderedDict()
        self._lock = threading.Lock()
        self._generation = 0
        self._all_changed = 0  # the generation of the last change reported for every scope
        self.refreshes = 0

    def changed(self, keys: Iterable[ScopeKey] | None = None, edited: datetime | None = None) -> None:
        """Memories changed in the scopes `keys` (None: in any scope, as this process does not say
        which): each of them is refreshed before its next use, reading back to `edited` at least
        (the `updated_at` of an edit among the changes)."""
        with self._lock:
            self._generation += 1
            if keys is None:
                self._all_changed = self._generation
                held = list(self._entries.values())
            else:  # a scope not held is read afresh when first used
                held = [entry for key in keys if (entry := self._entries.get(key)) is not None]
                for entry in held:
                    entry.changed = self._generation
            for entry in held:
                _read_back(entry, edited)

    def _wanted(self, entry: _Entry[Built]) -> int:
        """The generation the scope's last check must have begun at to include every reported change."""
        return max(self._all_changed, entry.changed)

    def get(self, session: Session, key: ScopeKey) -> Built | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
                while len(self._entries) > self._max_scopes:
                    self._entries.popitem(last=False)
            self._entries.move_to_end(key)
            generation, wanted = self._generation, self._wanted(entry)
            if self._rechecks is not None and entry.rows is not None:
                if entry.rows > self._background_rows or entry.generation >= wanted:
                    if entry.rechecking or (entry.generation >= wanted and not self._due(entry)):
                        return entry.built
                    if entry.rows > self._background_rows and time.monotonic() < entry.settled_at:
                        return entry.built  # this process's writes too wait for the scope to settle
                    self._submit(key, entry)
                    return entry.built
        with entry.lock:
            # A check made while this query waited covers it if it began after the changes reported
            # before this query: under a steady stream of writes the generation has moved on by
            # then, and checking again would queue every search behind one more stamp.
            if entry.generation >= wanted and not self._due(entry):
                return entry.built
            stamp = self._stamp(session, key)
            entry.rows = stamp[0]
            if self._rechecks is not None and entry.rows > self._background_rows:  # first build, or grew past it
                with self._lock:
                    if not entry.rechecking:
                        self._submit(key, entry)
                return entry.built
            self._check(session, key, entry, stamp, forced=entry.generation < wanted)
            entry.generation = generation
            return entry.built

    def hand_over(
        self, rows: list[InsertedRow], apply: Callable[[list[InsertedRow], Built], tuple[Built, int]]
    ) -> None:
        """Give the scopes of committed `rows` (each row's user's and tenant's) to `apply`, scope by
        scope (`_update`); if that fails, the scopes re-read the database instead."""
        by_scope: dict[ScopeKey, list[InsertedRow]] = {}
        for row in rows:
            for key in scope_keys(row.tenant_id, row.user_id):
                by_scope.setdefault(key, []).append(row)
        try:
            for key, scope_rows in by_scope.items():
                self._update(key, partial(apply, scope_rows))
        except Exception as exc:  # the rows are committed: the scopes re-read them instead
            log.warning("appending committed memories to the index failed: %s", type(exc).__name__)
            self.changed()

    def _update(self, key: ScopeKey, apply: Callable[[Built], tuple[Built, int]]) -> None:
        """Apply a change this process committed to the scope's index: `apply` returns the index with
        it (the same object changed in place, or a new one) and the rows it added, instead of having
        the next query stamp the scope. A scope without an index here needs nothing; a large one,
        refreshed only in the background, is marked changed (its refreshes take writes in batches)."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is None:
            return
        if self._rechecks is not None and (entry.rows or 0) > self._background_rows:
            self.changed()
            return
        with entry.lock:
            if entry.built is not None:
                entry.built, added = apply(entry.built)
                entry.rows = (entry.rows or 0) + added

    @property
    def busy(self) -> bool:
        """A background build or check is queued or running."""
        with self._lock:
            return any(entry.rechecking for entry in self._entries.values())

    def close(self) -> None:
        """Wait for a running background check and drop queued ones (before the engine goes)."""
        if self._rechecks is not None:
            self._rechecks.shutdown(wait=True, cancel_futures=True)

    def _due(self, entry: _Entry[Built]) -> bool:
        return time.monotonic() - entry.checked_at >= entry.recheck_after

    def _submit(self, key: ScopeKey, entry: _Entry[Built]) -> None:
        """Queue a background check of the scope (the caller holds self._lock)."""
        assert self._rechecks is not None
        entry.rechecking = True
        self._rechecks.submit(self._check_in_background, key, entry)

    def _check(
        self, session: Session, key: ScopeKey, entry: _Entry[Built], stamp: Stamp | None = None, forced: bool = False
    ) -> None:
        """Refresh the scope if its stamp changed, or if `forced` (this process reported a change
        since the scope's last check: see the class)."""
        started = time.monotonic()
        if stamp is None:  # before loading: a write landing in between makes the next check refresh
            stamp = self._stamp(session, key)
        entry.rows = stamp[0]
        entry.recheck_after = max(self._recheck, (time.monotonic() - started) / STAMP_SHARE)
        first_build = entry.stamp is None  # (a scope too large to index has a stamp but nothing built)
        if stamp != entry.stamp or forced:
            with self._lock:  # edits reported from now on are read by the next check
                reread_from, entry.reread_from = entry.reread_from, None
            try:
                entry.built, entry.stamp = self._refresh(session, key, entry.built, stamp, reread_from), stamp
            except BaseException:
                with self._lock:
                    _read_back(entry, reread_from)
                raise
            self.refreshes += 1
        entry.checked_at = time.monotonic()
        if not first_build:  # the first build is a one-off: writes since then are caught up at once
            entry.settled_at = entry.checked_at + (entry.checked_at - started) * (1 / BACKGROUND_SHARE - 1)

    def _check_in_background(self, key: ScopeKey, entry: _Entry[Built]) -> None:
        assert self._open_session is not None
        try:
            with entry.lock:
                generation, wanted = self._generation, self._wanted(entry)  # before the check's snapshot
                if entry.stamp is None or entry.generation < wanted or self._due(entry):
                    with self._open_session(key[0]) as session:
                        self._check(session, key, entry, forced=entry.generation < wanted)
                    entry.generation = max(entry.generation, generation)
        except Exception as exc:  # the database may be away: the next due check tries again
            log.warning("scope check failed: %s", type(exc).__name__)
            entry.checked_at = time.monotonic()
        finally:
            entry.rechecking = False
