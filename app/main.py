"""The FastAPI application."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import __version__
from app.api import (
    routes_admin,
    routes_health,
    routes_jobs,
    routes_lifecycle,
    routes_memories,
    routes_metrics,
    routes_portability,
    routes_privacy,
    routes_search,
    routes_stats,
)
from app.api.errors import install_error_handlers
from app.api.middleware import BodySizeLimit, ConcurrencyLimit, ContainErrors, RejectNulInUrl, RequestTimeout
from app.api.openapi import ERROR_RESPONSES, hoist_inline_definitions
from app.api.ratelimit import RateLimiter
from app.api.request_metrics import RequestMetrics
from app.runtime import Runtime, build_runtime
from app.settings import Settings
from app.ui import routes as ui_routes


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
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
    install_error_handlers(app)
    # Added innermost first: errors are contained around the deadline, which is around the input checks.
    app.add_middleware(RejectNulInUrl)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(ConcurrencyLimit, limit=settings.max_concurrent_requests)
    app.add_middleware(RequestTimeout, seconds=settings.request_timeout_s)
    app.add_middleware(ContainErrors)
    if settings.metrics_enabled:
        app.add_middleware(RequestMetrics)  # outermost: times refusals and contained errors too
        app.include_router(routes_metrics.router)

    app.include_router(routes_health.router)
    v1 = (
        routes_memories,
        routes_search,
        routes_jobs,
        routes_lifecycle,
        routes_stats,
        routes_admin,
        routes_portability,
        routes_privacy,
    )
    for module in v1:
        app.include_router(module.router, responses=ERROR_RESPONSES)
    ui_routes.install(app)  # the web memory browser at /ui, outside the OpenAPI schema
    hoist_inline_definitions(app)
    return app
