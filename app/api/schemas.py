"""Request and response bodies of API v1."""

import uuid
from datetime import UTC, datetime, tzinfo
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from app.moments import within_calendar
from app.services.tenants import Permission
from app.storable import unstorable
from memory_types import MemoryType, validate_attributes

ScopeId = Field(default=None, min_length=1, max_length=200)
Moment = Annotated[datetime, AfterValidator(within_calendar)]
Source = Literal["user", "agent", "tool", "import"]
Status = Literal["active", "superseded", "archived", "deleted"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        if (problem := unstorable(data)) is not None:
            raise ValueError(problem)
        return data


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("content must not be blank")
    return value


# One rule for every way content arrives (memory, chat message, patch), so none can store a blank.
Content = Annotated[str, Field(min_length=1), AfterValidator(_not_blank)]


class MemoryCreate(_Strict):
    type: MemoryType = MemoryType.episodic
    content: Content
    user_id: str | None = ScopeId
    agent_id: str | None = ScopeId
    session_id: str | None = ScopeId
    event_at: Moment | None = None
    importance: float = Field(default=0.5, ge=0.0, le=1.0)
    metadata: dict[str, Any] = Field(default_factory=dict)
    attributes: dict[str, Any] = Field(default_factory=dict)
    expires_at: Moment | None = None
    source: Source = "user"
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)

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
    content: Content
    timestamp: Moment | None = None


class MessagesCreate(_Strict):
    user_id: str = Field(min_length=1, max_length=200)
    agent_id: str | None = ScopeId
    session_id: str = Field(min_length=1, max_length=200)
    messages: list[Message] = Field(min_length=1)


class MemoryPatch(_Strict):
    content: Content | None = None
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


def _aware(moment: datetime | None, zone: tzinfo = UTC) -> datetime | None:
    return moment.replace(tzinfo=zone) if moment is not None and moment.tzinfo is None else moment


def known_zone(name: str | None) -> str | None:
    if name is not None:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory ("America"), a name too long
            raise ValueError(
                f"unknown time zone {name!r}: give an IANA name such as 'Europe/Lisbon' or 'UTC'"
            ) from None
    return name


class SearchRequest(_Strict):
    query: str = Field(min_length=1)
    user_id: str | None = ScopeId
    agent_id: str | None = ScopeId
    session_id: str | None = ScopeId
    types: list[MemoryType] | None = Field(default=None, min_length=1)
    k: int = Field(default=10, ge=1, le=200)
    filters: dict[str, MetadataValue | InFilter] | None = Field(default=None, max_length=20)
    as_of: Moment | None = None
    include_superseded: bool = False
    min_trust: float | None = Field(default=None, ge=0.0, le=1.0, description="Leave out memories trusted less.")
    exclude_flagged: bool = Field(default=False, description="Leave out memories flagged as possible prompt injection.")
    asked_at: Moment | None = Field(
        default=None,
        description="The moment the question is asked: periods it names relative to now ('last week', "
        "'yesterday', '3 months ago') count back from it. Default: `as_of` if given, else the time of the request.",
    )
    timezone: Annotated[str | None, AfterValidator(known_zone)] = Field(
        default=None,
        max_length=64,
        description="The asker's IANA time zone ('America/Denver'): the days and months of the periods a question "
        "names are its own, and naive times in this request are its local times. Default: `asked_at`'s UTC offset, "
        "else UTC.",
    )
    event_after: Moment | None = Field(
        default=None, description="Only memories whose event happened at or after this (stored time when it has none)."
    )
    event_before: Moment | None = Field(
        default=None, description="Only memories whose event happened before this (stored time when it has none)."
    )
    max_words: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="A budget for the results' content, in whitespace-separated words (an English word is about "
        "1.3 tokens of an LLM): of the k best, in rank order, those that fit; one that would overflow the budget is "
        "left out and the next ones still tried.",
    )

    @model_validator(mode="after")
    def _event_window(self) -> "SearchRequest":
        # Naive times are the asker's local times, UTC unless a time zone is given (as for timestamps
        # written); an aware and a naive one cannot be compared.
        zone = self.zone()
        self.event_after, self.event_before = _aware(self.event_after, zone), _aware(self.event_before, zone)
        self.as_of, self.asked_at = _aware(self.as_of, zone), _aware(self.asked_at, zone)
        if self.timezone is not None:  # each field checked itself; a naive one read in the zone may fall off it
            for moment in (self.event_after, self.event_before, self.as_of, self.asked_at):
                if moment is not None:
                    within_calendar(moment)
        if self.event_after is not None and self.event_before is not None and self.event_after >= self.event_before:
            raise ValueError("event_after must be earlier than event_before")
        return self

    def zone(self) -> tzinfo:
        return UTC if self.timezone is None else ZoneInfo(self.timezone)

    def when_asked(self, now: datetime) -> datetime:
        """The moment relative periods count back from, in the asker's zone when one is given: the
        days of "last week" are the asker's days, whatever offset the moment was written with."""
        moment = self.asked_at or self.as_of or now
        try:
            return moment if self.timezone is None else moment.astimezone(self.zone())
        except OverflowError:  # within hours of year 1 or 9999, past the calendar in that zone
            return moment

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
    flags: list[str]
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


class KeyCreate(_Strict):
    permissions: list[Permission] = Field(min_length=1, max_length=3)
    name: str | None = Field(default=None, min_length=1, max_length=200)


class KeyOut(BaseModel):
    id: uuid.UUID
    name: str | None
    prefix: str
    permissions: list[str]
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(BaseModel):
    key_id: uuid.UUID
    key: str = Field(description="The API key itself: shown this once, stored only as a hash.")


class KeyList(BaseModel):
    keys: list[KeyOut]


class FootprintCounts(BaseModel):
    memories: int
    memory_keys: int
    memory_links: int
    memory_events: int


class Footprint(BaseModel):
    user_id: str
    counts: FootprintCounts
