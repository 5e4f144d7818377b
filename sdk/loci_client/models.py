"""Typed views of the server's JSON answers (see docs/api.md).

Every response model allows extra fields: a newer server may add fields, and an older client must
keep working (the extras stay readable as attributes and in `model_dump()`). String-valued
enumerations (`type`, `status`, `source`, `op`, `deleted`, `kind`) are plain `str` for the same reason: a
server that learns a new memory type must not make older clients fail to parse it.
"""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow")


class Memory(_Response):
    """One stored memory, as returned by get, update and list."""

    id: str
    type: str
    content: str
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    importance: float
    access_count: int
    last_accessed_at: datetime | None = None
    event_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    expires_at: datetime | None = None
    status: str
    superseded_by: str | None = None
    source: str
    trust: float
    flags: list[str] = Field(default_factory=list)
    embedding_model: str | None = None
    version: int


class Scores(_Response):
    """Per-signal scores of a search hit; a signal that did not find the memory is None."""

    dense: float | None = None
    lexical: float | None = None
    fused: float


class SearchResult(Memory):
    """A memory plus how well it matched the query; `score` is what the ranking used."""

    score: float
    scores: Scores


class SearchResponse(_Response):
    """Search hits, best first, and the server-side time the search took."""

    results: list[SearchResult]
    took_ms: float


class MemoryPage(_Response):
    """One page of a listing; pass `next_cursor` back to get the next page (None: last page)."""

    memories: list[Memory]
    next_cursor: str | None = None


class MemoryEvent(_Response):
    """One audit-log entry of a memory: what changed, by whom, why and when."""

    id: int | str
    op: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    actor: str | None = None
    reason: str | None = None
    at: datetime


class History(_Response):
    """The audit log of one memory."""

    events: list[MemoryEvent]


class DeleteResult(_Response):
    """Outcome of a delete: `deleted` is "soft" (row kept, status deleted) or "hard" (row gone)."""

    id: str
    deleted: str


class Created(_Response):
    """Ids of newly stored memories, in input order (the body of every 201)."""

    ids: list[str]


class JobCreated(_Response):
    """Id of a lifecycle job the server accepted (the body of every 202)."""

    job_id: str


class Job(_Response):
    """State of a lifecycle job: `status` moves from "queued" and "running" to "succeeded" or "failed".

    A failed attempt the server will retry goes back to "queued" with `error` set, so only
    "succeeded" and "failed" are final. `counts` are what the job did (or, for a dry run, would do):
    consolidate reports episodes, facts, keys, summaries, links, procedures_merged; forget reports
    examined, archived, expired, decayed, useless_procedure, over_capacity.
    """

    job_id: str
    kind: str
    status: str
    scope: dict[str, Any] = Field(default_factory=dict)
    dry_run: bool = False
    counts: dict[str, int] = Field(default_factory=dict)
    error: str | None = None
    created_at: datetime
    finished_at: datetime | None = None


class DeletedCount(_Response):
    """How many memories a scope or user delete removed for good."""

    deleted: int


class Stats(_Response):
    """Counts for a tenant (or one user): `pending_embeddings` reaches 0 once deferred writes are searchable densely."""

    memories: int
    pending_embeddings: int
    pending_words: int = 0  # words the server still learns for query expansion; 0 once searches expand fully
