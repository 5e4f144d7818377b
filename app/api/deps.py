"""Request dependencies: the runtime and the caller's identity.

Handlers open their own transaction (`with tenant_session(runtime, principal)`, which also
puts it behind the tenant wall) so the commit happens before the response is sent: an acknowledged
write is a committed write.
"""

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from app.api.ratelimit import RateLimiter, retry_after
from app.errors import ApiError, UnknownKey
from app.runtime import Runtime
from app.services.tenants import Principal, authenticate, hash_key


async def get_runtime(request: Request) -> Runtime:
    """async: no I/O here, and a sync dependency would cost a thread-pool hop on every request."""
    return request.app.state.runtime


async def get_principal(request: Request, runtime: Annotated[Runtime, Depends(get_runtime)]) -> Principal:
    """The caller's principal. A key seen recently comes from memory (app.services.key_cache) and is
    re-checked by the request's own transaction; an unseen key is looked up first."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'")
    key_hash = hash_key(key.strip())
    principal = runtime.key_cache.get(key_hash)
    if principal is None:
        principal = await run_in_threadpool(look_up_key, runtime, key.strip())
        runtime.key_cache.put(key_hash, principal)
    _check_rate(request.app.state.rate_limiter, principal)
    return principal


def authenticate_key(request: Request, runtime: Runtime, key: str) -> Principal:
    """The key's principal from the database, rate-limited like every API call (the web browser, app.ui)."""
    principal = look_up_key(runtime, key)
    _check_rate(request.app.state.rate_limiter, principal)
    return principal


def look_up_key(runtime: Runtime, key: str) -> Principal:
    with runtime.sessions() as session:
        principal = authenticate(session, key)
    if principal is None:
        raise UnknownKey()
    return principal


def _check_rate(limiter: RateLimiter, principal: Principal) -> None:
    """429 with Retry-After once a key outruns its token bucket (LOCI_RATE_LIMIT_PER_S, _BURST)."""
    wait = limiter.acquire(principal.key_id)
    if wait > 0:
        raise HTTPException(
            429,
            f"this key exceeded {limiter.rate:g} requests a second",
            headers={"Retry-After": retry_after(wait)},
        )


def require(permission: str):  # type: ignore[no-untyped-def]
    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if permission not in principal.permissions:
            raise ApiError(403, f"this key lacks the '{permission}' permission")
        return principal

    check.permission = permission  # type: ignore[attr-defined]  # lets tests audit every route's permission
    return check


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
Reader = Annotated[Principal, Depends(require("read"))]
Writer = Annotated[Principal, Depends(require("write"))]
Admin = Annotated[Principal, Depends(require("admin"))]
