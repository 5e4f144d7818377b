"""Where `loci mcp` sends its calls: a Loci server at a URL, or the service run inside this process.

Inside the process the FastAPI app is reached through httpx's ASGI transport rather than a socket:
the tools still go through the SDK and the whole HTTP stack (keys, validation, limits, error
bodies), yet no port is opened and there is no second server to start or stop. The embedded
database is shared with a `loci serve` on the same LOCI_HOME, so both see the same memories.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
import httpx
from loci_client import AsyncMemoryClient

from app.settings import Settings

# Only names the in-process app in request lines and logs: the ASGI transport never resolves it.
IN_PROCESS_URL = "http://loci.in-process"


class NoApiKey(Exception):
    """The in-process service has keys, but none was given and LOCI_HOME holds none to use."""


def local_api_key(settings: Settings) -> str:
    """The key for the service on this machine: the bootstrap key, else the one the first start
    wrote to LOCI_HOME/api-key (see `loci serve`)."""
    if settings.bootstrap_api_key:
        return settings.bootstrap_api_key
    path = settings.home / "api-key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise NoApiKey(
            f"no API key: {path} does not exist; pass --api-key or set LOCI_API_KEY "
            "(`loci tenant create NAME` prints a new one)"
        ) from None


def forwarding_key(settings: Settings, url: str | None, api_key: str | None) -> str | None:
    """The key tool calls go out with: `api_key`; else, with no url, `local_api_key`; else none
    (the SDK then reads LOCI_API_KEY)."""
    if api_key or url is not None:
        return api_key
    return local_api_key(settings)


@asynccontextmanager
async def memory_client(settings: Settings, url: str | None, key: str | None) -> AsyncIterator[AsyncMemoryClient]:
    """An SDK client for the server at `url`, or, with no url, for the service built here on
    `settings`; its key is `key`, as `forwarding_key` resolves it."""
    if url is not None:
        async with AsyncMemoryClient(url, key) as client:
            yield client
        return
    # Imported here: the service stack takes a second to import, which a client of a remote server skips.
    from app.main import create_app
    from app.runtime import build_runtime

    runtime = await anyio.to_thread.run_sync(build_runtime, settings)
    try:
        transport = httpx.ASGITransport(app=create_app(runtime=runtime))
        async with AsyncMemoryClient(IN_PROCESS_URL, key, transport=transport) as client:
            yield client
    finally:
        await anyio.to_thread.run_sync(runtime.close)
