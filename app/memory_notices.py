"""Other processes' memory writes, heard as they commit, so that this process's in-process indexes
(BM25, FAISS) refresh the scopes those writes changed before their next search, and its embedding
worker starts on memories written without their vector at once instead of at its next poll.

Migration 0008's trigger sends a notice on CHANNEL for each memory whose indexed columns change,
naming its tenant and user and whether it waits for its vector; Postgres delivers a transaction's
notices once it commits, in commit order. Before, the indexes found other processes' writes only
by rechecking a scope's stamp every couple of seconds (`LOCI_LEXICAL_RECHECK_SECONDS`): a search on
one replica right after a write through another could miss the new memory's words, and an edit
that committed after a later one had been read never changed the stamp (its `updated_at` is the
older), so an index kept the old text until the scope's next change. The recheck stays, as the
backstop for notices lost while the listening connection is down (every scope is read back whole once
it is back) and for setups where LISTEN cannot work (a connection pooler in transaction mode).

The notice of an edit carries the memory's new `updated_at` (migration 0009): an index reads the
scope back from there, however long the edit's transaction ran before it committed.

This process's own notices are told by the name its engine gives its connections
(app/db/engine.py) and skipped: its writes reach its indexes directly (app/vector_changes.py), and
the refresh that follows reads back scope_cache.EDIT_MARGIN. Only its own edits set longer ago
than OWN_LATE_EDIT (by this process's clock, which set them), in a transaction that ran that long,
are taken from their notices, to read back that far.
"""

import json
import logging
import threading
import uuid
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from retrieval.scope_cache import EDIT_MARGIN, EVER, ScopeKey, scope_keys

CHANNEL = "loci_memories"
RETRY_SECONDS = 1.0  # between attempts to listen again while the database is away
POLL_SECONDS = 0.5  # how long a wait for notices lasts before the thread looks at its stop flag
OWN_LATE_EDIT = EDIT_MARGIN / 2  # leaves the other half for other writers' clocks running ahead of ours

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notice:
    """What a write changed: the scopes (its memory's user's and its tenant's as a whole; None:
    every scope), whether a memory now waits for its vector, and the new `updated_at` of an edit
    (EVER: of any edit, however old)."""

    scopes: set[ScopeKey] | None
    pending: bool
    edited: datetime | None = None


EVERYTHING = Notice(None, pending=True, edited=EVER)
"""What to assume after notices may have been missed: any scope changed, by edits of any age, and
any memory may wait."""


def read_notice(payload: str, own_name: str, now: datetime) -> Notice | None:
    """The notice the trigger sent, or None for this process's own unless it tells of an edit set
    more than OWN_LATE_EDIT before `now`. A payload that is not the trigger's is taken as EVERYTHING."""
    try:
        notice = json.loads(payload)
        edited = datetime.fromisoformat(notice["edited"]) if "edited" in notice else None
        if notice["by"] == own_name and (edited is None or now - edited <= OWN_LATE_EDIT):
            return None
        tenant_id, pending = uuid.UUID(notice["tenant"]), bool(notice["pending"])
    except (ValueError, TypeError, KeyError):
        log.warning("memory notice not understood; refreshing every scope")
        return EVERYTHING
    if "user" not in notice:  # a user id too long to send: every scope of the tenant
        return Notice(None, pending, edited)
    return Notice(scope_keys(tenant_id, notice["user"]), pending, edited)


class MemoryNotices:
    """Listens on CHANNEL on a connection of its own, in a daemon thread, and gives each other
    process's notice, and this one's of a late edit, to `on_notice`."""

    def __init__(self, engine: Engine, on_notice: Callable[[Notice], None]) -> None:
        self._engine = engine
        self._on_notice = on_notice
        self._stop = threading.Event()
        self.heard = 0  # notices reported so far
        self._thread = threading.Thread(target=self._run, name="loci-memory-notices", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=POLL_SECONDS + 5)

    def _connect(self) -> Any:
        """A psycopg connection made as the engine makes them (its URL, its name), kept out of the pool."""
        pooled = self._engine.raw_connection()
        connection = pooled.driver_connection  # (a detached one no longer says)
        pooled.detach()
        connection.rollback()
        connection.autocommit = True
        return connection

    def _run(self) -> None:
        away = False
        while not self._stop.is_set():
            try:
                with closing(self._connect()) as connection:
                    own_name = connection.execute("SELECT current_setting('application_name')").fetchone()[0]
                    connection.execute(f"LISTEN {CHANNEL}")
                    if away:  # what was sent meanwhile is lost
                        log.info("memory notices: listening again; reading every scope back")
                        self._on_notice(EVERYTHING)
                        away = False
                    while not self._stop.is_set():
                        for sent in connection.notifies(timeout=POLL_SECONDS):
                            notice = read_notice(sent.payload, own_name, datetime.now(UTC))
                            if notice is not None:
                                self._on_notice(notice)
                                self.heard += 1
            except Exception as exc:  # the database went away; its own check reports that
                if not away:
                    log.warning("memory notices: not listening (%s); retrying", type(exc).__name__)
                away = True
                self._stop.wait(RETRY_SECONDS)
