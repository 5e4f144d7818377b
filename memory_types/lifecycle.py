"""Per-type lifecycle rules: when two memories are the same, when a fact replaces another, and how
fast an unused memory fades. Pure functions: the jobs in app/jobs apply them to the database."""

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from memory_types.attributes import MemoryType


@dataclass(frozen=True)
class TypeRules:
    """Lifecycle parameters of one memory type."""

    half_life_days: float
    """Time for an unused memory of importance 0.5 to fall to half its retention strength."""
    near_duplicate_merge: bool
    """Whether a near-identical newcomer reinforces the existing memory instead of being stored."""
    dedup_by_event_time: bool
    """Episodes are events: the same words at another time or in another session are a new event."""


RULES: dict[MemoryType, TypeRules] = {
    MemoryType.episodic: TypeRules(half_life_days=30.0, near_duplicate_merge=False, dedup_by_event_time=True),
    MemoryType.semantic: TypeRules(half_life_days=180.0, near_duplicate_merge=True, dedup_by_event_time=False),
    MemoryType.procedural: TypeRules(half_life_days=90.0, near_duplicate_merge=True, dedup_by_event_time=False),
}

USE_GAIN = 0.5
"""Each recorded use stretches the half-life by this fraction (spaced-repetition style)."""


def retention(
    memory_type: MemoryType, importance: float, access_count: int, last_used: datetime, now: datetime
) -> float:
    """Ebbinghaus-style retention in (0, 1]: 2^(-elapsed / half-life), where the half-life grows with
    importance (x0.5 at importance 0, x1.5 at 1) and with every use."""
    rules = RULES[memory_type]
    half_life = rules.half_life_days * (0.5 + importance) * (1.0 + USE_GAIN * access_count)
    elapsed_days = max(0.0, (now - last_used).total_seconds() / 86400.0)
    return math.pow(2.0, -elapsed_days / half_life)


def _norm(value: Any) -> str:
    return " ".join(str(value or "").casefold().split())


def fact_key(attributes: dict[str, Any]) -> tuple[str, str] | None:
    """(subject, predicate) of a semantic fact, normalised; None when the fact does not name both."""
    subject, predicate = _norm(attributes.get("subject")), _norm(attributes.get("predicate"))
    return (subject, predicate) if subject and predicate else None


def contradicts(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """A newer fact with the same subject and predicate and a different object replaces the older one."""
    key = fact_key(new)
    return key is not None and key == fact_key(old) and _norm(old.get("object")) != _norm(new.get("object"))


def procedure_utility(attributes: dict[str, Any]) -> float:
    """Laplace-smoothed success rate, so an untried procedure sits at 0.5."""
    successes, failures = int(attributes.get("successes", 0)), int(attributes.get("failures", 0))
    return (successes + 1) / (successes + failures + 2)


def procedure_is_useless(attributes: dict[str, Any], min_trials: int = 5, max_utility: float = 0.25) -> bool:
    """Enough evidence that the procedure usually fails."""
    trials = int(attributes.get("successes", 0)) + int(attributes.get("failures", 0))
    return trials >= min_trials and procedure_utility(attributes) <= max_utility
