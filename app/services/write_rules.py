"""Update on write: exact duplicates and near-duplicates reinforce the memory already stored, and a
newer semantic fact supersedes the one it contradicts. The rules come from memory_types.lifecycle;
this module applies them inside the write transaction, so a write and its consequences commit together."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from app.api.schemas import MemoryCreate
from app.db.advisory_locks import lock_names
from app.db.models import Memory, MemoryEvent, MemoryLink
from memory_types import MemoryType, content_hash
from memory_types.lifecycle import RULES, contradicts, fact_key


@dataclass(frozen=True)
class Reinforcement:
    memory_id: uuid.UUID
    op: str
    """'reinforce' for an exact duplicate, 'merge' for a near-duplicate."""
    similarity: float


def dedup_key(item: MemoryCreate) -> tuple[Any, ...]:
    """What makes two writes the same memory: content within scope and type; for episodes also the
    session and event time, because the same words said again are a new event."""
    key: tuple[Any, ...] = (item.type.value, item.user_id, item.agent_id, content_hash(item.content))
    if RULES[item.type].dedup_by_event_time:
        key += (item.session_id, item.event_at)
    return key


MAX_TURN_LOCKS = 64  # a batch needing more takes none: see take_turns


def canonical(value: Any) -> Any:
    """A time as one text for every way of writing its instant: equal keys must lock alike, and a
    retry must match its first try (memory_store.idempotency_fingerprint)."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).isoformat()
    return value.isoformat() if isinstance(value, datetime) else value


def take_turns(session: Session, tenant_id: uuid.UUID, items: Sequence[MemoryCreate]) -> None:
    """Make writes that one rule could join wait for each other until they commit. The rules read
    the scope and then write: two writes of one memory in flight together each missed the other
    (eight concurrent writes of one fact stored six copies), as did two contradicting facts. So a
    write takes a transaction-level advisory lock for each memory it writes (its `dedup_key`) and
    for each fact's subject and predicate, in sorted order, so that batches cannot deadlock.
    Writes of other memories do not wait (a lock per scope made the writes of `loci bench load`,
    all to one user, ~25 % slower at p50). A batch needing more than MAX_TURN_LOCKS takes none,
    as before: a lock of the whole tenant instead would stall every write of the tenant behind
    one consolidation job, and hundreds of locks would strain Postgres's lock table. Near
    duplicates, found by their vectors, have no key either."""
    keys: set[str] = set()
    for item in items:
        keys.add(f"{tenant_id} same {tuple(map(canonical, dedup_key(item)))!r}")
        fact = _fact_turn(tenant_id, item.type.value, item.user_id, item.agent_id, item.attributes)
        if fact is not None:
            keys.add(fact)
    if len(keys) <= MAX_TURN_LOCKS:
        lock_names(session, sorted(keys))


def _fact_turn(
    tenant_id: uuid.UUID, memory_type: str, user_id: str | None, agent_id: str | None, attributes: dict[str, Any]
) -> str | None:
    """The lock that writes and edits of one fact (its scope, subject and predicate) take turns on."""
    fact = fact_key(attributes) if memory_type == MemoryType.semantic.value else None
    return None if fact is None else f"{tenant_id} fact {(user_id, agent_id, *fact)!r}"


def take_fact_turn(session: Session, tenant_id: uuid.UUID, memory_id: uuid.UUID, attributes: dict[str, Any]) -> None:
    """Make an edit that gives memory `memory_id` these attributes wait for the writes of that fact in
    flight, as they wait for each other (take_turns): else neither saw the other uncommitted, and an
    edit racing a contradicting write left both facts active. Taken before the memory's row lock,
    in the order writes take theirs (turn, then rows), so that the two cannot deadlock."""
    scope = session.execute(
        select(Memory.type, Memory.user_id, Memory.agent_id).where(
            Memory.id == memory_id, Memory.tenant_id == tenant_id
        )
    ).one_or_none()
    fact = None if scope is None else _fact_turn(tenant_id, *scope, attributes)
    if fact is not None:
        lock_names(session, [fact])


def _stored_key(memory: Memory) -> tuple[Any, ...]:
    key: tuple[Any, ...] = (memory.type, memory.user_id, memory.agent_id, memory.content_hash)
    if RULES[MemoryType(memory.type)].dedup_by_event_time:
        key += (memory.session_id, memory.event_at)
    return key


def find_exact_duplicates(
    session: Session, tenant_id: uuid.UUID, items: Sequence[MemoryCreate]
) -> dict[tuple[Any, ...], uuid.UUID]:
    """Active stored memories that some item duplicates exactly, by dedup key."""
    hashes = {content_hash(item.content) for item in items}
    if not hashes:
        return {}
    rows = session.scalars(
        select(Memory).where(Memory.tenant_id == tenant_id, Memory.content_hash.in_(hashes), Memory.status == "active")
    )
    return {_stored_key(memory): memory.id for memory in rows}


def find_near_duplicate(
    session: Session, tenant_id: uuid.UUID, item: MemoryCreate, vector: np.ndarray, threshold: float
) -> tuple[uuid.UUID, float] | None:
    """The most similar active memory of the same type and scope, when above the threshold."""
    if not RULES[item.type].near_duplicate_merge:
        return None
    distance = Memory.embedding.cosine_distance(vector)
    row = session.execute(
        select(Memory.id, distance.label("distance"))
        .where(
            Memory.tenant_id == tenant_id,
            Memory.type == item.type.value,
            Memory.user_id.is_not_distinct_from(item.user_id),
            Memory.agent_id.is_not_distinct_from(item.agent_id),
            Memory.status == "active",
            Memory.embedding.is_not(None),
        )
        .order_by(distance)
        .limit(1)
    ).first()
    if row is None or 1.0 - float(row.distance) < threshold:
        return None
    return row.id, 1.0 - float(row.distance)


def reinforce(
    session: Session,
    tenant_id: uuid.UUID,
    found: Reinforcement,
    item: MemoryCreate,
    actor: str,
    now: datetime,
    key_columns: dict[str, str | None],
) -> None:
    """Count the repeat as a use: more accesses and the higher importance keep the memory strong.
    Its event keeps the write's idempotency key (`key_columns`), so that the write sent again is
    answered without reinforcing twice."""
    session.execute(
        update(Memory)
        .where(Memory.id == found.memory_id)
        .values(
            access_count=Memory.access_count + 1,
            last_accessed_at=now,
            importance=func.greatest(Memory.importance, item.importance),
            updated_at=now,
        )
    )
    session.add(
        MemoryEvent(
            tenant_id=tenant_id,
            memory_id=found.memory_id,
            op=found.op,
            after={"incoming_content": item.content, "similarity": round(found.similarity, 4)},
            actor=actor,
            reason="exact duplicate" if found.op == "reinforce" else "near-duplicate above threshold",
            **key_columns,
        )
    )


def supersede_contradicted(session: Session, tenant_id: uuid.UUID, row: dict[str, Any], actor: str) -> int:
    """Apply the conflict rule for a newly stored semantic fact; returns how many facts it superseded.

    The older fact keeps its row: valid_to becomes the newer fact's valid_from, status 'superseded',
    superseded_by and a 'supersedes' link point at the newcomer. A newcomer that is itself older than
    the fact it contradicts (a late import) is stored already superseded, so `as_of` stays right.
    """
    key = fact_key(row["attributes"])
    if row["type"] != MemoryType.semantic.value or key is None:
        return 0
    candidates = session.scalars(
        select(Memory)
        .where(
            Memory.tenant_id == tenant_id,
            Memory.type == MemoryType.semantic.value,
            Memory.user_id.is_not_distinct_from(row["user_id"]),
            Memory.agent_id.is_not_distinct_from(row["agent_id"]),
            Memory.status == "active",
            Memory.id != row["id"],
            text("lower(trim(memories.attributes->>'subject')) = :subject"),
            text("lower(trim(memories.attributes->>'predicate')) = :predicate"),
        )
        .params(subject=key[0], predicate=key[1])
        .with_for_update()
    ).all()
    superseded = 0
    for old in candidates:
        if not contradicts(old.attributes, row["attributes"]):
            continue
        newer_id, older = (row["id"], old) if row["valid_from"] >= old.valid_from else (old.id, None)
        if older is None:  # the incoming fact is the older one
            session.execute(
                update(Memory)
                .where(Memory.id == row["id"])
                .values(status="superseded", valid_to=old.valid_from, superseded_by=old.id)
            )
            _link_and_log(session, tenant_id, newer=old.id, older=row["id"], actor=actor, valid_to=old.valid_from)
        else:
            older.status, older.valid_to, older.superseded_by = "superseded", row["valid_from"], newer_id
            older.version += 1
            _link_and_log(session, tenant_id, newer=newer_id, older=older.id, actor=actor, valid_to=row["valid_from"])
        superseded += 1
    return superseded


def _link_and_log(
    session: Session, tenant_id: uuid.UUID, newer: uuid.UUID, older: uuid.UUID, actor: str, valid_to: datetime
) -> None:
    session.add(MemoryLink(tenant_id=tenant_id, src_id=newer, dst_id=older, kind="supersedes"))
    session.add(
        MemoryEvent(
            tenant_id=tenant_id,
            memory_id=older,
            op="supersede",
            after={"status": "superseded", "superseded_by": str(newer), "valid_to": valid_to.isoformat()},
            actor=actor,
            reason="a newer fact with the same subject and predicate has a different object",
        )
    )
