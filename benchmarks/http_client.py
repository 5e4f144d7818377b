"""A minimal HTTP/1.1 JSON client on asyncio streams, one kept-alive connection per simulated client.

The concurrent benchmarks measure the service, so the client must add as little as it can to each
request's time. With 64 clients sharing one `httpx.AsyncClient` in a child process, timestamps
taken on both sides of `loci bench load` (2026-11-27) put a p99 of 2.4 s between the client's
send and the server's first look at the request, against 34 ms with this client, and the
generator's CPU came out of the 2 cores the service runs on. It speaks only what the benchmarks
send: POST and GET of JSON, responses framed by Content-Length (as uvicorn frames JSON).
"""

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit


class ProtocolError(Exception):
    """A response this client cannot read (no Content-Length, malformed head)."""


TRANSPORT_ERRORS = (OSError, EOFError, TimeoutError, ProtocolError, ValueError)
"""What a request can raise instead of answering: refused or reset connections, a connection the
server closed mid-response (asyncio.IncompleteReadError is an EOFError), the timeout, an
unreadable response (a body that is not JSON is a ValueError)."""


class KeptAliveConnection:
    """One connection, opened on first use and again after the server closed it."""

    def __init__(self, base_url: str, api_key: str, timeout_s: float) -> None:
        parts = urlsplit(base_url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._head = f"Host: {parts.netloc}\r\nAuthorization: Bearer {api_key}\r\n"
        self._timeout_s = timeout_s
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, decoded JSON body or None); raises one of TRANSPORT_ERRORS otherwise, after which
        the connection is dropped and the next request opens a new one."""
        try:
            return await asyncio.wait_for(self._exchange(method, path, body), self._timeout_s)
        except BaseException:
            await self.close()
            raise

    async def _exchange(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self._host, self._port)
        reader, writer = self._streams
        payload = b"" if body is None else json.dumps(body).encode()
        content = f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n" if body is not None else ""
        writer.write(f"{method} {path} HTTP/1.1\r\n{self._head}{content}\r\n".encode() + payload)
        await writer.drain()
        status, headers = _parse_head(await reader.readuntil(b"\r\n\r\n"))
        if "content-length" not in headers:
            raise ProtocolError(f"response to {method} {path} has no Content-Length")
        data = await reader.readexactly(int(headers["content-length"]))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, json.loads(data) if data else None

    async def close(self) -> None:
        if self._streams is not None:
            writer = self._streams[1]
            self._streams = None
            writer.close()


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError):
        raise ProtocolError(f"malformed status line {lines[0]!r}") from None
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return status, headers
