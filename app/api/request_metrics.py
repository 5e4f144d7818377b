"""ASGI middleware timing every HTTP request into the runtime's latency histogram.

Outermost, so refusals by the other middleware (413, 503 timeout, contained 500s) are counted too.
Labels stay bounded: the route *template* the router matched (no ids), `unmatched` for 404s and
requests refused before routing, and unusual methods folded into `other`.
"""

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"


class RequestMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            runtime = getattr(scope["app"].state, "runtime", None)
            if runtime is not None:
                route = getattr(scope.get("route"), "path", UNMATCHED)
                method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
                runtime.metrics.observe_request(method, route, status, time.perf_counter() - started)
