"""Request dependencies: the runtime and the caller's identity.

Handlers open their own transaction (`with tenant_session(runtime, principal.tenant_id)`, which also
puts it behind the tenant wall) so the commit happens before the response is sent: an acknowledged
write is a committed write.
"""

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from app.api.ratelimit import RateLimiter, retry_after
from app.errors import ApiError
from app.runtime import Runtime
from app.services.tenants import Principal, authenticate


async def get_runtime(request: Request) -> Runtime:
    """async: no I/O here, and a sync dependency would cost a thread-pool hop on every request."""
    return request.app.state.runtime


def get_principal(request: Request, runtime: Annotated[Runtime, Depends(get_runtime)]) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'")
    return authenticate_key(request, runtime, key.strip())


def authenticate_key(request: Request, runtime: Runtime, key: str) -> Principal:
    """The key's principal, rate-limited like every API call; shared with the web browser (app.ui)."""
    with runtime.sessions() as session:
        principal = authenticate(session, key)
    if principal is None:
        raise ApiError(401, "unknown or revoked API key")
    _check_rate(request.app.state.rate_limiter, principal)
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
