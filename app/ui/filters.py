"""The filters of the search and timeline pages, as the browser's GET forms send them.

A form sends every field, empty ones as "": those mean "no filter" here rather than bad input.
Dates come from date pickers and are whole days of the viewer's time zone (app.ui.pages.viewer_zone);
`to` includes its day.
"""

from datetime import date, datetime, time, timedelta, tzinfo
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.api.schemas import MemoryOut, SearchRequest
from app.services.browsing import BrowseFilters
from app.ui.pages import zone_name
from memory_types import MemoryType

ScopeText = Annotated[str | None, Field(max_length=200)]
STATUSES = ("active", "superseded", "archived", "deleted", "all")


class Filters(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    q: Annotated[str | None, Field(max_length=4096)] = None
    user_id: ScopeText = None
    agent_id: ScopeText = None
    session_id: ScopeText = None
    type: MemoryType | None = None
    status: Literal["active", "superseded", "archived", "deleted", "all"] = "active"
    from_: Annotated[date | None, Field(alias="from")] = None
    to: date | None = None
    after: Annotated[int | None, Field(ge=1, le=2**63 - 1, description="the page cursor (a memory's seq)")] = None

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (isinstance(v, str) and not v.strip())}
        return data

    @model_validator(mode="after")
    def _ordered(self) -> "Filters":
        if self.from_ is not None and self.to is not None and self.from_ > self.to:
            raise ValueError(f"'from' ({self.from_}) is after 'to' ({self.to})")
        return self

    def start(self, zone: tzinfo) -> datetime | None:
        return datetime.combine(self.from_, time.min, zone) if self.from_ else None

    def end(self, zone: tzinfo) -> datetime | None:
        """Exclusive: the start of the day after `to` (none after the last representable day)."""
        if self.to is None or self.to == date.max:
            return None
        return datetime.combine(self.to + timedelta(days=1), time.min, zone)

    def browse(self, zone: tzinfo) -> BrowseFilters:
        return BrowseFilters(
            user_id=self.user_id,
            agent_id=self.agent_id,
            session_id=self.session_id,
            type=self.type.value if self.type else None,
            status=self.status,
            start=self.start(zone),
            end=self.end(zone),
        )

    def search(self, k: int, zone: tzinfo) -> SearchRequest:
        """The API's search for the query text, its periods ("yesterday") in the viewer's zone; status and
        time are applied to its results (`keeps`)."""
        return SearchRequest(
            timezone=zone_name(zone),
            query=self.q or "",
            user_id=self.user_id,
            agent_id=self.agent_id,
            session_id=self.session_id,
            types=[self.type] if self.type else None,
            k=k,
            include_superseded=self.status in ("superseded", "all"),
        )

    @property
    def narrows_results(self) -> bool:
        """Whether `keeps` can drop search results, so the search should fetch as many as it may."""
        return self.status == "superseded" or self.from_ is not None or self.to is not None

    def keeps(self, memory: MemoryOut, zone: tzinfo) -> bool:
        if self.status != "all" and memory.status != self.status:
            return False
        at, start, end = memory.event_at or memory.created_at, self.start(zone), self.end(zone)
        return (start is None or at >= start) and (end is None or at < end)

    def query_string(self, **changes: Any) -> str:
        """These filters as a URL query, with some changed (None drops one): for paging and cross-links."""
        fields = {**self.model_dump(by_alias=True, mode="json"), **changes}
        return urlencode({k: v for k, v in fields.items() if v is not None and not (k == "status" and v == "active")})
