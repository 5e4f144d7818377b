"""Embeds memories stored with their embedding pending (large write batches return before embedding).

A claim takes pending rows with FOR UPDATE SKIP LOCKED, embeds them through the shared embedder
and writes the vectors in the same transaction: any number of workers share the backlog, and a
worker killed mid-claim rolls back, leaving its rows NULL for the next claim. Nothing is lost.
"""

import logging
import threading
from typing import Any

from sqlalchemy import text, update
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Memory
from app.embedder import Embedder
from memory_types.content import indexed_text

log = logging.getLogger(__name__)

_CLAIM = text(
    "SELECT id, content, attributes FROM memories WHERE embedding IS NULL ORDER BY seq LIMIT :n FOR UPDATE SKIP LOCKED"
)


def embed_pending(sessions: sessionmaker[Session], embedder: Embedder, batch: int) -> int:
    """Embed one claim of at most `batch` pending memories; returns how many were embedded."""
    with sessions.begin() as session:
        rows = session.execute(_CLAIM, {"n": batch}).all()
        if not rows:
            return 0
        vectors = embedder.embed([indexed_text(row.content, row.attributes) for row in rows])
        values: list[dict[str, Any]] = [
            {"id": row.id, "embedding": vector, "embedding_model": embedder.model_name}
            for row, vector in zip(rows, vectors, strict=True)
        ]
        session.execute(update(Memory), values)
    return len(rows)


class EmbeddingWorker:
    """Drains the backlog when woken (`notify` after a deferred write) or every `poll_seconds`.

    `threads` claimers share the one embedder: while one writes its vectors back (HNSW insertion in
    Postgres, ~0.8 ms a row on one core), the next claim is already encoding on the other, so the
    model and the database no longer take turns (ingest +16 % when measured; history of
    docs/performance.md "Ingest").
    """

    def __init__(
        self, sessions: sessionmaker[Session], embedder: Embedder, batch: int, poll_seconds: float, threads: int = 1
    ) -> None:
        self._sessions = sessions
        self._embedder = embedder
        self._batch = batch
        self._poll = poll_seconds
        self._stop = threading.Event()
        self._wakes = [threading.Event() for _ in range(threads)]
        self._threads = [
            threading.Thread(target=self.run, args=(wake,), name=f"loci-embedding-worker-{i}", daemon=True)
            for i, wake in enumerate(self._wakes)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def notify(self) -> None:
        for wake in self._wakes:
            wake.set()

    def close(self) -> None:
        self._stop.set()
        self.notify()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=30)

    def run(self, wake: threading.Event) -> None:
        """Until closed: claim while full batches keep coming, then sleep until woken or polled."""
        while not self._stop.is_set():
            wake.clear()
            try:
                while not self._stop.is_set() and embed_pending(self._sessions, self._embedder, self._batch):
                    pass
            except Exception:  # a database or model hiccup must not end the worker; rows stay pending
                log.exception("embedding worker claim failed; retrying after the poll interval")
            wake.wait(self._poll)
