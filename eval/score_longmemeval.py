"""LongMemEval retrieval scores as its reference code computes them (design section 6).

recall_any@k, recall_all@k and ndcg_any@k at turn level (gold: user turns marked has_answer)
and at session level (gold: answer_session_ids; ranking: the distinct sessions of the ranked
turns, in rank order). Two averages are reported, both labelled: one skipping abstention
questions (what the reference prints) and one also skipping questions with no gold user turn
(where turn-level gold is empty: recall_any and NDCG are 0 and recall_all is vacuously 1).

Unlike the reference, which ranks the whole haystack, systems here return their top `depth`
turns only, so a session that none of them reaches counts as not retrieved.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from eval.aggregate import group_means, latency_summary
from eval.longmemeval import K_DEFAULT
from eval.metrics import all_at_k, distinct, hit_at_k, ndcg_at_k
from eval.runner import RunResult
from eval.scoring import Scored, per_question_rows, score_run, tokens_at
from eval.units import Episode, Question, Unit

AVERAGES: dict[str, Callable[[Question], bool]] = {
    "skip_abstention": lambda q: not q.abstention,
    "skip_abstention_and_no_gold_turn": lambda q: not q.abstention and bool(q.gold_units),
}


def question_metrics(
    question: Question, retrieved: list[str], units: Mapping[str, Unit], ks: Sequence[int]
) -> dict[str, float]:
    sessions = distinct(units[i].session_id if i in units else None for i in retrieved)
    metrics: dict[str, float] = {}
    for level, ranked, gold in (
        ("session", sessions, question.gold_sessions),
        ("turn", retrieved, question.gold_units),
    ):
        for k in ks:
            metrics[f"{level}_recall_any@{k}"] = hit_at_k(ranked, gold, k)
            metrics[f"{level}_recall_all@{k}"] = all_at_k(ranked, gold, k)
            metrics[f"{level}_ndcg_any@{k}"] = ndcg_at_k(ranked, gold, k, longmemeval=True)
    for k in ks:
        metrics[f"tokens@{k}"] = tokens_at(retrieved, units, k)
    return metrics


def average(items: Sequence[Scored], keep: Callable[[Question], bool]) -> dict[str, Any]:
    """Metric -> {overall, by_category (question_type)} over the questions `keep` accepts."""
    kept = [s for s in items if keep(s.question)]
    categories = {s.question.category for s in kept}
    names = [m for m in (kept[0].metrics if kept else {}) if not m.startswith("tokens@")]
    return {
        "questions": len(kept),
        "metrics": {m: group_means(((s.question.category, s.metrics[m]) for s in kept), categories) for m in names},
    }


def system_summary(items: Sequence[Scored], ks: Sequence[int]) -> dict[str, Any]:
    summary: dict[str, Any] = {label: average(items, keep) for label, keep in AVERAGES.items()}
    answerable = [s for s in items if not s.question.abstention]
    for k in ks:
        summary[f"tokens@{k}"] = sum(s.metrics[f"tokens@{k}"] for s in answerable) / max(len(answerable), 1)
    summary["latency_ms"] = latency_summary(s.record.latency_ms for s in items)
    return summary


def score_longmemeval(
    episodes: Sequence[Episode], run: RunResult, ks: Sequence[int] = K_DEFAULT
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(summary.json content, per_question.jsonl rows)."""
    scored = score_run(episodes, run, lambda q, r, u: question_metrics(q, r, u, ks))
    questions = [q for e in episodes for q in e.questions]
    systems: dict[str, Any] = {name: system_summary(items, ks) for name, items in scored.items()}
    systems |= {name: {"skipped": reason} for name, reason in run.skipped.items()}
    summary = {
        "dataset": "longmemeval",
        "k": list(ks),
        "token_count": "whitespace-separated tokens of the retrieved turns, mean over non-abstention questions",
        "questions": {
            "total": len(questions),
            "abstention": sum(q.abstention for q in questions),
            "no_gold_turn": sum(not q.abstention and not q.gold_units for q in questions),
        },
        "systems": systems,
    }
    return summary, per_question_rows(scored)
