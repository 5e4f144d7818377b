"""The tenant wall: Postgres row-level security under every tenant transaction (migration 0002,
app.db.tenancy), checked with raw SQL that deliberately leaves out the tenant filter."""

import threading
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import NullPool

from app.db import migrate
from app.db.engine import make_sessionmaker
from app.db.tenancy import APP_ROLE, confined_session, tenant_session
from app.runtime import Runtime
from app.services.tenants import Principal, authenticate

TENANT_TABLES = ("api_keys", "memories", "memory_events")


def _tenant_with_memory(app, runtime: Runtime, key: str, content: str) -> tuple[uuid.UUID, uuid.UUID]:  # type: ignore[no-untyped-def]
    with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as client:
        [memory_id] = client.post("/v1/memories", json={"content": content, "user_id": "shared-name"}).json()["ids"]
    with runtime.sessions() as session:
        principal = authenticate(session, key)
    assert principal is not None
    return principal.tenant_id, uuid.UUID(memory_id)


@pytest.fixture()
def two_tenants(app, runtime: Runtime, new_key):  # type: ignore[no-untyped-def]
    """(tenant A, A's memory), (tenant B, B's memory)."""
    return (
        _tenant_with_memory(app, runtime, new_key(), "tenant A's launch plan"),
        _tenant_with_memory(app, runtime, new_key(), "tenant B's launch plan"),
    )


def test_unfiltered_reads_see_only_the_transactions_tenant(runtime: Runtime, two_tenants) -> None:  # type: ignore[no-untyped-def]
    (a, a_memory), (b, b_memory) = two_tenants
    with runtime.sessions() as session:  # the connecting role bypasses the wall: both tenants are there
        everyone = set(session.scalars(text("SELECT tenant_id FROM memories")))
    assert {a, b} <= everyone
    with tenant_session(runtime, Principal.local(a)) as session:
        assert session.scalar(text("SELECT current_user")) == APP_ROLE
        for table in TENANT_TABLES:
            seen = set(session.scalars(text(f"SELECT tenant_id FROM {table}")))
            assert seen == {a}, table
        assert session.scalar(text("SELECT count(*) FROM memories WHERE id = :id"), {"id": b_memory}) == 0
        assert set(session.scalars(text("SELECT id FROM tenants"))) == {a}


def test_unfiltered_writes_cannot_touch_another_tenant(runtime: Runtime, two_tenants) -> None:  # type: ignore[no-untyped-def]
    (a, a_memory), (b, b_memory) = two_tenants
    count_events = text("SELECT count(*) FROM memory_events WHERE memory_id = :id")
    with runtime.sessions() as session:
        b_events = session.scalar(count_events, {"id": b_memory})
    assert b_events > 0
    with tenant_session(runtime, Principal.local(a)) as session:
        assert session.execute(text("UPDATE memories SET content = 'pwned'")).rowcount == 1  # A's own row only
        assert session.execute(text("DELETE FROM memory_events WHERE memory_id = :id"), {"id": b_memory}).rowcount == 0
        assert session.execute(text("DELETE FROM memories WHERE id = :id"), {"id": b_memory}).rowcount == 0
        assert (
            session.execute(text("UPDATE api_keys SET revoked_at = now() WHERE tenant_id = :b"), {"b": b}).rowcount == 0
        )
    with runtime.sessions() as session:
        assert session.scalar(text("SELECT content FROM memories WHERE id = :id"), {"id": b_memory}) == (
            "tenant B's launch plan"
        )
        assert session.scalar(count_events, {"id": b_memory}) == b_events
    for statement in (
        "UPDATE memories SET tenant_id = :b WHERE id = :a_memory",  # moving a row to another tenant
        "INSERT INTO memory_events (tenant_id, memory_id, op) VALUES (:b, :a_memory, 'forged')",
    ):
        with pytest.raises(DBAPIError, match="row-level security"):
            with tenant_session(runtime, Principal.local(a)) as session:
                session.execute(text(statement), {"b": b, "a_memory": a_memory})


def test_the_restricted_role_without_a_tenant_sees_nothing(runtime: Runtime, two_tenants) -> None:  # type: ignore[no-untyped-def]
    with runtime.sessions.begin() as session:
        session.execute(text(f"SET LOCAL ROLE {APP_ROLE}"))
        assert session.scalar(text("SELECT count(*) FROM memories")) == 0
        assert session.scalar(text("SELECT count(*) FROM api_keys")) == 0


def test_statements_end_at_the_deadline(runtime: Runtime, two_tenants) -> None:  # type: ignore[no-untyped-def]
    (a, _), _ = two_tenants
    with pytest.raises(OperationalError, match="statement timeout"):
        with confined_session(runtime.sessions, a, statement_timeout_s=0.05) as session:
            session.execute(text("SELECT pg_sleep(2)"))


def test_every_tenant_owned_table_has_the_wall(runtime: Runtime) -> None:
    """A table with a tenant_id column (or tenants itself) must have RLS on and a policy, so tables
    added by later migrations cannot quietly skip the wall."""
    with runtime.engine.connect() as conn:
        tables = set(
            conn.scalars(
                text(
                    "SELECT table_name FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND column_name = 'tenant_id'"
                )
            )
        ) | {"tenants"}
        walled = set(
            conn.scalars(
                text(
                    "SELECT c.relname FROM pg_class c JOIN pg_policies p ON p.tablename = c.relname "
                    "WHERE c.relrowsecurity AND p.schemaname = 'public'"
                )
            )
        )
    assert tables - walled == set()


def test_routes_run_behind_the_wall(client: TestClient, runtime: Runtime) -> None:
    """Every memory, search, privacy and admin route opens its transaction through tenant_session.
    The service's own threads (named loci-*: embedding worker, scope checks, jobs) enter the wall
    too, and one doing so during a request must not pass for the request."""
    entered: list[str] = []

    def watch(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if "set_config('role'" in statement and not threading.current_thread().name.startswith("loci-"):
            entered.append(statement)

    [memory_id] = client.post("/v1/memories", json={"content": "walled", "user_id": "u"}).json()["ids"]
    requests = [
        ("POST", "/v1/memories", {"content": "walled too", "user_id": "u"}),
        ("POST", "/v1/messages", {"user_id": "u", "session_id": "s", "messages": [{"role": "user", "content": "hi"}]}),
        ("GET", f"/v1/memories/{memory_id}", None),
        ("GET", "/v1/memories", None),
        ("PATCH", f"/v1/memories/{memory_id}", {"importance": 0.7}),
        ("GET", f"/v1/memories/{memory_id}/history", None),
        ("POST", "/v1/search", {"query": "walled"}),
        ("GET", "/v1/users/u/footprint", None),
        ("GET", "/v1/admin/keys", None),
        ("DELETE", f"/v1/memories/{memory_id}", None),
    ]
    event.listen(runtime.engine, "before_cursor_execute", watch)
    try:
        for method, path, body in requests:
            entered.clear()
            response = client.request(method, path, json=body)
            assert response.status_code < 300, (path, response.text)
            assert entered, f"{method} {path} ran outside the tenant wall"
    finally:
        event.remove(runtime.engine, "before_cursor_execute", watch)


def test_migration_works_for_a_non_superuser_owner(runtime: Runtime) -> None:
    """An external database where the app connects as the tables' owner (owners bypass RLS too):
    the migration needs `loci_app` granted to that owner, says so when it is not, and then walls
    tenants for the owner's tenant sessions as it does for the embedded superuser."""
    owner, database = "loci_owner_test", "loci_owner_test"
    admin = runtime.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    with admin:
        admin.execute(text(f'DROP DATABASE IF EXISTS "{database}"'))
        admin.execute(text(f"DROP ROLE IF EXISTS {owner}"))
        admin.execute(text(f"CREATE ROLE {owner} LOGIN NOSUPERUSER"))
        admin.execute(text(f'CREATE DATABASE "{database}" OWNER {owner}'))
    superuser_url = runtime.engine.url.set(database=database)
    with create_engine(superuser_url, poolclass=NullPool).begin() as conn:  # pgvector is not a trusted extension
        conn.execute(text("CREATE EXTENSION vector"))
    engine = create_engine(superuser_url.set(username=owner), poolclass=NullPool)
    try:
        with pytest.raises(DBAPIError, match=f"GRANT {APP_ROLE} TO {owner}"):
            migrate.upgrade(engine, 384)
        with runtime.engine.connect() as conn:
            conn.execute(text(f"GRANT {APP_ROLE} TO {owner}"))  # what the error tells a DBA to run
            conn.commit()
        migrate.upgrade(engine, 384)
        sessions = make_sessionmaker(engine)
        a, b = uuid.uuid4(), uuid.uuid4()
        with sessions.begin() as session:
            assert session.scalar(text("SELECT current_user")) == owner
            for tenant in (a, b):
                session.execute(text("INSERT INTO tenants (id, name) VALUES (:id, :id)"), {"id": tenant})
                session.execute(
                    text(
                        "INSERT INTO memories (id, tenant_id, type, content, content_hash) "
                        "VALUES (gen_random_uuid(), :t, 'episodic', 'x', 'h')"
                    ),
                    {"t": tenant},
                )
        with confined_session(sessions, a) as session:
            assert set(session.scalars(text("SELECT tenant_id FROM memories"))) == {a}
            assert session.execute(text("DELETE FROM memories WHERE tenant_id = :b"), {"b": b}).rowcount == 0
    finally:
        engine.dispose()
        with runtime.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}"'))
            conn.execute(text(f"REVOKE {APP_ROLE} FROM {owner}"))
            conn.execute(text(f"DROP ROLE IF EXISTS {owner}"))


def test_security_migration_downgrades_and_upgrades_again(runtime: Runtime) -> None:
    from alembic import command

    admin = runtime.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    with admin:
        admin.execute(text('DROP DATABASE IF EXISTS "loci_0002_test"'))
        admin.execute(text('CREATE DATABASE "loci_0002_test"'))
    engine = create_engine(runtime.engine.url.set(database="loci_0002_test"), poolclass=NullPool)
    config = migrate._config(384)
    rls_on = text("SELECT relrowsecurity FROM pg_class WHERE relname = 'memories'")
    try:
        for target, walled in (("0002", True), ("0001", False), ("0002", True)):
            with engine.begin() as conn:
                config.attributes["connection"] = conn
                (command.upgrade if walled else command.downgrade)(config, target)
            with engine.connect() as conn:
                assert conn.scalar(rls_on) is walled
                columns = set(
                    conn.scalars(
                        text("SELECT column_name FROM information_schema.columns WHERE table_name = 'memories'")
                    )
                )
                assert ("flags" in columns) is walled
    finally:
        engine.dispose()
