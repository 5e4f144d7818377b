"""Reciprocal rank fusion: robust to the incomparable score scales of cosine and ts_rank_cd."""

from collections.abc import Hashable, Sequence


def reciprocal_rank_fusion(
    rankings: Sequence[tuple[Sequence[Hashable], float]], rrf_k: int = 60
) -> dict[Hashable, float]:
    """Fuse ranked id lists given as (ids best first, weight); returns id -> fused score."""
    fused: dict[Hashable, float] = {}
    for ids, weight in rankings:
        for rank, item in enumerate(ids, start=1):
            fused[item] = fused.get(item, 0.0) + weight / (rrf_k + rank)
    return fused
