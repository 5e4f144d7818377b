"""Export and import of a tenant, user, agent or session as `loci-export` JSON Lines.

Export reads one REPEATABLE READ snapshot through server-side cursors, so memories, links, keys and
events agree with each other however long the stream takes and however large the tenant is. The
file ends with an `end` record holding the counts: a truncated file (a dropped stream, a full
disk) is refused on import instead of restoring part of a scope.

Import runs in the caller's one transaction (all or nothing) and writes in batches. Records
name the memories they belong to, so memories must come before their links, keys and events (the
exporter's order). Ids are kept, so an id already taken (in this or any tenant) is a conflict:
`fail` refuses the import, `skip` leaves the stored memory alone and skips the file's memory with
everything attached to it. A file made with another embedding model, or another width, is
re-embedded with the running one.
"""

import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel
from sqlalchemy import ColumnElement, Engine, Select, bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session, aliased, sessionmaker

from app.db.engine import make_sessionmaker
from app.db.models import Memory, MemoryEvent, MemoryKey, MemoryLink
from app.errors import ApiError
from app.services.export_format import COLUMNS, END, FORMAT, KINDS, VERSION, FormatError, decode, encode
from memory_types.content import indexed_text

OnConflict = Literal["fail", "skip"]
BATCH = 500
REFERENCE = {"link": ("src_id", "dst_id"), "key": ("memory_id",), "event": ("memory_id",)}


@dataclass(frozen=True)
class TargetModel:
    """The embedding model of the database being imported into; `embed` is only called when the
    file's model differs, so callers may load the model lazily."""

    name: str
    dim: int
    embed: Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class Scope:
    """Which memories travel; unset parts match everything (no part at all: the whole tenant)."""

    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None

    def conditions(self, tenant_id: uuid.UUID, memory: Any = Memory) -> list[ColumnElement[bool]]:
        """The filter on `memory` (the Memory entity or an alias of it)."""
        parts = [memory.tenant_id == tenant_id]
        for name in ("user_id", "agent_id", "session_id"):
            if getattr(self, name) is not None:
                parts.append(getattr(memory, name) == getattr(self, name))
        return parts

    def holds(self, user_id: str | None, agent_id: str | None, session_id: str | None) -> bool:
        """Whether a memory of this user, agent and session is inside the scope."""
        given = (self.user_id, self.agent_id, self.session_id)
        return all(
            want is None or want == got for want, got in zip(given, (user_id, agent_id, session_id), strict=True)
        )


class ImportSummary(BaseModel):
    """What an import wrote, per record kind, and what it left out."""

    imported: dict[str, int]
    skipped: dict[str, int]
    reembedded: bool
    unresolved_supersessions: int


def snapshot_sessions(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose transactions see one snapshot for their whole length (REPEATABLE READ)."""
    return make_sessionmaker(engine.execution_options(isolation_level="REPEATABLE READ"))


def export_records(
    session: Session, tenant_id: uuid.UUID, scope: Scope, model_name: str, dims: int
) -> Iterator[dict[str, Any]]:
    """The header, then every memory of the scope with its links, keys and events, then `end`."""
    yield {
        "format": FORMAT,
        "version": VERSION,
        "embedding_model": model_name,
        "dims": dims,
        "exported_at": datetime.now(UTC).isoformat(),
        "scope": {"tenant_id": str(tenant_id), **scope.__dict__},
    }
    in_scope = select(Memory.id).where(*scope.conditions(tenant_id))
    src, dst = aliased(Memory), aliased(Memory)
    queries = {
        "memory": _columns("memory").where(*scope.conditions(tenant_id)).order_by(Memory.seq),
        # A link whose far end is outside the scope would point at a memory the file does not hold;
        # that end is tested here in Python: with a scope filter on both ends, stale statistics (after
        # a bulk write) made the planner pair every memory of the scope with every other.
        "link": _columns("link")
        .add_columns(
            dst.user_id.label("dst_user"), dst.agent_id.label("dst_agent"), dst.session_id.label("dst_session")
        )
        .join(src, src.id == MemoryLink.src_id)
        .join(dst, dst.id == MemoryLink.dst_id)
        .where(MemoryLink.tenant_id == tenant_id, *scope.conditions(tenant_id, src))
        .order_by(MemoryLink.created_at, MemoryLink.id),
        "key": _columns("key")
        .where(MemoryKey.tenant_id == tenant_id, MemoryKey.memory_id.in_(in_scope))
        .order_by(MemoryKey.created_at, MemoryKey.id),
        "event": _columns("event")
        .where(MemoryEvent.tenant_id == tenant_id, MemoryEvent.memory_id.in_(in_scope))
        .order_by(MemoryEvent.id),
    }
    counts = dict.fromkeys(KINDS, 0)
    for kind, query in queries.items():
        for row in session.execute(query.execution_options(yield_per=BATCH)):
            if kind == "link" and not scope.holds(row.dst_user, row.dst_agent, row.dst_session):
                continue
            counts[kind] += 1
            yield encode(kind, row)
    yield {"kind": END, "counts": counts}


def _columns(kind: str) -> Select[Any]:
    return select(*COLUMNS[kind])


def export_lines(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    for record in records:
        yield json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def invalid(line: int, message: str, field: str | None = None) -> ApiError:
    return ApiError(422, f"line {line}: {message}", code="invalid_import", details={"line": line, "field": field})


def read_header(line: bytes | str) -> dict[str, Any]:
    """The parsed first line, or 422 saying why it is not a loci-export header this version reads."""
    try:
        header = json.loads(line)
    except (ValueError, RecursionError):
        raise invalid(1, "the header is not JSON") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise invalid(1, f'the first line must be a header with "format": "{FORMAT}"', "format")
    if header.get("version") != VERSION:
        raise invalid(1, f"export version {header.get('version')!r} is not supported (this Loci reads {VERSION})")
    if not isinstance(header.get("embedding_model"), str | None):
        raise invalid(1, "'embedding_model' must be a string", "embedding_model")
    dims = header.get("dims")
    if isinstance(dims, bool) or not isinstance(dims, int) or dims < 1:
        raise invalid(1, "'dims' must be a positive integer", "dims")
    return header


@dataclass
class _Importer:
    """State of one import: pending batches, the ids written and skipped, and the counts."""

    session: Session
    tenant_id: uuid.UUID
    model: TargetModel
    on_conflict: OnConflict
    reembed: bool
    deadline: Callable[[], None]
    pending: dict[str, list[tuple[int, dict[str, Any]]]] = field(default_factory=lambda: {k: [] for k in KINDS})
    written: set[uuid.UUID] = field(default_factory=set)
    skipped_ids: set[uuid.UUID] = field(default_factory=set)
    supersessions: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)
    read: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    imported: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))

    def add(self, number: int, kind: str, values: dict[str, Any]) -> None:
        self.read[kind] += 1
        if kind != "memory":
            self.flush("memory")  # its memories must be written (or known skipped) first
            refs = [values[name] for name in REFERENCE[kind]]
            if any(ref in self.skipped_ids for ref in refs):
                self.skipped[kind] += 1
                return
            missing = next((ref for ref in refs if ref not in self.written), None)
            if missing is not None:
                raise invalid(number, f"refers to memory {missing}, which no earlier line of the file holds")
        values["tenant_id"] = self.tenant_id
        self.pending[kind].append((number, values))
        if len(self.pending[kind]) >= BATCH:
            self.flush(kind)

    def flush(self, kind: str) -> None:
        batch = self.pending[kind]
        if not batch:
            return
        self.pending[kind] = []
        self.deadline()
        rows = [values for _, values in batch]
        if kind == "memory":
            self._prepare_memories(rows)
        elif kind == "key" and self.reembed:
            embedded = [r for r in rows if r["embedding"] is not None]
            self._reembed(embedded, [r["text"] for r in embedded])
        table = KINDS[kind].__table__
        try:
            if kind == "event":  # no id of their own to clash: the database numbers them
                self.session.execute(table.insert(), rows)  # type: ignore[attr-defined]
                self.imported[kind] += len(rows)
                return
            _refuse_repeats(batch)  # ON CONFLICT would silently keep one of the two
            statement = pg_insert(table).on_conflict_do_nothing().returning(table.c.id)  # type: ignore[arg-type]
            stored = set(self.session.scalars(statement, rows))
        except (IntegrityError, DataError) as exc:
            constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
            raise ApiError(
                422,
                f"lines {batch[0][0]}-{batch[-1][0]}: a {kind} record breaks a rule of the schema"
                + (f" ({constraint})" if constraint else ""),
                code="invalid_import",
                details={"lines": [batch[0][0], batch[-1][0]], "constraint": constraint},
            ) from None
        self._settle(kind, batch, stored)

    def _prepare_memories(self, rows: list[dict[str, Any]]) -> None:
        """Supersession pointers wait for the end (they may point forward); re-embed if asked."""
        for row in rows:
            if row["superseded_by"] is not None:
                self.supersessions.append((row["id"], row["superseded_by"]))
                row["superseded_by"] = None
        if self.reembed:  # the text the write path embeds (speaker included)
            self._reembed(rows, [indexed_text(r["content"], r["attributes"]) for r in rows])
            for row in rows:
                row["embedding_model"] = self.model.name

    def _reembed(self, rows: list[dict[str, Any]], texts: list[str]) -> None:
        vectors = self.model.embed(texts) if texts else []
        for row, vector in zip(rows, vectors, strict=True):
            row["embedding"] = vector

    def _settle(self, kind: str, batch: list[tuple[int, dict[str, Any]]], stored: set[uuid.UUID]) -> None:
        clashes = [(number, values["id"]) for number, values in batch if values["id"] not in stored]
        self.imported[kind] += len(batch) - len(clashes)
        if kind == "memory":
            self.written.update(stored)
        if not clashes:
            return
        if self.on_conflict == "fail":
            first_line = clashes[0][0]
            raise ApiError(
                409,
                f"line {first_line}: {len(clashes)} {kind} record(s) of this batch are already stored (the same id, "
                "or for memories the same idempotency key); nothing was imported (on_conflict=skip leaves the "
                "stored ones as they are)",
                code="import_conflict",
                details={"line": first_line, "kind": kind, "ids": [str(i) for _, i in clashes[:20]]},
            )
        self.skipped[kind] += len(clashes)
        if kind == "memory":
            self.skipped_ids.update(i for _, i in clashes)

    def finish(self) -> int:
        """Write what is pending and the supersession pointers; returns those left unset because
        their target is neither in the file nor in the tenant."""
        for kind in KINDS:
            self.flush(kind)
        pairs = [(src, dst) for src, dst in self.supersessions if src in self.written]
        outside = {dst for _, dst in pairs if dst not in self.written}
        known = set(self.session.scalars(select(Memory.id).where(Memory.id.in_(outside)))) if outside else set()
        resolvable = [{"m": src, "s": dst} for src, dst in pairs if dst in self.written or dst in known]
        if resolvable:
            table = Memory.__table__
            self.session.execute(
                update(table).where(table.c.id == bindparam("m")).values(superseded_by=bindparam("s")),
                resolvable,
                execution_options={"synchronize_session": False},
            )
        return len(pairs) - len(resolvable)


def _refuse_repeats(batch: list[tuple[int, dict[str, Any]]]) -> None:
    seen: set[uuid.UUID] = set()
    for number, values in batch:
        if values["id"] in seen:
            raise invalid(number, f"id {values['id']} appears twice in the file", "id")
        seen.add(values["id"])


def import_lines(
    session: Session,
    tenant_id: uuid.UUID,
    lines: Iterable[bytes | str],
    model: TargetModel,
    on_conflict: OnConflict = "fail",
    deadline: Callable[[], None] = lambda: None,
) -> ImportSummary:
    """Restore an export into `tenant_id` within the session's transaction; raises ApiError (422
    with the line number for a malformed file, 409 for an id conflict under `fail`) so the caller
    rolls back. `deadline` is called between batches and may raise to abandon the import."""
    numbered = enumerate(lines, start=1)
    first = next(numbered, None)
    if first is None:
        raise invalid(1, "the file is empty")
    header = read_header(first[1])
    reembed = header["embedding_model"] != model.name or header["dims"] != model.dim
    importer = _Importer(session, tenant_id, model, on_conflict, reembed, deadline)
    end: tuple[int, dict[str, Any]] | None = None
    last = 1
    for number, line in numbered:
        last = number
        if not line.strip():
            continue
        if end is not None:
            raise invalid(number, "a record follows the end record")
        record = _parse(number, line)
        if record["kind"] == END:
            end = (number, record)
            continue
        try:
            values = decode(record["kind"], record, None if reembed else model.dim)
        except FormatError as exc:
            raise invalid(number, f"{record['kind']} record: {exc}", exc.field) from None
        importer.add(number, record["kind"], values)
    if end is None:
        raise invalid(last, "the file ends without its end record (truncated?)")
    if end[1].get("counts") != importer.read:
        raise invalid(end[0], f"the end record counts {end[1].get('counts')} but the file holds {importer.read}")
    unresolved = importer.finish()
    return ImportSummary(
        imported=importer.imported, skipped=importer.skipped, reembedded=reembed, unresolved_supersessions=unresolved
    )


def _parse(number: int, line: bytes | str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        raise invalid(number, "not a JSON object") from None
    if not isinstance(record, dict):
        raise invalid(number, "not a JSON object")
    if record.get("kind") not in (*KINDS, END):
        raise invalid(number, f"unknown kind {record.get('kind')!r} (one of {', '.join([*KINDS, END])})", "kind")
    return record
