"""Transaction-level advisory locks named by text, the one way the service's writers take turns
(write rules in app/services/write_rules.py, a user's erasure against its jobs in app/jobs/scope.py)."""

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session


def lock_names(session: Session, names: Sequence[str], shared: bool = False) -> None:
    """Take a lock for each of `names` until the transaction ends, in the order given, in one
    statement: a round trip inside a write's transaction costs it far more under load than the
    lock's own work. Postgres evaluates a select list left to right (were it ever not to, a
    deadlock it detects is a 503 conflict_retry, which clients retry)."""
    if not names:
        return
    lock = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    locks = ", ".join(f"{lock}(hashtextextended(:name{n}, 0))" for n in range(len(names)))
    session.execute(text(f"SELECT {locks}"), {f"name{n}": name for n, name in enumerate(names)})
