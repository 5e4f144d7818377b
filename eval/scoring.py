"""Join what systems retrieved with the questions' gold, per question, for any dataset.

The dataset scorers (score_locomo, score_longmemeval) only say which metrics a question gets
and how to average them; matching records to questions and writing per-question rows is here.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eval.metrics import ranks_of
from eval.runner import QueryRecord, RunResult
from eval.units import Episode, Question, Unit
from retrieval.budget import within_budget

MetricFn = Callable[[Question, list[str], Mapping[str, Unit]], dict[str, float]]


@dataclass(frozen=True)
class Scored:
    question: Question
    record: QueryRecord
    metrics: dict[str, float]


def score_run(episodes: Sequence[Episode], run: RunResult, metric_fn: MetricFn) -> dict[str, list[Scored]]:
    """Per system, every record with its question and that question's metrics."""
    questions = {(e.id, q.id): q for e in episodes for q in e.questions}
    units = {e.id: {u.id: u for u in e.units} for e in episodes}
    scored: dict[str, list[Scored]] = {}
    for system, records in run.records.items():
        scored[system] = [
            Scored(
                questions[(r.episode, r.question_id)],
                r,
                metric_fn(questions[(r.episode, r.question_id)], r.retrieved, units[r.episode]),
            )
            for r in records
        ]
    return scored


def per_question_rows(scored: Mapping[str, list[Scored]]) -> list[dict[str, Any]]:
    """One JSON-ready row per system and question: retrieved ids, gold ranks, latency, metrics."""
    return [
        {
            "system": system,
            "episode": s.record.episode,
            "question_id": s.question.id,
            "category": s.question.category,
            "question": s.question.text,
            "gold": list(s.question.gold_units),
            "gold_sessions": list(s.question.gold_sessions),
            "retrieved": s.record.retrieved,
            "ranks": ranks_of(s.record.retrieved, s.question.gold_units),
            "latency_ms": s.record.latency_ms,
            "metrics": s.metrics,
        }
        for system, items in scored.items()
        for s in items
    ]


def within_words(retrieved: Sequence[str], units: Mapping[str, Unit], words: int) -> list[str]:
    """The retrieved units an agent with a prompt budget of `words` would take, as the search's
    `max_words` picks them (results that are not units take no room)."""
    return within_budget(retrieved, [units[i].tokens if i in units else 0 for i in retrieved], words)


def tokens_at(retrieved: Sequence[str], units: Mapping[str, Unit], k: int) -> float:
    """Whitespace tokens in the first k retrieved units (results that are not units count 0)."""
    return float(sum(units[i].tokens for i in retrieved[:k] if i in units))
