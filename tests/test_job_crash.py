"""Crash safety: a worker killed with SIGKILL in the middle of a consolidation job. The job is
requeued once its heartbeat goes stale, another worker finishes it, and the outcome is as if it
had run once: every session consolidated exactly once, no duplicated facts, keys or summaries."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker

from app.api.schemas import MessagesCreate
from app.db import migrate
from app.db.models import Job
from app.jobs.queue import JobQueue, libpq_url
from app.runtime import Runtime
from app.services.memory_store import create_memories, embed_items, messages_to_memories
from app.services.tenants import get_or_create_tenant
from memory_types.extraction import extract_facts, keywords

REPO = Path(__file__).resolve().parents[1]
SESSIONS = 60


def _turns(i: int) -> list[dict[str, str]]:
    return [
        {
            "role": "user",
            "name": "Ann",
            "content": f"I visited museum number {i} with my cousin. I love painting number {i}.",
        },
        {"role": "assistant", "content": f"What did you like about museum {i}?"},
        {"role": "user", "name": "Ann", "content": f"My favourite room was room {i}, full of old maps."},
    ]


def _worker(url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LOCI_DATABASE_URL": url, "LOCI_JOB_STALLED_SECONDS": "3", "HF_HUB_OFFLINE": "1"}
    env["LOCI_USE_MEMORY_KEYS"] = "true"  # keys too must be written once only
    env["LOCI_SWEEP_CRON"] = "0 0 1 1 *"  # keep the periodic sweep out of this test
    return subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=env, cwd=REPO, stderr=subprocess.PIPE)


def _scalar(engine, sql: str, **params):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


@pytest.mark.timeout(300)
def test_killed_worker_job_is_retried_and_applied_once(runtime: Runtime) -> None:
    with runtime.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text('DROP DATABASE IF EXISTS "loci_crash_test"'))
        conn.execute(text('CREATE DATABASE "loci_crash_test"'))
    url = runtime.engine.url.set(database="loci_crash_test").render_as_string(hide_password=False)
    engine = create_engine(url)
    migrate.upgrade(engine, 384)
    sessions = sessionmaker(engine)
    with sessions.begin() as session:
        tenant_id = get_or_create_tenant(session, "crash").id
        for i in range(SESSIONS):
            payload = MessagesCreate(user_id="ann", session_id=f"s{i}", messages=_turns(i))  # type: ignore[arg-type]
            items = messages_to_memories(payload)
            create_memories(session, tenant_id, items, embed_items(runtime.embedder, items), "test")
        job_id = uuid.uuid4()
        session.add(Job(id=job_id, tenant_id=tenant_id, kind="consolidate", scope={"user_id": "ann"}, status="queued"))
    queue = JobQueue(libpq_url(url), retries=3, sweep_cron="0 0 1 1 *")
    queue.defer(job_id)
    queue.close()

    first = _worker(url)
    try:
        deadline = time.monotonic() + 120
        while _scalar(engine, "SELECT count(*) FROM memories WHERE consolidated_at IS NOT NULL") < 3 * 3:
            assert first.poll() is None, first.stderr.read().decode() if first.stderr else ""
            assert time.monotonic() < deadline, "the first worker never started the job"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        first.kill()
    done_at_kill = _scalar(engine, "SELECT count(*) FROM memories WHERE consolidated_at IS NOT NULL")
    assert _scalar(engine, "SELECT status FROM jobs WHERE id = :id", id=job_id) == "running"
    assert done_at_kill < SESSIONS * 3, "the job finished before the kill; nothing was tested"

    second = _worker(url)
    try:
        deadline = time.monotonic() + 180
        while _scalar(engine, "SELECT status FROM jobs WHERE id = :id", id=job_id) != "succeeded":
            assert second.poll() is None, second.stderr.read().decode() if second.stderr else ""
            assert time.monotonic() < deadline, "the job was not retried to completion"
            time.sleep(0.2)
    finally:
        second.terminate()
        second.wait(timeout=30)

    assert _scalar(engine, "SELECT count(*) FROM memories WHERE type = 'episodic' AND consolidated_at IS NULL") == 0
    summaries = _scalar(engine, "SELECT count(*) FROM memories WHERE metadata->>'kind' = 'session_summary'")
    assert summaries == SESSIONS
    duplicated_facts = _scalar(
        engine,
        "SELECT count(*) FROM (SELECT content FROM memories WHERE metadata->>'kind' = 'extracted_fact' "
        "AND status = 'active' GROUP BY content HAVING count(*) > 1) d",
    )
    assert duplicated_facts == 0
    expected_keys = sum(
        len(extract_facts(t["content"], t.get("name"))) + (1 if keywords(t["content"]) or t.get("name") else 0)
        for i in range(SESSIONS)
        for t in _turns(i)
    )
    assert _scalar(engine, "SELECT count(*) FROM memory_keys") == expected_keys
    engine.dispose()
