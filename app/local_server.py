"""Running the service inside another Python process: a live uvicorn in a thread, and a throwaway
service on a temporary embedded database. Used by the tests, the benchmarks and the eval runner."""

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from app.main import create_app
from app.runtime import Runtime, build_runtime
from app.services.tenants import create_tenant_with_key
from app.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_in_thread(app: FastAPI, keep_alive_s: int | None = None, startup_timeout: float = 60.0) -> Iterator[str]:
    """Serve `app` over real HTTP on a loopback port; yields its base URL. `keep_alive_s`: the
    service's LOCI_KEEP_ALIVE_S (None: uvicorn's default, for the stand-in servers tests run)."""
    port = free_port()
    keep_alive = {} if keep_alive_s is None else {"timeout_keep_alive": keep_alive_s}
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **keep_alive)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="loci-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the local server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def throwaway_service(**overrides: object) -> Iterator[tuple[str, str]]:
    """A whole service on a temporary embedded database; yields (base_url, api_key), removed on exit."""
    with throwaway_runtime(**overrides) as (url, key, _):
        yield url, key


@contextmanager
def throwaway_runtime(**overrides: object) -> Iterator[tuple[str, str, Runtime]]:
    """`throwaway_service` that also yields its Runtime, for benchmarks that switch parts of it live."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    home = Path(tempfile.mkdtemp(prefix="loci-local-"))
    settings = Settings(home=home, database_url=None, bootstrap_api_key=None, **overrides)  # type: ignore[arg-type]
    runtime = build_runtime(settings)
    try:
        with runtime.sessions.begin() as session:
            key = create_tenant_with_key(session, "local")
        with serve_in_thread(create_app(runtime=runtime), settings.keep_alive_s) as url:
            yield url, key, runtime
    finally:
        runtime.close()
        shutil.rmtree(home, ignore_errors=True)
