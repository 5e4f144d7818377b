"""Load LongMemEval (official JSON: a list of questions, each with its own haystack) into episodes.

As in the benchmark's reference retrieval code, the corpus is the user turns only, a turn is
named `<session_id>_<position in the session, from 1>`, the turn-level gold is the user turns
marked `has_answer`, and `_abs` question ids are abstention questions.
"""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eval.units import Episode, Question, Unit

DATE_FORMAT = "%Y/%m/%d (%a) %H:%M"
K_DEFAULT = (1, 3, 5, 10, 30, 50)


def parse_haystack_date(text: str) -> datetime:
    """`"2023/04/10 (Mon) 17:50"` -> 2023-04-10 17:50 UTC (the data carries no zone)."""
    return datetime.strptime(text.strip(), DATE_FORMAT).replace(tzinfo=UTC)


def question_episode(entry: dict[str, Any]) -> Episode:
    """One question and its haystack as an episode of user turns."""
    units: list[Unit] = []
    gold_units: list[str] = []
    for session_id, date, session in zip(
        entry["haystack_session_ids"], entry["haystack_dates"], entry["haystack_sessions"], strict=True
    ):
        timestamp = parse_haystack_date(date)
        for position, turn in enumerate(session, start=1):
            if turn["role"] != "user":
                continue
            unit = Unit(f"{session_id}_{position}", session_id, turn["content"], timestamp)
            units.append(unit)
            if turn.get("has_answer"):
                gold_units.append(unit.id)
    question = Question(
        id=entry["question_id"],
        text=entry["question"],
        category=entry["question_type"],
        answer=str(entry["answer"]),
        gold_units=tuple(gold_units),
        gold_sessions=tuple(entry["answer_session_ids"]),
        abstention="_abs" in entry["question_id"],
        asked_at=parse_haystack_date(entry["question_date"]) if entry.get("question_date") else None,
    )
    return Episode(entry["question_id"], tuple(units), (question,))


def load_longmemeval(path: Path, limit: int | None = None) -> list[Episode]:
    """Every question of the file (or its first `limit`) as its own episode."""
    entries = json.loads(Path(path).read_text())
    return [question_episode(e) for e in entries[:limit]]
