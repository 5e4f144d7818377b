"""The procrastinate queue behind lifecycle jobs, in the same Postgres as the memories.

The API records a job row (status, counts) and defers `loci.run_job`; a worker (a thread in the
API process by default, or `loci worker` processes) runs it. Work is idempotent and committed in
units, so a worker killed mid-job leaves nothing half-applied and the retried job finishes it.
"""

import asyncio
import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import procrastinate
from procrastinate import JobContext, RetryStrategy
from sqlalchemy import select, text

from app.db.models import Job, Memory
from app.db.tenancy import tenant_session
from app.services.tenants import Principal
from memory_types import MemoryType

if TYPE_CHECKING:
    from app.runtime import Runtime

log = logging.getLogger(__name__)

QUEUE = "lifecycle"
RUN_JOB = "loci.run_job"
SWEEP = "loci.sweep"


def execute_job(runtime: "Runtime", job_id: uuid.UUID, final_attempt: bool) -> None:
    """Run one recorded job and store its outcome; re-raises so the queue retries a failure."""
    from app.jobs.consolidate import consolidate
    from app.jobs.forget import forget

    with runtime.sessions.begin() as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is None or job.status == "succeeded":
            return
        job.status, job.started_at, job.attempts = "running", datetime.now(UTC), job.attempts + 1
        tenant_id, kind, scope, dry_run = job.tenant_id, job.kind, dict(job.scope), job.dry_run
    started = time.perf_counter()
    try:
        run = consolidate if kind == "consolidate" else forget
        counts = run(runtime, tenant_id, scope, dry_run)
    except Exception as exc:
        runtime.metrics.observe_job(kind, "failed" if final_attempt else "retried", time.perf_counter() - started)
        log.exception("job failed", extra={"job_id": str(job_id), "kind": kind})
        with runtime.sessions.begin() as session:
            job = session.get(Job, job_id)
            if job is not None:
                job.status = "failed" if final_attempt else "queued"
                job.error = f"{type(exc).__name__}: {exc}"[:2000]
        raise
    runtime.metrics.observe_job(kind, "succeeded", time.perf_counter() - started)
    with runtime.sessions.begin() as session:
        job = session.get(Job, job_id)
        if job is not None:
            job.status, job.counts, job.error, job.finished_at = "succeeded", counts, None, datetime.now(UTC)


def _runtime(context: JobContext) -> "Runtime":
    return context.additional_context["runtime"]  # type: ignore[index]


def run_job(context: JobContext, job_id: str) -> None:
    runtime = _runtime(context)
    attempts = context.job.attempts if context.job else 0
    execute_job(runtime, uuid.UUID(job_id), final_attempt=attempts + 1 >= runtime.settings.job_max_attempts)


def sweep(context: JobContext, timestamp: int) -> None:
    """Periodically: consolidate idle sessions and run the forget sweep, per user scope."""
    runtime = _runtime(context)
    for tenant_id, user_id, kind in due_scopes(runtime):
        job_id = record_job(runtime, Principal.local(tenant_id), kind, {"user_id": user_id}, dry_run=False)
        execute_job(runtime, job_id, final_attempt=True)


def due_scopes(runtime: "Runtime") -> list[tuple[uuid.UUID, str | None, str]]:
    """Scopes with idle unconsolidated episodes, and where keys are searched, scopes with episodes
    consolidated while they were not (an LLM configured later): their consolidation keys those, and
    no new episode may ever come to prompt it. Then every scope's forget pass."""
    from app.jobs.consolidate import unkeyed

    idle = runtime.settings.consolidate_idle_minutes
    with runtime.sessions() as session:
        consolidate_due = session.execute(
            text(
                "SELECT tenant_id, user_id FROM memories WHERE type = 'episodic' AND status = 'active' "
                "AND consolidated_at IS NULL GROUP BY tenant_id, user_id "
                "HAVING max(created_at) < now() - make_interval(secs => :idle * 60)"
            ),
            {"idle": idle},
        ).all()
        if runtime.settings.memory_keys_searched:
            unkeyed_scopes = select(Memory.tenant_id, Memory.user_id).where(
                Memory.type == MemoryType.episodic.value, Memory.status == "active", *unkeyed()
            )
            consolidate_due = list(dict.fromkeys([*consolidate_due, *session.execute(unkeyed_scopes.distinct())]))
        forget_due = session.execute(
            text("SELECT DISTINCT tenant_id, user_id FROM memories WHERE status = 'active'")
        ).all()
    return [(t, u, "consolidate") for t, u in consolidate_due] + [(t, u, "forget") for t, u in forget_due]


def make_app(connector: procrastinate.BaseConnector, retries: int, sweep_cron: str) -> procrastinate.App:
    """A procrastinate app with Loci's tasks; the API (deferring) and workers each build their own."""
    app = procrastinate.App(connector=connector)
    app.task(name=RUN_JOB, queue=QUEUE, pass_context=True, retry=RetryStrategy(max_attempts=retries, wait=1))(run_job)
    app.periodic(cron=sweep_cron)(app.task(name=SWEEP, queue=QUEUE, pass_context=True)(sweep))
    return app


def record_job(runtime: "Runtime", principal: Principal, kind: str, scope: dict[str, Any], dry_run: bool) -> uuid.UUID:
    tenant_id = principal.tenant_id
    with tenant_session(runtime, principal) as session:
        job = Job(id=uuid.uuid4(), tenant_id=tenant_id, kind=kind, scope=scope, dry_run=dry_run, status="queued")
        session.add(job)
    return job.id


def libpq_url(runtime_url: str) -> str:
    return runtime_url.replace("postgresql+psycopg://", "postgresql://", 1)


class JobQueue:
    """Defers jobs from the API (synchronous connector), and optionally runs a worker in a thread."""

    def __init__(self, conninfo: str, retries: int, sweep_cron: str, stalled_seconds: float = 30.0) -> None:
        self._conninfo, self._retries, self._cron = conninfo, retries, sweep_cron
        self._stalled_seconds = stalled_seconds
        connector = procrastinate.SyncPsycopgConnector(conninfo=conninfo, min_size=1, max_size=4)
        self._defer_app = make_app(connector, retries, sweep_cron)
        self._defer_app.open()
        self._worker: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    def defer(self, job_id: uuid.UUID) -> None:
        self._defer_app.configure_task(RUN_JOB).defer(job_id=str(job_id))

    def start_worker(self, runtime: "Runtime") -> None:
        started = threading.Event()
        self._worker = threading.Thread(
            target=self._run_worker, args=(runtime, started), name="loci-worker", daemon=True
        )
        self._worker.start()
        started.wait(timeout=30)

    def _run_worker(self, runtime: "Runtime", started: threading.Event) -> None:
        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            connector = procrastinate.PsycopgConnector(conninfo=self._conninfo, min_size=1, max_size=3)
            app = make_app(connector, self._retries, self._cron)
            async with app.open_async():
                worker = asyncio.create_task(
                    app.run_worker_async(
                        queues=[QUEUE],
                        concurrency=1,
                        install_signal_handlers=False,
                        additional_context={"runtime": runtime},
                        fetch_job_polling_interval=1.0,
                        update_heartbeat_interval=self._stalled_seconds / 3,
                        stalled_worker_timeout=self._stalled_seconds,
                    )
                )
                rescuer = asyncio.create_task(self._requeue_stalled(app))
                started.set()
                await self._stop.wait()
                for task in (rescuer, worker):
                    task.cancel()
                    try:
                        await task
                    except asyncio.CancelledError:
                        pass

        asyncio.run(main())

    async def _requeue_stalled(self, app: procrastinate.App) -> None:
        """Jobs whose worker stopped heart-beating (killed, machine lost) go back on the queue; the
        job's idempotent units make the second run finish rather than repeat the first."""
        while True:
            stalled = await app.job_manager.get_stalled_jobs(queue=QUEUE, seconds_since_heartbeat=self._stalled_seconds)
            for job in stalled:
                log.warning("requeueing a stalled job", extra={"procrastinate_job": job.id})
                await app.job_manager.retry_job(job)
            await asyncio.sleep(self._stalled_seconds / 2)

    def close(self) -> None:
        if self._worker is not None and self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._worker.join(timeout=30)
        self._defer_app.close()


def job_status(runtime: "Runtime", principal: Principal, job_id: uuid.UUID) -> Job | None:
    with tenant_session(runtime, principal) as session:
        return session.scalar(select(Job).where(Job.id == job_id, Job.tenant_id == principal.tenant_id))
