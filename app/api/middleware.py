"""ASGI middleware that bounds every request: body size, URL content, running time, and what a
crash reveals.

Pure ASGI rather than `@app.middleware("http")`: the body limit must see the raw `receive` stream
(chunked bodies have no Content-Length), and the deadline must not wait for the handler.
"""

import asyncio
import logging
import traceback
from typing import Any

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import error_response

log = logging.getLogger(__name__)


class BodySizeLimit:
    """Refuse bodies over `max_bytes` before they are parsed: from Content-Length without reading
    anything, and for chunked bodies by counting bytes as they arrive (the handler reading the body
    then fails with 413 at the first chunk over the limit)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            response = error_response(
                413, "payload_too_large", f"request body of {length} bytes exceeds {self.max_bytes}"
            )
            await response(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, f"request body exceeds {self.max_bytes} bytes")
            return message

        await self.app(scope, counted, send)


class RejectNulInUrl:
    """422 for a path or query that decodes to a NUL character: no identifier holds one and Postgres
    text cannot store it, so it would otherwise reach the database and fail there. (Bodies are
    checked by the request models.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and ("\x00" in scope["path"] or b"%00" in scope.get("query_string", b"")):
            response = error_response(422, "validation_error", "the URL contains a NUL character (%00)")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class ConcurrencyLimit:
    """Let at most `limit` requests run at once; the rest wait their turn in arrival order.

    Without it, every connection's request runs in its own thread, and under a burst dozens of
    threads take turns on the GIL and the cores: each request is slowed by all the others, so the
    slowest wait longest. Queued in order, a request waits only for those that came before it.
    Health checks and metrics pass the gate, so a busy service still answers its probes and
    scrapes. A streaming export holds its slot until it is sent.
    """

    def __init__(self, app: ASGIApp, limit: int, exempt: tuple[str, ...] = ("/healthz", "/readyz", "/metrics")) -> None:
        self.app, self.limit, self.exempt = app, limit, exempt
        self.slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    def _slots_of(self, loop: asyncio.AbstractEventLoop) -> asyncio.Semaphore:
        """A semaphore belongs to one event loop; a test client may serve the same app from several."""
        if self.slots is None or self.slots[0] is not loop:
            self.slots = (loop, asyncio.Semaphore(self.limit))
        return self.slots[1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.limit <= 0 or scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        async with self._slots_of(asyncio.get_running_loop()):
            await self.app(scope, receive, send)


class RequestTimeout:
    """Answer 503 `timeout` once a request has run `seconds` without starting its response.

    Handlers run in threads that cannot be interrupted, so the late handler is abandoned, not
    killed: its response is dropped, and its database statements are cancelled by the same
    deadline (statement_timeout in app.db.tenancy). A timed-out write may still commit; the
    idempotency key makes retrying it safe.
    """

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = abandoned = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if abandoned:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, guarded_send))
        done, _ = await asyncio.wait({task}, timeout=self.seconds)
        if done or started:
            await task
            return
        abandoned = True
        task.cancel()
        task.add_done_callback(_swallow)
        response = error_response(
            503,
            "timeout",
            f"the request took longer than {self.seconds:g} s; retry (writes: with the same idempotency key)",
            None,
            {"Retry-After": "1"},
        )
        await response(scope, receive, send)


def _swallow(task: "asyncio.Future[Any]") -> None:
    """Collect an abandoned handler's outcome so asyncio does not report it as never retrieved."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("abandoned request failed after its timeout: %s", type(task.exception()).__name__)


class ContainErrors:
    """Turn an unexpected exception into the 500 error body, and log it without its message.

    Exception messages can quote data (a database error echoes the value it rejected), and logs
    must not carry memory content; the type and the stack of code lines are enough to debug.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except Exception as exc:
            log.error(
                "unhandled %s on %s %s",
                type(exc).__name__,
                scope.get("method"),
                scope.get("path"),
                extra={"stack": "".join(traceback.format_tb(exc.__traceback__))},
            )
            if not started:  # else the connection just ends: re-raising would log the message after all
                await error_response(500, "internal", "internal error")(scope, receive, send)
