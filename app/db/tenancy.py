"""The tenant wall: sessions whose transactions run as the restricted role with the tenant set.

Every query already filters by tenant; this is the second wall. Inside a tenant session the
connection switches to `loci_app` (created by migration 0002), a role with no way around row-level
security, and names the tenant in `loci.tenant_id`; the policies then hide every other tenant's
rows and refuse writes of them, so a query that forgets its tenant filter still sees one tenant.
Both settings are transaction-local: a pooled connection goes back clean.

Work that is cross-tenant by nature (API key lookup, background jobs, tenant creation) uses plain
sessions, which keep the connecting role.
"""

import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from app.runtime import Runtime

APP_ROLE = "loci_app"

_ENTER = text(
    "SELECT set_config('role', :role, true), set_config('loci.tenant_id', :tenant, true), "
    "set_config('statement_timeout', :timeout, true)"
)


@contextmanager
def confined_session(
    sessions: sessionmaker[Session], tenant_id: uuid.UUID, statement_timeout_s: float | None = None
) -> Iterator[Session]:
    """A session confined to one tenant, in a transaction committed on success and rolled back on error.

    statement_timeout_s bounds each statement (None: no bound).
    """
    timeout_ms = 0 if statement_timeout_s is None else max(1, int(statement_timeout_s * 1000))
    with sessions.begin() as session:
        session.execute(_ENTER, {"role": APP_ROLE, "tenant": str(tenant_id), "timeout": str(timeout_ms)})
        yield session


def tenant_session(runtime: "Runtime", tenant_id: uuid.UUID) -> AbstractContextManager[Session]:
    """confined_session for a request: statements end at the request deadline (LOCI_REQUEST_TIMEOUT_S)."""
    return confined_session(runtime.sessions, tenant_id, runtime.settings.request_timeout_s)
