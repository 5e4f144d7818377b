"""MemoryClient (blocking) and AsyncMemoryClient (asyncio) for the Loci REST API.

Both expose the same methods with the same arguments; each method only forwards its arguments to
the shared request builder in `_core` and sends the result, so the two cannot disagree on the
contract. Every failure raises a subclass of `LociError` (see `errors`).
"""

from __future__ import annotations

import asyncio
import builtins  # annotations say builtins.list: inside the clients, `list` names the list method
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from . import _core
from .models import DeleteResult, Job, Memory, MemoryEvent, MemoryPage, SearchResponse, Stats

T = TypeVar("T")


class _BaseClient:
    """Configuration shared by both clients.

    `base_url` and `api_key` fall back to the LOCI_URL and LOCI_API_KEY environment variables.
    `timeout` (seconds) applies to connect, read, write and pool waits alike. `retries` is how many
    times a request is re-sent after a connection failure (ConnectError, ConnectTimeout,
    RemoteProtocolError), waiting `backoff * 2**n` seconds before retry n, or after an answer that
    says nothing was done (429 `rate_limited`, 503 `conflict_retry`), waiting the server's
    Retry-After (one over 30 s is raised instead). Reads (GET) and adds, which carry an idempotency
    key (a new one unless given), are also re-sent after any transport failure, a read timeout
    among them, and after a 502, 503 or 504: the server answers a repeated add with the ids it first
    stored. Other calls and other HTTP errors are never retried, since a 4xx will not change and a
    5xx may already have had an effect.
    """

    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        timeout: float,
        retries: int,
        backoff: float,
    ) -> None:
        self._options = _core.client_options(base_url, api_key, timeout)
        self._retry = _core.RetryPolicy(retries, backoff)

    @property
    def base_url(self) -> str:
        return str(self._options["base_url"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"


class MemoryClient(_BaseClient):
    """Blocking client; one instance reuses its connections, so share it and close it when done."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        *,
        backoff: float = 0.25,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout, retries, backoff)
        self._http = httpx.Client(transport=transport, **self._options)

    def _send(self, call: _core.Call[T]) -> T:
        attempt = 0
        while True:
            try:
                response = self._http.request(call.method, call.path, params=call.params, json=call.json)
            except httpx.TransportError as exc:
                time.sleep(self._retry.delay(call, exc, attempt))
            else:
                if (wait := self._retry.wait_after(call, response, attempt)) is None:
                    return _core.parse_response(call, response)
                time.sleep(wait)
            attempt += 1

    def add(
        self,
        content: str,
        *,
        type: str = "episodic",
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        event_at: datetime | str | None = None,
        importance: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        attributes: Mapping[str, Any] | None = None,
        expires_at: datetime | str | None = None,
        source: str | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Store one memory and return its id (the original id again when sent again with its
        idempotency_key; another memory under a used key raises ValidationError)."""
        return self._send(
            _core.add(
                content=content,
                type=type,
                user_id=user_id,
                agent_id=agent_id,
                session_id=session_id,
                event_at=event_at,
                importance=importance,
                metadata=metadata,
                attributes=attributes,
                expires_at=expires_at,
                source=source,
                idempotency_key=idempotency_key,
            )
        )

    def add_many(self, memories: Sequence[Mapping[str, Any]]) -> builtins.list[str]:
        """Store a batch (dicts with the fields of `add`) atomically; ids come back in input order."""
        return self._send(_core.add_many(memories))

    def add_messages(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        user_id: str,
        session_id: str,
        agent_id: str | None = None,
    ) -> builtins.list[str]:
        """Store chat messages (`{role, content, name?, timestamp?}`) as episodic memories."""
        return self._send(_core.add_messages(messages, user_id=user_id, session_id=session_id, agent_id=agent_id))

    def get(self, id: str) -> Memory:
        """Fetch one memory; raises NotFoundError for an unknown id."""
        return self._send(_core.get(id))

    def update(
        self,
        id: str,
        *,
        content: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        importance: float | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> Memory:
        """Change the given fields (None leaves a field as is); new content is re-embedded."""
        return self._send(
            _core.update(id, content=content, metadata=metadata, importance=importance, attributes=attributes)
        )

    def delete(self, id: str, *, hard: bool = False) -> DeleteResult:
        """Soft-delete (status "deleted", history kept) or, with hard=True, remove the row for good."""
        return self._send(_core.delete(id, hard))

    def list(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        type: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> MemoryPage:
        """One page of memories; pass `page.next_cursor` as `cursor` for the next one."""
        return self._send(
            _core.list_memories(
                user_id=user_id,
                agent_id=agent_id,
                session_id=session_id,
                type=type,
                status=status,
                limit=limit,
                cursor=cursor,
            )
        )

    def iter_memories(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        type: str | None = None,
        status: str | None = None,
        limit: int = 50,
    ) -> Iterator[Memory]:
        """Every matching memory, following cursors; `limit` is the page size of each request."""
        cursor: str | None = None
        while True:
            page = self.list(
                user_id=user_id,
                agent_id=agent_id,
                session_id=session_id,
                type=type,
                status=status,
                limit=limit,
                cursor=cursor,
            )
            yield from page.memories
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def history(self, id: str) -> builtins.list[MemoryEvent]:
        """The audit log of one memory (create, updates, supersession, delete)."""
        return self._send(_core.history(id))

    def search(
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        types: Sequence[str] | None = None,
        k: int = 10,
        filters: Mapping[str, Any] | None = None,
        as_of: datetime | str | None = None,
        include_superseded: bool | None = None,
        min_trust: float | None = None,
        exclude_flagged: bool | None = None,
        asked_at: datetime | str | None = None,
        timezone: str | None = None,
        event_after: datetime | str | None = None,
        event_before: datetime | str | None = None,
        max_words: int | None = None,
    ) -> SearchResponse:
        """The k memories that best match `query`, best first; `filters` match metadata.

        `min_trust` leaves out memories trusted less (trust follows the source: user 1.0, agent 0.8,
        tool 0.6, import 0.5); `exclude_flagged` leaves out memories flagged as possible prompt injection.
        `asked_at` is the moment relative periods in the query ("last week") count back from; the
        server takes `as_of`, else the time of the request. `timezone` (an IANA name such as
        "America/Denver") makes the days of such periods the asker's days, and naive times local
        ones. `event_after` / `event_before` keep only
        memories whose event time (else stored time) falls between them. `max_words` keeps, of the k
        best, those whose contents fit in that many words together (in rank order, passing over one
        that would overflow).
        """
        return self._send(
            _core.search(
                query=query,
                user_id=user_id,
                agent_id=agent_id,
                session_id=session_id,
                types=types,
                k=k,
                filters=filters,
                as_of=as_of,
                include_superseded=include_superseded,
                min_trust=min_trust,
                exclude_flagged=exclude_flagged,
                asked_at=asked_at,
                timezone=timezone,
                event_after=event_after,
                event_before=event_before,
                max_words=max_words,
            )
        )

    def feedback(self, id: str, outcome: str, *, note: str | None = None) -> Memory:
        """Record whether following a procedural memory worked ("success" or "failure").

        The counts feed the procedure's utility, which ranking and forgetting use; any other memory
        type raises ConflictError with code "not_a_procedure".
        """
        return self._send(_core.feedback(id, outcome=outcome, note=note))

    def restore(self, id: str) -> Memory:
        """Make an archived or soft-deleted memory active again; any other state raises ConflictError."""
        return self._send(_core.restore(id))

    def delete_scope(
        self, *, user_id: str | None = None, agent_id: str | None = None, session_id: str | None = None
    ) -> int:
        """Hard-delete every memory matching all the given ids and return how many went.

        Not undoable. With no id at all the server refuses (ValidationError) rather than wipe the tenant.
        """
        return self._send(_core.delete_scope(user_id=user_id, agent_id=agent_id, session_id=session_id))

    def delete_user(self, user_id: str) -> int:
        """Hard-delete everything of one user and return how many memories went.

        Their index keys, links and events go with the memories, and the user's jobs too. Not undoable.
        """
        return self._send(_core.delete_user(user_id))

    def consolidate(self, *, user_id: str, agent_id: str | None = None, session_id: str | None = None) -> str:
        """Start turning the scope's new episodes into facts, keys and summaries; returns the job id.

        The work runs in the background on the server; pass the id to `wait_for_job` or `job`.
        """
        return self._send(_core.consolidate(user_id=user_id, agent_id=agent_id, session_id=session_id))

    def forget(
        self, *, user_id: str, agent_id: str | None = None, session_id: str | None = None, dry_run: bool = False
    ) -> str:
        """Start archiving the scope's expired, faded or surplus memories; returns the job id.

        With dry_run=True the job only counts what it would archive, so the effect can be checked first.
        """
        return self._send(_core.forget(user_id=user_id, agent_id=agent_id, session_id=session_id, dry_run=dry_run))

    def job(self, job_id: str) -> Job:
        """The current state of a lifecycle job; raises NotFoundError for an unknown id."""
        return self._send(_core.job(job_id))

    def stats(self, *, user_id: str | None = None) -> Stats:
        """Memory count and embeddings still pending (large batches are embedded in the background)."""
        return self._send(_core.stats(user_id))

    def wait_for_job(self, job_id: str, *, timeout: float = 300.0, poll: float = 0.25) -> Job:
        """Poll a job every `poll` seconds until it succeeded, and return it.

        Raises JobFailed (its `job` holds the final state) if it failed, and TimeoutError if it is
        still unfinished after `timeout` seconds; the job itself keeps running on the server.
        """
        wait = _core.JobWait(job_id, timeout, poll)
        while True:
            job = self.job(job_id)
            if wait.finished(job):
                return job
            time.sleep(wait.pause(job))

    def health(self) -> dict[str, Any]:
        """Liveness: `{"status": "ok"}` while the process serves requests."""
        return self._send(_core.health())

    def ready(self) -> dict[str, Any]:
        """Readiness report; raises ServerError (its `details` hold the report) when not ready."""
        return self._send(_core.ready())

    def close(self) -> None:
        """Close pooled connections; the client cannot be used afterwards."""
        self._http.close()

    def __enter__(self) -> MemoryClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncMemoryClient(_BaseClient):
    """asyncio client with the methods of MemoryClient as coroutines; use one per event loop."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        *,
        backoff: float = 0.25,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout, retries, backoff)
        self._http = httpx.AsyncClient(transport=transport, **self._options)

    async def _send(self, call: _core.Call[T]) -> T:
        attempt = 0
        while True:
            try:
                response = await self._http.request(call.method, call.path, params=call.params, json=call.json)
            except httpx.TransportError as exc:
                await asyncio.sleep(self._retry.delay(call, exc, attempt))
            else:
                if (wait := self._retry.wait_after(call, response, attempt)) is None:
                    return _core.parse_response(call, response)
                await asyncio.sleep(wait)
            attempt += 1

    async def add(
        self,
        content: str,
        *,
        type: str = "episodic",
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        event_at: datetime | str | None = None,
        importance: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        attributes: Mapping[str, Any] | None = None,
        expires_at: datetime | str | None = None,
        source: str | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Store one memory and return its id (the original id again when sent again with its
        idempotency_key; another memory under a used key raises ValidationError)."""
        return await self._send(
            _core.add(
                content=content,
                type=type,
                user_id=user_id,
                agent_id=agent_id,
                session_id=session_id,
                event_at=event_at,
                importance=importance,
                metadata=metadata,
                attributes=attributes,
                expires_at=expires_at,
                source=source,
                idempotency_key=idempotency_key,
            )
        )

    async def add_many(self, memories: Sequence[Mapping[str, Any]]) -> builtins.list[str]:
        """Store a batch (dicts with the fields of `add`) atomically; ids come back in input order."""
        return await self._send(_core.add_many(memories))

    async def add_messages(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        user_id: str,
        session_id: str,
        agent_id: str | None = None,
    ) -> builtins.list[str]:
        """Store chat messages (`{role, content, name?, timestamp?}`) as episodic memories."""
        return await self._send(_core.add_messages(messages, user_id=user_id, session_id=session_id, agent_id=agent_id))

    async def get(self, id: str) -> Memory:
        """Fetch one memory; raises NotFoundError for an unknown id."""
        return await self._send(_core.get(id))

    async def update(
        self,
        id: str,
        *,
        content: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        importance: float | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> Memory:
        """Change the given fields (None leaves a field as is); new content is re-embedded."""
        return await self._send(
            _core.update(id, content=content, metadata=metadata, importance=importance, attributes=attributes)
        )

    async def delete(self, id: str, *, hard: bool = False) -> DeleteResult:
        """Soft-delete (status "deleted", history kept) or, with hard=True, remove the row for good."""
        return await self._send(_core.delete(id, hard))

    async def list(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        type: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> MemoryPage:
        """One page of memories; pass `page.next_cursor` as `cursor` for the next one."""
        return await self._send(
            _core.list_memories(
                user_id=user_id,
                agent_id=agent_id,
                session_id=session_id,
                type=type,
                status=status,
                limit=limit,
                cursor=cursor,
            )
        )

    async def iter_memories(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        type: str | None = None,
        status: str | None = None,
        limit: int = 50,
    ) -> AsyncIterator[Memory]:
        """Every matching memory (`async for`), following cursors; `limit` is the page size."""
        cursor: str | None = None
        while True:
            page = await self.list(
                user_id=user_id,
                agent_id=agent_id,
                session_id=session_id,
                type=type,
                status=status,
                limit=limit,
                cursor=cursor,
            )
            for memory in page.memories:
                yield memory
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def history(self, id: str) -> builtins.list[MemoryEvent]:
        """The audit log of one memory (create, updates, supersession, delete)."""
        return await self._send(_core.history(id))

    async def search(
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        types: Sequence[str] | None = None,
        k: int = 10,
        filters: Mapping[str, Any] | None = None,
        as_of: datetime | str | None = None,
        include_superseded: bool | None = None,
        min_trust: float | None = None,
        exclude_flagged: bool | None = None,
        asked_at: datetime | str | None = None,
        timezone: str | None = None,
        event_after: datetime | str | None = None,
        event_before: datetime | str | None = None,
        max_words: int | None = None,
    ) -> SearchResponse:
        """The k memories that best match `query`, best first; `filters` match metadata.

        `min_trust` leaves out memories trusted less (trust follows the source: user 1.0, agent 0.8,
        tool 0.6, import 0.5); `exclude_flagged` leaves out memories flagged as possible prompt injection.
        `asked_at` is the moment relative periods in the query ("last week") count back from; the
        server takes `as_of`, else the time of the request. `timezone` (an IANA name such as
        "America/Denver") makes the days of such periods the asker's days, and naive times local
        ones. `event_after` / `event_before` keep only
        memories whose event time (else stored time) falls between them. `max_words` keeps, of the k
        best, those whose contents fit in that many words together (in rank order, passing over one
        that would overflow).
        """
        return await self._send(
            _core.search(
                query=query,
                user_id=user_id,
                agent_id=agent_id,
                session_id=session_id,
                types=types,
                k=k,
                filters=filters,
                as_of=as_of,
                include_superseded=include_superseded,
                min_trust=min_trust,
                exclude_flagged=exclude_flagged,
                asked_at=asked_at,
                timezone=timezone,
                event_after=event_after,
                event_before=event_before,
                max_words=max_words,
            )
        )

    async def feedback(self, id: str, outcome: str, *, note: str | None = None) -> Memory:
        """Record whether following a procedural memory worked ("success" or "failure").

        The counts feed the procedure's utility, which ranking and forgetting use; any other memory
        type raises ConflictError with code "not_a_procedure".
        """
        return await self._send(_core.feedback(id, outcome=outcome, note=note))

    async def restore(self, id: str) -> Memory:
        """Make an archived or soft-deleted memory active again; any other state raises ConflictError."""
        return await self._send(_core.restore(id))

    async def delete_scope(
        self, *, user_id: str | None = None, agent_id: str | None = None, session_id: str | None = None
    ) -> int:
        """Hard-delete every memory matching all the given ids and return how many went.

        Not undoable. With no id at all the server refuses (ValidationError) rather than wipe the tenant.
        """
        return await self._send(_core.delete_scope(user_id=user_id, agent_id=agent_id, session_id=session_id))

    async def delete_user(self, user_id: str) -> int:
        """Hard-delete everything of one user and return how many memories went.

        Their index keys, links and events go with the memories, and the user's jobs too. Not undoable.
        """
        return await self._send(_core.delete_user(user_id))

    async def consolidate(self, *, user_id: str, agent_id: str | None = None, session_id: str | None = None) -> str:
        """Start turning the scope's new episodes into facts, keys and summaries; returns the job id.

        The work runs in the background on the server; pass the id to `wait_for_job` or `job`.
        """
        return await self._send(_core.consolidate(user_id=user_id, agent_id=agent_id, session_id=session_id))

    async def forget(
        self, *, user_id: str, agent_id: str | None = None, session_id: str | None = None, dry_run: bool = False
    ) -> str:
        """Start archiving the scope's expired, faded or surplus memories; returns the job id.

        With dry_run=True the job only counts what it would archive, so the effect can be checked first.
        """
        return await self._send(
            _core.forget(user_id=user_id, agent_id=agent_id, session_id=session_id, dry_run=dry_run)
        )

    async def job(self, job_id: str) -> Job:
        """The current state of a lifecycle job; raises NotFoundError for an unknown id."""
        return await self._send(_core.job(job_id))

    async def stats(self, *, user_id: str | None = None) -> Stats:
        """Memory count and embeddings still pending (large batches are embedded in the background)."""
        return await self._send(_core.stats(user_id))

    async def wait_for_job(self, job_id: str, *, timeout: float = 300.0, poll: float = 0.25) -> Job:
        """Poll a job every `poll` seconds until it succeeded, and return it.

        Raises JobFailed (its `job` holds the final state) if it failed, and TimeoutError if it is
        still unfinished after `timeout` seconds; the job itself keeps running on the server.
        """
        wait = _core.JobWait(job_id, timeout, poll)
        while True:
            job = await self.job(job_id)
            if wait.finished(job):
                return job
            await asyncio.sleep(wait.pause(job))

    async def health(self) -> dict[str, Any]:
        """Liveness: `{"status": "ok"}` while the process serves requests."""
        return await self._send(_core.health())

    async def ready(self) -> dict[str, Any]:
        """Readiness report; raises ServerError (its `details` hold the report) when not ready."""
        return await self._send(_core.ready())

    async def close(self) -> None:
        """Close pooled connections; the client cannot be used afterwards."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncMemoryClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
