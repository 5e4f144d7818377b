"""Request and response bodies of API v1."""

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from memory_types import MemoryType, validate_attributes

ScopeId = Field(default=None, min_length=1, max_length=200)
Source = Literal["user", "agent", "tool", "import"]
Status = Literal["active", "superseded", "archived", "deleted"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MemoryCreate(_Strict):
    type: MemoryType = MemoryType.episodic
    content: str = Field(min_length=1)
    user_id: str | None = ScopeId
    agent_id: str | None = ScopeId
    session_id: str | None = ScopeId
    event_at: datetime | None = None
    importance: float = Field(default=0.5, ge=0.0, le=1.0)
    metadata: dict[str, Any] = Field(default_factory=dict)
    attributes: dict[str, Any] = Field(default_factory=dict)
    expires_at: datetime | None = None
    source: Source = "user"
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("content must not be blank")
        return value

    @model_validator(mode="after")
    def _check(self) -> "MemoryCreate":
        if self.user_id is None and self.agent_id is None:
            raise ValueError("at least one of user_id or agent_id is required")
        self.attributes = validate_attributes(self.type, self.attributes)
        return self


class MemoryBatch(_Strict):
    memories: list[MemoryCreate] = Field(min_length=1)


class Message(_Strict):
    role: Literal["user", "assistant", "system", "tool"]
    name: str | None = Field(default=None, max_length=200)
    content: str = Field(min_length=1)
    timestamp: datetime | None = None


class MessagesCreate(_Strict):
    user_id: str = Field(min_length=1, max_length=200)
    agent_id: str | None = ScopeId
    session_id: str = Field(min_length=1, max_length=200)
    messages: list[Message] = Field(min_length=1)


class MemoryPatch(_Strict):
    content: str | None = Field(default=None, min_length=1)
    metadata: dict[str, Any] | None = None
    importance: float | None = Field(default=None, ge=0.0, le=1.0)
    attributes: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _something(self) -> "MemoryPatch":
        if not self.model_fields_set:
            raise ValueError("nothing to update: give content, metadata, importance or attributes")
        return self


MetadataValue = str | int | float | bool | None


class InFilter(_Strict):
    in_: list[MetadataValue] = Field(alias="in", min_length=1, max_length=100)


class SearchRequest(_Strict):
    query: str = Field(min_length=1)
    user_id: str | None = ScopeId
    agent_id: str | None = ScopeId
    session_id: str | None = ScopeId
    types: list[MemoryType] | None = Field(default=None, min_length=1)
    k: int = Field(default=10, ge=1, le=200)
    filters: dict[str, MetadataValue | InFilter] | None = Field(default=None, max_length=20)
    as_of: datetime | None = None
    include_superseded: bool = False

    def metadata_filters(self) -> dict[str, Any]:
        return {
            key: {"in": value.in_} if isinstance(value, InFilter) else value
            for key, value in (self.filters or {}).items()
        }


class MemoryOut(BaseModel):
    id: uuid.UUID
    type: str
    content: str
    user_id: str | None
    agent_id: str | None
    session_id: str | None
    attributes: dict[str, Any]
    metadata: dict[str, Any]
    importance: float
    access_count: int
    last_accessed_at: datetime | None
    event_at: datetime | None
    created_at: datetime
    updated_at: datetime
    valid_from: datetime | None
    valid_to: datetime | None
    expires_at: datetime | None
    status: str
    superseded_by: uuid.UUID | None
    source: str
    trust: float
    embedding_model: str | None
    embedding_status: Literal["ready", "pending"]
    version: int


class ScoreParts(BaseModel):
    dense: float | None
    lexical: float | None
    keys: float | None = None
    fused: float


class SearchResult(MemoryOut):
    score: float
    scores: ScoreParts


class SearchResponse(BaseModel):
    results: list[SearchResult]
    took_ms: float


class IdsResponse(BaseModel):
    ids: list[uuid.UUID]


class MemoryPage(BaseModel):
    memories: list[MemoryOut]
    next_cursor: str | None


class EventOut(BaseModel):
    id: int
    op: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    actor: str | None
    reason: str | None
    at: datetime


class HistoryResponse(BaseModel):
    events: list[EventOut]


class DeleteResponse(BaseModel):
    id: uuid.UUID
    deleted: Literal["soft", "hard"]


class JobScope(_Strict):
    user_id: str = Field(min_length=1, max_length=200)
    agent_id: str | None = ScopeId
    session_id: str | None = ScopeId


class ForgetRequest(JobScope):
    dry_run: bool = False


class JobCreated(BaseModel):
    job_id: uuid.UUID


class JobOut(BaseModel):
    job_id: uuid.UUID
    kind: str
    status: Literal["queued", "running", "succeeded", "failed"]
    scope: dict[str, Any]
    dry_run: bool
    counts: dict[str, int]
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class Feedback(_Strict):
    outcome: Literal["success", "failure"]
    note: str | None = Field(default=None, max_length=2000)


class DeletedCount(BaseModel):
    deleted: int
