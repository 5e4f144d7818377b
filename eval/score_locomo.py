"""LoCoMo retrieval scores (design section 6): evidence recall@k, hit@k, MRR, NDCG@10 over
turns; recall@k and hit@k over sessions; recall within a budget of words; tokens retrieved;
search latency.

Questions without a valid evidence turn get no metrics and are only counted. The overall
figure pools the questions of categories 1-4 unless told otherwise; category 5 (adversarial)
is always reported on its own.
"""

from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from eval.aggregate import group_means, latency_summary
from eval.locomo import CATEGORY_NAMES, LocomoData
from eval.metrics import distinct, hit_at_k, ndcg_at_k, recall_at_k, reciprocal_rank
from eval.runner import RunResult
from eval.scoring import Scored, per_question_rows, score_run, tokens_at, within_words
from eval.units import Question, Unit

DEFAULT_K = (1, 5, 10, 25, 50)
DEFAULT_OVERALL = ("1", "2", "3", "4")
WORD_BUDGETS = (150, 300)
"""Recall at a prompt budget of words (`recall@150w`): about what the top 5 and top 10 take. Recall
at k rewards long results, which fill k slots with more text (docs/retrieval.md, "Length")."""
NDCG_K = 10


def question_metrics(
    question: Question, retrieved: list[str], units: Mapping[str, Unit], ks: Sequence[int]
) -> dict[str, float]:
    """Every per-question metric, or {} when the question has no valid evidence."""
    gold = question.gold_units
    if not gold:
        return {}
    sessions = distinct(units[i].session_id if i in units else None for i in retrieved)
    metrics: dict[str, float] = {}
    for k in ks:
        metrics[f"recall@{k}"] = recall_at_k(retrieved, gold, k)
    for k in ks:
        metrics[f"session_recall@{k}"] = recall_at_k(sessions, question.gold_sessions, k)
    for k in ks:
        metrics[f"hit@{k}"] = hit_at_k(retrieved, gold, k)
    for k in ks:
        metrics[f"session_hit@{k}"] = hit_at_k(sessions, question.gold_sessions, k)
    metrics["mrr"] = reciprocal_rank(retrieved, gold)
    metrics[f"ndcg@{NDCG_K}"] = ndcg_at_k(retrieved, gold, NDCG_K)
    for words in WORD_BUDGETS:
        fitted = within_words(retrieved, units, words)
        metrics[f"recall@{words}w"] = recall_at_k(fitted, gold, len(fitted))
    for k in ks:
        metrics[f"tokens@{k}"] = tokens_at(retrieved, units, k)
    return metrics


def system_summary(items: Sequence[Scored], overall: Collection[str]) -> dict[str, Any]:
    """summary.json's block for one system: metric -> {overall, by_category}, plus latency."""
    values: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for s in items:
        for key, value in s.metrics.items():
            values[key].append((s.question.category, value))
    summary: dict[str, Any] = {}
    for key, rows in values.items():
        means = group_means(rows, overall)
        summary[key] = means["overall"] if key.startswith("tokens@") else means
    summary["latency_ms"] = latency_summary(s.record.latency_ms for s in items)
    return summary


def score_locomo(
    data: LocomoData,
    split: str,
    run: RunResult,
    ks: Sequence[int] = DEFAULT_K,
    overall: Collection[str] = DEFAULT_OVERALL,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(summary.json content, per_question.jsonl rows)."""
    scored = score_run(data.episodes, run, lambda q, r, u: question_metrics(q, r, u, ks))
    questions = [q for e in data.episodes for q in e.questions]
    systems: dict[str, Any] = {name: system_summary(items, overall) for name, items in scored.items()}
    systems |= {name: {"skipped": reason} for name, reason in run.skipped.items()}
    summary = {
        "dataset": "locomo",
        "split": split,
        "conversations": [e.id for e in data.episodes],
        "k": list(ks),
        "overall_categories": sorted(overall),
        "category_names": CATEGORY_NAMES,
        "token_count": "whitespace-separated tokens of the retrieved turns' stored text",
        "questions": {
            "total": len(questions),
            "scored": sum(bool(q.gold_units) for q in questions),
            "no_valid_evidence": sum(not q.gold_units for q in questions),
            "by_category": dict(sorted(Counter(q.category for q in questions if q.gold_units).items())),
            "malformed_evidence": data.malformed_evidence,
            "dangling_evidence": data.dangling_evidence,
        },
        "systems": systems,
    }
    return summary, per_question_rows(scored)
