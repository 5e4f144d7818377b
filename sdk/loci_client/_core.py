"""Request building, response parsing and retry policy shared by the sync and async clients.

Each public client method is a thin wrapper: one builder here turns its arguments into a `Call`
(method, path, query, body, and the parser for the answer); the client sends it; `parse_response`
turns the answer into a model or a typed exception. The REST contract is therefore encoded once,
so MemoryClient and AsyncMemoryClient cannot drift apart.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic_core import to_jsonable_python

from ._version import __version__
from .errors import ConnectionFailed, JobFailed, LociError, error_from_response
from .models import (
    Created,
    DeletedCount,
    DeleteResult,
    History,
    Job,
    JobCreated,
    Memory,
    MemoryEvent,
    MemoryPage,
    SearchResponse,
    Stats,
)

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8420"
_MEMORIES = "/v1/memories"
_JOBS = "/v1/jobs"
_USERS = "/v1/users"

# Failures where the request cannot have been processed (no connection was made) or where a pooled
# keep-alive connection was closed by the server under us; anything else (a read timeout, say) may
# have reached the server, and sending it again is only for a call that is `resendable`.
_RETRYABLE = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError)
# Error codes of answers that say nothing was done and to ask again (429: the key's rate; 503: a
# collision with a concurrent request in the database): as safe to send again as a refused connection.
_NOTHING_DONE = frozenset({"rate_limited", "conflict_retry"})
# Statuses of answers after which a `resendable` call is sent again: the server or a proxy in front
# of it was away or out of time (503 `unavailable` and `timeout`, 502, 504), and may have acted.
_AWAY = frozenset({502, 503, 504})
LONGEST_WAIT = 30.0  # seconds; a longer Retry-After is the caller's to decide on, so it is raised


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One HTTP request of the contract and how to read its successful answer."""

    method: str
    path: str
    parse: Callable[[Any], T]
    params: dict[str, Any] | None = None
    json: Any = None
    keyed: bool = False  # every memory it writes carries an idempotency key

    @property
    def resendable(self) -> bool:
        """Safe to send again after any failure, even one the server may have acted on: it only
        reads, or the server answers its repeat with the memories it first stored."""
        return self.method == "GET" or self.keyed


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential backoff for connection failures and for answers that say nothing was done
    (429 `rate_limited`, 503 `conflict_retry`); for a resendable call also after any transport
    failure (a read timeout) and a 502, 503 or 504. Other HTTP errors are never retried."""

    retries: int
    backoff: float

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0:
            raise ValueError("retries and backoff must be >= 0")

    def delay(self, call: Call[Any], exc: httpx.TransportError, attempt: int) -> float:
        """Seconds to wait before retrying after failed attempt number `attempt` (0-based).

        Raises ConnectionFailed (chained to `exc`) when the failure is not retryable or the
        retries are used up, so callers only sleep and loop.
        """
        if (call.resendable or isinstance(exc, _RETRYABLE)) and attempt < self.retries:
            return self.backoff * 2.0**attempt
        raise ConnectionFailed(
            f"{call.method} {call.path} failed after {attempt + 1} attempt(s): {type(exc).__name__}: {exc}",
            code="connection_failed",
        ) from exc

    def wait_after(self, call: Call[Any], response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before sending `call` again after attempt number `attempt` (0-based) got
        `response`, or None to take the answer as it is. Only an answer that says nothing was done,
        or, for a resendable call, that the server was away, is sent again, after the server's
        Retry-After (else the backoff), while retries remain and the wait is at most LONGEST_WAIT."""
        if not response.is_error or attempt >= self.retries:
            return None
        error = error_from_response(response)
        if error.code not in _NOTHING_DONE and not (call.resendable and response.status_code in _AWAY):
            return None
        wait = self.backoff * 2.0**attempt if error.retry_after is None else error.retry_after
        return wait if wait <= LONGEST_WAIT else None


@dataclass(slots=True)
class JobWait:
    """When wait_for_job stops: the polling decisions, so both clients only fetch, sleep and loop."""

    job_id: str
    timeout: float
    poll: float
    deadline: float = field(init=False)

    def __post_init__(self) -> None:
        if self.timeout < 0 or self.poll <= 0:
            raise ValueError("timeout must be >= 0 and poll > 0")
        self.deadline = time.monotonic() + self.timeout

    def finished(self, job: Job) -> bool:
        """True once the job succeeded; raises JobFailed once it failed.

        Any other status, including ones a newer server may add, means "not yet": only the final
        states end the wait, and a retried attempt passes through "queued" again.
        """
        if job.status == "failed":
            raise JobFailed(job)
        return job.status == "succeeded"

    def pause(self, job: Job) -> float:
        """Seconds to sleep before the next poll, never past the deadline; TimeoutError once it is past."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{job.kind} job {self.job_id} still {job.status} after {self.timeout:g} s")
        return min(self.poll, remaining)


def client_options(base_url: str | None, api_key: str | None, timeout: float) -> dict[str, Any]:
    """httpx client settings; unset url and key come from LOCI_URL and LOCI_API_KEY.

    Without any key no Authorization header is sent: /healthz and /readyz still work and /v1
    calls fail with a clear AuthenticationError instead of a client-side guess.
    """
    key = api_key or os.environ.get("LOCI_API_KEY")
    headers = {"Accept": "application/json", "User-Agent": f"loci-client/{__version__}"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    url = base_url or os.environ.get("LOCI_URL") or DEFAULT_URL
    return {"base_url": url.rstrip("/"), "headers": headers, "timeout": httpx.Timeout(timeout)}


def parse_response(call: Call[T], response: httpx.Response) -> T:
    """The call's result from a response, or the typed exception for an error status."""
    if response.is_error:
        raise error_from_response(response)
    try:
        return call.parse(response.json())
    except ValueError as exc:  # invalid JSON, or JSON that does not fit the model (pydantic's error is a ValueError)
        raise LociError(
            f"unexpected answer to {call.method} {call.path}: {exc}",
            status_code=response.status_code,
            code="invalid_response",
        ) from exc


def _compact(fields: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-ready fields without the None ones, so the server applies its own defaults.

    Only the top level is compacted: a None inside metadata is the caller's data. Datetimes become
    ISO 8601 strings (UTC ones with "Z"; naive ones stay naive and the server decides).
    """
    body: dict[str, Any] = to_jsonable_python({name: value for name, value in fields.items() if value is not None})
    return body


def _item_path(collection: str, item_id: str) -> str:
    """Path of one item of a collection, with the id escaped so it cannot address another route.

    "/" and "?" are escaped by quote; dots too, because httpx resolves a "." or ".." segment before
    sending: delete(".") would otherwise become DELETE /v1/memories, the route that deletes a scope.
    """
    return f"{collection}/{quote(str(item_id), safe='').replace('.', '%2E')}"


def _one_id(body: Any) -> str:
    ids = Created.model_validate(body).ids
    if len(ids) != 1:
        raise ValueError(f"expected exactly one id, got {len(ids)}")
    return ids[0]


def _ids(body: Any) -> list[str]:
    return Created.model_validate(body).ids


def _job_id(body: Any) -> str:
    return JobCreated.model_validate(body).job_id


def _deleted(body: Any) -> int:
    return DeletedCount.model_validate(body).deleted


def _events(body: Any) -> list[MemoryEvent]:
    return History.model_validate(body).events


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValueError(f"expected a JSON object, got {type(body).__name__}")
    return body


def _keyed(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A memory's create fields with an idempotency key, a new one unless the caller gave theirs, so
    that a write whose answer was lost can be sent again without storing it twice."""
    body = _compact(fields)
    body.setdefault("idempotency_key", f"sdk-{uuid.uuid4()}")
    return body


def add(**fields: Any) -> Call[str]:
    """POST one memory; the fields are the create fields of docs/api.md."""
    return Call("POST", _MEMORIES, _one_id, json=_keyed(fields), keyed=True)


def add_many(memories: Iterable[Mapping[str, Any]]) -> Call[list[str]]:
    """POST a batch; the server stores all or nothing and answers ids in input order."""
    return Call("POST", _MEMORIES, _ids, json={"memories": [_keyed(m) for m in memories]}, keyed=True)


def add_messages(messages: Iterable[Mapping[str, Any]], **fields: Any) -> Call[list[str]]:
    """POST a conversation turn list; the server turns each message into an episodic memory."""
    body = _compact(fields) | {"messages": [_compact(m) for m in messages]}
    return Call("POST", "/v1/messages", _ids, json=body)


def get(memory_id: str) -> Call[Memory]:
    return Call("GET", _item_path(_MEMORIES, memory_id), Memory.model_validate)


def update(memory_id: str, **fields: Any) -> Call[Memory]:
    """PATCH only the given fields; None means "leave unchanged", not "clear"."""
    return Call("PATCH", _item_path(_MEMORIES, memory_id), Memory.model_validate, json=_compact(fields))


def delete(memory_id: str, hard: bool) -> Call[DeleteResult]:
    params = {"hard": "true"} if hard else None
    return Call("DELETE", _item_path(_MEMORIES, memory_id), DeleteResult.model_validate, params=params)


def list_memories(**filters: Any) -> Call[MemoryPage]:
    """GET one page of memories matching the given filters."""
    return Call("GET", _MEMORIES, MemoryPage.model_validate, params=_compact(filters))


def history(memory_id: str) -> Call[list[MemoryEvent]]:
    return Call("GET", f"{_item_path(_MEMORIES, memory_id)}/history", _events)


def search(**fields: Any) -> Call[SearchResponse]:
    """POST a search; the fields are the search body of docs/api.md."""
    return Call("POST", "/v1/search", SearchResponse.model_validate, json=_compact(fields))


def feedback(memory_id: str, **fields: Any) -> Call[Memory]:
    """POST a procedure's outcome; the server counts it in the memory's successes or failures."""
    return Call("POST", f"{_item_path(_MEMORIES, memory_id)}/feedback", Memory.model_validate, json=_compact(fields))


def restore(memory_id: str) -> Call[Memory]:
    return Call("POST", f"{_item_path(_MEMORIES, memory_id)}/restore", Memory.model_validate)


def delete_scope(**scope: Any) -> Call[int]:
    """DELETE every memory of a scope for good; the server refuses an empty scope (422)."""
    return Call("DELETE", _MEMORIES, _deleted, params=_compact(scope))


def delete_user(user_id: str) -> Call[int]:
    return Call("DELETE", _item_path(_USERS, user_id), _deleted)


def consolidate(**scope: Any) -> Call[str]:
    """POST a consolidation job for a scope; the server answers 202 with the job id at once."""
    return Call("POST", f"{_JOBS}/consolidate", _job_id, json=_compact(scope))


def forget(**fields: Any) -> Call[str]:
    """POST a forget job for a scope (dry_run among the fields); 202 with the job id."""
    return Call("POST", f"{_JOBS}/forget", _job_id, json=_compact(fields))


def job(job_id: str) -> Call[Job]:
    return Call("GET", _item_path(_JOBS, job_id), Job.model_validate)


def stats(user_id: str | None) -> Call[Stats]:
    return Call("GET", "/v1/stats", Stats.model_validate, params=_compact({"user_id": user_id}))


def health() -> Call[dict[str, Any]]:
    return Call("GET", "/healthz", _object)


def ready() -> Call[dict[str, Any]]:
    return Call("GET", "/readyz", _object)
