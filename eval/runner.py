"""Run retrieval systems over episodes: index each episode, search each question, time it.

Results are cached per (system, episode) under OUT/cache so an interrupted or extended run
(`--resume`) redoes only what is missing; a cache entry is reused only when the episode's data
and the search depth are exactly those it was made with.
"""

import hashlib
import json
import re
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from eval.systems import RetrievalSystem, SystemUnavailable, open_system
from eval.units import Episode


@dataclass(frozen=True)
class QueryRecord:
    """What one system retrieved for one question, and how long the search took (wall clock)."""

    system: str
    episode: str
    question_id: str
    retrieved: list[str]
    latency_ms: float


@dataclass
class RunResult:
    records: dict[str, list[QueryRecord]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def fingerprint(episode: Episode, depth: int) -> str:
    """Hash of everything that decides an episode's results, so stale cache entries are ignored."""
    payload = {
        "depth": depth,
        "units": [
            [u.id, u.session_id, u.text, u.name, u.timestamp.isoformat() if u.timestamp else None]
            for u in episode.units
        ],
        "questions": [[q.id, q.text] for q in episode.questions],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class ResultCache:
    """One JSON file per system and episode: {"fingerprint": ..., "records": [...]}."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, system: str, episode: str) -> Path:
        return self.root / system / f"{re.sub(r'[^A-Za-z0-9._-]', '_', episode)}.json"

    def load(self, system: str, episode: Episode, depth: int) -> list[QueryRecord] | None:
        path = self._path(system, episode.id)
        if not path.exists():
            return None
        stored = json.loads(path.read_text())
        if stored.get("fingerprint") != fingerprint(episode, depth):
            return None
        return [QueryRecord(**r) for r in stored["records"]]

    def store(self, system: str, episode: Episode, depth: int, records: list[QueryRecord]) -> None:
        path = self._path(system, episode.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {"fingerprint": fingerprint(episode, depth), "records": [asdict(r) for r in records]}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(body))
        tmp.replace(path)


def search_episode(system: RetrievalSystem, name: str, episode: Episode, depth: int) -> list[QueryRecord]:
    """Index the episode's units, then search every question once."""
    system.index(episode.units)
    records = []
    for question in episode.questions:
        start = time.perf_counter()
        retrieved = system.search(question.text, depth, question.asked_at)
        elapsed_ms = (time.perf_counter() - start) * 1000
        records.append(QueryRecord(name, episode.id, question.id, retrieved, elapsed_ms))
    return records


def run_systems(
    names: Sequence[str],
    episodes: Sequence[Episode],
    depth: int,
    cache: ResultCache,
    resume: bool,
    url: str | None = None,
    api_key: str | None = None,
    console: Console | None = None,
) -> RunResult:
    """Each system in turn over all episodes; a SystemUnavailable marks it skipped, not failed."""
    result = RunResult()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        for name in names:
            task = progress.add_task(name, total=sum(len(e.questions) for e in episodes))
            cached = {e.id: cache.load(name, e, depth) if resume else None for e in episodes}
            records: list[QueryRecord] = []
            try:
                needed = any(stored is None for stored in cached.values())
                with open_system(name, url, api_key) if needed else nullcontext() as system:
                    for episode in episodes:
                        stored = cached[episode.id]
                        if stored is None:
                            assert system is not None  # opened whenever an episode is not cached
                            progress.update(task, description=f"{name} {episode.id}: {len(episode.units)} units")
                            stored = search_episode(system, name, episode, depth)
                            cache.store(name, episode, depth, stored)
                        records += stored
                        progress.advance(task, len(episode.questions))
            except SystemUnavailable as exc:
                result.skipped[name] = str(exc)
                progress.update(task, description=f"{name}: skipped")
                continue
            result.records[name] = records
            progress.update(task, description=f"{name}: done")
    return result
