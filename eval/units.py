"""The dataset-neutral shapes every runner, system and scorer shares.

Both benchmarks reduce to the same thing: episodes (a LoCoMo conversation, a LongMemEval
haystack) made of retrieval units (turns) plus questions whose gold answers are unit ids and
session ids. Keeping one shape lets one runner, one cache and one set of metrics serve both.
"""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Unit:
    """One retrievable turn, identified the way the benchmark names it (`D1:3`, `<session>_2`)."""

    id: str
    session_id: str
    text: str
    timestamp: datetime | None = None
    name: str | None = None

    @property
    def document(self) -> str:
        """What the in-process baselines index: the speaker matters (questions name people)."""
        return f"{self.name}: {self.text}" if self.name else self.text

    @property
    def tokens(self) -> int:
        """Whitespace token count of the stored text: a model-free proxy for prompt cost."""
        return len(self.text.split())


@dataclass(frozen=True)
class Question:
    """A question, its gold units and sessions, and the category metrics are grouped by."""

    id: str
    text: str
    category: str
    answer: str
    gold_units: tuple[str, ...]
    gold_sessions: tuple[str, ...]
    abstention: bool = False
    # When it is asked, so that "last week" means the same in every run: LongMemEval's question_date;
    # LoCoMo's questions come after the conversation, so its last session's date.
    asked_at: datetime | None = None


@dataclass(frozen=True)
class Episode:
    """One isolated memory scope: everything in `units` is ingested before `questions` run."""

    id: str
    units: tuple[Unit, ...]
    questions: tuple[Question, ...]
