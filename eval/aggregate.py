"""Averages across questions: per category, overall, and latency percentiles."""

from collections import defaultdict
from collections.abc import Container, Iterable

import numpy as np


def group_means(rows: Iterable[tuple[str, float]], overall: Container[str]) -> dict[str, object]:
    """Mean per category and the mean over every question whose category is in `overall`.

    The overall figure is a mean over questions, not over categories, as the LoCoMo paper
    reports it; None when no question falls in it.
    """
    by_category: dict[str, list[float]] = defaultdict(list)
    for category, value in rows:
        by_category[category].append(value)
    pooled = [v for c, values in by_category.items() if c in overall for v in values]
    return {
        "overall": float(np.mean(pooled)) if pooled else None,
        "by_category": {c: float(np.mean(v)) for c, v in sorted(by_category.items())},
    }


def latency_summary(latencies_ms: Iterable[float]) -> dict[str, float | None]:
    """p50 and p95 of per-search wall-clock time; None when nothing was searched."""
    values = np.asarray(list(latencies_ms), dtype=float)
    if values.size == 0:
        return {"p50": None, "p95": None}
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95))}
