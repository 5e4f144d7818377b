"""Results cut to a budget of words rather than a count: what fits in an agent's prompt."""

from collections.abc import Sequence
from typing import TypeVar

Ranked = TypeVar("Ranked")


def within_budget(items: Sequence[Ranked], sizes: Sequence[int], budget: int) -> list[Ranked]:
    """The items, in rank order, whose sizes fit in `budget` together (`max_words`; the eval's
    recall at a budget of words). An agent filling a prompt has a budget of tokens, not of results,
    and ranking favours long turns (the length view, docs/retrieval.md); an item that would overflow
    is passed over so that a shorter one after it can still use the room."""
    kept: list[Ranked] = []
    for item, size in zip(items, sizes, strict=True):
        if size <= budget:
            kept.append(item)
            budget -= size
    return kept
