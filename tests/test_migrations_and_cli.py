"""Schema ownership by Alembic, the start-up schema check, and the CLI against a shared embedded server."""

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from alembic import command
from pydantic import ValidationError
from sqlalchemy import create_engine, inspect, text

from app.db import migrate
from app.db.migrate import SchemaBehindError
from app.runtime import Runtime, open_database
from app.settings import Settings
from tests.conftest import REPO, ServiceLauncher


def _fresh_database(runtime: Runtime, name: str) -> str:
    """A new empty database on the session's embedded server; returns its URL."""
    with runtime.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return runtime.engine.url.set(database=name).render_as_string(hide_password=False)


def test_migrations_from_empty_create_the_schema(runtime: Runtime) -> None:
    url = _fresh_database(runtime, "loci_migration_test")
    engine = create_engine(url)
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine, 384)
    assert migrate.current_revision(engine) == migrate.head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {"tenants", "api_keys", "memories", "memory_links", "memory_keys", "memory_events"} <= tables
    with engine.connect() as conn:
        indexes = dict(
            conn.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'memories'")).all()
        )
    assert "hnsw" in indexes["memories_embedding_idx"] and "vector_cosine_ops" in indexes["memories_embedding_idx"]
    assert "gin" in indexes["memories_tsv_idx"]
    with engine.connect() as conn:
        options = conn.execute(text("SELECT reloptions FROM pg_class WHERE relname = 'memories'")).scalar()
    assert "fillfactor=85" in options  # room for HOT access-count updates
    engine.dispose()


def test_keys_carry_their_memory_scope_backfilled_and_kept_by_a_trigger(runtime: Runtime) -> None:
    """Migration 0006 copies each key's memory's scope onto the key; from then on a trigger does, over
    whatever a writer gives, so the scope index over keys finds exactly the scope's keys."""
    engine = create_engine(_fresh_database(runtime, "loci_key_scope_test"))
    migrate.upgrade(engine, 384, "0005")
    key_sql = (
        "INSERT INTO memory_keys (id, tenant_id, memory_id, kind, text) VALUES (gen_random_uuid(), :t, :m, 'fact', 'x')"
    )
    with engine.begin() as conn:
        tenant = conn.execute(
            text("INSERT INTO tenants (id, name) VALUES (gen_random_uuid(), 't') RETURNING id")
        ).scalar()
        memories = [
            conn.execute(
                text(
                    "INSERT INTO memories (id, tenant_id, user_id, agent_id, session_id, type, content, content_hash) "
                    "VALUES (gen_random_uuid(), :t, :u, :a, :s, 'episodic', 'x', 'h') RETURNING id"
                ),
                {"t": tenant, "u": user, "a": agent, "s": session},
            ).scalar()
            for user, agent, session in (("ann", None, "s1"), (None, "bot", None))
        ]
        conn.execute(text(key_sql), {"t": tenant, "m": memories[0]})
    migrate.upgrade(engine, 384)
    with engine.begin() as conn:
        conn.execute(text(key_sql), {"t": tenant, "m": memories[1]})
        conn.execute(  # a writer naming another user: the trigger puts the memory's back
            text(
                "INSERT INTO memory_keys (id, tenant_id, memory_id, kind, text, user_id) "
                "VALUES (gen_random_uuid(), :t, :m, 'fact', 'x', 'mallory')"
            ),
            {"t": tenant, "m": memories[0]},
        )
        scopes = conn.execute(
            text(
                "SELECT m.id, (k.user_id, k.agent_id, k.session_id) IS NOT DISTINCT FROM "
                "(m.user_id, m.agent_id, m.session_id) FROM memory_keys k JOIN memories m ON m.id = k.memory_id"
            )
        ).all()
    engine.dispose()
    assert sorted(scopes) == sorted([(memories[0], True), (memories[1], True), (memories[0], True)])


def test_edit_times_in_notices_come_with_0009_and_go_with_its_downgrade(runtime: Runtime) -> None:
    """An edit's notice carries its new `updated_at` at head; downgraded to 0008 the notice is 0008's
    again, and upgrading once more brings the time back."""
    engine = create_engine(_fresh_database(runtime, "loci_notice_downgrade_test"))
    migrate.upgrade(engine, 384)
    with engine.begin() as conn:
        tenant = conn.execute(text("INSERT INTO tenants (id, name) VALUES (gen_random_uuid(), 't') RETURNING id"))
        memory = conn.execute(
            text(
                "INSERT INTO memories (id, tenant_id, type, content, content_hash) "
                "VALUES (gen_random_uuid(), :t, 'episodic', 'x', 'h') RETURNING id"
            ),
            {"t": tenant.scalar()},
        ).scalar()

    def edit_notices() -> list[dict[str, object]]:
        with engine.connect() as listener:
            listener.execute(text("LISTEN loci_memories"))
            listener.commit()
            with engine.begin() as conn:
                conn.execute(text("UPDATE memories SET content = 'y', updated_at = now() WHERE id = :m"), {"m": memory})
            sent = list(listener.connection.driver_connection.notifies(timeout=1))
        return [json.loads(notice.payload) for notice in sent]

    def edit_times() -> int:
        return sum("edited" in notice for notice in edit_notices())

    assert edit_times() == 1
    config = migrate._config(384)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0008")
    assert edit_times() == 0
    migrate.upgrade(engine, 384)
    assert edit_times() == 1
    engine.dispose()


def test_external_database_behind_is_refused_with_the_command(runtime: Runtime, tmp_path: Path) -> None:
    url = _fresh_database(runtime, "loci_behind_test")
    settings = Settings(home=tmp_path, database_url=url)
    with pytest.raises(SchemaBehindError, match="run `loci migrate`"):
        open_database(settings)
    engine = open_database(settings, apply_migrations=True)
    migrate.ensure_current(engine)
    engine.dispose()


def _loci(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def test_the_cli_mounts_its_commands_without_importing_nltk() -> None:
    """Every command, `loci --help` and `loci key list` included, mounts the eval commands, which
    import the lexical index; nltk (with scikit-learn, ~1.5 s) comes in only when a word is stemmed."""
    code = "import sys; from app.cli import _mount_optional; _mount_optional(); print(sorted(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert loaded.returncode == 0, loaded.stderr
    assert "'eval.cli'" in loaded.stdout and "'nltk'" not in loaded.stdout


@pytest.mark.timeout(300)
def test_cli_commands_share_one_embedded_server(service_launcher: ServiceLauncher) -> None:
    home = service_launcher.home()
    env = service_launcher.env(home)

    assert _loci(env, "migrate").returncode == 0
    server = service_launcher.start(env)
    try:
        key_file = home / "api-key"
        default_key = key_file.read_text().strip()
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"

        created = _loci(env, "tenant", "create", "acme")
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip().splitlines()[-1]
        assert key.startswith("loci_") and created.stdout.strip() == key
        for blank in ("", "  ", "x" * 201):
            unnamed = _loci(env, "tenant", "create", blank)
            assert unnamed.returncode == 2 and not unnamed.stdout and "1 to 200" in unnamed.stderr, unnamed

        added = _loci(env, "add", "The launch is planned for Tuesday", "--user-id", "cli-user", "--tenant", "acme")
        assert added.returncode == 0, added.stderr
        memory_id = added.stdout.strip()

        got = httpx.get(f"{server.url}/v1/memories/{memory_id}", headers={"Authorization": f"Bearer {key}"})
        assert got.status_code == 200 and got.json()["content"] == "The launch is planned for Tuesday"
        other = httpx.get(f"{server.url}/v1/memories/{memory_id}", headers={"Authorization": f"Bearer {default_key}"})
        assert other.status_code == 404

        found = _loci(env, "search", "when is the launch", "--user-id", "cli-user", "--tenant", "acme")
        assert found.returncode == 0, found.stderr
        assert memory_id in found.stdout.splitlines()[0]

        shoes = _loci(env, "add", "Bought running shoes", "--user-id", "cli-user", "--tenant", "acme",
                      "--event-at", "2024-03-02T10:00:00Z")  # fmt: skip
        assert shoes.returncode == 0, shoes.stderr
        before = _loci(env, "search", "what did I buy", "--user-id", "cli-user", "--tenant", "acme",
                       "--event-before", "2024-06-01", "--type", "episodic")  # fmt: skip
        assert before.returncode == 0, before.stderr
        assert [json.loads(line)["id"] for line in before.stdout.splitlines()] == [shoes.stdout.strip()]

        refused = _loci(env, "search", "x", "--tenant", "acme", "--asked-at", "yesterday", "--type", "diary",
                        "--timezone", "Nowhere/Special")  # fmt: skip
        assert refused.returncode == 2, refused.stderr
        assert all(field in refused.stderr for field in ("asked_at", "types", "timezone")), refused.stderr

        missing = _loci(env, "search", "x", "--tenant", "no-such-tenant")
        assert missing.returncode == 2 and "loci tenant create" in missing.stderr
    finally:
        server.stop()
    # The last process to leave stops the shared server, even though uvicorn exits by re-raising SIGTERM.
    deadline = time.monotonic() + 20
    while (home / "pgdata" / "postmaster.pid").exists():
        assert time.monotonic() < deadline, "embedded Postgres kept running after the service stopped"
        time.sleep(0.25)


def test_embedded_server_runs_with_the_configured_shared_buffers(runtime: Runtime) -> None:
    """Postgres' 128MB default would be in force unless the first start set it and restarted; the
    other settings the first start makes are in force too."""
    assert runtime.settings.embedded_shared_buffers != "128MB"
    with runtime.engine.connect() as conn:
        assert conn.execute(text("SHOW shared_buffers")).scalar() == runtime.settings.embedded_shared_buffers
        assert conn.execute(text("SHOW maintenance_work_mem")).scalar() == "1GB"
        assert conn.execute(text("SHOW autovacuum_naptime")).scalar() == "10s"
    with pytest.raises(ValidationError):  # the value is written into ALTER SYSTEM: only a size passes
        Settings(embedded_shared_buffers="1GB'; SELECT 1; --")


@pytest.mark.parametrize(("revision", "table"), [("0010", "memories"), ("0011", "memory_events")])
def test_idempotency_columns_come_with_their_migration_and_go_with_its_downgrade(
    runtime: Runtime, revision: str, table: str
) -> None:
    """0010 keeps a memory's key fingerprint; 0011 the key and fingerprint of a reinforcement's event."""
    engine = create_engine(_fresh_database(runtime, f"loci_idempotency_{revision}_test"))

    def has_fingerprints() -> bool:
        return "idempotency_fingerprint" in {c["name"] for c in inspect(engine).get_columns(table)}

    migrate.upgrade(engine, 384)
    assert has_fingerprints()
    config = migrate._config(384)
    before = f"{int(revision) - 1:04d}"
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, before)
    assert not has_fingerprints() and migrate.current_revision(engine) == before
    migrate.upgrade(engine, 384)
    assert has_fingerprints()
    engine.dispose()
