"""Who is browsing: the API key held in a cookie, checked on every request exactly as the API checks it.

The cookie holds the key itself rather than a signed session. A signed session would need a server
secret shared by every API process (one more thing to configure and rotate) and would still be a
bearer credential worth the same as the key. Holding the key means revoking it (`loci key revoke`,
`DELETE /v1/admin/keys/{id}`) signs the browser out on its next request, with no session store.
The cookie is HttpOnly (scripts cannot read it), SameSite=Strict (no other site's page can make the
browser send it), scoped to /ui, Secure over https, and lasts until the browser closes.

Changes (delete, restore, sign out) are POST forms that also carry a token derived from the key:
another origin can neither read the token nor, with SameSite=Strict, make the browser send the cookie.
Signing in has no key yet to derive a token from, so it refuses forms the browser says came from
another site (`from_another_site`): else any page could sign a visitor in with its author's key.
"""

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request, Response

from app.api.deps import RuntimeDep, authenticate_key
from app.errors import ApiError
from app.services.tenants import Principal

COOKIE = "loci_ui_key"
PATH = "/ui"


class SignInRequired(Exception):
    """No key, or one no longer valid: the page answers with a redirect to the sign-in form."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


@dataclass(frozen=True)
class Viewer:
    principal: Principal
    csrf_token: str

    @property
    def can_write(self) -> bool:
        return "write" in self.principal.permissions


def csrf_token(key: str) -> str:
    return hmac.new(key.encode("utf-8"), b"loci-ui-csrf", hashlib.sha256).hexdigest()


def sign_in(request: Request, runtime: RuntimeDep, key: str) -> Principal:
    """The key's principal if it may read (401 unknown or revoked, 403 without the read permission)."""
    principal = authenticate_key(request, runtime, key)
    if "read" not in principal.permissions:
        raise ApiError(403, "this key lacks the 'read' permission the browser needs")
    return principal


def from_another_site(request: Request) -> bool:
    """Whether the browser says this request comes from a page of another site: by Sec-Fetch-Site,
    which current browsers send with every request, else by Origin, which they send with every POST
    (compared with the Host asked for, so a TLS proxy in front changes nothing). A request with
    neither header is no browser's cross-site form (curl, scripts with the key in hand)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return False
    return origin == "null" or urlsplit(origin).netloc != request.headers.get("host")


def set_key_cookie(request: Request, response: Response, key: str) -> None:
    secure = request.url.scheme == "https"
    response.set_cookie(COOKIE, key, path=PATH, httponly=True, samesite="strict", secure=secure)


def clear_key_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict")


def current_viewer(request: Request, runtime: RuntimeDep) -> Viewer:
    key = request.cookies.get(COOKIE)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not key:
        raise SignInRequired(here)
    try:
        principal = sign_in(request, runtime, key)
    except ApiError as exc:
        if exc.status in (401, 403):
            raise SignInRequired(here) from None
        raise
    return Viewer(principal, csrf_token(key))


def check_token(viewer: Viewer, token: str) -> None:
    """A POST form must carry the token of this sign-in (CSRF)."""
    if not hmac.compare_digest(token.encode("utf-8"), viewer.csrf_token.encode("utf-8")):
        raise ApiError(403, "the form's token does not match this sign-in; reload the page and try again")


def check_change(viewer: Viewer, token: str) -> None:
    """A change to memories needs the form's token and a key with the write permission."""
    check_token(viewer, token)
    if not viewer.can_write:
        raise ApiError(403, "this key is read-only: it lacks the 'write' permission")


def safe_next(next_url: str | None) -> str:
    """Where to go after signing in: only a page of this browser, never another site (open redirect)."""
    if next_url and next_url.startswith(PATH + "/") and not next_url.startswith("//") and "\\" not in next_url:
        return next_url
    return PATH + "/search"


def sign_in_url(next_url: str) -> str:
    return f"{PATH}/login?next={quote(next_url, safe='')}"


CurrentViewer = Annotated[Viewer, Depends(current_viewer)]
