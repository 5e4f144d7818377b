"""Load LoCoMo (locomo10.json) into episodes, following the data rules of design section 6.

Sessions are found from the `session_N` keys (some `session_N_date_time` keys have no session),
evidence is parsed with `D(\\d+):(\\d+)` and malformed or dangling references are skipped and
counted rather than trusted.
"""

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eval.units import Episode, Question, Unit

SPLITS: dict[str, tuple[str, ...]] = {
    "dev": ("conv-26", "conv-30", "conv-41", "conv-42", "conv-43"),
    "test": ("conv-44", "conv-47", "conv-48", "conv-49", "conv-50"),
}
CATEGORY_NAMES: dict[str, str] = {
    "1": "multi-hop",
    "2": "temporal",
    "3": "open-domain",
    "4": "single-hop",
    "5": "adversarial",
}
DATE_FORMAT = "%I:%M %p on %d %B, %Y"

_SESSION_KEY = re.compile(r"session_(\d+)")
_EVIDENCE = re.compile(r"D(\d+):(\d+)")


@dataclass(frozen=True)
class LocomoData:
    """The episodes of a split and the evidence references that had to be skipped."""

    episodes: list[Episode]
    malformed_evidence: list[str]
    dangling_evidence: list[str]


def parse_session_date(text: str) -> datetime:
    """`"1:56 pm on 8 May, 2023"` -> 2023-05-08 13:56 UTC (LoCoMo dates carry no zone)."""
    return datetime.strptime(text.strip(), DATE_FORMAT).replace(tzinfo=UTC)


def turn_text(turn: dict[str, Any]) -> str:
    """The turn as Loci stores it: image turns keep their caption, the only trace of the image."""
    caption = turn.get("blip_caption")
    return f"{turn['text']} [shares image: {caption}]" if caption else str(turn["text"])


def conversation_units(conversation: dict[str, Any]) -> list[Unit]:
    """All turns in session order, each with its session's date."""
    numbers = sorted(int(m.group(1)) for key in conversation if (m := _SESSION_KEY.fullmatch(key)))
    units = []
    for n in numbers:
        date = conversation.get(f"session_{n}_date_time")
        timestamp = parse_session_date(date) if date else None
        for turn in conversation[f"session_{n}"]:
            units.append(Unit(turn["dia_id"], f"session_{n}", turn_text(turn), timestamp, turn["speaker"]))
    return units


def parse_evidence(evidence: Iterable[str], known: set[str]) -> tuple[list[str], list[str], list[str]]:
    """(valid unit ids in order without repeats, malformed strings, references to missing turns)."""
    valid: list[str] = []
    malformed: list[str] = []
    dangling: list[str] = []
    for item in evidence:
        matches = _EVIDENCE.findall(item)
        if not matches:
            malformed.append(item)
        for session, turn in matches:
            unit_id = f"D{int(session)}:{int(turn)}"
            if unit_id not in known:
                dangling.append(item)
            elif unit_id not in valid:
                valid.append(unit_id)
    return valid, malformed, dangling


def load_locomo(path: Path, split: str = "all") -> LocomoData:
    """Read the file and keep the conversations of `split` (dev, test or all), in file order."""
    if split != "all" and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use dev, test or all")
    samples = json.loads(Path(path).read_text())
    wanted = set(SPLITS[split]) if split != "all" else None
    episodes: list[Episode] = []
    malformed: list[str] = []
    dangling: list[str] = []
    for sample in samples:
        if wanted is not None and sample["sample_id"] not in wanted:
            continue
        units = conversation_units(sample["conversation"])
        session_of = {u.id: u.session_id for u in units}
        asked_at = max((u.timestamp for u in units if u.timestamp is not None), default=None)
        questions = []
        for i, qa in enumerate(sample["qa"]):
            gold, bad, missing = parse_evidence(qa.get("evidence", []), set(session_of))
            malformed += bad
            dangling += missing
            answer = qa.get("answer", qa.get("adversarial_answer", ""))
            questions.append(
                Question(
                    id=f"{sample['sample_id']}/q{i}",
                    text=qa["question"],
                    category=str(qa["category"]),
                    answer=str(answer),
                    gold_units=tuple(gold),
                    gold_sessions=tuple(dict.fromkeys(session_of[g] for g in gold)),
                    asked_at=asked_at,
                )
            )
        episodes.append(Episode(sample["sample_id"], tuple(units), tuple(questions)))
    if wanted is not None and len(episodes) != len(wanted):
        found = {e.id for e in episodes}
        raise ValueError(f"conversations missing from {path}: {sorted(wanted - found)}")
    return LocomoData(episodes, malformed, dangling)
