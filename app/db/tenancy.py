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
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app.errors import ApiError

if TYPE_CHECKING:
    from app.runtime import Runtime
    from app.services.tenants import Principal

APP_ROLE = "loci_app"
UNKNOWN_KEY = "unknown or revoked API key"

_SETTINGS = (
    "set_config('role', :role, true), set_config('loci.tenant_id', :tenant, true), "
    "set_config('statement_timeout', :timeout, true)"
)
_ENTER = text(f"SELECT {_SETTINGS}")
# The same settings, made only if the caller's key is still valid: the scan runs before the role
# switch (in the projection), and no row means no wall was set and the transaction is refused.
_ENTER_WITH_KEY = text(
    f"SELECT {_SETTINGS} FROM api_keys WHERE id = :key_id AND tenant_id = CAST(:tenant AS uuid) AND revoked_at IS NULL"
)


@contextmanager
def confined_session(
    sessions: sessionmaker[Session],
    tenant_id: uuid.UUID,
    statement_timeout_s: float | None = None,
    key_id: uuid.UUID | None = None,
) -> Iterator[Session]:
    """A session confined to one tenant, in a transaction committed on success and rolled back on error.

    statement_timeout_s bounds each statement (None: no bound). key_id: also check, in the same round
    trip, that this key is not revoked (ApiError 401 if it is).
    """
    timeout_ms = 0 if statement_timeout_s is None else max(1, int(statement_timeout_s * 1000))
    values = {"role": APP_ROLE, "tenant": str(tenant_id), "timeout": str(timeout_ms)}
    with sessions.begin() as session:
        if key_id is None:
            session.execute(_ENTER, values)
        elif session.execute(_ENTER_WITH_KEY, {**values, "key_id": key_id}).first() is None:
            raise ApiError(401, UNKNOWN_KEY)
        yield session


@contextmanager
def tenant_session(runtime: "Runtime", principal: "Principal") -> Iterator[Session]:
    """confined_session for a request, as the caller's key: statements end at the request deadline
    (LOCI_REQUEST_TIMEOUT_S), and a key revoked since it was cached (app.services.key_cache) is refused."""
    try:
        with confined_session(
            runtime.sessions, principal.tenant_id, runtime.settings.request_timeout_s, principal.key_id
        ) as session:
            yield session
    except ApiError as exc:
        if exc.status == 401 and exc.message == UNKNOWN_KEY and principal.key_id is not None:
            runtime.key_cache.forget(principal.key_id)
        raise
