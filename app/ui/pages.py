"""Rendering the browser's pages, errors included: every failure under /ui is an HTML page with the
API's status (never the JSON error body a person cannot read), and every page carries headers that
keep it out of frames, caches and other origins' reach."""

import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from app.api.errors import describe_errors
from app.api.schemas import known_zone
from app.errors import ApiError
from app.ui.auth import SignInRequired, sign_in_url

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages hold memory content: not for shared or back-button caches
}

TITLES = {
    401: "Not signed in",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    422: "Bad input",
    429: "Too many requests",
}


ZONE_COOKIE = "loci_tz"
"""The browser's IANA time zone, which the pages' script (static/ui.js) keeps in this cookie."""


def viewer_zone(request: Request) -> tzinfo:
    """The zone pages show times and count days in: the browser's, once its script has said which;
    UTC before that, or for a name that is not an IANA zone (a cookie is no request to refuse).
    Read once a request: its route and its template both ask."""
    if not hasattr(request.state, "zone"):
        try:
            name = known_zone(request.cookies.get(ZONE_COOKIE))
        except ValueError:
            name = None
        request.state.zone = UTC if name is None else ZoneInfo(name)
    zone: tzinfo = request.state.zone
    return zone


def zone_name(zone: tzinfo) -> str | None:
    """The IANA name of a zone `viewer_zone` gave; None for UTC without one."""
    return getattr(zone, "key", None)


@pass_context
def when(context: Context, value: datetime | None, clock_only: bool = False) -> str:
    """A stored time in the viewer's zone (`zone` in the page's context), named."""
    if value is None:
        return ""
    zone = context.get("zone", UTC)
    local = value.astimezone(zone)
    return local.strftime("%H:%M") if clock_only else f"{local:%Y-%m-%d %H:%M} {zone_name(zone) or 'UTC'}"


def brief(value: Any, length: int = 120) -> str:
    """A stored value in one short line: text as it is, anything else as JSON."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= length else text[: length - 1] + "…"


TEMPLATES.env.filters["when"] = when
TEMPLATES.env.filters["brief"] = brief


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, name, {"zone": viewer_zone(request), **context}, status_code=status)


def error_page(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> HTMLResponse:
    response = render(
        request, "error.html", {"title": TITLES.get(status, "Error"), "status": status, "message": message}, status
    )
    response.headers.update(headers or {})
    return response


Failure = SignInRequired | ApiError | RequestValidationError | ValidationError | HTTPException
FAILURES = (SignInRequired, ApiError, RequestValidationError, ValidationError, HTTPException)


def _failure_page(request: Request, exc: Failure) -> Response:
    if isinstance(exc, SignInRequired):
        return RedirectResponse(sign_in_url(exc.next_url), status_code=303)
    if isinstance(exc, ApiError):
        return error_page(request, exc.status, exc.message)
    if isinstance(exc, RequestValidationError | ValidationError):
        return error_page(request, 422, describe_errors(list(exc.errors())))
    return error_page(request, exc.status_code, str(exc.detail), exc.headers)


class HtmlRoute(APIRoute):
    """A route whose expected failures render as pages; anything else still reaches the app's handlers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                response = await handler(request)
            except FAILURES as exc:
                response = _failure_page(request, exc)
            response.headers.update(SECURITY_HEADERS)
            return response

        return guarded
