"""Ranking metrics for one question: a ranked list of ids against a set of gold ids.

Each function is the textbook definition, except where a benchmark's reference code differs
and its published numbers depend on it; those places say so.
"""

import math
from collections.abc import Collection, Hashable, Iterable, Sequence
from typing import TypeVar

T = TypeVar("T", bound=Hashable)


def recall_at_k(ranked: Sequence[str], gold: Collection[str], k: int) -> float:
    """Fraction of the gold ids among the first k (LoCoMo's retrieval recall)."""
    if not gold:
        raise ValueError("recall is undefined without gold ids")
    top = set(ranked[:k])
    return sum(g in top for g in gold) / len(gold)


def hit_at_k(ranked: Sequence[str], gold: Collection[str], k: int) -> float:
    """1 when any gold id is among the first k (LongMemEval's recall_any; 0 without gold)."""
    top = set(ranked[:k])
    return float(any(g in top for g in gold))


def all_at_k(ranked: Sequence[str], gold: Collection[str], k: int) -> float:
    """1 when every gold id is among the first k (LongMemEval's recall_all; 1 without gold, as there)."""
    top = set(ranked[:k])
    return float(all(g in top for g in gold))


def ranks_of(ranked: Sequence[str], gold: Iterable[str]) -> list[int | None]:
    """1-based rank of each gold id in the ranked list, None where it was not retrieved."""
    position = {item: i for i, item in reversed(list(enumerate(ranked, start=1)))}
    return [position.get(g) for g in gold]


def reciprocal_rank(ranked: Sequence[str], gold: Collection[str]) -> float:
    """1 / rank of the first gold id within the retrieved list, 0 if none was retrieved."""
    for i, item in enumerate(ranked, start=1):
        if item in gold:
            return 1.0 / i
    return 0.0


def _discount(rank: int, longmemeval: bool) -> float:
    # LongMemEval's reference dcg() gives ranks 1 and 2 full weight and rank r >= 2 weight
    # 1/log2(r); the textbook discount is 1/log2(r + 1).
    if longmemeval:
        return 1.0 if rank == 1 else 1.0 / math.log2(rank)
    return 1.0 / math.log2(rank + 1)


def ndcg_at_k(ranked: Sequence[str], gold: Collection[str], k: int, *, longmemeval: bool = False) -> float:
    """Binary-relevance NDCG@k; 0 without gold (as in LongMemEval's reference code)."""
    ideal = sum(_discount(r, longmemeval) for r in range(1, min(len(gold), k) + 1))
    if ideal == 0:
        return 0.0
    actual = sum(_discount(r, longmemeval) for r, item in enumerate(ranked[:k], start=1) if item in gold)
    return actual / ideal


def distinct(items: Iterable[T | None]) -> list[T]:
    """Items in first-seen order without repeats or Nones: turns ranked -> sessions ranked."""
    return list(dict.fromkeys(i for i in items if i is not None))
