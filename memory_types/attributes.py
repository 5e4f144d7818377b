"""Per-type attribute schemas: what each kind of memory may carry beside its content.

Unknown keys are rejected rather than silently kept, so a typo in an agent's payload surfaces as a
422 naming the field instead of a memory that later filters fail to find.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class MemoryType(StrEnum):
    episodic = "episodic"
    semantic = "semantic"
    procedural = "procedural"


class _Attributes(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EpisodicAttributes(_Attributes):
    """Something that happened: a message, an observation, a tool result."""

    role: Literal["user", "assistant", "system", "tool"] | None = None
    speaker: str | None = Field(default=None, max_length=200)
    session: str | None = Field(default=None, max_length=200)
    event_at: datetime | None = None


class SemanticAttributes(_Attributes):
    """A fact or belief; subject/predicate/object let a newer fact supersede an older one."""

    subject: str | None = Field(default=None, max_length=500)
    predicate: str | None = Field(default=None, max_length=500)
    object: str | None = Field(default=None, max_length=2000)
    confidence: float = Field(default=1.0, ge=0.0, le=1.0)


class ProceduralAttributes(_Attributes):
    """How to do something; outcome counts give the procedure its utility."""

    trigger: str | None = Field(default=None, max_length=2000)
    steps: list[str] = Field(default_factory=list, max_length=200)
    successes: int = Field(default=0, ge=0)
    failures: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _steps_not_blank(self) -> "ProceduralAttributes":
        if any(not step.strip() for step in self.steps):
            raise ValueError("steps must not contain blank entries")
        return self


ATTRIBUTE_SCHEMAS: dict[MemoryType, type[_Attributes]] = {
    MemoryType.episodic: EpisodicAttributes,
    MemoryType.semantic: SemanticAttributes,
    MemoryType.procedural: ProceduralAttributes,
}


def validate_attributes(memory_type: MemoryType, attributes: dict[str, Any] | None) -> dict[str, Any]:
    """Validate and normalise attributes for a type; raises ValueError naming each bad attribute."""
    try:
        model = ATTRIBUTE_SCHEMAS[memory_type].model_validate(attributes or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"attributes.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" if e["loc"] else e["msg"]
            for e in exc.errors()
        )
        raise ValueError(f"invalid {memory_type.value} attributes: {problems}") from None
    return model.model_dump(mode="json", exclude_none=True)
