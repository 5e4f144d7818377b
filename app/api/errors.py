"""One error body for every failure: {"error": {"code", "message", "details"}}."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from psycopg.errors import DeadlockDetected, QueryCanceled, SerializationFailure
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.errors import CODES, ApiError
from app.logs import Throttled

log = logging.getLogger(__name__)


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": jsonable_encoder(details)}}
    return JSONResponse(status_code=status, content=body, headers=headers)


def describe_errors(errors: list[dict[str, Any]]) -> str:
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return "; ".join(parts)


def _clean(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop echoed inputs and exception objects: inputs can be huge or private."""
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors]


def _allowed_methods(request: Request) -> str:
    """Every method the path supports; Starlette's 405 names only those of the first route matching it."""
    methods = {
        m
        for route in iter_route_contexts(request.app.routes)
        if route.matches(request.scope)[0] != Match.NONE
        for m in route.methods or ()
    }
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    outage = Throttled(log, interval_s=5.0)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        return error_response(422, "validation_error", describe_errors(errors), _clean(errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = CODES.get(exc.status_code, "error")
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": _allowed_methods(request)}
        return error_response(exc.status_code, code, str(exc.detail), None, headers)

    @app.exception_handler(OperationalError)
    async def _db_down(_: Request, exc: OperationalError) -> JSONResponse:
        if isinstance(exc.orig, QueryCanceled):  # statement_timeout: the request deadline (app.db.tenancy)
            message = "a database statement ran past the request deadline; retry"
            return error_response(503, "timeout", message, None, {"Retry-After": "1"})
        if isinstance(exc.orig, (DeadlockDetected, SerializationFailure)):  # retryable: nothing was written
            message = "the request collided with a concurrent one in the database; retry"
            return error_response(503, "conflict_retry", message, None, {"Retry-After": "1"})
        outage.warning("database unavailable: %s", type(exc.orig).__name__)
        return error_response(
            503, "unavailable", "the database is unavailable; retry shortly", None, {"Retry-After": "1"}
        )

    @app.exception_handler(DBAPIError)
    async def _db_error(_: Request, exc: DBAPIError) -> JSONResponse:
        log.error("database error: %s", type(exc.orig).__name__)
        return error_response(500, "internal", "internal database error", None)
