"""In-process per-scope indexes built from Postgres and kept coherent with it, shared by the FAISS
dense index and the BM25 lexical index.

Each entry carries the stamp of the rows it was built from (an aggregate over the scope); a
changed stamp means refresh. The stamp is not taken on every query, only when this process has
written memories since the scope was last checked (`changed()`, wired to the engine by the app)
or after `recheck_seconds` (writers in other processes). Least recently used scopes are dropped
beyond `max_scopes`.
"""

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import text
from sqlalchemy.orm import Session

ScopeKey = tuple[Any, str | None]
"""(tenant_id, user_id): the unit a search almost always names."""

Built = TypeVar("Built")
Stamp = tuple[Any, ...]


def scope_sql(key: ScopeKey, embedded_only: bool) -> tuple[str, dict[str, Any]]:
    """WHERE clause and parameters selecting a scope's memories (only embedded ones for a dense index)."""
    tenant_id, user_id = key
    where = "tenant_id = :tenant_id" + (" AND embedding IS NOT NULL" if embedded_only else "")
    params: dict[str, Any] = {"tenant_id": tenant_id}
    if user_id is not None:
        where += " AND user_id = :user_id"
        params["user_id"] = user_id
    return where, params


def scope_stamp(session: Session, key: ScopeKey, embedded_only: bool) -> Stamp:
    """Count, max(seq) and max(updated_at) of the scope: any insert, delete or edit changes it."""
    where, params = scope_sql(key, embedded_only)
    row = session.execute(
        text(f"SELECT count(*), coalesce(max(seq), 0), max(updated_at) FROM memories WHERE {where}"), params
    ).one()
    return tuple(row)


@dataclass
class _Entry(Generic[Built]):
    stamp: Stamp | None = None
    built: Built | None = None
    generation: int = -1
    checked_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class ScopeCache(Generic[Built]):
    """`stamp(session, key)` says whether a scope changed; `refresh(session, key, previous, stamp)`
    builds its index anew, or updates `previous` in place of a rebuild where it can (the new stamp,
    whose first element is the scope's row count, comes along so it need not be counted again)."""

    def __init__(
        self,
        stamp: Callable[[Session, ScopeKey], Stamp],
        refresh: Callable[[Session, ScopeKey, Built | None, Stamp], Built | None],
        max_scopes: int,
        recheck_seconds: float,
    ) -> None:
        self._stamp = stamp
        self._refresh = refresh
        self._max_scopes = max_scopes
        self._recheck = recheck_seconds
        self._entries: OrderedDict[ScopeKey, _Entry[Built]] = OrderedDict()
        self._lock = threading.Lock()
        self._generation = 0
        self.refreshes = 0

    def changed(self) -> None:
        """Some memories changed in this process: every scope checks its stamp before its next use."""
        with self._lock:
            self._generation += 1

    def get(self, session: Session, key: ScopeKey) -> Built | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
                while len(self._entries) > self._max_scopes:
                    self._entries.popitem(last=False)
            self._entries.move_to_end(key)
            generation = self._generation
        with entry.lock:
            if entry.generation == generation and time.monotonic() - entry.checked_at < self._recheck:
                return entry.built
            stamp = self._stamp(session, key)  # before loading: a write landing in between makes the next check refresh
            if stamp != entry.stamp:
                entry.built, entry.stamp = self._refresh(session, key, entry.built, stamp), stamp
                self.refreshes += 1
            entry.generation, entry.checked_at = generation, time.monotonic()
            return entry.built
