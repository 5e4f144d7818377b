"""PNG figures for a run (matplotlib, Agg backend: no display needed)."""

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)


def plot_curves(curves: Mapping[str, Mapping[int, float | None]], title: str, ylabel: str, path: Path) -> None:
    """One line per label over k (log-scaled x, since k spans 1..50)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, points in curves.items():
        measured = sorted((k, v) for k, v in points.items() if v is not None)
        ax.plot([k for k, _ in measured], [v for _, v in measured], marker="o", label=label)
    ax.set_xscale("log")
    all_ks = sorted({k for points in curves.values() for k in points})
    ax.set_xticks(all_ks, [str(k) for k in all_ks])
    ax.set_ylim(0, 1)
    ax.set_xlabel("k")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if curves:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_category_bars(
    values: Mapping[str, Mapping[str, float]], categories: Mapping[str, str], title: str, path: Path
) -> None:
    """Grouped bars: one group per category (key -> axis label, in order), one bar per system."""
    labels = list(categories.values())
    fig, ax = plt.subplots(figsize=(min(14.0, max(6.4, 0.4 * len(labels) * max(len(values), 1))), 4.2))
    width = 0.8 / max(len(values), 1)
    for i, (system, by_category) in enumerate(values.items()):
        xs = [j + i * width for j in range(len(labels))]
        ax.bar(xs, [by_category.get(c, 0.0) for c in categories], width, label=system)
    ax.set_xticks([j + width * (len(values) - 1) / 2 for j in range(len(labels))], labels, rotation=15)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    if values:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_latency(latencies: Mapping[str, Sequence[float]], path: Path) -> None:
    """Overlaid histograms of per-search wall-clock latency on shared log-spaced bins.

    Latencies span microseconds (in-process BM25) to hundreds of milliseconds (HTTP, mem0), so
    a linear axis would squash all but one system into a single bar.
    """
    values = [v for series in latencies.values() for v in series if v > 0]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    if values:
        bins = np.geomspace(min(values), max(values) * 1.0001, 50).tolist()
        for system, series in latencies.items():
            ax.hist([v for v in series if v > 0], bins=bins, alpha=0.5, label=system)
        ax.set_xscale("log")
        ax.legend()
    ax.set_xlabel("search latency (ms, log scale)")
    ax.set_ylabel("questions")
    ax.set_title("Search latency per question")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
