"""The FastAPI application."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import Response

from app import __version__
from app.api import routes_health, routes_jobs, routes_lifecycle, routes_memories, routes_search
from app.api.errors import error_response, install_error_handlers
from app.runtime import Runtime, build_runtime
from app.settings import Settings


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """Build the app; with a runtime given (tests, the eval runner) the caller owns its lifetime."""
    settings = runtime.settings if runtime else (settings or Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if runtime is not None:
            app.state.runtime = runtime
            yield
            return
        app.state.runtime = build_runtime(settings)
        try:
            yield
        finally:
            app.state.runtime.close()

    app = FastAPI(title="Loci", version=__version__, lifespan=lifespan, description="Long-term memory for AI agents.")
    if runtime is not None:
        app.state.runtime = runtime
    install_error_handlers(app)

    @app.middleware("http")
    async def limit_body_size(request: Request, call_next) -> Response:  # type: ignore[no-untyped-def]
        """Refuse oversized bodies from their declared length, before reading or parsing them."""
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > settings.max_body_bytes:
            return error_response(
                413, "payload_too_large", f"request body of {length} bytes exceeds {settings.max_body_bytes}"
            )
        return await call_next(request)

    for module in (routes_health, routes_memories, routes_search, routes_jobs, routes_lifecycle):
        app.include_router(module.router)
    return app
