"""Tells in-process dense indexes (FAISS) that memory vectors may have changed, once the change is committed.

Every write in this process goes through the engine, so the engine's events see them all, whatever
module wrote (store, jobs, embedding worker). A statement that adds, removes or re-embeds memories
marks its pooled connection; the mark is acted on when the connection returns to the pool, which
is after the transaction ended: an index that re-reads the database then sees the change. (A
rolled-back mark only costs one needless staleness check.) Access-count updates and other column
changes leave vectors alone and are ignored, or every search would invalidate every index.
"""

import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, event

_VECTOR_WRITE = re.compile(
    r"^\s*(?:INSERT\s+INTO\s+memories\b|DELETE\s+FROM\s+memories\b|UPDATE\s+memories\s+SET\b.*\bembedding\s*=)",
    re.IGNORECASE | re.DOTALL,
)


def is_vector_write(statement: str) -> bool:
    return _VECTOR_WRITE.match(statement) is not None


def notify_vector_changes(engine: Engine, on_change: Callable[[], None]) -> Callable[[], None]:
    """Call `on_change` after each transaction of `engine` that wrote memory vectors; returns the way to stop."""
    marker = object()  # each listener marks and clears its own flag: several indexes may listen

    def mark(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if is_vector_write(statement):
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
