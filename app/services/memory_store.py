"""Writing, reading, changing and deleting memories; every change leaves an event in the audit log."""

import base64
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg.errors import UniqueViolation
from sqlalchemy import delete, func, insert, select, union_all, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.api.schemas import MemoryCreate, MemoryPatch, Message, MessagesCreate
from app.db.models import Memory, MemoryEvent, without_vectors
from app.embedder import Embedder
from app.errors import ApiError, not_found
from app.services import write_rules
from app.vector_changes import REPORTED, delivers_inserts, report_inserted
from memory_types import MemoryType, content_hash, validate_attributes
from memory_types.content import indexed_text
from memory_types.poisoning import default_trust, poisoning_flags
from retrieval.scope_cache import InsertedRow

SNAPSHOT_FIELDS = (
    "type", "content", "user_id", "agent_id", "session_id", "attributes", "metadata_", "importance",
    "event_at", "valid_from", "valid_to", "expires_at", "status", "source", "trust", "flags", "version",
)  # fmt: skip


def snapshot(memory: Memory | dict[str, Any]) -> dict[str, Any]:
    """JSON-safe copy of a memory's caller-visible state, for the audit log."""
    get = memory.get if isinstance(memory, dict) else lambda name: getattr(memory, name)
    out: dict[str, Any] = {}
    for name in SNAPSHOT_FIELDS:
        value = get(name)
        out[name.rstrip("_")] = value.isoformat() if isinstance(value, datetime) else value
    return out


def _row(
    memory_id: uuid.UUID, item: MemoryCreate, tenant_id: uuid.UUID, vector: Any, model_name: str, now: datetime
) -> dict[str, Any]:
    return {
        "id": memory_id,
        "tenant_id": tenant_id,
        "user_id": item.user_id,
        "agent_id": item.agent_id,
        "session_id": item.session_id,
        "type": item.type.value,
        "content": item.content,
        "attributes": item.attributes,
        "metadata_": item.metadata,
        "embedding": vector,
        "content_hash": content_hash(item.content),
        "importance": item.importance,
        "event_at": item.event_at,
        "created_at": now,
        "updated_at": now,
        "valid_from": item.event_at or now,
        "expires_at": item.expires_at,
        "source": item.source,
        "trust": default_trust(item.source),
        "flags": poisoning_flags(item.content),
        "embedding_model": model_name,
        "status": "active",
        "version": 1,
        **_key_columns(item),
    }


def _key_columns(item: MemoryCreate) -> dict[str, str | None]:
    """The item's idempotency key and fingerprint, for the row that records its write: the memory
    it stored, or the event of the memory it reinforced or repeated (migration 0011)."""
    key = item.idempotency_key
    return {"idempotency_key": key, "idempotency_fingerprint": idempotency_fingerprint(item) if key else None}


def idempotency_fingerprint(item: MemoryCreate) -> str:
    """A digest of everything the item asks to store but its key: a retry repeats it exactly (its
    fields as parsed, so equal instants or numbers written differently match)."""
    fields = item.model_dump(exclude={"idempotency_key"})
    written = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=write_rules.canonical)
    return hashlib.sha256(written.encode()).hexdigest()


def _key_reused(item: MemoryCreate, position: int, first: uuid.UUID | None, fingerprint: str | None) -> None:
    """Refuse a key sent again with another memory than the one it was first written with (422, as
    the IETF Idempotency-Key draft has it): answering with the first id dropped the second memory
    unseen. The details name the first memory (None: earlier in the same batch), for a client that
    meant a retry of it."""
    if fingerprint is not None and fingerprint != idempotency_fingerprint(item):
        raise ApiError(
            422,
            "idempotency_key was already used for a different memory; send a new key for a new memory",
            code="idempotency_key_reused",
            details={
                "index": position,
                "idempotency_key": item.idempotency_key,
                "id": None if first is None else str(first),
            },
        )


@dataclass(frozen=True)
class ItemVectors:
    """The vectors of items about to be stored (one per item; None leaves the row to the embedding
    worker) and the model that made them.

    They are made before the write's transaction opens (`embed_items`), so a write queued behind
    other texts at the model holds no database connection meanwhile. Embedding inside the
    transaction let writes waiting on a busy model hold pooled connections while Postgres sat
    idle, and other requests queued for a connection (`loci bench load --clients 64`, 2026-11-27:
    136.8-164.4 req/s in four runs against 123.2-149.0 alternating with them). The cost: an item
    that turns out to repeat a stored memory or an idempotency key was embedded for nothing."""

    model_name: str
    vectors: list[Any]


def embed_items(embedder: Embedder, items: Sequence[MemoryCreate], embed: bool = True) -> ItemVectors:
    """`ItemVectors` for `items`; embed=False: none, for the embedding worker to fill in."""
    if not embed:
        return ItemVectors(embedder.model_name, [None] * len(items))
    texts = [indexed_text(item.content, item.attributes) for item in items]
    return ItemVectors(embedder.model_name, list(embedder.embed(texts)))


# unique (tenant_id, idempotency_key) of the memories (migration 0001) and of the events (0011)
IDEMPOTENCY_INDEXES = frozenset({"memories_idempotency_idx", "memory_events_idempotency_idx"})


def lost_an_idempotency_race(exc: IntegrityError) -> bool:
    """The write inserted an idempotency key that a concurrent write had inserted first (a client
    retrying while its first try is still running). Postgres raises this only once that write has
    committed, so the same write run again in a new transaction finds its key and returns its id."""
    return isinstance(exc.orig, UniqueViolation) and exc.orig.diag.constraint_name in IDEMPOTENCY_INDEXES


def _existing_idempotent(
    session: Session, tenant_id: uuid.UUID, keys: set[str]
) -> dict[str, tuple[uuid.UUID, str | None]]:
    """The memory (id) each key already used answered with, and the key's fingerprint: from the
    memory the key's write stored, or from the event of the memory it reinforced or repeated."""
    if not keys:
        return {}
    stored = select(Memory.idempotency_key, Memory.id, Memory.idempotency_fingerprint).where(
        Memory.tenant_id == tenant_id, Memory.idempotency_key.in_(keys)
    )
    repeated = select(MemoryEvent.idempotency_key, MemoryEvent.memory_id, MemoryEvent.idempotency_fingerprint).where(
        MemoryEvent.tenant_id == tenant_id, MemoryEvent.idempotency_key.in_(keys)
    )
    rows = session.execute(union_all(stored, repeated)).all()
    return {key: (memory_id, fingerprint) for key, memory_id, fingerprint in rows}


def _insert(session: Session, tenant_id: uuid.UUID, rows: list[dict[str, Any]]) -> None:
    """Insert the rows; in a session that delivers its inserts, their rows go to the in-process
    indexes on commit (app.vector_changes) rather than having their next search re-read the scope."""
    if not delivers_inserts(session):
        session.execute(insert(Memory), rows)
        return
    # event_at as the index reads it (lexical_index._COLUMNS): a naive time given by the caller as the
    # database took it, and the time of storing for a memory told without one
    event_at = func.coalesce(Memory.event_at, Memory.created_at)
    returning = insert(Memory).returning(Memory.seq, event_at, sort_by_parameter_order=True)
    stored = session.execute(returning.execution_options(**{REPORTED: True}), rows).all()
    columns = [name for name in InsertedRow._fields if name not in ("tenant_id", "seq", "event_at")]
    report_inserted(
        session,
        [
            InsertedRow(tenant_id=tenant_id, seq=seq, event_at=event_at, **{name: row[name] for name in columns})
            for row, (seq, event_at) in zip(rows, stored, strict=True)
        ],
    )


def create_memories(
    session: Session,
    tenant_id: uuid.UUID,
    items: Sequence[MemoryCreate],
    vectors: ItemVectors,
    actor: str,
    near_duplicate_threshold: float | None = None,
) -> list[uuid.UUID]:
    """Store items in one transaction and return their ids in input order.

    An item without a vector is stored with the embedding NULL for the embedding worker (no
    near-duplicate merge then: it needs the vector).

    An idempotency key seen before (in the database or earlier in the batch) yields the original id
    and stores nothing new, so a retried request never duplicates memories; sent with another
    memory than its first, it is refused (ApiError 422) and nothing is stored. Exact duplicates and, for
    types that merge, near-duplicates above the threshold reinforce the stored memory and yield its id.
    A stored semantic fact supersedes the active facts it contradicts.
    """
    write_rules.take_turns(session, tenant_id, items)
    known = _existing_idempotent(session, tenant_id, {i.idempotency_key for i in items if i.idempotency_key})
    ids: list[uuid.UUID | None] = [None] * len(items)
    same_as: dict[int, int] = {}  # position -> earlier position in this batch that it repeats
    first_with: dict[Any, int] = {}
    candidates: list[int] = []
    for pos, item in enumerate(items):
        if item.idempotency_key in known:
            ids[pos], fingerprint = known[item.idempotency_key]
            _key_reused(item, pos, ids[pos], fingerprint)
            continue
        keys = [("dedup", write_rules.dedup_key(item))]
        if item.idempotency_key:
            keys.append(("idempotency", item.idempotency_key))
            if keys[1] in first_with:
                _key_reused(item, pos, None, idempotency_fingerprint(items[first_with[keys[1]]]))
        earlier = next((first_with[k] for k in keys if k in first_with), None)
        for k in keys:  # also an item that repeats an earlier one: a later item may share its key
            first_with.setdefault(k, pos)
        if earlier is not None:
            same_as[pos] = earlier
            continue
        candidates.append(pos)

    now = datetime.now(UTC)
    stored = write_rules.find_exact_duplicates(session, tenant_id, [items[pos] for pos in candidates])
    new: list[int] = []
    for pos in candidates:
        existing = stored.get(write_rules.dedup_key(items[pos]))
        if existing is None:
            new.append(pos)
            continue
        ids[pos] = existing
        found = write_rules.Reinforcement(existing, "reinforce", 1.0)
        write_rules.reinforce(session, tenant_id, found, items[pos], actor, now, _key_columns(items[pos]))

    rows: list[dict[str, Any]] = []
    for pos in new:
        item, vector = items[pos], vectors.vectors[pos]
        near = (
            write_rules.find_near_duplicate(session, tenant_id, item, vector, near_duplicate_threshold)
            if near_duplicate_threshold is not None and vector is not None
            else None
        )
        if near is not None:
            ids[pos] = near[0]
            found = write_rules.Reinforcement(near[0], "merge", near[1])
            write_rules.reinforce(session, tenant_id, found, item, actor, now, _key_columns(item))
            continue
        ids[pos] = uuid.uuid4()
        rows.append(_row(ids[pos], item, tenant_id, vector, vectors.model_name, now))
    if rows:
        _insert(session, tenant_id, rows)
        session.execute(
            insert(MemoryEvent),
            [
                {"tenant_id": tenant_id, "memory_id": r["id"], "op": "create", "after": snapshot(r), "actor": actor}
                for r in rows
            ],
        )
        for row in rows:
            write_rules.supersede_contradicted(session, tenant_id, row, actor)
    for pos, earlier in same_as.items():
        ids[pos] = ids[earlier]
    _record_repeats(session, tenant_id, items, ids, same_as, actor)
    resolved = [memory_id for memory_id in ids if memory_id is not None]
    if len(resolved) != len(items):
        raise RuntimeError("every item must resolve to a memory id")
    return resolved


def _record_repeats(
    session: Session,
    tenant_id: uuid.UUID,
    items: Sequence[MemoryCreate],
    ids: list[uuid.UUID | None],
    same_as: dict[int, int],
    actor: str,
) -> None:
    """An event for each item that repeated an earlier item of its batch under a key of its own, to
    keep that key: the batch sent again finds it instead of reinforcing the memory the first time
    stored (the audit log shows the repeat, too)."""
    first_of_key: dict[str, int] = {}  # (items with one key repeat the same memory: recorded once)
    for pos, earlier in same_as.items():
        key = items[pos].idempotency_key
        if key and key != items[earlier].idempotency_key:
            first_of_key.setdefault(key, pos)
    if first_of_key:
        events = [
            {
                "tenant_id": tenant_id,
                "memory_id": ids[pos],
                "op": "repeat",
                "after": {"incoming_content": items[pos].content},
                "actor": actor,
                "reason": "repeated within its batch",
                **_key_columns(items[pos]),
            }
            for pos in first_of_key.values()
        ]
        session.execute(insert(MemoryEvent), events)


def messages_to_memories(payload: MessagesCreate) -> list[MemoryCreate]:
    """Each chat message becomes an episodic memory; the speaker and time go into its attributes."""

    def convert(message: Message) -> MemoryCreate:
        attributes: dict[str, Any] = {"role": message.role, "session": payload.session_id}
        if message.name:
            attributes["speaker"] = message.name
        return MemoryCreate(
            type=MemoryType.episodic,
            content=message.content,
            user_id=payload.user_id,
            agent_id=payload.agent_id,
            session_id=payload.session_id,
            event_at=message.timestamp,
            attributes=attributes,
        )

    return [convert(message) for message in payload.messages]


def get_memory(session: Session, tenant_id: uuid.UUID, memory_id: uuid.UUID, for_update: bool = False) -> Memory:
    statement = select(Memory).where(Memory.id == memory_id, Memory.tenant_id == tenant_id)
    if for_update:
        statement = statement.with_for_update()
    memory = session.scalar(statement)
    if memory is None:
        raise not_found()
    return memory


@dataclass(frozen=True)
class PreparedVector:
    """A patched memory's indexed text and its vector, embedded before the patch's transaction opens."""

    text: str
    vector: Any


def _patched(memory: Memory, patch: MemoryPatch) -> tuple[str, dict[str, Any]]:
    """The memory's content and attributes once the patch applies (attributes validated for its type)."""
    content = memory.content if patch.content is None else patch.content
    if patch.attributes is None:
        return content, memory.attributes
    try:
        return content, validate_attributes(MemoryType(memory.type), patch.attributes)
    except ValueError as exc:
        raise ApiError(422, str(exc), details={"field": "attributes"}) from None


def text_to_embed(session: Session, tenant_id: uuid.UUID, memory_id: uuid.UUID, patch: MemoryPatch) -> str | None:
    """The indexed text the patch gives the memory, if it changes it (content, or the speaker it names).

    Read without a lock so that the caller embeds it before the patch's transaction opens, rather than
    hold the row lock and a pooled connection while the model serves other requests. update_memory
    uses that vector only if the row still patches to the same text, and embeds again otherwise."""
    if patch.content is None and patch.attributes is None:
        return None
    memory = get_memory(session, tenant_id, memory_id)
    if memory.status == "deleted":  # update_memory refuses it
        return None
    text = indexed_text(*_patched(memory, patch))
    return None if text == indexed_text(memory.content, memory.attributes) else text


def update_memory(
    session: Session,
    tenant_id: uuid.UUID,
    memory_id: uuid.UUID,
    patch: MemoryPatch,
    embedder: Embedder,
    actor: str,
    prepared: PreparedVector | None = None,
) -> Memory:
    if patch.attributes is not None:
        write_rules.take_fact_turn(session, tenant_id, memory_id, patch.attributes)
    memory = get_memory(session, tenant_id, memory_id, for_update=True)
    if memory.status == "deleted":
        raise ApiError(409, "memory is deleted; restore it before changing it", code="memory_deleted")
    before, indexed_before = snapshot(memory), indexed_text(memory.content, memory.attributes)
    content, attributes = _patched(memory, patch)
    if patch.attributes is not None:
        memory.attributes = attributes
    if patch.metadata is not None:
        memory.metadata_ = patch.metadata
    if patch.importance is not None:
        memory.importance = patch.importance
    if content != memory.content:
        memory.content = content
        memory.content_hash = content_hash(content)
        memory.flags = poisoning_flags(content)
    indexed = indexed_text(memory.content, memory.attributes)
    if indexed != indexed_before:  # new content, or a new speaker, whom the vector's text names
        ready = prepared is not None and prepared.text == indexed
        memory.embedding = prepared.vector if ready else embedder.embed([indexed])[0]
        memory.embedding_model = embedder.model_name
    memory.version += 1
    memory.updated_at = datetime.now(UTC)
    session.add(
        MemoryEvent(
            tenant_id=tenant_id, memory_id=memory.id, op="update", before=before, after=snapshot(memory), actor=actor
        )
    )
    session.flush()
    if memory.status == "active" and memory.attributes != before["attributes"]:
        # An edit that makes a fact contradict another supersedes it as a write would (both stayed active).
        fields = ("id", "type", "attributes", "user_id", "agent_id", "valid_from")
        if write_rules.supersede_contradicted(session, tenant_id, {f: getattr(memory, f) for f in fields}, actor):
            session.refresh(memory)
    return memory


def delete_memory(session: Session, tenant_id: uuid.UUID, memory_id: uuid.UUID, hard: bool, actor: str) -> None:
    """Soft delete keeps the row (status deleted, hidden from search); hard delete removes it and,
    through ON DELETE CASCADE, its keys, links and events."""
    memory = get_memory(session, tenant_id, memory_id, for_update=True)
    if hard:
        session.execute(delete(Memory).where(Memory.id == memory.id))
        return
    if memory.status == "deleted":
        return
    before = snapshot(memory)
    session.execute(
        update(Memory)
        .where(Memory.id == memory.id)
        .values(status="deleted", updated_at=datetime.now(UTC), version=Memory.version + 1)
    )
    session.refresh(memory)
    session.add(
        MemoryEvent(
            tenant_id=tenant_id, memory_id=memory.id, op="delete", before=before, after=snapshot(memory), actor=actor
        )
    )


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(str(seq).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return int(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, UnicodeDecodeError):
        raise ApiError(
            422, "cursor is not valid; pass next_cursor from a previous page", details={"field": "cursor"}
        ) from None


def list_memories(
    session: Session,
    tenant_id: uuid.UUID,
    filters: dict[str, str | None],
    status: str,
    limit: int,
    cursor: str | None,
) -> tuple[list[Memory], str | None]:
    """Keyset pagination in insertion order (seq), so pages stay stable while memories are added."""
    statement = select(Memory).where(Memory.tenant_id == tenant_id)
    for column, value in filters.items():
        if value is not None:
            statement = statement.where(getattr(Memory, column) == value)
    if status != "all":
        statement = statement.where(Memory.status == status)
    if cursor is not None:
        statement = statement.where(Memory.seq > decode_cursor(cursor))
    rows = list(session.scalars(statement.order_by(Memory.seq).limit(limit + 1).options(*without_vectors())))
    next_cursor = encode_cursor(rows[limit - 1].seq) if len(rows) > limit else None
    return rows[:limit], next_cursor


def memory_history(session: Session, tenant_id: uuid.UUID, memory_id: uuid.UUID) -> list[MemoryEvent]:
    get_memory(session, tenant_id, memory_id)
    return list(
        session.scalars(
            select(MemoryEvent)
            .where(MemoryEvent.memory_id == memory_id, MemoryEvent.tenant_id == tenant_id)
            .order_by(MemoryEvent.id)
        )
    )
