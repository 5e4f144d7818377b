"""Loci itself, measured at its REST boundary through `loci_client`, like any agent would use it.

Each episode is ingested into a fresh scope (a new user_id) with POST /v1/messages: one message
per unit, grouped by session. Messages carry no metadata, so the ids the server returns (in
input order) are mapped back to unit ids; a result that is not one of those turns (a memory
derived by consolidation, say) keeps its rank as `memory:<id>` and never matches gold.
"""

import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime
from typing import Any, Protocol
from uuid import uuid4

from eval.systems import SystemUnavailable
from eval.units import Unit

FOREIGN_PREFIX = "memory:"


class MemoryAPI(Protocol):
    """The two `loci_client.MemoryClient` calls the runner needs."""

    def add_messages(self, messages: list[dict[str, Any]], *, user_id: str, session_id: str) -> list[str]: ...

    def search(
        self, query: str, *, user_id: str, k: int, types: list[str] | None = None, asked_at: datetime | None = None
    ) -> Any: ...

    def consolidate(self, *, user_id: str) -> str: ...

    def wait_for_job(self, job_id: str) -> Any: ...

    def stats(self, *, user_id: str | None = None) -> Any: ...


def to_message(unit: Unit) -> dict[str, Any]:
    """A unit as a /v1/messages message: the speaker as name, the session date as timestamp."""
    message: dict[str, Any] = {"role": "user", "content": unit.text}
    if unit.name:
        message["name"] = unit.name
    if unit.timestamp:
        message["timestamp"] = unit.timestamp
    return message


class LociSystem:
    def __init__(self, client: MemoryAPI, consolidate: bool = True, batch_size: int = 1000) -> None:
        self._client = client
        self._consolidate = consolidate
        self._batch_size = batch_size
        self._user_id = ""
        self._unit_of: dict[str, str] = {}

    def index(self, units: Sequence[Unit]) -> None:
        self._user_id = f"loci-eval-{uuid4().hex}"
        self._unit_of = {}
        start = 0
        while start < len(units):
            session_id = units[start].session_id
            end = start
            while end < len(units) and end - start < self._batch_size and units[end].session_id == session_id:
                end += 1
            chunk = units[start:end]
            ids = self._client.add_messages(
                [to_message(u) for u in chunk], user_id=self._user_id, session_id=session_id
            )
            if len(ids) != len(chunk):
                raise RuntimeError(f"sent {len(chunk)} messages but the service returned {len(ids)} ids")
            self._unit_of.update(zip(ids, (u.id for u in chunk), strict=True))
            start = end
        self._wait_until_embedded()
        if self._consolidate:
            # The background work the service does on idle sessions, asked for and awaited so every
            # question sees the consolidated scope.
            self._client.wait_for_job(self._client.consolidate(user_id=self._user_id))
        self._wait_until_vocabulary_learned()

    def _wait_until_embedded(self, timeout: float = 600.0) -> None:
        """Large batches are embedded in the background; dense search and consolidation need them done."""
        deadline = time.monotonic() + timeout
        while self._client.stats(user_id=self._user_id).pending_embeddings:
            if time.monotonic() > deadline:
                raise TimeoutError(f"embeddings still pending after {timeout:.0f} s")
            time.sleep(0.2)

    def _wait_until_vocabulary_learned(self, timeout: float = 600.0) -> None:
        """The first search builds the scope's lexical index, whose words the service then learns in
        the background for query expansion; every question is asked once they are, so a run does not
        depend on how fast its first questions came."""
        self._client.search("warm-up", user_id=self._user_id, k=1)
        deadline = time.monotonic() + timeout
        while self._client.stats(user_id=self._user_id).pending_words:
            if time.monotonic() > deadline:
                raise TimeoutError(f"query-expansion words still pending after {timeout:.0f} s")
            time.sleep(0.2)

    def search(self, query: str, k: int, asked_at: datetime | None = None) -> list[str]:
        # Gold evidence is turns, so the turns are what is ranked: derived memories (facts, summaries)
        # still help through the index keys they leave on their episodes.
        response = self._client.search(query, user_id=self._user_id, k=k, types=["episodic"], asked_at=asked_at)
        return [self._unit_of.get(r.id, f"{FOREIGN_PREFIX}{r.id}") for r in response.results]


@contextmanager
def open_loci(url: str | None, api_key: str | None, consolidate: bool = True) -> Iterator[LociSystem]:
    """Loci at `url`, or, without one, a local service on a throwaway database for the run."""
    from eval.loci_service import start_local_service

    try:
        from loci_client import MemoryClient
    except ImportError as exc:
        raise SystemUnavailable(f"loci_client is not installed ({exc}); `pip install -e sdk`") from exc
    with ExitStack() as stack:
        if url is None:
            try:
                url, api_key = stack.enter_context(start_local_service())
            except ImportError as exc:
                raise SystemUnavailable(f"cannot start a local Loci service ({exc}); pass --url and --api-key") from exc
        client = stack.enter_context(MemoryClient(url, api_key))
        yield LociSystem(client, consolidate)
