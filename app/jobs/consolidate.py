"""Consolidation: turn a scope's new episodes into durable knowledge, without an LLM.

Per session (one transaction each, so a killed worker leaves whole sessions done or untouched):
facts extracted from first-person sentences become semantic memories linked to their episodes;
each episode gets index keys (its facts and keywords) that retrieval searches as extra ways in, where
keys are searched at all (`Settings.memory_keys_searched`: by default only where an LLM writes them;
the keyword keys were ~70 % of a 10k scope's consolidation time and 4 KB a memory); the
session gets an extractive summary linked to its episodes. Where keys are searched, episodes
consolidated earlier while they were not get their keys then (`keyed_at`). Then new semantic
memories are linked to related ones (A-MEM style) and near-identical procedures are merged.
"""

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pydantic import BaseModel
from sqlalchemy import ColumnElement, insert, select, update
from sqlalchemy.orm import Session

from app.api.schemas import MemoryCreate
from app.db.models import Memory, MemoryEvent, MemoryKey
from app.jobs.links import add_links
from app.jobs.scope import job_transaction, scope_conditions
from app.llm import LLMClient, LLMError, llm_config
from app.runtime import Runtime
from app.services.memory_store import create_memories, embed_items
from memory_types import MemoryType
from memory_types.content import indexed_text
from memory_types.extraction import Fact, extract_facts, extractive_summary, keywords, split_sentences

log = logging.getLogger(__name__)

ACTOR = "job:consolidate"
SUMMARY_KIND = "session_summary"
FACT_KIND = "extracted_fact"
RELATED_MIN_SIMILARITY = 0.6
RELATED_PER_MEMORY = 3
PROCEDURE_MERGE_SIMILARITY = 0.92


@dataclass
class _Run:
    """What the steps of one consolidation share: its scope, the LLM (when one is configured) and
    the counts it reports."""

    runtime: Runtime
    tenant_id: uuid.UUID
    scope: dict[str, Any]
    llm: LLMClient | None
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def consolidate(runtime: Runtime, tenant_id: uuid.UUID, scope: dict[str, Any], dry_run: bool = False) -> dict[str, int]:
    """Consolidate the scope's new episodes (`dry_run` is the job runner's; consolidation has none)."""
    new_semantic: list[uuid.UUID] = []
    s = runtime.settings
    config = llm_config(s.llm_base_url, s.llm_model, s.llm_api_key, s.llm_timeout)
    run = _Run(runtime, tenant_id, scope, LLMClient(config) if config else None)
    try:
        for session_id in _session_ids(run, Memory.consolidated_at.is_(None)):
            with job_transaction(runtime, tenant_id, scope) as session:
                new_semantic += _consolidate_session(run, session, session_id)
        if s.memory_keys_searched:
            for session_id in _session_ids(run, *unkeyed()):
                with job_transaction(runtime, tenant_id, scope) as session:
                    _key_session(run, session, session_id)
    finally:
        if run.llm is not None:
            run.llm.close()
    with job_transaction(runtime, tenant_id, scope) as session:
        run.counts["links"] += _link_related(session, tenant_id, new_semantic)
        run.counts["procedures_merged"] += _merge_procedures(session, tenant_id, scope)
    return dict(run.counts)


def unkeyed() -> tuple[ColumnElement[bool], ...]:
    """Episodes consolidated while keys were off (not searched, so not written). One with keys of its
    own is keyed, marked or not: it was consolidated before `keyed_at` existed, or imported."""
    has_keys = select(MemoryKey.id).where(MemoryKey.memory_id == Memory.id).exists()
    return Memory.consolidated_at.is_not(None), Memory.keyed_at.is_(None), ~has_keys


def _session_ids(run: _Run, *conditions: ColumnElement[bool]) -> list[str | None]:
    """The sessions of the scope's active episodes that meet `conditions`."""
    with run.runtime.sessions() as session:
        return list(
            session.execute(
                select(Memory.session_id)
                .where(
                    *scope_conditions(run.tenant_id, run.scope),
                    Memory.type == MemoryType.episodic.value,
                    Memory.status == "active",
                    *conditions,
                )
                .group_by(Memory.session_id)
            )
            .scalars()
            .all()
        )


def _lock_episodes(
    run: _Run, session: Session, session_id: str | None, *conditions: ColumnElement[bool]
) -> list[Memory]:
    """The session's active episodes that meet `conditions`, locked, in the order they were written.

    Locked in id order, as the use-count flush and the forget pass lock, and waited for: a search's
    use count holds a row for milliseconds, and skipping locked rows left such episodes out of the
    session's consolidation until a later sweep. A concurrent job on the same session waits, then
    finds its episodes marked (the lock re-reads the row) and does nothing."""
    locked = session.scalars(
        select(Memory)
        .where(
            *scope_conditions(run.tenant_id, {**run.scope, "session_id": session_id}),
            Memory.session_id.is_not_distinct_from(session_id),
            Memory.type == MemoryType.episodic.value,
            Memory.status == "active",
            *conditions,
        )
        .order_by(Memory.id)
        .with_for_update()
    ).all()
    return sorted(locked, key=lambda e: e.seq)


class _LLMFact(BaseModel):
    subject: str
    predicate: str
    object: str
    turn: int


class _LLMFacts(BaseModel):
    facts: list[_LLMFact]


_FACT_PROMPT = (
    "Extract the durable facts about the people in these conversation turns: who they are, where they "
    "live and work, relationships, preferences, possessions, plans and notable events. One fact per "
    "subject-predicate-object triple, with the number of the turn it comes from. Skip greetings and "
    'small talk.\n\n{turns}\n\nReply as JSON: {{"facts": [{{"subject", "predicate", "object", "turn"}}]}}'
)


def _facts(llm: LLMClient | None, episodes: list[Memory]) -> list[list[Fact]]:
    """Facts per episode: from the LLM when one is configured and answers validly, else heuristics."""
    heuristic = [extract_facts(e.content, e.attributes.get("speaker")) for e in episodes]
    if llm is None:
        return heuristic
    turns = "\n".join(
        f"[{i}] {e.attributes.get('speaker') or e.attributes.get('role') or 'someone'}: {e.content}"
        for i, e in enumerate(episodes)
    )
    try:
        reply = llm.complete_json(_FACT_PROMPT.format(turns=turns), _LLMFacts)
    except LLMError as exc:
        log.warning("llm fact extraction failed; using heuristics", extra={"error": str(exc)[:200]})
        return heuristic
    by_turn: list[list[Fact]] = [[] for _ in episodes]
    for fact in reply.facts:
        if 0 <= fact.turn < len(episodes) and fact.subject.strip() and fact.object.strip():
            by_turn[fact.turn].append(
                Fact(fact.subject, fact.predicate.lower(), fact.object, episodes[fact.turn].content)
            )
    return by_turn


def _keys(episode: Memory, facts: list[Fact]) -> list[tuple[uuid.UUID, str, str]]:
    """(memory id, kind, text) of the episode's index keys: its facts, and its keywords, speaker first."""
    keys = [(episode.id, "fact", fact.text) for fact in facts]
    speaker = episode.attributes.get("speaker")
    words = keywords(episode.content)
    if speaker:
        words = [speaker, *[w for w in words if w != speaker]]
    if words:
        keys.append((episode.id, "keyword", " ".join(words)))
    return keys


def _consolidate_session(run: _Run, session: Session, session_id: str | None) -> list[uuid.UUID]:
    episodes = _lock_episodes(run, session, session_id, Memory.consolidated_at.is_(None))
    if not episodes:
        return []
    runtime, tenant_id, counts = run.runtime, run.tenant_id, run.counts
    threshold = runtime.settings.near_duplicate_threshold
    created: list[uuid.UUID] = []
    fact_links: list[tuple[uuid.UUID, uuid.UUID, str, float]] = []
    key_texts: list[tuple[uuid.UUID, str, str]] = []
    with_keys = runtime.settings.memory_keys_searched
    for episode, facts in zip(episodes, _facts(run.llm, episodes), strict=True):
        if with_keys:
            key_texts += _keys(episode, facts)
        if facts:
            items = [
                MemoryCreate(
                    type=MemoryType.semantic,
                    content=f"{fact.subject} {fact.predicate} {fact.object}",
                    user_id=episode.user_id,
                    agent_id=episode.agent_id,
                    session_id=episode.session_id,
                    event_at=episode.event_at,
                    importance=episode.importance,
                    source="agent",
                    metadata={"kind": FACT_KIND},
                    attributes={
                        "subject": fact.subject,
                        "predicate": fact.predicate,
                        "object": fact.object,
                        "confidence": 0.6,
                    },
                )
                for fact in facts
            ]
            fact_ids = create_memories(
                session, tenant_id, items, embed_items(runtime.embedder, items), ACTOR, threshold
            )
            fact_links += [(fact_id, episode.id, "derived_from", 1.0) for fact_id in fact_ids]
            created += fact_ids
            counts["facts"] += len(fact_ids)

    _write_keys(run, session, key_texts)

    summary_id = _summarise(runtime, session, tenant_id, session_id, episodes)
    if summary_id is not None:
        created.append(summary_id)
        fact_links += [(summary_id, e.id, "derived_from", 1.0) for e in episodes]
        counts["summaries"] += 1
    counts["links"] += add_links(session, tenant_id, fact_links)
    now = datetime.now(UTC)
    session.execute(
        update(Memory)
        .where(Memory.id.in_([e.id for e in episodes]))
        .values(consolidated_at=now, keyed_at=now if with_keys else None)
    )
    counts["episodes"] += len(episodes)
    return created


def _key_session(run: _Run, session: Session, session_id: str | None) -> None:
    """Keys for a session's episodes consolidated while keys were off (an LLM configured since, or
    keys turned on). Only keys: the facts found now are not stored as memories again, since the
    episodes' first consolidation stored its own."""
    episodes = _lock_episodes(run, session, session_id, *unkeyed())
    if not episodes:
        return
    key_texts = [key for e, facts in zip(episodes, _facts(run.llm, episodes), strict=True) for key in _keys(e, facts)]
    _write_keys(run, session, key_texts)
    now = datetime.now(UTC)
    session.execute(update(Memory).where(Memory.id.in_([e.id for e in episodes])).values(keyed_at=now))
    run.counts["episodes_keyed"] += len(episodes)


def _write_keys(run: _Run, session: Session, key_texts: list[tuple[uuid.UUID, str, str]]) -> None:
    """Embed and insert (memory id, kind, text) keys, counted as `keys` (absent from a job's counts
    when none are written)."""
    if not key_texts:
        return
    vectors = run.runtime.embedder.embed([t for _, _, t in key_texts])
    session.execute(
        insert(MemoryKey),
        [
            {"id": uuid.uuid4(), "tenant_id": run.tenant_id, "memory_id": mid, "kind": kind, "text": t, "embedding": v}
            for (mid, kind, t), v in zip(key_texts, vectors, strict=True)
        ],
    )
    run.counts["keys"] += len(key_texts)


def _session_sentences(runtime: Runtime, episodes: list[Memory]) -> tuple[list[str], np.ndarray]:
    """The session's sentences ("Speaker: sentence") and their vectors. A one-sentence episode's
    sentence is the very text its stored vector embeds (`indexed_text`), so that vector is reused
    rather than computed again: consolidating a user's 10k one-sentence turns took 57-63 s with
    every sentence embedded, 35-37 s without (`loci bench jobs`)."""
    sentences: list[str] = []
    stored: list[np.ndarray | None] = []
    for episode in episodes:
        speaker = episode.attributes.get("speaker") or episode.attributes.get("role") or ""
        own = [f"{speaker}: {s}" if speaker else s for s in split_sentences(episode.content)]
        reuse = (
            len(own) == 1
            and episode.embedding is not None
            and episode.embedding_model == runtime.embedder.model_name
            and own[0] == indexed_text(episode.content, episode.attributes)
        )
        sentences += own
        stored += [np.asarray(episode.embedding, dtype=np.float32)] if reuse else [None] * len(own)
    if not sentences:
        return [], np.zeros((0, runtime.embedder.dim), dtype=np.float32)
    fresh = iter(runtime.embedder.embed([sentences[i] for i, vector in enumerate(stored) if vector is None]))
    return sentences, np.stack([next(fresh) if vector is None else vector for vector in stored])


def _summarise(
    runtime: Runtime, session: Session, tenant_id: uuid.UUID, session_id: str | None, episodes: list[Memory]
) -> uuid.UUID | None:
    """An extractive summary of a session with at least three episodes; a newer summary of the same
    session supersedes the older one."""
    if session_id is None or len(episodes) < 3:
        return None
    sentences, vectors = _session_sentences(runtime, episodes)
    if not sentences:
        return None
    chosen = extractive_summary(sentences, vectors)
    first = episodes[0]
    when = next((e.event_at for e in episodes if e.event_at), None)
    heading = f"Summary of session {session_id}" + (f" ({when:%d %B %Y})" if when else "")
    summary = MemoryCreate(
        type=MemoryType.semantic,
        content=f"{heading}: " + " ".join(chosen),
        user_id=first.user_id,
        agent_id=first.agent_id,
        session_id=session_id,
        event_at=when,
        source="agent",
        metadata={"kind": SUMMARY_KIND, "episodes": len(episodes)},
    )
    [summary_id] = create_memories(session, tenant_id, [summary], embed_items(runtime.embedder, [summary]), ACTOR)
    older = session.scalars(
        select(Memory).where(
            Memory.tenant_id == tenant_id,
            Memory.session_id == session_id,
            Memory.user_id.is_not_distinct_from(first.user_id),
            Memory.metadata_["kind"].astext == SUMMARY_KIND,
            Memory.status == "active",
            Memory.id != summary_id,
        )
    ).all()
    for old in older:
        old.status, old.superseded_by, old.valid_to = "superseded", summary_id, datetime.now(UTC)
        session.add(
            MemoryEvent(
                tenant_id=tenant_id, memory_id=old.id, op="supersede", actor=ACTOR, reason="newer session summary"
            )
        )
    add_links(session, tenant_id, [(summary_id, old.id, "supersedes", 1.0) for old in older])
    return summary_id


def _link_related(session: Session, tenant_id: uuid.UUID, memory_ids: list[uuid.UUID]) -> int:
    """Link each new memory to its nearest neighbours in the same user scope (A-MEM style)."""
    links: list[tuple[uuid.UUID, uuid.UUID, str, float]] = []
    for memory in session.scalars(select(Memory).where(Memory.id.in_(memory_ids), Memory.embedding.is_not(None))):
        distance = Memory.embedding.cosine_distance(memory.embedding)
        rows = session.execute(
            select(Memory.id, distance.label("distance"))
            .where(
                Memory.tenant_id == tenant_id,
                Memory.user_id.is_not_distinct_from(memory.user_id),
                Memory.id != memory.id,
                Memory.status == "active",
                Memory.embedding.is_not(None),
            )
            .order_by(distance)
            .limit(RELATED_PER_MEMORY)
        ).all()
        links += [
            (memory.id, r.id, "related", 1.0 - r.distance) for r in rows if 1.0 - r.distance >= RELATED_MIN_SIMILARITY
        ]
    return add_links(session, tenant_id, links)


def _merge_procedures(session: Session, tenant_id: uuid.UUID, scope: dict[str, Any]) -> int:
    """Near-identical procedures become one: the most tried keeps the summed outcome counts."""
    procedures = session.scalars(
        select(Memory)
        .where(
            *scope_conditions(tenant_id, scope),
            Memory.type == MemoryType.procedural.value,
            Memory.status == "active",
            Memory.embedding.is_not(None),
        )
        .order_by(Memory.seq)
        .with_for_update()
    ).all()
    if len(procedures) < 2:
        return 0
    vectors = np.array([np.asarray(p.embedding, dtype=np.float32) for p in procedures])
    similarity = vectors @ vectors.T
    merged = 0
    absorbed: set[int] = set()
    for i, keeper in enumerate(procedures):
        if i in absorbed:
            continue
        for j in range(i + 1, len(procedures)):
            if j in absorbed or similarity[i, j] < PROCEDURE_MERGE_SIMILARITY:
                continue
            other = procedures[j]
            if (other.user_id, other.agent_id) != (keeper.user_id, keeper.agent_id):
                continue
            attrs = dict(keeper.attributes)
            for count in ("successes", "failures"):
                attrs[count] = int(attrs.get(count, 0)) + int(other.attributes.get(count, 0))
            keeper.attributes, keeper.version = attrs, keeper.version + 1
            other.status, other.superseded_by, other.valid_to = "superseded", keeper.id, datetime.now(UTC)
            session.add(
                MemoryEvent(
                    tenant_id=tenant_id,
                    memory_id=other.id,
                    op="merge",
                    after={"merged_into": str(keeper.id), "similarity": round(float(similarity[i, j]), 4)},
                    actor=ACTOR,
                    reason="near-identical procedure",
                )
            )
            add_links(session, tenant_id, [(keeper.id, other.id, "supersedes", float(similarity[i, j]))])
            absorbed.add(j)
            merged += 1
    return merged
