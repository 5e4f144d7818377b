"""Liveness and readiness probes."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from app.api.deps import RuntimeDep
from app.db import migrate
from app.runtime import vector_width

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Ready when the database answers, the schema is at head and the model matches the vector width."""
    checks: dict[str, bool] = {"database": False, "schema": False, "model": False}
    try:
        checks["schema"] = migrate.current_revision(runtime.engine) == migrate.head_revision()
        checks["database"] = True
        checks["model"] = vector_width(runtime.engine) == runtime.embedder.dim
    except SQLAlchemyError:
        pass
    ready = all(checks.values())
    return JSONResponse(
        status_code=200 if ready else 503, content={"status": "ready" if ready else "not_ready", "checks": checks}
    )
