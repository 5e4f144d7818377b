"""Lifecycle jobs: consolidate and forget a scope in the background, and read their outcome."""

import uuid

from fastapi import APIRouter

from app.api.deps import Reader, RuntimeDep, Writer
from app.api.schemas import ForgetRequest, JobCreated, JobOut, JobScope
from app.errors import not_found
from app.jobs.queue import job_status, record_job
from app.services.tenants import Principal

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def _start(runtime: RuntimeDep, principal: Principal, kind: str, scope: JobScope, dry_run: bool) -> JobCreated:
    job_id = record_job(
        runtime,
        principal,
        kind,
        scope.model_dump(include={"user_id", "agent_id", "session_id"}, exclude_none=True),
        dry_run,
    )
    runtime.jobs.defer(job_id)
    return JobCreated(job_id=job_id)


@router.post("/consolidate", status_code=202, response_model=JobCreated, summary="Consolidate a scope's new episodes")
def start_consolidation(scope: JobScope, runtime: RuntimeDep, principal: Writer) -> JobCreated:
    return _start(runtime, principal, "consolidate", scope, dry_run=False)


@router.post(
    "/forget", status_code=202, response_model=JobCreated, summary="Archive expired, faded or surplus memories"
)
def start_forgetting(body: ForgetRequest, runtime: RuntimeDep, principal: Writer) -> JobCreated:
    return _start(runtime, principal, "forget", body, dry_run=body.dry_run)


# `:uuid` keeps "consolidate" and "forget" from matching as a job id: another method on those paths is
# then a 405 naming POST, and a malformed id is an unknown job (404) rather than a validation error.
@router.get("/{job_id:uuid}", response_model=JobOut)
def get_job(job_id: uuid.UUID, runtime: RuntimeDep, principal: Reader) -> JobOut:
    job = job_status(runtime, principal, job_id)
    if job is None:
        raise not_found("job")
    return JobOut(
        job_id=job.id,
        kind=job.kind,
        status=job.status,  # type: ignore[arg-type]
        scope=job.scope,
        dry_run=job.dry_run,
        counts=job.counts,
        error=job.error,
        created_at=job.created_at,
        finished_at=job.finished_at,
    )
