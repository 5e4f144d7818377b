"""The bearer check in front of `loci mcp --http`.

The MCP server forwards every tool call to Loci with one API key. Over stdio only the process that
started it can talk to it; over HTTP anyone who reaches the port could, with that key's rights, so
every HTTP request must present the same key as a bearer token, as a REST call would. The key is
compared in constant time and never logged.
"""

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

_CHALLENGE = [(b"www-authenticate", b'Bearer realm="loci-mcp"'), (b"content-type", b"application/json")]


class RequireBearerKey:
    """ASGI middleware: HTTP requests without `Authorization: Bearer <key>` get a 401 error body."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        if not key:
            raise ValueError("the MCP HTTP transport needs an API key to require")
        self._app = app
        self._expected = f"Bearer {key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._authorized(scope):
            await self._app(scope, receive, send)
            return
        body = {
            "error": {
                "code": "unauthorized",
                "message": "send the Loci API key this MCP server uses as 'Authorization: Bearer <key>'",
                "details": None,
            }
        }
        await send({"type": "http.response.start", "status": 401, "headers": _CHALLENGE})
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    def _authorized(self, scope: Scope) -> bool:
        presented = [value for name, value in scope["headers"] if name == b"authorization"]
        return len(presented) == 1 and hmac.compare_digest(presented[0], self._expected)
