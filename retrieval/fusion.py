"""Fusing candidate lists: reciprocal ranks (scales unknown) or standardised scores (scales known)."""

from collections.abc import Hashable, Sequence

import numpy as np


def reciprocal_rank_fusion(
    rankings: Sequence[tuple[Sequence[Hashable], float]], rrf_k: int = 60
) -> dict[Hashable, float]:
    """Fuse ranked id lists given as (ids best first, weight); returns id -> fused score."""
    fused: dict[Hashable, float] = {}
    for ids, weight in rankings:
        for rank, item in enumerate(ids, start=1):
            fused[item] = fused.get(item, 0.0) + weight / (rrf_k + rank)
    return fused


def standardised_sum(views: Sequence[tuple[np.ndarray, float] | tuple[np.ndarray, float, float]]) -> np.ndarray:
    """Each view's scores as z-scores over the candidates, summed with weights.

    Unlike reciprocal ranks this keeps how far ahead a candidate is: a turn that is by far the
    best lexical match outweighs one that is merely fifth on every list. Standardising over the
    candidate set (not the whole scope) makes cosines and BM25 sums comparable without knowing
    either distribution in advance; a view that is constant over the candidates adds nothing.

    A view's optional third item is the least spread it is divided by. Among a handful of
    candidates, two cosines 0.03 apart would otherwise be a whole standard deviation apart, as far
    apart as a memory in the period a question names and one outside it.
    """
    fused = np.zeros(len(views[0][0]) if views else 0)
    for scores, weight, *least in views:
        spread = float(scores.std())
        if weight and spread > 0:
            fused += weight * (scores - scores.mean()) / max([spread, *least])
    return fused
