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
from functools import cache
from typing import TYPE_CHECKING

from sqlalchemy import TextClause, text
from sqlalchemy.orm import Session, sessionmaker

from app.errors import UnknownKey

if TYPE_CHECKING:
    from app.runtime import Runtime
    from app.services.tenants import Principal

APP_ROLE = "loci_app"


@cache
def _enter(check_key: bool, hnsw: bool, generic_plans: bool) -> TextClause:
    """The transaction's first statement. With check_key the settings are made only if the caller's
    key is still valid: the scan runs before the role switch (in the projection), and no row means
    no wall was set and the transaction is refused. With hnsw, pgvector's search breadth and iterative
    scans (so filtered queries still return their LIMIT) ride along instead of costing a round trip.
    generic_plans: statements are planned once per connection and statement shape, not per call."""
    settings = [
        "set_config('role', :role, true)",
        "set_config('loci.tenant_id', :tenant, true)",
        "set_config('statement_timeout', :timeout, true)",
    ]
    if hnsw:
        settings += [
            "set_config('hnsw.ef_search', :ef_search, true)",
            "set_config('hnsw.iterative_scan', 'relaxed_order', true)",
        ]
    if generic_plans:
        settings.append("set_config('plan_cache_mode', 'force_generic_plan', true)")
    statement = "SELECT " + ", ".join(settings)
    if check_key:
        statement += " FROM api_keys WHERE id = :key_id AND tenant_id = CAST(:tenant AS uuid) AND revoked_at IS NULL"
    return text(statement)


@contextmanager
def confined_session(
    sessions: sessionmaker[Session],
    tenant_id: uuid.UUID,
    statement_timeout_s: float | None = None,
    key_id: uuid.UUID | None = None,
    hnsw_ef_search: int | None = None,
    generic_plans: bool = False,
) -> Iterator[Session]:
    """A session confined to one tenant, in a transaction committed on success and rolled back on error.

    statement_timeout_s bounds each statement (None: no bound). key_id: also check, in the same round
    trip, that this key is not revoked (UnknownKey, a 401, if it is). hnsw_ef_search: set up pgvector's HNSW
    scans for search. generic_plans: reuse one plan per prepared statement (see `_enter`).
    """
    timeout_ms = 0 if statement_timeout_s is None else max(1, int(statement_timeout_s * 1000))
    values = {"role": APP_ROLE, "tenant": str(tenant_id), "timeout": str(timeout_ms)}
    if key_id is not None:
        values["key_id"] = str(key_id)
    if hnsw_ef_search is not None:
        values["ef_search"] = str(hnsw_ef_search)
    with sessions.begin() as session:
        enter = _enter(key_id is not None, hnsw_ef_search is not None, generic_plans)
        entered = session.execute(enter, values).first()
        if entered is None:
            raise UnknownKey()
        yield session


@contextmanager
def tenant_session(runtime: "Runtime", principal: "Principal", generic_plans: bool = False) -> Iterator[Session]:
    """confined_session for a request, as the caller's key: statements end at the request deadline
    (LOCI_REQUEST_TIMEOUT_S), a key revoked since it was cached (app.services.key_cache) is refused,
    and HNSW scans search LOCI_HNSW_EF_SEARCH wide."""
    try:
        with confined_session(
            runtime.sessions,
            principal.tenant_id,
            runtime.settings.request_timeout_s,
            principal.key_id,
            runtime.settings.hnsw_ef_search,
            generic_plans,
        ) as session:
            yield session
    except UnknownKey:
        if principal.key_id is not None:
            runtime.key_cache.forget(principal.key_id)
        raise
