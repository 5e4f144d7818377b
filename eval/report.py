"""report.md and the figures for a run, built from summary.json content (plus raw latencies).

Building from the summary (not from live objects) means a report can be regenerated from a
finished run directory and always agrees with the numbers stored beside it.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from eval.plots import plot_category_bars, plot_curves, plot_latency


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return lines


def ran(summary: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The systems that produced results (skipped ones only carry a reason)."""
    return {n: s for n, s in summary["systems"].items() if "skipped" not in s}


def skipped_lines(summary: Mapping[str, Any]) -> list[str]:
    skipped = {n: s["skipped"] for n, s in summary["systems"].items() if "skipped" in s}
    if not skipped:
        return []
    return ["", "## Skipped systems", ""] + [f"- **{n}**: {reason}" for n, reason in skipped.items()]


def headline_k(ks: Sequence[int]) -> int:
    """The k shown in per-category views: 10 when measured (the usual comparison point)."""
    return 10 if 10 in ks else max(ks)


def locomo_report(summary: Mapping[str, Any], out: Path, latencies: Mapping[str, Sequence[float]]) -> None:
    """report.md plus recall_at_k.png, recall_by_category.png and latency.png."""
    systems = ran(summary)
    names = list(systems)
    ks = summary["k"]
    counts = summary["questions"]
    overall = ", ".join(summary["overall_categories"])
    category_label = {c: f"{c} {n}" for c, n in summary["category_names"].items()}
    lines = [
        f"# LoCoMo retrieval: {summary['split']} split ({', '.join(summary['conversations'])})",
        "",
        f"{counts['total']} questions; {counts['scored']} with valid evidence are scored, "
        f"{counts['no_valid_evidence']} without are excluded. Skipped evidence references: "
        f"malformed {counts['malformed_evidence']}, pointing at missing turns {counts['dangling_evidence']}.",
        "Categories use the data's numbering: "
        + ", ".join(category_label.values())
        + f". Tokens are {summary['token_count']}. Latency is client-side wall clock per search.",
        "",
        f"## Overall (categories {overall})",
        "",
    ]
    metrics = [m for m in next(iter(systems.values()), {}) if m not in ("latency_ms", "qa_f1", "qa_judge")]
    rows: list[list[Any]] = [
        [m] + [s[m] if m.startswith("tokens@") else s[m]["overall"] for s in systems.values()] for m in metrics
    ]
    rows += [[f"latency {p} (ms)"] + [s["latency_ms"][p] for s in systems.values()] for p in ("p50", "p95")]
    lines += table(["metric", *names], rows)
    k = headline_k(ks)
    if "5" not in summary["overall_categories"]:
        adversarial = " · ".join(f"{n} {fmt(s[f'recall@{k}']['by_category'].get('5'))}" for n, s in systems.items())
        lines += ["", f"**Category 5 (adversarial, not in overall)**, recall@{k}: {adversarial}"]
    for metric in (f"recall@{k}", f"session_recall@{k}", "mrr"):
        lines += ["", f"## {metric} by category", ""]
        lines += table(
            ["category", *names],
            [
                [label] + [s[metric]["by_category"].get(c) for s in systems.values()]
                for c, label in category_label.items()
            ],
        )
    for key, title in (("qa_f1", "QA F1 (LoCoMo scoring)"), ("qa_judge", "QA LLM-judge accuracy (J)")):
        qa = {n: s[key] for n, s in systems.items() if key in s}
        if qa:
            lines += ["", f"## {title}; overall = categories {overall}", ""]
            lines += table(
                ["category", *qa],
                [["overall"] + [v["overall"] for v in qa.values()]]
                + [[label] + [v["by_category"].get(c) for v in qa.values()] for c, label in category_label.items()],
            )
    lines += skipped_lines(summary)
    (out / "report.md").write_text("\n".join(lines) + "\n")

    plot_curves(
        {n: {kk: s[f"recall@{kk}"]["overall"] for kk in ks} for n, s in systems.items()},
        f"LoCoMo {summary['split']}: evidence recall@k (categories {overall})",
        "recall",
        out / "recall_at_k.png",
    )
    plot_category_bars(
        {n: s[f"recall@{k}"]["by_category"] for n, s in systems.items()},
        category_label,
        f"LoCoMo {summary['split']}: recall@{k} by category",
        out / "recall_by_category.png",
    )
    plot_latency({n: latencies[n] for n in names}, out / "latency.png")


def longmemeval_report(summary: Mapping[str, Any], out: Path, latencies: Mapping[str, Sequence[float]]) -> None:
    """report.md plus recall_any_at_k.png, recall_by_type.png and latency.png."""
    systems = ran(summary)
    names = list(systems)
    ks = summary["k"]
    counts = summary["questions"]
    lines = [
        "# LongMemEval retrieval",
        "",
        f"{counts['total']} questions, {counts['abstention']} abstention, "
        f"{counts['no_gold_turn']} answerable ones with no gold user turn. "
        f"Tokens are {summary['token_count']}. Latency is client-side wall clock per search.",
    ]
    titles = {
        "skip_abstention": "Average skipping abstention questions",
        "skip_abstention_and_no_gold_turn": "Average skipping abstention questions and those with no gold user turn",
    }
    for label, title in titles.items():
        first = next(iter(systems.values()), None)
        n = first[label]["questions"] if first else 0
        lines += ["", f"## {title} (n = {n})", ""]
        metrics = list(first[label]["metrics"]) if first else []
        lines += table(
            ["metric", *names], [[m] + [s[label]["metrics"][m]["overall"] for s in systems.values()] for m in metrics]
        )
    lines += ["", "## Cost", ""]
    rows: list[list[Any]] = [[f"tokens@{k}"] + [s[f"tokens@{k}"] for s in systems.values()] for k in ks]
    rows += [[f"latency {p} (ms)"] + [s["latency_ms"][p] for s in systems.values()] for p in ("p50", "p95")]
    lines += table(["metric", *names], rows)
    k = headline_k(ks)
    metric = f"session_recall_any@{k}"
    types = sorted({t for s in systems.values() for t in s["skip_abstention"]["metrics"][metric]["by_category"]})
    lines += ["", f"## {metric} by question type (skipping abstention)", ""]
    lines += table(
        ["question type", *names],
        [
            [t] + [s["skip_abstention"]["metrics"][metric]["by_category"].get(t) for s in systems.values()]
            for t in types
        ],
    )
    lines += skipped_lines(summary)
    (out / "report.md").write_text("\n".join(lines) + "\n")

    plot_curves(
        {
            f"{n} ({level})": {kk: s["skip_abstention"]["metrics"][f"{level}_recall_any@{kk}"]["overall"] for kk in ks}
            for n, s in systems.items()
            for level in ("session", "turn")
        },
        "LongMemEval: recall_any@k (skipping abstention)",
        "recall_any",
        out / "recall_any_at_k.png",
    )
    plot_category_bars(
        {n: s["skip_abstention"]["metrics"][metric]["by_category"] for n, s in systems.items()},
        {t: t for t in types},
        f"LongMemEval: {metric} by question type",
        out / "recall_by_type.png",
    )
    plot_latency({n: latencies[n] for n in names}, out / "latency.png")
