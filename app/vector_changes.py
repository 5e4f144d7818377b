"""Tells in-process indexes that memories may have changed, once the change is committed: dense ones
(FAISS) of changed vectors, the BM25 index of changed text.

Every write in this process goes through the engine, so the engine's events see them all, whatever
module wrote (store, jobs, embedding worker). A statement that adds, removes or re-embeds memories
(`is_vector_write`), or for the BM25 index changes what it reads of them (`is_text_write`), marks
its pooled connection; the mark is acted on when the connection returns to the pool, which is
after the transaction ended: an index that re-reads the database then sees the change. (A
rolled-back mark only costs one needless staleness check.) Access-count updates and other column
changes are ignored, or every search would invalidate every index; so are the embedding worker's
vectors for the BM25 index, which reads no vector (each batch made every scope stamp again).

Inserts can instead be handed over: an insert made with the `REPORTED` execution option in a
session that delivers its inserts (`deliver_inserts`) gives its rows to the index once committed
(`report_inserted`), and an index that takes them (`receives_inserts=True`) is not told to re-read
the scope for them. The writer's next search then needs no stamp of the scope: after a write, the
BM25 index's stamp, new rows and rebuild were ~5 ms of a 10k scope's search and, under load, a
queue that every search of the scope waited in.
"""

import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

REPORTED = "loci_reported"
"""Execution option of an insert into memories whose rows the session delivers itself."""
_DELIVERS = "loci_delivers_inserts"  # session.info: this session's inserts are delivered on commit
_INSERTED = "loci_inserted"  # session.info: rows to deliver if the transaction commits
_COMMITTED = "loci_committed"  # session.info: rows to deliver once the transaction has ended


def _memory_write(*columns: str) -> re.Pattern[str]:
    """Statements that add or remove memories, or whose SET clause assigns one of `columns`."""
    assigned = "|".join(columns)
    return re.compile(
        r"^\s*(?:INSERT\s+INTO\s+memories\b|DELETE\s+FROM\s+memories\b"
        rf"|UPDATE\s+memories\s+SET\b(?:(?!\bWHERE\b).)*\b(?:{assigned})\s*=)",
        re.IGNORECASE | re.DOTALL,
    )


_VECTOR_WRITE = _memory_write("embedding")
_TEXT_WRITE = _memory_write("content", "attributes", "type", "user_id", "agent_id", "session_id", "event_at")


def is_vector_write(statement: str) -> bool:
    return _VECTOR_WRITE.match(statement) is not None


def is_text_write(statement: str) -> bool:
    """Whether the statement adds or removes memories, or sets a column the BM25 index reads."""
    return _TEXT_WRITE.match(statement) is not None


def notify_vector_changes(
    engine: Engine,
    on_change: Callable[[], None],
    receives_inserts: bool = False,
    changes: Callable[[str], bool] = is_vector_write,
) -> Callable[[], None]:
    """Call `on_change` after each transaction of `engine` that made `changes` (by default, wrote
    memory vectors); returns the way to stop. receives_inserts: not for inserts whose rows are
    delivered to it (`deliver_inserts`)."""
    marker = object()  # each listener marks and clears its own flag: several indexes may listen

    def mark(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, *_: Any) -> None:
        if receives_inserts and context is not None and context.execution_options.get(REPORTED):
            return
        if changes(statement):
            conn.info[marker] = True

    def checkin(dbapi_connection: Any, record: Any) -> None:
        if record is not None and record.info.pop(marker, False):
            on_change()

    event.listen(engine, "after_cursor_execute", mark)
    event.listen(engine, "checkin", checkin)

    def stop() -> None:
        event.remove(engine, "after_cursor_execute", mark)
        event.remove(engine, "checkin", checkin)

    return stop


def deliver_inserts(sessions: sessionmaker[Session], on_rows: Callable[[list[Any]], None]) -> None:
    """Give `on_rows` the rows each transaction of `sessions` reported (`report_inserted`) once it
    has committed and given its connection back; a rolled-back transaction's are dropped.

    After the connection is back, not at the commit: `on_rows` may wait for an index's lock, whose
    holder (a background check of the scope) may be waiting for a pooled connection."""

    def begun(session: Session, *_: Any) -> None:
        session.info[_DELIVERS] = True

    def committed(session: Session) -> None:
        session.info[_COMMITTED] = session.info.pop(_INSERTED, [])

    def rolled_back(session: Session) -> None:
        session.info.pop(_INSERTED, None)

    def ended(session: Session, transaction: SessionTransaction) -> None:
        rows = session.info.pop(_COMMITTED, None) if transaction.parent is None else None
        if rows:
            on_rows(rows)

    event.listen(sessions, "after_begin", begun)
    event.listen(sessions, "after_commit", committed)
    event.listen(sessions, "after_rollback", rolled_back)
    event.listen(sessions, "after_transaction_end", ended)


def delivers_inserts(session: Session) -> bool:
    """Whether the session's inserts may be made with `REPORTED` and their rows reported."""
    return bool(session.info.get(_DELIVERS))


def report_inserted(session: Session, rows: list[Any]) -> None:
    """Rows the session's transaction inserted with `REPORTED`, to deliver when it commits."""
    session.info.setdefault(_INSERTED, []).extend(rows)
