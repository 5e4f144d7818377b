"""Shared fixtures: one embedded Postgres and one real model per test session; a fresh tenant per test.

Nothing is mocked: tests talk HTTP to the ASGI app (TestClient) or to a live uvicorn server.
"""

import dataclasses
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from fastapi.testclient import TestClient  # noqa: E402

from app.local_server import serve_in_thread  # noqa: E402
from app.logs import JsonFormatter  # noqa: E402
from app.main import create_app  # noqa: E402
from app.runtime import Runtime, build_runtime  # noqa: E402
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
    return Settings(home=loci_home, database_url=None, bootstrap_api_key=BOOTSTRAP_KEY, log_level="warning")


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
def live_url(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A real uvicorn server on a loopback port, in a thread, sharing the session's runtime."""
    with serve_in_thread(app) as url:
        yield url


@pytest.fixture()
def live_server(live_url: str, api_key: str) -> LiveServer:
    return LiveServer(url=live_url, api_key=api_key)
