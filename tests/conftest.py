"""Shared fixtures: one embedded Postgres and one real model per test session; a fresh tenant per test.

Nothing is mocked: tests talk HTTP to the ASGI app (TestClient) or to a live uvicorn server.
"""

import dataclasses
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from fastapi.testclient import TestClient  # noqa: E402

from app.local_server import free_port, serve_in_thread  # noqa: E402
from app.logs import JsonFormatter  # noqa: E402
from app.main import create_app  # noqa: E402
from app.runtime import Runtime, build_runtime, start_embedding_worker  # noqa: E402
from app.services.tenants import create_tenant_with_key  # noqa: E402
from app.settings import Settings  # noqa: E402

BOOTSTRAP_KEY = "loci_test_bootstrap_key"


@pytest.fixture(scope="session")
def loci_home() -> Iterator[Path]:
    """A data directory outside root's home, as the embedded server needs when run as root."""
    home = Path(tempfile.mkdtemp(prefix="loci-test-"))
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(loci_home: Path) -> Settings:
    # Consolidation keys on (by default only where an LLM writes them), so that the tests that
    # consolidate exercise writing, searching, exporting and deleting keys; the default itself is
    # tested with settings copied from these (tests/test_lifecycle_jobs.py).
    return Settings(
        home=loci_home, database_url=None, bootstrap_api_key=BOOTSTRAP_KEY, log_level="warning", use_memory_keys=True
    )


@pytest.fixture(scope="session")
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = build_runtime(settings)
    yield rt
    rt.close()


@pytest.fixture(scope="session")
def app(runtime: Runtime):  # type: ignore[no-untyped-def]
    return create_app(runtime=runtime)


@pytest.fixture(scope="session")
def app_with(runtime: Runtime):  # type: ignore[no-untyped-def]
    """Factory: an app over the session's runtime with some settings changed (small limits, short timeouts)."""

    def make(**overrides: object):  # type: ignore[no-untyped-def]
        changed = runtime.settings.model_copy(update=overrides)
        return create_app(runtime=dataclasses.replace(runtime, settings=changed))

    return make


@pytest.fixture()
def new_key(runtime: Runtime):  # type: ignore[no-untyped-def]
    """Factory: a key for a brand-new tenant, so every test starts from an empty memory store."""

    def make() -> str:
        with runtime.sessions.begin() as session:
            return create_tenant_with_key(session, f"t-{os.urandom(6).hex()}")

    return make


@pytest.fixture()
def paused_worker(runtime: Runtime) -> Iterator[None]:
    """No in-process worker during the test (so pending rows stay pending until the test embeds them)."""
    worker = runtime.embedding_worker
    assert worker is not None
    worker.close()
    runtime.embedding_worker = None
    try:
        yield
    finally:
        runtime.embedding_worker = start_embedding_worker(runtime)


@pytest.fixture()
def api_key(new_key) -> str:  # type: ignore[no-untyped-def]
    return new_key()


@pytest.fixture()
def client(app, api_key: str) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, headers={"Authorization": f"Bearer {api_key}"}) as c:
        yield c


@pytest.fixture()
def anon(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app) as c:
        yield c


@pytest.fixture()
def service_logs(caplog: pytest.LogCaptureFixture):  # type: ignore[no-untyped-def]
    """Everything logged during the test at any level, formatted as the service writes it (extras included)."""
    caplog.set_level(logging.DEBUG)
    formatter = JsonFormatter()
    return lambda: "\n".join(formatter.format(record) for record in caplog.records)


@dataclass
class LiveServer:
    url: str
    api_key: str


@pytest.fixture(scope="session")
def live_url(app, runtime: Runtime) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A real uvicorn server on a loopback port, in a thread, sharing the session's runtime."""
    with serve_in_thread(app, runtime.settings.keep_alive_s) as url:
        yield url


@pytest.fixture()
def live_server(live_url: str, api_key: str) -> LiveServer:
    return LiveServer(url=live_url, api_key=api_key)


REPO = Path(__file__).resolve().parents[1]


@dataclass
class ServiceProcess:
    """A `python -m app.cli serve` subprocess. Its output goes to a file, never to a pipe: nobody
    drains a pipe while the test runs, and once its 64 KiB fill up (a database outage logs a warning
    per request) the service's next log write blocks its event loop and the whole service hangs."""

    url: str
    env: dict[str, str]
    process: "subprocess.Popen[bytes]"
    log_path: Path

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it is still running 30 s later."""
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


@dataclass
class ServiceLauncher:
    """Starts `loci serve` subprocesses on their own LOCI_HOME and stops any left running."""

    logs: Path
    started: list[ServiceProcess] = field(default_factory=list)
    homes: list[Path] = field(default_factory=list)

    def home(self) -> Path:
        """A fresh LOCI_HOME outside pytest's temporary root: every pytest session started meanwhile
        (other test runs on the machine) resets that root to mode 0700, and then the embedded
        server's own user can no longer reach its data directory to stop it."""
        home = Path(tempfile.mkdtemp(prefix="loci-service-"))
        self.homes.append(home)
        return home

    def env(self, home: Path, **settings: str) -> dict[str, str]:
        """The environment for `loci` commands on `home`: a fresh port, offline, with none of the
        caller's database or key settings (the embedded server writes its own key to home/api-key)."""
        env = {**os.environ, "LOCI_HOME": str(home), "LOCI_PORT": str(free_port()), "HF_HUB_OFFLINE": "1"}
        env.pop("LOCI_DATABASE_URL", None)
        env.pop("LOCI_BOOTSTRAP_API_KEY", None)
        return {**env, **settings}

    def start(self, env: dict[str, str], ready_within_s: float = 120) -> ServiceProcess:
        """Start the service and wait until /readyz answers 200; fails with the service's log if it
        exits or is not ready in time."""
        log_path = self.logs / f"serve-{len(self.started)}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve"], env=env, cwd=REPO, stdout=log_file, stderr=log_file
            )
        service = ServiceProcess(f"http://127.0.0.1:{env['LOCI_PORT']}", env, process, log_path)
        self.started.append(service)
        deadline = time.monotonic() + ready_within_s
        while True:
            try:
                if httpx.get(f"{service.url}/readyz", timeout=1).status_code == 200:
                    return service
            except httpx.HTTPError:
                pass
            assert process.poll() is None, f"the service exited: {service.log_tail()}"
            assert time.monotonic() < deadline, f"the service was not ready in {ready_within_s} s: {service.log_tail()}"
            time.sleep(0.5)


@pytest.fixture()
def service_launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceLauncher]:
    """Factory: real `loci serve` processes (fault and CLI tests); those still running at the end are stopped."""
    launcher = ServiceLauncher(tmp_path_factory.mktemp("service-logs"))
    yield launcher
    for service in launcher.started:
        if service.process.poll() is None:
            service.stop()
    for home in launcher.homes:
        shutil.rmtree(home, ignore_errors=True)


def branches_run(session: Any, call: Callable[[], object], cte: str, relation: str) -> list[bool]:
    """Which branches of the union in CTE `cte` of the statement `call` runs read any row of
    `relation`, from EXPLAIN ANALYZE: for the candidate statements' choice between HNSW and an
    exact scan (retrieval/candidates.py)."""
    captured: list[tuple[str, Any]] = []

    def capture(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        captured.append((statement, parameters))

    event.listen(session.get_bind(), "before_cursor_execute", capture)
    try:
        call()
    finally:
        event.remove(session.get_bind(), "before_cursor_execute", capture)
    # The engine also runs other threads' statements (the embedding worker's poll, scope checks):
    # take this call's own.
    statement, parameters = next(c for c in reversed(captured) if cte in c[0])
    cursor = session.connection().connection.dbapi_connection.cursor()
    cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
    plan = cursor.fetchone()[0][0]["Plan"]

    def nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield node
        for child in node.get("Plans", []):
            yield from nodes(child)

    union = next(n for n in nodes(plan) if n.get("Subplan Name") == f"CTE {cte}")
    append = next(n for n in nodes(union) if n["Node Type"] == "Append")
    return [
        any(n.get("Relation Name") == relation and n.get("Actual Loops", 0) > 0 for n in nodes(branch))
        for branch in append["Plans"]
    ]


@contextmanager
def threads_running(runtime: Runtime, needle: str) -> Iterator[list[str]]:
    """The names of the threads that run a statement containing `needle` while the block runs:
    tests use it to tell work done in the caller from work done in a background thread."""
    names: list[str] = []

    def record(conn, cursor, statement, *_) -> None:  # type: ignore[no-untyped-def]
        if needle in statement:
            names.append(threading.current_thread().name)

    event.listen(runtime.engine, "before_cursor_execute", record)
    try:
        yield names
    finally:
        event.remove(runtime.engine, "before_cursor_execute", record)


def notices_heard(runtime: Runtime) -> int:
    """Change notices the runtime's listener has reported so far (app/memory_notices.py)."""
    assert runtime.memory_notices is not None
    return runtime.memory_notices.heard


def await_notices(runtime: Runtime, count: int, within_s: float = 10) -> None:
    """Until the listener has reported `count` notices in all."""
    deadline = time.monotonic() + within_s
    while notices_heard(runtime) < count:
        assert time.monotonic() < deadline, f"{count - notices_heard(runtime)} change notices never arrived"
        time.sleep(0.01)


def waiting_on(runtime: Runtime, holder_pid: int | None = None) -> int:
    """Backends waiting for a lock that backend `holder_pid` holds (None: any backend). Read in a
    transaction of its own: Postgres reads pg_stat_activity once per transaction, so a watcher that
    kept one open never saw a backend that connected, or started waiting, after its first look."""
    with runtime.engine.connect() as watcher:
        blockers = "pg_blocking_pids(pid)"
        blocked = f"cardinality({blockers}) > 0" if holder_pid is None else f":holder = ANY({blockers})"
        query = text(f"SELECT count(*) FROM pg_stat_activity WHERE {blocked}")
        return watcher.execute(query, {"holder": holder_pid}).scalar_one()


def wait_until(condition: Callable[[], object], what: str, within_s: float = 30) -> None:
    """Until `condition()` is true, failing with `what` at the deadline."""
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.02)
