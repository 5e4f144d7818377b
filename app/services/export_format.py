"""The `loci-export` JSON Lines format: which columns each record carries and how values are written.

A record is {"kind": "memory" | "link" | "key" | "event", "row": {column: value}}; the row is
nested because links and keys have a `kind` column of their own.

Columns come from the ORM tables, not from a hand-written list, so a column added to a model is
exported and imported without touching this module. Left out are only the columns the database
makes itself on insert: the tenant (an import belongs to the importing tenant), generated
tsvectors, columns a trigger sets (a key's copy of its memory's scope), and identity counters
(`memories.seq`, `memory_events.id`), which are global across tenants and so cannot be restored;
rows are written in their order, which keeps both orders.
tests/test_export_import.py compares this against the live schema.
"""

import math
import uuid
from datetime import datetime
from typing import Any

import numpy as np
from pgvector.sqlalchemy import Vector
from sqlalchemy import ARRAY, Column, DateTime, FetchedValue, Float, Integer, Table
from sqlalchemy.dialects.postgresql import JSONB, UUID

from app.db.models import Base, Memory, MemoryEvent, MemoryKey, MemoryLink
from app.moments import within_calendar
from app.storable import unstorable
from memory_types import MemoryType, validate_attributes

FORMAT = "loci-export"
VERSION = 1
KINDS: dict[str, type[Base]] = {"memory": Memory, "link": MemoryLink, "key": MemoryKey, "event": MemoryEvent}
END = "end"


class FormatError(ValueError):
    """A record that cannot be restored; `field` names the offending value when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def carried_columns(table: Table) -> list[Column[Any]]:
    """The columns an export record holds, in table order."""
    return [
        c
        for c in table.columns
        if c.name != "tenant_id"
        and c.computed is None
        and c.identity is None
        and c.autoincrement is not True
        and type(c.server_default) is not FetchedValue  # a trigger's (DefaultClause, a subclass, is carried)
    ]


COLUMNS: dict[str, list[Column[Any]]] = {kind: carried_columns(model.__table__) for kind, model in KINDS.items()}  # type: ignore[arg-type]


def _encode_value(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, np.ndarray):
        return value.tolist()  # float32 -> the exact float64 value, so json round-trips it bit for bit
    return value


def encode(kind: str, row: Any) -> dict[str, Any]:
    """One record for a row of `kind` (a Row or mapping with the table's column names)."""
    mapping = row._mapping if hasattr(row, "_mapping") else row
    return {"kind": kind, "row": {c.name: _encode_value(mapping[c.name]) for c in COLUMNS[kind]}}


def _fallback(column: Column[Any]) -> Any:
    """Value for a column missing from a record (one written before the column existed)."""
    default = column.default
    if default is not None and getattr(default, "is_scalar", False):
        return default.arg  # type: ignore[attr-defined]
    if default is not None and getattr(default, "is_callable", False):
        return default.arg(None)  # type: ignore[attr-defined]
    if column.nullable:
        return None
    raise FormatError(f"missing field '{column.name}'", column.name)


def _decode_value(column: Column[Any], value: Any, dims: int | None) -> Any:
    if value is None:
        if not column.nullable and column.server_default is None:
            raise FormatError(f"'{column.name}' may not be null", column.name)
        return None
    kind = column.type
    try:
        if isinstance(kind, UUID):
            return uuid.UUID(value)
        if isinstance(kind, DateTime):
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is None:
                raise ValueError("a time zone is required")
            return within_calendar(parsed)
        if isinstance(kind, Vector):
            return _vector(value, dims)
        if isinstance(kind, JSONB):
            return _storable(value, column.name)
        if isinstance(kind, ARRAY):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError("expected a list of strings")
            return _storable(value, column.name)
        if isinstance(kind, Float):
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError("expected a finite number")
            return float(value)
        if isinstance(kind, Integer):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError("expected an integer")
            return value
        if not isinstance(value, str):
            raise ValueError("expected a string")
        return _storable(value, column.name)
    except (TypeError, ValueError, AttributeError) as exc:
        raise FormatError(f"'{column.name}': {exc}", column.name) from None


def _vector(value: Any, dims: int | None) -> np.ndarray:
    if not isinstance(value, list) or not set(map(type, value)) <= {int, float}:  # exact types: no bools
        raise ValueError("expected a list of numbers")
    if dims is not None and len(value) != dims:
        raise ValueError(f"expected {dims} numbers, got {len(value)}")
    vector = np.asarray(value, dtype=np.float32)
    if not np.isfinite(vector).all():
        raise ValueError("numbers must be finite")
    return vector


def _storable(value: Any, column: str) -> Any:
    """`value`, or ValueError naming what Postgres could not hold or the service could not read back
    (app/storable.py), here where the line is known, not in the database."""
    if (problem := unstorable(value, column)) is not None:
        raise ValueError(problem)
    return value


def decode(kind: str, record: dict[str, Any], dims: int | None) -> dict[str, Any]:
    """Column values (table keys) for the `row` of a record of `kind`; dims=None skips vector widths
    (the vectors are about to be replaced by re-embedding)."""
    record = record.get("row")  # type: ignore[assignment]
    if not isinstance(record, dict):
        raise FormatError("'row' must be a JSON object with the record's columns", "row")
    columns = COLUMNS[kind]
    unknown = set(record) - {c.name for c in columns}
    if unknown:
        raise FormatError(f"unknown field(s) {sorted(unknown)} for a {kind} record", sorted(unknown)[0])
    values: dict[str, Any] = {}
    for column in columns:
        raw = record[column.name] if column.name in record else _fallback(column)
        values[column.key] = _decode_value(column, raw, dims) if column.name in record else raw
    if kind == "memory":
        values["attributes"] = _memory_attributes(values["type"], values["attributes"])
    return values


def _memory_attributes(memory_type: Any, attributes: Any) -> dict[str, Any]:
    """An imported memory's attributes must fit its type's schema, as a written one's do: the lexical
    index, fact extraction and the lifecycle jobs read them (a numeric `speaker` or a text `successes`
    would fail there, on every search of the scope or every job run, rather than here)."""
    try:
        kind = MemoryType(memory_type)
    except ValueError:
        raise FormatError(f"type must be one of {[t.value for t in MemoryType]}", "type") from None
    if not isinstance(attributes, dict):
        raise FormatError("attributes must be a JSON object", "attributes")
    try:
        return validate_attributes(kind, attributes)
    except ValueError as exc:
        raise FormatError(str(exc), "attributes") from None
