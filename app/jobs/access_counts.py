"""Search hits counted as uses in memory and written in batches, off the request path.

A search used to bump its hits' counters in its own transaction. Under concurrent load that took
row locks in whatever order each plan chose, so searches waited on each other and now and then
deadlocked (a 503 under `loci bench load`). The counts only feed forgetting
(memory_types.lifecycle.retention), which a second's delay does not change; a crash loses at most
the last interval's counts, as the search's asynchronous commit already allowed.
"""

import logging
import threading
import uuid
from collections import defaultdict
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from app.db.tenancy import confined_session

log = logging.getLogger(__name__)

# One statement per tenant, rows locked in id order (the unnest is sorted), so two processes
# flushing at once wait for each other instead of deadlocking.
_COUNT = text(
    """
    WITH c AS (
        SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:uses AS int[]), CAST(:at AS timestamptz[])) AS c(id, uses, at)
        ORDER BY id
    ), relaxed AS (SELECT set_config('synchronous_commit', 'off', true))
    UPDATE memories m SET access_count = m.access_count + c.uses,
        last_accessed_at = GREATEST(m.last_accessed_at, c.at)
    FROM c, relaxed WHERE m.id = c.id AND m.tenant_id = :tenant
    """
)


class AccessCounts:
    """Thread-safe tally of uses per memory, written every `flush_seconds` by its own thread."""

    def __init__(self, sessions: sessionmaker[Session], flush_seconds: float) -> None:
        self._sessions = sessions
        self._flush_seconds = flush_seconds
        self._pending: defaultdict[uuid.UUID, dict[uuid.UUID, tuple[int, datetime]]] = defaultdict(dict)
        self._lock = threading.Lock()
        self._flushing = threading.Lock()  # one flush at a time: the loop's and an explicit one
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loci-access-counts", daemon=True)
        self._thread.start()

    def record(self, tenant_id: uuid.UUID, memory_ids: list[uuid.UUID]) -> None:
        now = datetime.now(UTC)
        with self._lock:
            tally = self._pending[tenant_id]
            for memory_id in memory_ids:
                uses, _ = tally.get(memory_id, (0, now))
                tally[memory_id] = (uses + 1, now)

    def flush(self) -> int:
        """Write every pending count now (jobs that read counts, tests, shutdown); returns the memories written.

        A failed write (the database away) keeps its counts for the next flush.
        """
        with self._flushing:
            with self._lock:
                pending, self._pending = self._pending, defaultdict(dict)
            written = 0
            for tenant_id, tally in pending.items():
                try:
                    with confined_session(self._sessions, tenant_id) as session:
                        session.execute(_COUNT, _columns(tenant_id, tally))
                    written += len(tally)
                except DBAPIError as exc:
                    log.warning("access counts not written yet: %s", type(exc.orig).__name__)
                    self._restore(tenant_id, tally)
            return written

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.flush()

    def _restore(self, tenant_id: uuid.UUID, tally: dict[uuid.UUID, tuple[int, datetime]]) -> None:
        with self._lock:
            current = self._pending[tenant_id]
            for memory_id, (uses, at) in tally.items():
                newer_uses, newer_at = current.get(memory_id, (0, at))
                current[memory_id] = (uses + newer_uses, max(at, newer_at))

    def _run(self) -> None:
        while not self._stop.wait(self._flush_seconds):
            self.flush()


def _columns(tenant_id: uuid.UUID, tally: dict[uuid.UUID, tuple[int, datetime]]) -> dict[str, object]:
    ids = list(tally)
    return {
        "tenant": tenant_id,
        "ids": ids,
        "uses": [tally[i][0] for i in ids],
        "at": [tally[i][1] for i in ids],
    }
